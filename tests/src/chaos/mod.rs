//! The chaos suite: real `modal server`, `modal worker`, container and client processes, faults
//! injected at random moments (SIGKILLs, restarts, a cut network link, garbage on the wire), and
//! per scenario what was accepted, what was delivered, and what must be zero: inputs lost,
//! inputs run more often than `1 + retries`, results delivered twice or to the wrong input.
//! `cargo xtask chaos` prints the table and one JSON line; `tests/chaos.rs` runs it small and
//! asserts the zero columns.

mod faults;
mod scenarios;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

pub use scenarios::run_suite;

/// The programs the suite runs.
#[derive(Debug, Clone)]
pub struct Exes {
    /// The `modal` command (server and worker).
    pub modal: PathBuf,
    /// The suite's app and clients (`tests/src/bin/chaos.rs`).
    pub chaos: PathBuf,
}

impl Exes {
    /// The programs next to `exe` (a binary of this package in the same target directory).
    pub fn beside(exe: &Path) -> Exes {
        let dir = exe.parent().unwrap_or(Path::new("."));
        Exes {
            modal: dir.join("modal"),
            chaos: dir.join("chaos"),
        }
    }
}

/// How large the runs are.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Inputs of the map whose containers are killed.
    pub map_inputs: u64,
    /// Containers SIGKILLed during that map.
    pub container_kills: u32,
    /// Inputs of the map whose worker is killed and restarted.
    pub worker_map_inputs: u64,
    /// Spawned calls while the server is killed and restarted three times.
    pub spawns: u64,
    /// PostgreSQL URL for a second run of the server scenario.
    pub postgres: Option<String>,
}

impl Sizes {
    /// What `cargo xtask chaos` runs.
    pub fn full() -> Sizes {
        Sizes {
            map_inputs: 5000,
            container_kills: 10,
            worker_map_inputs: 2000,
            spawns: 300,
            postgres: crate::postgres_url("the PostgreSQL scenario"),
        }
    }

    /// What the end-to-end test runs.
    pub fn quick() -> Sizes {
        Sizes {
            map_inputs: 400,
            container_kills: 3,
            worker_map_inputs: 300,
            spawns: 60,
            postgres: crate::postgres_url("the PostgreSQL scenario"),
        }
    }
}

/// The retries the suite's function has: an input may run `1 + RETRIES` times.
pub const RETRIES: u64 = 3;

/// One scenario's figures.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    /// Faults injected (processes killed, restarts, link cuts, bad connections).
    pub faults: u32,
    /// Inputs the client sent.
    pub sent: u64,
    /// Inputs the control plane acknowledged.
    pub accepted: u64,
    /// Final results (success or failure) the caller received.
    pub delivered: u64,
    /// Accepted inputs without a final result.
    pub lost: u64,
    /// Inputs that ran more than `1 + retries` times.
    pub ran_too_often: u64,
    /// Results delivered twice, or to another input.
    pub duplicates: u64,
    /// Inputs that ended in a failure (after their retries).
    pub failed: u64,
    /// Seconds from the fault (or the end of it) until work went on.
    pub recover_s: f64,
    /// What was done, and anything odd.
    pub note: String,
}

impl Row {
    /// Whether every zero column is zero (`failed` is reported, not part of it: an input may
    /// fail once its retries are spent, which enough faults can cause).
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.ran_too_often == 0 && self.duplicates == 0
    }
}

/// The rows as a table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<42} {:>6} {:>6} {:>8} {:>9} {:>5} {:>9} {:>5} {:>6} {:>9}  note\n",
        "scenario",
        "faults",
        "sent",
        "accepted",
        "delivered",
        "lost",
        "ran>1+r",
        "dups",
        "failed",
        "recover_s"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<42} {:>6} {:>6} {:>8} {:>9} {:>5} {:>9} {:>5} {:>6} {:>9.2}  {}\n",
            r.scenario,
            r.faults,
            r.sent,
            r.accepted,
            r.delivered,
            r.lost,
            r.ran_too_often,
            r.duplicates,
            r.failed,
            r.recover_s,
            r.note
        ));
    }
    out
}

/// The rows as one JSON line.
pub fn json_line(rows: &[Row]) -> String {
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"scenario": r.scenario, "faults": r.faults, "sent": r.sent,
                   "accepted": r.accepted, "delivered": r.delivered,
                   "lost": r.lost, "ran_too_often": r.ran_too_often, "duplicates": r.duplicates,
                   "failed": r.failed, "recover_s": (r.recover_s * 100.0).round() / 100.0,
                   "note": r.note})
        })
        .collect();
    json!({"system": "modal-rs", "chaos": rows, "retries": RETRIES}).to_string()
}

/// When each input ran (unix ms), from `DIR/runs.log`.
pub(crate) fn runs(dir: &Path) -> HashMap<String, Vec<u128>> {
    let mut out: HashMap<String, Vec<u128>> = HashMap::new();
    let text = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
    for line in text.lines() {
        if let Some((key, ms)) = line.split_once(' ')
            && let Ok(ms) = ms.parse()
        {
            out.entry(key.to_owned()).or_default().push(ms);
        }
    }
    out
}

/// Inputs that ran more than `1 + RETRIES` times.
pub(crate) fn ran_too_often(runs: &HashMap<String, Vec<u128>>) -> u64 {
    runs.values()
        .filter(|r| r.len() as u64 > 1 + RETRIES)
        .count() as u64
}

/// Seconds from `after_ms` to the first run that started after it (how long the work stood
/// still); `None` when nothing ran after it.
pub(crate) fn next_run_after(runs: &HashMap<String, Vec<u128>>, after_ms: u128) -> Option<f64> {
    runs.values()
        .flatten()
        .filter(|t| **t >= after_ms)
        .min()
        .map(|t| (t - after_ms) as f64 / 1000.0)
}

pub(crate) fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// A small random number source (xorshift), seeded from the clock: the moments of the faults.
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new() -> Dice {
        Dice((unix_ms() as u64) | 1)
    }

    /// A duration between `lo` and `hi`.
    pub(crate) fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let span = hi.saturating_sub(lo).as_millis().max(1) as u64;
        lo + Duration::from_millis(self.0 % span)
    }

    /// An index below `n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.between(Duration::ZERO, Duration::from_millis(n as u64))
            .as_millis() as usize
            % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_counted_per_input() {
        let dir = std::env::temp_dir().join(format!("modal-chaos-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("runs.log"),
            "m1 1000\nm2 1005\nm1 2000\nm1 3000\nm1 4000\nm1 5000\ntorn",
        )
        .unwrap();
        let r = runs(&dir);
        assert_eq!(r["m1"].len(), 5);
        assert_eq!(ran_too_often(&r), 1, "m1 ran 5 times, more than 1 + 3");
        assert_eq!(next_run_after(&r, 1500), Some(0.5));
        assert_eq!(next_run_after(&r, 6000), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_row_is_clean_only_with_zero_losses() {
        let mut row = Row::default();
        assert!(row.clean());
        row.duplicates = 1;
        assert!(!row.clean());
        assert!(json_line(&[row]).contains("\"duplicates\":1"));
    }
}
