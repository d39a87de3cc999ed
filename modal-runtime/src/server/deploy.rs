//! Apps by name: deploys (versions, stable ids, rolling and recreate), lookups, stop by name,
//! listings, history and tags.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::oneshot;
use tonic::Status;

use super::event_loop::Reply;
use super::state::{AppRec, State, StopReason, TaskRec, environment};
use super::store::{DeploymentRow, Op};
use crate::app::rules;
use crate::ids::new_id;
use crate::model::{AppState, AppSummary, DeployStrategy, Deployment, FunctionDef, ResultStatus};

/// A deploy as asked.
pub(crate) struct DeployRequest {
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) tag: String,
    pub(crate) strategy: DeployStrategy,
    pub(crate) functions: Vec<FunctionDef>,
    pub(crate) tags: BTreeMap<String, String>,
    /// Who deploys (user@host), for the history.
    pub(crate) client: String,
}

/// What a deploy made.
pub(crate) struct Deployed {
    pub(crate) app_id: String,
    pub(crate) version: i64,
    /// tag → function id.
    pub(crate) function_ids: HashMap<String, String>,
}

/// An app found by name.
pub(crate) struct Found {
    pub(crate) app_id: String,
    pub(crate) state: AppState,
    pub(crate) name: String,
}

/// What `modal app stop` did.
pub(crate) struct Stopped {
    pub(crate) app_id: String,
    /// Containers that were running when the stop was asked.
    pub(crate) stopped_containers: u32,
    pub(crate) already_stopped: bool,
}

impl State {
    /// Finds an app by id, or by name in an environment: a deployed app first, else the newest
    /// running one (ephemeral and detached apps are found by name too).
    pub(crate) fn find_app(
        &self,
        app: &str,
        environment_name: &str,
    ) -> Result<(String, &AppRec), Status> {
        if app.starts_with("ap-") {
            return self
                .apps
                .get(app)
                .map(|a| (app.to_owned(), a))
                .ok_or_else(|| Status::not_found(format!("app {app} not found")));
        }
        let env = environment(environment_name);
        let mut candidates: Vec<(&String, &AppRec)> = self
            .apps
            .iter()
            .filter(|(_, a)| a.name == app && a.environment == env)
            .collect();
        candidates.sort_by_key(|(id, a)| {
            let rank = match a.state {
                AppState::Deployed => 0,
                s if a.is_live() && s != AppState::Initializing => 1,
                _ => 2,
            };
            (rank, -a.created_at_ms, (*id).clone())
        });
        match candidates.first() {
            Some((id, a)) if a.is_live() => Ok(((*id).clone(), a)),
            Some((id, a)) => Err(Status::not_found(format!(
                "app `{app}` in environment `{env}` is stopped (last: {id}, {:?})",
                a.state
            ))),
            None => Err(Status::not_found(format!(
                "no app named `{app}` in environment `{env}`"
            ))),
        }
    }

