//! Scheduled functions: the control plane calls them by itself while their app runs (deployed,
//! detached, or an ephemeral run), and a tick missed while it was down fires once at restart.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::auth::Principal;
use super::calls::Wait;
use super::state::{State, Timer};
use super::store::{Op, ScheduleRow};
use crate::app::schedule::next_fire;
use crate::model::Payload;

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl State {
    /// Decides whether the function's schedule fires now, and sets the timer for its next tick.
    pub(crate) fn arm_schedule(&mut self, function_id: &str) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let live = self.apps.get(&f.app_id).is_some_and(|a| a.is_live());
        let Some(schedule) = f.def.schedule.clone().filter(|_| live && !f.retired) else {
            self.schedules.remove(function_id);
            return;
        };
        let created = at(f.created_at_ms);
        let last = self.schedules.get(function_id).and_then(|(last, _)| *last);
        let wall_now = at(self.clock.unix_ms);
        let (fire, next) = next_fire(&schedule, last.map(at), created, wall_now);
        let mut last = last;
        if fire {
            self.fire_schedule(function_id);
            last = Some(self.clock.unix_ms);
        }
        let wait = (next - wall_now).to_std().unwrap_or(Duration::ZERO);
        self.schedules
            .insert(function_id.to_owned(), (last, next.timestamp_millis()));
        self.set_timer(
            self.clock.now + wait,
            Timer::ScheduleDue {
                function_id: function_id.to_owned(),
            },
        );
    }

    pub(crate) fn schedule_due(&mut self, function_id: &str) {
        // Stale timers (a redeploy re-armed the schedule) find a later planned tick.
        let due = self
            .schedules
            .get(function_id)
            .is_some_and(|(_, next)| *next <= self.clock.unix_ms + 5);
        if due {
            self.arm_schedule(function_id);
        }
    }

    fn fire_schedule(&mut self, function_id: &str) {
        let input = Payload::new(crate::codec::encode(&()).unwrap_or_default());
        match self.invoke(function_id, "", input, Wait::Spawned, &Principal::Local) {
            Ok((call_id, _)) => {
                self.system_log(function_id, "", format!("scheduled run {call_id}"));
                let last_fire_ms = self.clock.unix_ms;
                self.record(Op::UpsertSchedule(ScheduleRow {
                    function_id: function_id.to_owned(),
                    last_fire_ms,
                }));
            }
            Err(e) => tracing::warn!(%function_id, "scheduled run not started: {}", e.message()),
        }
    }

    /// Re-arms every schedule (after a restart or an app change).
    pub(crate) fn arm_all_schedules(&mut self) {
        let mut ids: Vec<String> = self
            .functions
            .iter()
            .filter(|(_, f)| f.def.schedule.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort();
        for id in ids {
            self.arm_schedule(&id);
        }
    }
}
