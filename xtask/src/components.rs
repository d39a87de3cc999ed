//! The real components the tests need, set up by `cargo xtask ci` (and `chaos`) itself, so
//! that README's test command runs them too: crun for the oci container runtime
//! (`.ci/crun.sh`) and a throwaway PostgreSQL server for the store tests (`.ci/postgres.sh`).
//! Under `CI=true` a component that cannot be set up fails the run; elsewhere the tests that
//! need it say why they skip.

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