    /// Like [`find_app`](State::find_app), falling back to the newest stopped app of that name.
    pub(crate) fn find_app_any_state(
        &self,
        app: &str,
        environment_name: &str,
    ) -> Result<String, Status> {
        match self.find_app(app, environment_name) {
            Ok((id, _)) => Ok(id),
            Err(e) if e.code() == tonic::Code::NotFound && !app.starts_with("ap-") => {
                let env = environment(environment_name);
                self.apps
                    .iter()
                    .filter(|(_, a)| a.name == app && a.environment == env)
                    .max_by_key(|(id, a)| (a.created_at_ms, (*id).clone()))
                    .map(|(id, _)| id.clone())
                    .ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Deploys; with `recreate`, replies once the old version's containers are gone.
    pub(crate) fn app_deploy(&mut self, req: DeployRequest, reply: Reply<Deployed>) {
        match self.deploy(req) {
            Ok((resp, None)) => self.respond(reply, Ok(resp)),
            Ok((resp, Some(version))) => {
                // `recreate`: answer once the old version's containers are gone.
                let app_id = resp.app_id.clone();
                self.recreate_waiters.push((
                    app_id.clone(),
                    version,
                    Box::new(move |err| {
                        let _ = reply.send(match err {
                            None => Ok(resp),
                            Some(e) => Err(Status::internal(format!(
                                "the control plane could not save the deploy: {e}"
                            ))),
                        });
                    }),
                ));
                self.check_recreate(&app_id);
            }
            Err(e) => self.respond(reply, Err(e)),
        }
    }

    fn deploy(&mut self, req: DeployRequest) -> Result<(Deployed, Option<i64>), Status> {
        rules::check_app_name(&req.name).map_err(Status::invalid_argument)?;
        rules::check_deployment_tag(&req.tag).map_err(Status::invalid_argument)?;
        let env = environment(&req.environment);
        let strategy = req.strategy;
        let existing = self
            .apps
            .iter()
            .find(|(_, a)| {
                a.name == req.name && a.environment == env && a.state == AppState::Deployed
            })
            .map(|(id, _)| id.clone());
        let app_id = existing.unwrap_or_else(|| {
            let id = new_id("ap-");
            let app = AppRec::new(
                req.name.clone(),
                env.clone(),
                AppState::Deployed,
                self.clock,
            );
            self.apps.insert(id.clone(), app);
            id
        });
        let version = self.apps.get(&app_id).map_or(1, |a| a.deployed_version + 1);
        let tags = req.tags;
        let old_functions: Vec<String> = self
            .apps
            .get(&app_id)
            .map(|a| a.functions.clone())
            .unwrap_or_default();
        let new_tags: Vec<String> = req.functions.iter().map(|d| d.tag.clone()).collect();
        let function_ids = self.register_functions(&app_id, req.functions, version)?;
        // Functions the new version no longer has stop taking inputs.
        for id in old_functions {
            let retired = self
                .functions
                .get(&id)
                .is_some_and(|f| !new_tags.contains(&f.def.tag));
            if retired {
                // Its variants (class parameters, option overrides) go with it.
                let variants: Vec<String> = self
                    .functions
                    .iter()
                    .filter(|(_, f)| f.variant.as_ref().is_some_and(|v| v.base == id))
                    .map(|(vid, _)| vid.clone())
                    .collect();
                let why = format!("the function was removed by deploy v{version}");
                for fid in std::iter::once(id).chain(variants) {
                    if let Some(f) = self.functions.get_mut(&fid) {
                        f.retired = true;
                    }
                    self.schedules.remove(&fid);
                    self.fail_queued(&fid, ResultStatus::InternalFailure, &why, "", false);
                }
            }
        }
        let deployed_at = self.clock.unix_ms;
        if let Some(app) = self.apps.get_mut(&app_id) {
            app.deployed_version = version;
            app.tags = tags;
            app.history.push(Deployment {
                version,
                deployed_at_ms: deployed_at,
                client: req.client.clone(),
                tag: req.tag.clone(),
                strategy,
            });
        }
        self.save_app(&app_id);
        self.record(Op::InsertDeployment(DeploymentRow {
            app_id: app_id.clone(),
            version,
            tag: req.tag,
            deployed_at,
            client: req.client,
            strategy: strategy.name().to_owned(),
        }));
        // Containers of older versions take no new inputs; with `recreate` they stop now,
        // otherwise they finish what they hold (see `retire_outdated`).
        let outdated: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.app_id == app_id && t.version < version)
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in &outdated {
            if strategy == DeployStrategy::Recreate {
                self.stop_task(task_id, StopReason::Redeployed, 0);
            }
        }
        self.retire_outdated();
        tracing::info!(%app_id, version, strategy = strategy.name(), "app deployed");
        let resp = Deployed {
            app_id,
            version,
            function_ids,
        };
        let wait =
            (strategy == DeployStrategy::Recreate && !outdated.is_empty()).then_some(version);
        Ok((resp, wait))
    }

    /// Stops containers of older versions once they hold no inputs.
    pub(crate) fn retire_outdated(&mut self) {
        let idle_outdated: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| self.idle_and_outdated(t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle_outdated {
            self.stop_task(&id, StopReason::Redeployed, 2000);
        }
    }

    /// [`State::retire_outdated`] for the one container whose load just fell.
    pub(crate) fn retire_if_outdated(&mut self, task_id: &str) {
        if self
            .tasks
            .get(task_id)
            .is_some_and(|t| self.idle_and_outdated(t))
        {
            self.stop_task(task_id, StopReason::Redeployed, 2000);
        }
    }

    fn idle_and_outdated(&self, t: &TaskRec) -> bool {
        t.stop.is_none()
            && t.load() == 0
            && self
                .functions
                .get(&t.function_id)
                .is_some_and(|f| t.version < f.version || f.retired)
    }

    /// Sends the replies of `recreate` deploys whose old containers are all gone.
    pub(crate) fn check_recreate(&mut self, app_id: &str) {
        let mut i = 0;
        while i < self.recreate_waiters.len() {
            let (waiting_app, version, _) = &self.recreate_waiters[i];
            let gone = waiting_app != app_id
                || !self
                    .tasks
                    .values()
                    .any(|t| t.app_id == *waiting_app && t.version < *version);
            if waiting_app == app_id && gone {
                let (_, _, reply) = self.recreate_waiters.remove(i);
                self.after_commit(reply);
            } else {
                i += 1;
            }
        }
    }

    /// An app by name or id; with `create_if_missing`, a deployed app of that name is created.
    pub(crate) fn app_lookup(
        &mut self,
        name: &str,
        environment_name: &str,
        create_if_missing: bool,
    ) -> Result<Found, Status> {
        if name.starts_with("ap-") && create_if_missing {
            return Err(Status::invalid_argument(
                "`create_if_missing` needs an app name, not an app id",
            ));
        }
        match self.find_app(name, environment_name) {
            Ok((app_id, app)) => Ok(Found {
                app_id,
                state: app.state,
                name: app.name.clone(),
            }),
            Err(e) if create_if_missing && e.code() == tonic::Code::NotFound => {
                rules::check_app_name(name).map_err(Status::invalid_argument)?;
                let app_id = new_id("ap-");
                let app = AppRec::new(
                    name.to_owned(),
                    environment(environment_name),
                    AppState::Deployed,
                    self.clock,
                );
                self.apps.insert(app_id.clone(), app);
                self.save_app(&app_id);
                Ok(Found {
                    app_id,
                    state: AppState::Deployed,
                    name: name.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `modal app stop`: the receiver fires once the app's last container is gone.
    pub(crate) fn app_stop_request(
        &mut self,
        app: &str,
        environment_name: &str,
    ) -> Result<(Stopped, Option<oneshot::Receiver<()>>), Status> {
        let app_id = self.find_app_any_state(app, environment_name)?;
        let running = self.tasks.values().filter(|t| t.app_id == app_id).count();
        let already_stopped = self
            .apps
            .get(&app_id)
            .is_some_and(|a| a.state == AppState::Stopped);
        let stopped = Stopped {
            app_id: app_id.clone(),
            stopped_containers: u32::try_from(running).unwrap_or(u32::MAX),
            already_stopped,
        };
        if already_stopped {
            return Ok((stopped, None));
        }
        let done = self.app_stop(&app_id, "it was stopped")?;
        self.save_app(&app_id);
        Ok((stopped, Some(done)))
    }

    /// Apps of an environment (every one for `""`), most containers first, then newest.
    pub(crate) fn app_list(&self, environment_name: &str) -> Vec<AppSummary> {
        let mut apps: Vec<AppSummary> = self
            .apps
            .iter()
            .filter(|(_, a)| environment_name.is_empty() || a.environment == environment_name)
            .map(|(id, a)| AppSummary {
                app_id: id.clone(),
                name: a.name.clone(),
                description: a.description.clone(),
                state: a.state,
                tasks: u32::try_from(self.tasks.values().filter(|t| t.app_id == *id).count())
                    .unwrap_or(u32::MAX),
                created_at_ms: a.created_at_ms,
                stopped_at_ms: a.stopped_at_ms.unwrap_or(0),
                environment: a.environment.clone(),
                deployed_version: a.deployed_version,
            })
            .collect();
        apps.sort_by(|a, b| {
            b.tasks
                .cmp(&a.tasks)
                .then(b.created_at_ms.cmp(&a.created_at_ms))
                .then(a.app_id.cmp(&b.app_id))
        });
        apps
    }

    /// The deployment history of an app, newest first.
    pub(crate) fn app_history(
        &self,
        app: &str,
        environment_name: &str,
    ) -> Result<(String, Vec<Deployment>), Status> {
        let env = environment(environment_name);
        let found = if app.starts_with("ap-") {
            self.apps.get(app).map(|a| (app.to_owned(), a))
        } else {
            self.apps
                .iter()
                .filter(|(_, a)| a.name == app && a.environment == env && a.deployed_version > 0)
                .max_by_key(|(id, a)| (a.created_at_ms, (*id).clone()))
                .map(|(id, a)| (id.clone(), a))
        };
        let (app_id, rec) = found.ok_or_else(|| {
            Status::not_found(format!(
                "no deployed app named `{app}` in environment `{env}`"
            ))
        })?;
        let mut deployments = rec.history.clone();
        deployments.sort_by_key(|d| std::cmp::Reverse(d.version));
        Ok((app_id, deployments))
    }

    pub(crate) fn app_set_tags(
        &mut self,
        app_id: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), Status> {
        for (k, v) in &tags {
            rules::check_tag("key", k).map_err(Status::invalid_argument)?;
            rules::check_tag("value", v).map_err(Status::invalid_argument)?;
        }
        let app = self
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        app.tags = tags;
        self.save_app(app_id);
        Ok(())
    }

    pub(crate) fn app_get_tags(&self, app_id: &str) -> Result<BTreeMap<String, String>, Status> {
        let app = self
            .apps
            .get(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        Ok(app.tags.clone())
    }

    /// A function of an app found by name: its id, the app's id, and its definition.
    pub(crate) fn function_get(
        &self,
        app_name: &str,
        tag: &str,
        environment_name: &str,
        principal: &super::auth::Principal,
    ) -> Result<(String, String, FunctionDef), Status> {
        let (app_id, app) = self.find_app(app_name, environment_name)?;
        principal.require_app(&app_id)?;
        let found = app
            .functions
            .iter()
            .filter_map(|id| self.functions.get(id).map(|f| (id, f)))
            .find(|(_, f)| f.def.tag == tag && !f.retired);
        match found {
            Some((id, f)) => Ok((id.clone(), app_id, f.def.shareable())),
            None => {
                let known: Vec<&str> = app
                    .functions
                    .iter()
                    .filter_map(|id| self.functions.get(id))
                    .filter(|f| !f.retired)
                    .map(|f| f.def.tag.as_str())
                    .collect();
                let hint = if tag.contains('.') {
                    " (a class method is looked up with Cls::from_name)"
                } else {
                    ""
                };
                Err(Status::not_found(format!(
                    "app `{app_name}` has no function `{tag}`{hint}; its functions: {}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )))
            }
        }
    }
}
