//! `cargo xtask bench --images`: the image figures, from the `bench_images` program on the
//! embedded control plane with a layer store of its own (`MODAL_IMAGE_DIR`): a cold build of
//! `debian_slim` + a package + a step, container starts in the built image against starts
//! without one, and a rebuild after the last step changed (which must rebuild that step only).

use std::ffi::OsStr;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::{build_release, json_line, root, run_program};

/// The steps a run built, from its output (`=> Step i/n: …` lines).
fn steps_built(stderr: &[u8]) -> usize {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("=> Step "))
        .count()
}

pub(crate) fn bench(json: bool, quick: bool) -> Result<serde_json::Value> {
    build_release(json, &["-p", "modal-tests", "--bin", "bench_images"])?;
    let exe = root().join("target/release/bench_images");
    let dir = std::env::temp_dir().join(format!("modal-bench-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = OsStr::new("/nonexistent/modal-config.toml");
    let env = |last: &'static str| {
        vec![
            ("MODAL_IMAGE_DIR", dir.as_os_str()),
            ("MODAL_CONFIG_PATH", config),
            ("BENCH_IMAGE_LAST", OsStr::new(last)),
        ]
    };
    let figures = (|| -> Result<serde_json::Value> {
        let t = Instant::now();
        let cold = run_program(&exe, &["--phase", "cold"], &env("1"))?;
        let cold_s = t.elapsed().as_secs_f64();
        let cold_steps = steps_built(&cold.stderr);
        if cold_steps != 3 {
            bail!(
                "the cold run built {cold_steps} steps, not 3:\n{}",
                String::from_utf8_lossy(&cold.stderr)
            );
        }
        let starts = if quick { "10" } else { "30" };
        let out = run_program(&exe, &["--phase", "starts", "--starts", starts], &env("1"))?;
        let starts = json_line(&String::from_utf8_lossy(&out.stdout))?;
        if steps_built(&out.stderr) != 0 {
            bail!("a run of a built image built again");
        }
        let t = Instant::now();
        let changed = run_program(&exe, &["--phase", "last-step"], &env("2"))?;
        let changed_s = t.elapsed().as_secs_f64();
        let changed_steps = steps_built(&changed.stderr);
        if changed_steps != 1 {
            bail!(
                "changing the last step rebuilt {changed_steps} steps, not 1:\n{}",
                String::from_utf8_lossy(&changed.stderr)
            );
        }
        let mut value = serde_json::json!({
            "image_cold_build_s": (cold_s * 100.0).round() / 100.0,
            "image_cold_steps_built": cold_steps,
            "image_last_step_rebuild_s": (changed_s * 100.0).round() / 100.0,
            "image_last_step_steps_built": changed_steps,
        });
        if let (Some(all), Some(more)) = (value.as_object_mut(), starts.as_object()) {
            all.extend(more.clone());
        }
        Ok(value)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    figures
}
