//! The real components the tests need, set up by `cargo xtask ci` (and `chaos`) itself, so
//! that README's test command runs them too: crun for the oci container runtime
//! (`.ci/crun.sh`), a throwaway PostgreSQL server for the store tests (`.ci/postgres.sh`) and,
//! for `ci`, a throwaway Slurm cluster for the Slurm tests (`.ci/slurm.sh`) and a headless
//! browser for the dashboard's browser tests (`.ci/chromium.sh`). Under `CI=true` a component
//! that cannot be set up fails the run; elsewhere the tests that need it say why they skip.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Result, bail};

use crate::root;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// A missing component: an error under `CI=true`, a printed note elsewhere.
fn missing(what: &str) -> Result<()> {
    if in_ci() {
        bail!("{what}");
    }
    eprintln!("ci: {what}; the tests that need it skip");
    Ok(())
}

/// Makes crun usable (installs it, applies the hybrid-cgroup fix) where this runs as root.
pub(crate) fn crun() -> Result<()> {
    let ready = Command::new("bash")
        .arg(root().join(".ci/crun.sh"))
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(());
    }
    missing("crun cannot run here (.ci/crun.sh could not set it up)")
}

/// Makes chromium and chromedriver usable (installs them from Debian's packages where this runs
/// as root): the browser tests find chromedriver on `PATH` and start it themselves.
pub(crate) fn chromium() -> Result<()> {
    let ready = Command::new("bash")
        .arg(root().join(".ci/chromium.sh"))
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Ok(());
    }
    missing("chromium cannot run here (.ci/chromium.sh could not set it up)")
}

/// The PostgreSQL server the store tests use: the one `MODAL_TEST_POSTGRES_URL` names, or one
/// started for this run and stopped when this is dropped.
pub(crate) struct Postgres {
    url: Option<String>,
    /// The directory of the server this run started.
    started: Option<PathBuf>,
}

impl Postgres {
    pub(crate) fn start() -> Result<Postgres> {
        if std::env::var_os("MODAL_TEST_POSTGRES_URL").is_some() {
            return Ok(Postgres {
                url: None,
                started: None,
            });
        }
        let dir = std::env::temp_dir().join(format!("modal-xtask-postgres-{}", std::process::id()));
        let out = Command::new("bash")
            .args([
                "-c",
                r#"source "$1" >&2 && printf %s "$MODAL_TEST_POSTGRES_URL""#,
                "bash",
            ])
            .arg(root().join(".ci/postgres.sh"))
            .env("MODAL_POSTGRES_DIR", &dir)
            .stderr(Stdio::inherit())
            .output();
        match out {
            Ok(out) if out.status.success() && !out.stdout.is_empty() => Ok(Postgres {
                url: Some(String::from_utf8_lossy(&out.stdout).into_owned()),
                started: Some(dir),
            }),
            _ => {
                missing("PostgreSQL could not be started (.ci/postgres.sh)")?;
                Ok(Postgres {
                    url: None,
                    started: None,
                })
            }
        }
    }

    /// Gives `cmd` the server's URL (a server named by the environment it inherits anyway).
    pub(crate) fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        if let Some(url) = &self.url {
            cmd.env("MODAL_TEST_POSTGRES_URL", url);
        }
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            let _ = Command::new("bash")
                .arg(root().join(".ci/postgres.sh"))
                .arg("stop")
                .env("MODAL_POSTGRES_DIR", dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The Slurm cluster the Slurm tests submit to: the one the environment already names
/// (`MODAL_TEST_SLURM` set, with its `SLURM_CONF`), or one `.ci/slurm.sh` started for this run
/// (a slurmctld, two slurmd nodes with fake GPUs, partitions `debug` and `spot`), stopped when
/// this is dropped.
pub(crate) struct Slurm {
    /// What the tests get from the script: `SLURM_CONF`, `MODAL_SLURM_DIR` and
    /// `MODAL_TEST_SLURM=1`. sbatch, squeue and scancel are on the `PATH` the tests inherit
    /// (the script checks them there).
    env: Vec<(String, String)>,
    /// The directory of the cluster this run started.
    started: Option<PathBuf>,
}

impl Slurm {
    /// No cluster of this run's: the tests see what the environment says.
    fn none() -> Slurm {
        Slurm {
            env: Vec::new(),
            started: None,
        }
    }

    pub(crate) fn start() -> Result<Slurm> {
        if std::env::var_os("MODAL_TEST_SLURM").is_some() {
            return Ok(Slurm::none());
        }
        let dir = std::env::temp_dir().join(format!("modal-xtask-slurm-{}", std::process::id()));
        // Dropped on a failure, it stops what did start and removes the directory (the script
        // printed its logs' tails).
        let mut slurm = Slurm {
            env: Vec::new(),
            started: Some(dir.clone()),
        };
        let out = Command::new("bash")
            .arg(root().join(".ci/slurm.sh"))
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output();
        let out = match out {
            Ok(out) if out.status.success() => out,
            failed => {
                let why = match failed {
                    Ok(out) => out.status.to_string(),
                    Err(e) => format!("cannot run bash: {e}"),
                };
                drop(slurm);
                missing(&format!("Slurm could not be started (.ci/slurm.sh: {why})"))?;
                return Ok(Slurm::none());
            }
        };
        // `export NAME=VALUE` lines; the script's values need no unquoting.
        slurm.env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for name in ["SLURM_CONF", "MODAL_TEST_SLURM"] {
            if !slurm.env.iter().any(|(k, _)| k == name) {
                drop(slurm);
                missing(&format!(".ci/slurm.sh started Slurm but printed no {name}"))?;
                return Ok(Slurm::none());
            }
        }
        Ok(slurm)
    }

    /// No cluster at all (what a command that needs none is given).
    pub(crate) fn absent() -> Slurm {
        Slurm::none()
    }

    /// Whether there is a cluster: this run's, or the one the environment names.
    pub(crate) fn is_there(&self) -> bool {
        self.started.is_some() || std::env::var_os("MODAL_TEST_SLURM").is_some()
    }

    /// The cluster's variables, as given to commands.
    pub(crate) fn vars(&self) -> &[(String, String)] {
        &self.env
    }

    /// Gives `cmd` the cluster's variables (a cluster named by the environment it inherits
    /// anyway).
    pub(crate) fn env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        if let Some(dir) = &self.started {
            let _ = Command::new("bash")
                .arg(root().join(".ci/slurm.sh"))
                .arg("stop")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
