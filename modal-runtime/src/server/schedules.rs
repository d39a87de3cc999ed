//! Scheduled functions: the control plane calls them by itself while their app runs (deployed,
//! detached, or an ephemeral run), and a tick missed while it was down fires once at restart.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};

use super::auth::Principal;
use super::state::{State, Timer, now_ms};
use super::store::{Op, ScheduleRow};
use crate::app::schedule::next_fire;
use crate::wire;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_else(Utc::now)
}

impl State {
    /// Decides whether the function's schedule fires now, and sets the timer for its next tick.
    pub(super) fn arm_schedule(&mut self, function_id: &str, now: Instant) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let live = self.apps.get(&f.app_id).is_some_and(|a| a.is_live());
        let Some(schedule) = f.def.schedule.as_ref().filter(|_| live && !f.retired) else {
            self.schedules.remove(function_id);
            return;
        };
        let Ok(schedule) = wire::schedule_from_pb(schedule) else {
            return;
        };
        let created = at(f.created_at_ms);
        let last = self.schedules.get(function_id).and_then(|(last, _)| *last);
        let wall_now = Utc::now();
        let (fire, next) = next_fire(&schedule, last.map(at), created, wall_now);
        let mut last = last;
        if fire {
            self.fire_schedule(function_id);
            last = Some(wall_now.timestamp_millis());
        }
        let wait = (next - wall_now).to_std().unwrap_or(Duration::ZERO);
        self.schedules
            .insert(function_id.to_owned(), (last, next.timestamp_millis()));
        self.set_timer(
            now + wait,
            Timer::ScheduleDue {
                function_id: function_id.to_owned(),
            },
        );
    }

    pub(super) fn schedule_due(&mut self, function_id: &str, now: Instant) {
        // Stale timers (a redeploy re-armed the schedule) find a later planned tick.
        let due = self
            .schedules
            .get(function_id)
            .is_some_and(|(_, next)| *next <= now_ms() + 5);
        if due {
            self.arm_schedule(function_id, now);
        }
    }

    fn fire_schedule(&mut self, function_id: &str) {
        let input = wire::payload(crate::codec::encode(&()).unwrap_or_default());
        match self.invoke(function_id, "", input, false, &Principal::Local) {
            Ok((call_id, _)) => {
                self.system_log(function_id, "", format!("scheduled run {call_id}"));
                self.record(Op::UpsertSchedule(ScheduleRow {
                    function_id: function_id.to_owned(),
                    last_fire_ms: now_ms(),
                }));
            }
            Err(e) => tracing::warn!(%function_id, "scheduled run not started: {}", e.message()),
        }
    }

    /// Re-arms every schedule (after a restart or an app change).
    pub(super) fn arm_all_schedules(&mut self, now: Instant) {
        let ids: Vec<String> = self
            .functions
            .iter()
            .filter(|(_, f)| f.def.schedule.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            self.arm_schedule(&id, now);
        }
    }
}
