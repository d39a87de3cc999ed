//! Slurm's commands as the pilots use them: `sbatch` a pilot job (its script on standard
//! input), `squeue` the jobs of a job name, `scancel` jobs; and what their output means.

use std::path::Path;
use std::time::Duration;

use super::plan::{JobState, Shape};

/// The longest any Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// How to submit pilot jobs (what `modal server --slurm-…` says).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Submission {
    /// The job name every pilot of this control plane carries.
    pub(crate) job_name: String,
    pub(crate) account: Option<String>,
    /// `--time` (none: the partition's default).
    pub(crate) time_limit: Option<String>,
    /// More `sbatch` arguments, as given.
    pub(crate) extra: Vec<String>,
}

/// `sbatch`'s arguments for a pilot of `shape`, writing its output to `log`.
pub(crate) fn sbatch_args(shape: &Shape, submission: &Submission, log: &Path) -> Vec<String> {
    let mut args = vec![
        "--parsable".to_owned(),
        format!("--job-name={}", submission.job_name),
        format!("--output={}", log.display()),
        "--nodes=1".to_owned(),
        "--ntasks=1".to_owned(),
        format!("--cpus-per-task={}", shape.cpus),
        format!("--mem={}M", shape.memory_mb),
    ];
    if let Some((kind, count)) = &shape.gpus {
        args.push(match kind.as_str() {
            "ANY" => format!("--gres=gpu:{count}"),
            // Slurm's GPU types are the site's names, conventionally lowercase (`h100`).
            other => format!(
                "--gres=gpu:{}:{count}",
                other.trim_end_matches(['!', '+']).to_ascii_lowercase()
            ),
        });
    }
    if let Some(p) = &shape.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(a) = &submission.account {
        args.push(format!("--account={a}"));
    }
    if let Some(t) = &submission.time_limit {
        args.push(format!("--time={t}"));
    }
    args.extend(submission.extra.iter().cloned());
    args
}

/// Runs `program args`, with `stdin` written to it: its standard output, or an error with what
/// it printed on standard error (Slurm's own words).
async fn run(program: &str, args: &[String], stdin: Option<&str>) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        format!("cannot run `{program}`: {e} (is Slurm installed on this host, and on PATH?)")
    })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("`{program}`: writing its input: {e}"))?;
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("`{program}` did not answer within {COMMAND_TIMEOUT:?}"))?
        .map_err(|e| format!("`{program}`: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        Err(if err.is_empty() {
            format!("`{program}` failed ({})", out.status)
        } else {
            err.trim_start_matches("sbatch: error: ").to_owned()
        })
    }
}

/// Submits a pilot job running `script`: its job id.
pub(crate) async fn submit(args: &[String], script: &str) -> Result<String, String> {
    let out = run("sbatch", args, Some(script)).await?;
    parse_job_id(&out).ok_or_else(|| format!("sbatch printed no job id: {out}"))
}

/// `sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`.
pub(crate) fn parse_job_id(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit() || c == '_')).then(|| id.to_owned())
}

/// `--user=NAME` for this process's user (jobs of other users are never ours), when known.
fn this_user() -> Vec<String> {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| vec![format!("--user={}", u.name)])
        .unwrap_or_default()
}

/// The jobs of this user named `job_name` that Slurm still has, pending or running.
pub(crate) async fn queue(job_name: &str) -> Result<Vec<(String, JobState)>, String> {
    let mut args = vec![
        "--noheader".to_owned(),
        format!("--name={job_name}"),
        "--format=%i|%T|%r".to_owned(),
    ];
    args.extend(this_user());
    let out = run("squeue", &args, None).await?;
    Ok(parse_queue(&out))
}

/// Whether an `sbatch` error says Slurm could not be reached (or was busy) rather than that
/// it refused the job.
pub(crate) fn is_transient(error: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "Unable to contact slurm controller",
        "timed out",
        "temporarily",
        "try again",
        "Connection refused",
        "did not answer",
    ];
    TRANSIENT
        .iter()
        .any(|t| error.to_ascii_lowercase().contains(&t.to_ascii_lowercase()))
}

