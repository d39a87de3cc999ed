//! End-to-end tests of workers on other machines: worker tokens and labels, and workers
//! started as Slurm pilot jobs by `modal server --backend slurm` (the `pilots` program) on the
//! cluster `.ci/slurm.sh` starts (`MODAL_TEST_SLURM`): a map run entirely in pilots, which go
//! once idle; a GPU pilot whose container sees what Slurm assigned; a pilot cancelled under a
//! busy map; Slurm's refusal; placement constraints against partitions' labels.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use modal_tests::{assert_field, field, show, slurm_available, wait_until};
use support::{MODAL, Server};

const PILOTS: &str = env!("CARGO_BIN_EXE_pilots");

/// Four fake GPUs per machine, as the cluster's nodes declare them.
const FAKE_GPUS: &str = "Fake GPU:1024,Fake GPU:1024,Fake GPU:1024,Fake GPU:1024";

/// A server whose only workers are pilot jobs (idle ones go after 5 s); its pilots are
/// cancelled when it goes (a killed server leaves them to their own idle exit).
struct PilotServer(Server);

impl std::ops::Deref for PilotServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.0
    }
}

impl Drop for PilotServer {
    fn drop(&mut self) {
        let _ = Command::new("scancel")
            .arg(format!("--name={}", job_name(&self.0)))
            .output();
    }
}

fn pilot_server(name: &str, args: &[&str]) -> PilotServer {
    let mut all = vec!["--backend", "slurm", "--slurm-idle-secs", "5"];
    all.extend_from_slice(args);
    PilotServer(Server::start_launched(
        MODAL,
        name,
        &all,
        &[("MODAL_WORKER_GPUS", FAKE_GPUS)],
    ))
}

/// The job name of the server's pilots, as it printed it.
fn job_name(s: &Server) -> String {
    let printed = s.printed();
    printed
        .split("named ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no pilot job name in: {printed}"))
        .to_owned()
}

/// `squeue` for this server's pilots: `(job id, state, partition)`.
fn pilots(s: &Server) -> Vec<(String, String, String)> {
    let out = Command::new("squeue")
        .args([
            "--noheader",
            "--format=%i|%T|%P",
            &format!("--name={}", job_name(s)),
        ])
        .output()
        .expect("squeue runs");
    assert!(out.status.success(), "squeue: {}", show(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.trim().split('|').collect();
            match parts.as_slice() {
                [id, state, partition] => Some((
                    (*id).to_owned(),
                    (*state).to_owned(),
                    (*partition).to_owned(),
                )),
                _ => None,
            }
        })
        .collect()
}

