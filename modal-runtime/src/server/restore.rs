//! Starting again from the store: apps, functions, secrets and tokens come back; deployed and
//! detached apps keep running, and so does an ephemeral app while its client still sends
//! heartbeats (it is stopped like any other once they stop); spawned calls that had no result
//! run again (at least once), finished ones can still be read; schedules resume.

use std::collections::HashSet;

use super::state::{
    AppRec, CallKind, CallRec, FunctionRec, InputMapping, InputRec, InputState, State,
};
use super::store::{Op, Snapshot};
use crate::model::{AppState, CallResult, DeployStrategy, Deployment, Payload, ResultStatus};
use crate::wire;

/// How often results and logs past their retention are forgotten.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

impl State {
    /// Rebuilds the state from a snapshot of the store.
    pub(crate) fn restore(&mut self, snap: Snapshot) {
        let mut changed = Vec::new();
        let clock = self.clock;
        for row in snap.apps {
            let stored = wire::app_state_of(row.state).unwrap_or(AppState::Stopped);
            let state = match stored {
                // An ephemeral app's client reconnects and goes on; one that does not is reaped
                // when its heartbeats stay away (counted from now).
                s @ (AppState::Deployed
                | AppState::Detached
                | AppState::Stopped
                | AppState::Ephemeral) => s,
                _ => {
                    // It was being created or stopped when the control plane went away.
                    changed.push(row.id.clone());
                    AppState::Stopped
                }
            };
            let mut app = AppRec::new(row.name, row.environment, state, clock);
            app.tags = serde_json::from_str(&row.tags_json).unwrap_or_default();
            app.created_at_ms = row.created_at;
            app.stopped_at_ms = row
                .stopped_at
                .or_else(|| (state == AppState::Stopped).then_some(clock.unix_ms));
            app.deployed_version = row.deployed_version;
            self.apps.insert(row.id, app);
        }
        for d in snap.deployments {
            if let Some(app) = self.apps.get_mut(&d.app_id) {
                let strategy = if d.strategy == DeployStrategy::Recreate.name() {
                    DeployStrategy::Recreate
                } else {
                    DeployStrategy::Rolling
                };
                app.history.push(Deployment {
                    version: d.version,
                    deployed_at_ms: d.deployed_at,
                    client: d.client,
                    tag: d.tag,
                    strategy,
                });
            }
        }
        let mut resealed = Vec::new();
        for row in snap.functions {
            let mut def = match wire::decode_definition(&row.definition) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(function_id = %row.id, "stored definition does not decode: {e}");
                    continue;
                }
            };
            // A store written before secret values were sealed keeps them in clear: seal them
            // and write the definition again.
            if !def.secret_env.is_empty() {
                match self.seal_definition(def.clone()) {
                    Ok(sealed) => {
                        def = sealed;
                        resealed.push(row.id.clone());
                    }
                    Err(e) => tracing::error!(function_id = %row.id, "cannot seal: {e}"),
                }
            }
            let Some(app) = self.apps.get_mut(&row.app_id) else {
                continue;
            };
            let mut f = FunctionRec::new(row.app_id.clone(), def, row.version, app.created_at_ms);
            f.retired = app.deployed_version > 0 && row.version < app.deployed_version;
            // A variant runs as itself (its definition is complete) but is not one of the app's
            // functions by tag; binding it again after a restart makes a new variant.
            if f.def.variant_of.is_empty() {
                app.functions.push(row.id.clone());
            }
            self.functions.insert(row.id, f);
        }
        for id in resealed {
            self.save_function(&id);
        }
        for s in snap.secrets {
            self.secrets
                .insert((s.environment.clone(), s.name.clone()), s);
        }
        self.restore_volumes(snap.volumes, snap.volume_heads);
        for t in snap.tokens {
            self.auth.add_token(t.id, t.secret_hash);
        }
        for s in snap.schedules {
            self.schedules
                .insert(s.function_id, (Some(s.last_fire_ms), 0));
        }
        let mut rerun = 0usize;
        for row in snap.calls {
            let result = row.result.as_deref().map(|r| {
                wire::decode_result(r).unwrap_or_else(|e| {
                    CallResult::failure(
                        ResultStatus::InternalFailure,
                        format!("the stored result of call {} is unreadable: {e}", row.id),
                        "",
                    )
                })
            });
            let live = self.apps.get(&row.app_id).is_some_and(AppRec::is_live);
            let input_id = crate::ids::new_id("in-");
            let pending = result.is_none();
            self.calls.insert(
                row.id.clone(),
                CallRec {
                    function_id: row.function_id.clone(),
                    app_id: row.app_id.clone(),
                    kind: CallKind::Unary {
                        result,
                        waiters: Vec::new(),
                        spawned: true,
                    },
                    persisted: true,
                    created_at_ms: row.created_at,
                    finished_at_ms: row.finished_at,
                    unfinished: if pending {
                        HashSet::from([input_id.clone()])
                    } else {
                        HashSet::new()
                    },
                    inputs_total: 1,
                    attempts: Vec::new(),
                },
            );
            if !pending {
                continue;
            }
            let (payload, unreadable) = match wire::decode_payload(&row.input) {
                Ok(p) => (p, None),
                Err(e) => (
                    Payload::default(),
                    Some(format!(
                        "the stored input of call {} is unreadable: {e}",
                        row.id
                    )),
                ),
            };
            self.inputs.insert(
                input_id.clone(),
                InputRec {
                    call_id: row.id.clone(),
                    function_id: row.function_id.clone(),
                    idx: 0,
                    payload,
                    attempt: u32::try_from(row.attempt).unwrap_or(0),
                    deadline: None,
                    state: InputState::Queued,
                    method: row.method.clone(),
                    queued_at: clock.now,
                    accepted_at: clock.now,
                    mapping: InputMapping::Unknown,
                },
            );
            if let Some(why) = unreadable {
                tracing::error!(call_id = %row.id, "{why}");
                let r = CallResult::failure(ResultStatus::InternalFailure, why, "");
                self.finish_input(&input_id, r);
                continue;
            }
            if live && self.functions.contains_key(&row.function_id) {
                if let Some(f) = self.functions.get_mut(&row.function_id) {
                    f.queue.push_back(input_id);
                }
                rerun += 1;
            } else {
                let r = CallResult::failure(
                    ResultStatus::Cancelled,
                    "the app stopped while the control plane was down",
                    "",
                );
                self.finish_input(&input_id, r);
            }
        }
        for app_id in changed {
            self.save_app(&app_id);
        }
        tracing::info!(
            apps = self.apps.len(),
            functions = self.functions.len(),
            rerun,
            "state restored"
        );
    }

    /// Starts what the restored state implies: schedules, and scheduling of waiting inputs.
    pub(crate) fn resume(&mut self) {
        self.arm_all_schedules();
        self.recheck_waiting();
    }

    /// The stored payloads the state names: its inputs' and the results it keeps.
    pub(crate) fn live_payloads(&self) -> HashSet<String> {
        let inputs = self.inputs.values().map(|i| &i.payload);
        let results = self.calls.values().filter_map(CallRec::kept_value);
        inputs
            .chain(results)
            .filter_map(|p| Some(p.stored.as_ref()?.handle.clone()))
            .collect()
    }

    /// Forgets spawned calls' results and logs past their retention (counted from when a call
    /// finished, as the store does), at most once a minute. A call read after that is
    /// "not found: its result expired".
    pub(crate) fn prune(&mut self) {
        let now = self.clock.now;
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_EVERY;
        let cutoff =
            self.clock.unix_ms - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let expired: Vec<CallRec> = self
            .calls
            .extract_if(|_, c| c.finished_at_ms.is_some_and(|f| f < cutoff))
            .map(|(_, c)| c)
            .collect();
        self.release(expired.iter().filter_map(CallRec::kept_value));
        if !expired.is_empty() {
            self.record(Op::PruneCalls {
                finished_before: cutoff,
            });
        }
        self.record(Op::PruneLogs { before: cutoff });
    }
}