/// Cancels a job only while it is still pending (one that started meanwhile may hold work).
pub(crate) async fn cancel_pending(job_id: &str) -> Result<(), String> {
    run(
        "scancel",
        &["--state=PENDING".to_owned(), job_id.to_owned()],
        None,
    )
    .await
    .map(|_| ())
}

/// `squeue --format=%i|%T|%r` lines: job id, state, reason.
pub(crate) fn parse_queue(out: &str) -> Vec<(String, JobState)> {
    out.lines()
        .filter_map(|line| {
            let mut parts = line.trim().splitn(3, '|');
            let id = parts.next()?.trim();
            let state = parts.next()?.trim();
            let reason = parts.next().unwrap_or("").trim();
            if id.is_empty() {
                return None;
            }
            let state = match state {
                "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "SUSPENDED" => {
                    JobState::Pending(reason.to_owned())
                }
                // Ending, ended or failed: gone as far as pilots go.
                "CANCELLED" | "COMPLETED" | "FAILED" | "TIMEOUT" | "NODE_FAIL" | "PREEMPTED"
                | "BOOT_FAIL" | "DEADLINE" | "OUT_OF_MEMORY" => return None,
                _ => JobState::Running,
            };
            Some((id.to_owned(), state))
        })
        .collect()
}

/// Cancels jobs (those already gone are no error).
pub(crate) async fn cancel(job_ids: &[String]) -> Result<(), String> {
    if job_ids.is_empty() {
        return Ok(());
    }
    run("scancel", job_ids, None).await.map(|_| ())
}

/// Cancels every job named `job_name`.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // `modal server` stopping.
pub(crate) async fn cancel_named(job_name: &str) -> Result<(), String> {
    let mut args = vec![format!("--name={job_name}")];
    args.extend(this_user());
    run("scancel", &args, None).await.map(|_| ())
}

/// The last lines of a pilot's output file, for messages.
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
    if tail.is_empty() {
        format!("{} is empty", log.display())
    } else {
        tail
    }
}

/// `'text'` for a POSIX shell.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_asks_for_the_shape_and_the_site_settings() {
        let shape = Shape {
            partition: Some("gpu".into()),
            cpus: 2,
            memory_mb: 1280,
            gpus: Some(("H100".into(), 2)),
            labels: Default::default(),
        };
        let submission = Submission {
            job_name: "modal-pilot-ab12".into(),
            account: Some("lab".into()),
            time_limit: Some("1:00:00".into()),
            extra: vec!["--qos=high".into()],
        };
        let args = sbatch_args(&shape, &submission, Path::new("/d/pilot-%j.log"));
        for want in [
            "--parsable",
            "--job-name=modal-pilot-ab12",
            "--output=/d/pilot-%j.log",
            "--cpus-per-task=2",
            "--mem=1280M",
            "--gres=gpu:h100:2",
            "--partition=gpu",
            "--account=lab",
            "--time=1:00:00",
            "--qos=high",
        ] {
            assert!(args.iter().any(|a| a == want), "{want} in {args:?}");
        }
        let any = Shape {
            gpus: Some(("ANY".into(), 1)),
            partition: None,
            ..shape
        };
        let args = sbatch_args(&any, &Submission::default(), Path::new("/l"));
        assert!(args.iter().any(|a| a == "--gres=gpu:1"));
        assert!(!args.iter().any(|a| a.starts_with("--partition")));
    }

    #[test]
    fn outputs_are_read() {
        assert_eq!(parse_job_id("42\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("42;cluster\n").as_deref(), Some("42"));
        assert_eq!(parse_job_id("Submitted batch job 42"), None);
        let q = parse_queue(
            "12|PENDING|Resources\n13|RUNNING|None\n14|COMPLETING|None\n15|CANCELLED|None\n",
        );
        assert_eq!(
            q,
            vec![
                ("12".into(), JobState::Pending("Resources".into())),
                ("13".into(), JobState::Running),
                ("14".into(), JobState::Running),
            ]
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert!(is_transient(
            "Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!is_transient(
            "Batch job submission failed: Requested node configuration is not available"
        ));
    }
}