/// The server's workers as `modal worker list --json` gives them.
fn workers(s: &Server) -> Vec<serde_json::Value> {
    let out = s.modal(&["worker", "list", "--json"]);
    assert!(out.status.success(), "worker list: {}", show(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON list")
}

fn containers(s: &Server) -> Vec<serde_json::Value> {
    let out = s.modal(&["container", "list", "--json"]);
    assert!(out.status.success(), "container list: {}", show(&out));
    serde_json::from_slice(&out.stdout).expect("a JSON list")
}

/// The pilots program with `args` against `s`, in the background.
fn spawn(s: &Server, args: &[&str]) -> std::process::Child {
    s.command(PILOTS, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pilots starts")
}

fn finish(child: std::process::Child) -> Output {
    child.wait_with_output().expect("pilots ends")
}

/// Waits until no pilot job of `s` is left and its containers are gone.
fn nothing_left(s: &Server, limit: Duration) {
    let gone = wait_until(limit, || pilots(s).is_empty() && containers(s).is_empty());
    assert!(
        gone,
        "left after {limit:?}: jobs {:?}, containers {:?}\n{}",
        pilots(s),
        containers(s),
        s.log()
    );
}

#[test]
fn a_map_runs_entirely_in_pilot_jobs_and_none_is_left_once_idle() {
    if !slurm_available("pilot jobs") {
        return;
    }
    let s = pilot_server("pilots-map", &[]);
    let out = s.run(PILOTS, &["run", "squares", "--n", "500"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_field(&out, "right", "500");
    // No built-in worker: whatever ran, ran in a Slurm job, which stays a while for more work.
    let jobs = pilots(&s);
    assert!(
        !jobs.is_empty(),
        "a pilot job is still in the queue right after the map"
    );
    let listed = workers(&s);
    assert!(!listed.is_empty());
    for w in &listed {
        let job = w["slurm_job_id"].as_str().unwrap_or_default();
        assert!(
            jobs.iter().any(|(id, _, _)| id == job),
            "worker {w} runs in one of the pilots {jobs:?}"
        );
    }
    nothing_left(&s, Duration::from_secs(60));
    assert!(workers(&s).is_empty(), "{:?}", workers(&s));
}

#[test]
fn a_gpu_pilot_asks_slurm_for_a_gpu_and_its_container_sees_what_slurm_assigned() {
    if !slurm_available("GPU pilot jobs") {
        return;
    }
    let s = pilot_server("pilots-gpu", &[]);
    let child = spawn(&s, &["run", "gpus", "--ms", "6000"]);
    // While both containers hold their GPU, Slurm says which device each pilot got (on two
    // nodes both may get their node's device 0).
    let mut assigned: BTreeMap<String, String> = BTreeMap::new();
    let seen = wait_until(Duration::from_secs(60), || {
        for (id, state, _) in pilots(&s) {
            if state != "RUNNING" {
                continue;
            }
            let out = Command::new("scontrol")
                .args(["show", "job", "-d", &id])
                .output()
                .expect("scontrol runs");
            let text = String::from_utf8_lossy(&out.stdout);
            // `GRES=gpu:fake:1(IDX:2)`: the job asked for a GPU and got device 2.
            if let Some(idx) = text
                .split("(IDX:")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
            {
                assigned.insert(id, idx.to_owned());
            }
        }
        assigned.len() >= 2
    });
    let out = finish(child);
    assert!(
        seen,
        "two pilots with a GPU each; saw {assigned:?}\n{}",
        show(&out)
    );
    let mut seen: Vec<String> = ["first", "second"]
        .iter()
        .map(|k| {
            field(&out, k)
                .and_then(|v| v.strip_prefix("ok ").map(str::to_owned))
                .unwrap_or_default()
        })
        .collect();
    seen.sort();
    let mut given: Vec<String> = assigned.values().cloned().collect();
    given.sort();
    assert_eq!(
        seen,
        given,
        "each container's CUDA_VISIBLE_DEVICES is its pilot's device; Slurm assigned {assigned:?}\n{}",
        show(&out)
    );
}

#[test]
fn a_busy_pilot_cancelled_mid_map_loses_no_input() {
    if !slurm_available("cancelled pilot jobs") {
        return;
    }
    let s = pilot_server("pilots-scancel", &[]);
    let child = spawn(&s, &["run", "slow_map", "--n", "40", "--ms", "500"]);
    // Once containers run inputs, the pilot that holds them is cancelled under them.
    let mut victim = None;
    let busy = wait_until(Duration::from_secs(60), || {
        let Some(worker) = containers(&s)
            .iter()
            .find(|c| c["running_inputs"].as_u64().unwrap_or(0) > 0)
            .and_then(|c| c["worker_id"].as_str().map(str::to_owned))
        else {
            return false;
        };
        victim = workers(&s)
            .iter()
            .find(|w| w["worker_id"].as_str() == Some(worker.as_str()))
            .and_then(|w| w["slurm_job_id"].as_str().map(str::to_owned));
        victim.is_some()
    });
    assert!(busy, "no busy pilot to cancel\n{}", s.log());
    let job = victim.unwrap_or_default();
    let cancelled = Command::new("scancel").arg(&job).output().expect("scancel");
    assert!(cancelled.status.success(), "{}", show(&cancelled));
    let out = finish(child);
    assert!(out.status.success(), "{}", show(&out));
    for (key, want) in [("right", "40"), ("wrong", "0"), ("failed", "0")] {
        assert_field(&out, key, want);
    }
    assert!(
        !pilots(&s).iter().any(|(id, _, _)| *id == job),
        "the cancelled job {job} is gone"
    );
}

#[test]
fn pilots_outlive_a_restart_of_their_server() {
    if !slurm_available("pilots across a server restart") {
        return;
    }
    let mut s = PilotServer(Server::start_launched(
        MODAL,
        "pilots-restart",
        &["--backend", "slurm", "--slurm-idle-secs", "120"],
        &[],
    ));
    let out = s.run(PILOTS, &["run", "squares", "--n", "20"]);
    assert_field(&out, "right", "20");
    let before = pilots(&s);
    assert_eq!(before.len(), 1, "{before:?}");
    s.0.kill9();
    assert!(s.0.launch(), "the server starts again: {}", s.log());
    // The pilot's worker comes back with its token, and the next calls need no new job.
    let back = wait_until(Duration::from_secs(30), || {
        workers(&s)
            .iter()
            .any(|w| w["slurm_job_id"].as_str() == Some(before[0].0.as_str()))
    });
    assert!(back, "the pilot's worker reconnected: {:?}", workers(&s));
    let out = s.run(PILOTS, &["run", "squares", "--n", "20"]);
    assert_field(&out, "right", "20");
    assert_eq!(pilots(&s), before, "no new pilot job");
}

#[test]
fn a_request_no_partition_can_meet_fails_with_slurms_reason_within_seconds() {
    if !slurm_available("refused pilot jobs") {
        return;
    }
    let s = pilot_server("pilots-refused", &[]);
    let started = Instant::now();
    let out = s.run(PILOTS, &["run", "impossible"]);
    let took = started.elapsed();
    let said = field(&out, "five_gpus").unwrap_or_default();
    assert!(
        said.contains("Requested node configuration is not available")
            && said.contains("--gres=gpu:5"),
        "{}",
        show(&out)
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(pilots(&s).is_empty(), "nothing was submitted");
}

#[test]
fn partitions_labels_place_constrained_functions_and_unmet_ones_fail_naming_them() {
    if !slurm_available("partition labels") {
        return;
    }
    // Over TLS: the pilots' workers and their containers trust the server's own certificate.
    let s = pilot_server(
        "pilots-labels",
        &[
            "--tls-self-signed",
            "--slurm-partition-labels",
            "spot=preemptible=true,region=eu-west",
        ],
    );
    assert!(s.url().starts_with("https://"));
    let out = s.run(PILOTS, &["run", "placed"]);
    assert!(out.status.success(), "{}", show(&out));
    let europe = field(&out, "in_europe").unwrap_or_default();
    assert!(europe.starts_with("ok ta-"), "{}", show(&out));
    assert!(
        pilots(&s)
            .iter()
            .all(|(_, _, partition)| partition == "spot"),
        "{:?}",
        pilots(&s)
    );
    assert!(
        workers(&s)
            .iter()
            .all(|w| w["labels"]["region"] == "eu-west" && w["labels"]["preemptible"] == "true"),
        "{:?}",
        workers(&s)
    );
    let steady = field(&out, "steady").unwrap_or_default();
    assert!(
        steady.contains("nonpreemptible = true")
            && steady.contains("Slurm partition spot (preemptible=true, region=eu-west)"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_worker_token_serves_as_a_worker_only_and_a_wrong_one_is_refused() {
    let s = Server::start(MODAL, "worker-token", None, false);
    let out = s.modal(&["token", "new", "--worker", "--server", &s.url()]);
    assert!(out.status.success(), "{}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    let (id, secret) = (value("MODAL_TOKEN_ID"), value("MODAL_TOKEN_SECRET"));
    assert!(id.starts_with("wt-"), "{text}");
    // `modal …` with the worker token alone (no config file).
    let with_token = |args: &[&str]| {
        let mut cmd = s.command(MODAL, args);
        cmd.env("MODAL_SERVER_URL", s.url())
            .env("MODAL_TOKEN_ID", &id)
            .env("MODAL_TOKEN_SECRET", &secret)
            .env("MODAL_CONFIG_PATH", s.dir.join("none.toml"));
        cmd
    };
    // Not a user's token: it lists nothing, calls nothing.
    for args in [&["app", "list"][..], &["container", "list"]] {
        let refused = with_token(args).output().expect("runs");
        assert!(!refused.status.success());
        assert!(
            show(&refused).contains("a worker token may only register a worker"),
            "{args:?}: {}",
            show(&refused)
        );
    }
    // A worker with it, labelled, serves the functions its label meets.
    let mut worker = with_token(&["worker", "--server", &s.url(), "--label", "region=eu-west"])
        .envs(modal_tests::runtime_override().map(|r| ("MODAL_RUNTIME", r)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker starts");
    assert!(
        wait_until(Duration::from_secs(30), || workers(&s).len() == 1),
        "the worker registers"
    );
    assert_eq!(workers(&s)[0]["labels"]["region"], "eu-west");
    let out = s.run(PILOTS, &["run", "placed"]);
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(
        field(&out, "in_europe").is_some_and(|v| v.starts_with("ok ta-")),
        "{}",
        show(&out)
    );
    // A wrong token: the worker says so and stops, rather than trying for ever.
    let wrong = s
        .command(MODAL, &["worker", "--server", &s.url()])
        .env("MODAL_TOKEN_ID", "wt-nope")
        .env("MODAL_TOKEN_SECRET", "ws-nope")
        .env("MODAL_CONFIG_PATH", s.dir.join("none.toml"))
        .output()
        .expect("runs");
    assert!(!wrong.status.success());
    assert!(
        show(&wrong).contains("token `wt-nope` is not valid on this server"),
        "{}",
        show(&wrong)
    );
}
