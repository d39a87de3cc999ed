//! The scenarios: each starts a `modal server` (without its built-in worker) and a `modal
//! worker`, runs a client of the suite's app, injects its faults, and turns what the client
//! received and what the inputs' run log says into a [`Row`].

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::faults::{self, Proxy};
use super::{Dice, Exes, Row, Sizes, next_run_after, ran_too_often, runs, unix_ms};
use crate::runlog::RunLog;
use crate::server::Server;

/// A server, its worker, and the inputs' run log.
struct Stage {
    server: Server,
    worker: Option<Child>,
    chaos: PathBuf,
    run_log: RunLog,
}

impl Stage {
    fn new(exes: &Exes, name: &str, store: Option<String>) -> Stage {
        let server = Server::start(&exes.modal.to_string_lossy(), name, store, false);
        let worker = Some(server.start_worker());
        Stage {
            server,
            worker,
            chaos: exes.chaos.clone(),
            run_log: RunLog::start().expect("the run log listens"),
        }
    }

    /// A fresh directory for one client's run log.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = self.server.dir.join(name);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// Starts the suite's client with `args`; `via` replaces the server's URL (a proxy).
    fn client(&self, args: &[&str], via: Option<&str>) -> Child {
        let mut cmd = self.server.command(&self.chaos.to_string_lossy(), args);
        cmd.env("MODAL_CHAOS_RUNLOG", self.run_log.addr());
        if let Some(url) = via {
            cmd.env("MODAL_SERVER_URL", url);
        }
        cmd.stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.server.dir.join("client.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .expect("the chaos client starts")
    }

    fn kill_worker(&mut self) {
        if let Some(mut w) = self.worker.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    fn client_log(&self) -> String {
        let text = std::fs::read_to_string(self.server.dir.join("client.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        self.kill_worker();
    }
}

/// Waits (at most `limit`) for the client and reads the JSON line it printed.
fn report(mut child: Child, limit: Duration) -> Result<serde_json::Value, String> {
    let done = crate::wait_until(limit, || !matches!(child.try_wait(), Ok(None)));
    if !done {
        let _ = child.kill();
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{'));
    match line.and_then(|l| serde_json::from_str(l).ok()) {
        Some(v) => Ok(v),
        None if !done => Err(format!("the client ran past {limit:?}")),
        None => Err(format!(
            "the client printed no report (exit {})",
            out.status
        )),
    }
}

/// A row from a client's report and the inputs' run log.
fn row(
    scenario: &str,
    report: Result<serde_json::Value, String>,
    dir: &Path,
    stage: &Stage,
) -> Row {
    let mut row = Row {
        scenario: scenario.to_owned(),
        ran_too_often: ran_too_often(&runs(dir)),
        ..Row::default()
    };
    match report {
        Ok(v) => {
            let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
            let (ok, failed, wrong) = (n("ok"), n("failed"), n("wrong"));
            row.sent = n("sent");
            row.accepted = n("accepted");
            row.delivered = ok + failed + wrong;
            row.lost = row.accepted.saturating_sub(ok + failed);
            row.duplicates = n("duplicates") + wrong;
            row.failed = failed;
            let first = |key: &str| {
                v.get(key)
                    .and_then(|e| e.as_array())
                    .and_then(|e| e.first())
                    .map(ToString::to_string)
            };
            if row.sent > row.accepted {
                row.note = format!(
                    "{} of {} calls refused (first: {})",
                    row.sent - row.accepted,
                    row.sent,
                    first("refused").unwrap_or_default()
                );
            }
            if let Some(e) = first("errors") {
                note(&mut row, format!("first error: {e}"));
            }
        }
        Err(e) => {
            row.note = format!("{e}; client log: {}", stage.client_log());
            // Nothing was reported: count nothing as delivered, so the row is not clean.
            row.lost = 1;
        }
    }
    row
}

/// The longest wait between two runs of one input (a killed attempt and its retry).
fn slowest_rerun(dir: &Path) -> f64 {
    runs(dir)
        .values()
        .flat_map(|r| {
            let mut r = r.clone();
            r.sort_unstable();
            r.windows(2)
                .map(|w| (w[1] - w[0]) as f64 / 1000.0)
                .collect::<Vec<_>>()
        })
        .fold(0.0, f64::max)
}

fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn note(row: &mut Row, what: String) {
    row.note = if row.note.is_empty() {
        what
    } else {
        format!("{what}; {}", row.note)
    };
}

/// Containers SIGKILLed at random moments during a map.
fn containers_killed(exes: &Exes, sizes: &Sizes, dice: &mut Dice) -> Row {
    let stage = Stage::new(exes, "chaos-containers", None);
    let dir = stage.dir("containers");
    let n = sizes.map_inputs.to_string();
    let client = stage.client(&["map", &n, &dir.to_string_lossy(), "20"], None);
    let url = stage.server.url();
    crate::wait_until(Duration::from_secs(60), || {
        lines_in(&dir.join("runs.log")) > 0
    });
    let mut kills = 0;
    let mut replaced: f64 = 0.0;
    let mut client = client;
    while kills < sizes.container_kills && matches!(client.try_wait(), Ok(None)) {
        std::thread::sleep(dice.between(Duration::from_millis(200), Duration::from_millis(900)));
        let pids = faults::containers(&url);
        if pids.is_empty() {
            continue;
        }
        let victim = pids[dice.below(pids.len())];
        faults::sigkill(victim);
        kills += 1;
        // Recovered once as many containers run as before, the victim not among them.
        let killed = Instant::now();
        let back = crate::wait_until(Duration::from_secs(10), || {
            let now = faults::containers(&url);
            !now.contains(&victim) && now.len() >= pids.len()
        });
        if back {
            replaced = replaced.max(killed.elapsed().as_secs_f64());
        }
    }
    let mut r = row(
        &format!("{} containers killed, map of {n}", kills),
        report(client, Duration::from_secs(900)),
        &dir,
        &stage,
    );
    r.recover_s = replaced;
    r.faults = kills;
    note(
        &mut r,
        format!(
            "recover: slowest replacement of a killed container; slowest rerun of a killed input {:.1} s (a retry waits its turn behind the queued inputs)",
            slowest_rerun(&dir)
        ),
    );
    r
}

/// The worker SIGKILLed mid-map (its containers go with it) and started again a second later.
fn worker_killed(exes: &Exes, sizes: &Sizes, dice: &mut Dice) -> Row {
    let mut stage = Stage::new(exes, "chaos-worker", None);
    let dir = stage.dir("worker");
    let n = sizes.worker_map_inputs.to_string();
    let client = stage.client(&["map", &n, &dir.to_string_lossy(), "20"], None);
    let tenth = (sizes.worker_map_inputs / 10).max(1) as usize;
    crate::wait_until(Duration::from_secs(60), || {
        lines_in(&dir.join("runs.log")) >= tenth
    });
    std::thread::sleep(dice.between(Duration::ZERO, Duration::from_millis(500)));
    stage.kill_worker();
    let killed = unix_ms();
    std::thread::sleep(Duration::from_secs(1));
    stage.worker = Some(stage.server.start_worker());
    let restarted = unix_ms();
    let mut r = row(
        &format!("worker killed and restarted, map of {n}"),
        report(client, Duration::from_secs(900)),
        &dir,
        &stage,
    );
    r.recover_s = next_run_after(&runs(&dir), restarted).unwrap_or(f64::NAN);
    r.faults = 1;
    if std::env::var_os("MODAL_CHAOS_DEBUG").is_some() {
        let mut all: Vec<u128> = runs(&dir).values().flatten().copied().collect();
        all.sort_unstable();
        let around: Vec<i128> = all
            .iter()
            .map(|t| *t as i128 - killed as i128)
            .filter(|d| *d > -500 && *d < 5000)
            .collect();
        eprintln!(
            "killed at 0, restarted at {}; runs: {around:?}",
            restarted - killed
        );
    }
    note(&mut r, "recover: worker restart to the next run".into());
    r
}

/// The server SIGKILLed and restarted three times while a client spawns calls (and reads them).
fn server_killed(exes: &Exes, sizes: &Sizes, dice: &mut Dice, store: Option<String>) -> Row {
    let label = if store.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let mut stage = Stage::new(exes, &format!("chaos-server-{label}"), store);
    let dir = stage.dir("server");
    let n = sizes.spawns.to_string();
    let mut client = stage.client(&["spawn", &n, &dir.to_string_lossy(), "200", "50"], None);
    crate::wait_until(Duration::from_secs(60), || {
        lines_in(&dir.join("calls.txt")) >= 5
    });
    let mut recover: f64 = 0.0;
    for _ in 0..3 {
        std::thread::sleep(dice.between(Duration::from_millis(500), Duration::from_millis(1200)));
        stage.server.kill9();
        std::thread::sleep(dice.between(Duration::from_millis(300), Duration::from_millis(1000)));
        if !stage.server.launch() {
            let _ = client.kill();
            let _ = client.wait();
            let mut r = Row {
                scenario: format!("server kill -9 x3 ({label}), {n} spawns"),
                lost: 1,
                ..Row::default()
            };
            r.note = format!("the server did not restart: {}", stage.server.log());
            return r;
        }
        let up = unix_ms();
        // Wait for work to go on before the next fault, so each recovery is measured.
        let started = Instant::now();
        crate::wait_until(Duration::from_secs(30), || {
            next_run_after(&runs(&dir), up).is_some()
        });
        recover =
            recover.max(next_run_after(&runs(&dir), up).unwrap_or(started.elapsed().as_secs_f64()));
    }
    let mut r = row(
        &format!("server kill -9 x3 ({label}), {n} spawns"),
        report(client, Duration::from_secs(900)),
        &dir,
        &stage,
    );
    r.recover_s = recover;
    r.faults = 3;
    note(&mut r, "recover: restart to the next run".into());
    r
}

/// A client SIGKILLed mid-map: its inputs stop, and the server serves the next client.
fn client_killed(exes: &Exes, dice: &mut Dice) -> Row {
    let stage = Stage::new(exes, "chaos-client", None);
    let dir = stage.dir("killed");
    let mut client = stage.client(&["map", "2000", &dir.to_string_lossy(), "50"], None);
    crate::wait_until(Duration::from_secs(60), || {
        lines_in(&dir.join("runs.log")) >= 20
    });
    std::thread::sleep(dice.between(Duration::ZERO, Duration::from_millis(500)));
    let _ = client.kill();
    let _ = client.wait();
    let killed = unix_ms();
    // Inputs stop starting: the log is still for two seconds.
    let mut last = lines_in(&dir.join("runs.log"));
    let mut still_since = Instant::now();
    crate::wait_until(Duration::from_secs(60), || {
        let now = lines_in(&dir.join("runs.log"));
        if now != last {
            last = now;
            still_since = Instant::now();
        }
        still_since.elapsed() > Duration::from_secs(2)
    });
    let last_start = runs(&dir)
        .values()
        .flatten()
        .copied()
        .max()
        .unwrap_or(killed);
    let probe_dir = stage.dir("after");
    let probe = stage.client(&["map", "100", &probe_dir.to_string_lossy(), "5"], None);
    let mut r = row(
        "client killed mid-map",
        report(probe, Duration::from_secs(300)),
        &probe_dir,
        &stage,
    );
    r.recover_s = last_start.saturating_sub(killed) as f64 / 1000.0;
    r.faults = 1;
    note(
        &mut r,
        format!(
            "{} of 2000 inputs ran before they stopped; recover: kill to the last input start; counts: the next client's map of 100",
            last
        ),
    );
    r
}

/// A client's link to the server cut for 10 s while it waits for its results.
fn client_cut_off(exes: &Exes) -> Row {
    let stage = Stage::new(exes, "chaos-link", None);
    let dir = stage.dir("link");
    let Ok(proxy) = Proxy::start(stage.server.port) else {
        return Row {
            scenario: "client cut off 10 s mid-get".into(),
            lost: 1,
            note: "cannot start the proxy".into(),
            ..Row::default()
        };
    };
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let client = stage.client(
        &["spawn", "5", &dir.to_string_lossy(), "3000", "20"],
        Some(&via),
    );
    crate::wait_until(Duration::from_secs(60), || {
        lines_in(&dir.join("calls.txt")) >= 5
    });
    std::thread::sleep(Duration::from_millis(300));
    proxy.cut();
    std::thread::sleep(Duration::from_secs(10));
    proxy.restore();
    let restored = Instant::now();
    let report = report(client, Duration::from_secs(300));
    let back = restored.elapsed().as_secs_f64();
    let mut r = row("client cut off 10 s mid-get", report, &dir, &stage);
    r.recover_s = back;
    r.faults = 1;
    note(&mut r, "recover: link restored to all results read".into());
    r
}

/// Garbage and truncated frames on the server's port; then a client must be served as before.
fn garbage_on_the_wire(exes: &Exes, dice: &mut Dice) -> Row {
    let mut stage = Stage::new(exes, "chaos-garbage", None);
    let pid = stage.server.pid().unwrap_or(0);
    let before = crate::rss_kib(pid);
    let (id, secret) = stage.server.token();
    let connections = faults::garbage(stage.server.port, (&id, &secret), 20, dice);
    let alive = stage
        .server
        .child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
    let after = crate::rss_kib(pid);
    let dir = stage.dir("garbage");
    let done = unix_ms();
    let probe = stage.client(&["map", "100", &dir.to_string_lossy(), "5"], None);
    let mut r = row(
        "garbage and truncated frames",
        report(probe, Duration::from_secs(300)),
        &dir,
        &stage,
    );
    r.recover_s = next_run_after(&runs(&dir), done).unwrap_or(f64::NAN);
    r.faults = connections;
    note(
        &mut r,
        format!(
            "{connections} bad connections to the server's one port; server {}; RSS {} -> {} MiB; counts: a map of 100 after",
            if alive { "alive" } else { "DIED" },
            before / 1024,
            after / 1024
        ),
    );
    if !alive {
        r.lost = r.lost.max(1);
    }
    r
}

/// Runs every scenario (the server one also on PostgreSQL when a URL is given).
pub fn run_suite(exes: &Exes, sizes: &Sizes) -> Vec<super::Row> {
    let mut dice = Dice::new();
    // `MODAL_CHAOS_ONLY=WORD` runs the scenarios whose name has WORD (for debugging one).
    let only = std::env::var("MODAL_CHAOS_ONLY").unwrap_or_default();
    let wanted = |name: &str| only.is_empty() || name.contains(only.as_str());
    let mut rows = Vec::new();
    if wanted("containers") {
        rows.push(containers_killed(exes, sizes, &mut dice));
    }
    if wanted("worker") {
        rows.push(worker_killed(exes, sizes, &mut dice));
    }
    if wanted("server") {
        rows.push(server_killed(exes, sizes, &mut dice, None));
        if let Some(pg) = &sizes.postgres {
            let schema = crate::PgSchema::create(pg, "chaos");
            rows.push(server_killed(
                exes,
                sizes,
                &mut dice,
                Some(schema.store_url()),
            ));
        }
    }
    if wanted("client") {
        rows.push(client_killed(exes, &mut dice));
    }
    if wanted("link") {
        rows.push(client_cut_off(exes));
    }
    if wanted("garbage") {
        rows.push(garbage_on_the_wire(exes, &mut dice));
    }
    rows
}
