//! The image benchmark `cargo xtask bench --images` runs, in phases (each a run of this
//! program on the embedded control plane; `MODAL_IMAGE_DIR` says where its layers go):
//! `cold` times a run whose image is built from nothing (the Debian base, a package, a step);
//! `starts` measures container starts in the built image against starts without an image;
//! `last-step` (with `BENCH_IMAGE_LAST=2`) times a run after the image's last step changed.
//! Each phase prints one JSON line.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use modal::Image;

modal::app!(APP = modal::App::new("bench-images"));

static IMAGE: LazyLock<Image> = LazyLock::new(|| {
    let last = std::env::var("BENCH_IMAGE_LAST").unwrap_or_else(|_| "1".into());
    Image::debian_slim()
        .apt_install(["jq"])
        .run_commands([format!("echo {last} > /last-step")])
});

/// A new container for every call, in the image.
#[modal::function(app = APP, image = IMAGE.clone(), single_use_containers = true)]
fn fresh_in_image(x: u64) -> u64 {
    x
}

/// A new container for every call, on the host's system directories.
#[modal::function(app = APP, single_use_containers = true)]
fn fresh(x: u64) -> u64 {
    x
}

/// A warm container (the call's own cost, taken off the starts).
#[modal::function(app = APP)]
fn warm(x: u64) -> u64 {
    x
}

fn median(mut d: Vec<Duration>) -> f64 {
    d.sort_unstable();
    d[d.len() / 2].as_secs_f64() * 1e3
}

async fn timed<F: std::future::Future<Output = modal::Result<u64>>>(
    n: u64,
    call: impl Fn(u64) -> F,
) -> modal::Result<Vec<Duration>> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        call(i).await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

#[modal::local_entrypoint(app = APP)]
async fn main(phase: String, starts: Option<u64>) -> modal::Result<()> {
    match phase.as_str() {
        "cold" | "last-step" => {
            // The run started (and built) before this body: the whole run is timed by the caller.
            fresh_in_image.remote(1).await?;
            println!("{{\"phase\": \"{phase}\"}}");
        }
        "starts" => {
            let n = starts.unwrap_or(30);
            let w = median(timed(50, |i| warm.remote(i)).await?);
            let host = median(timed(n, |i| fresh.remote(i)).await?) - w;
            let image = median(timed(n, |i| fresh_in_image.remote(i)).await?) - w;
            println!(
                "{{\"container_start_ms_no_image\": {:.2}, \"container_start_ms_image\": {:.2}, \"image_start_overhead_ms\": {:.2}}}",
                host,
                image,
                image - host
            );
        }
        other => {
            return Err(modal::Error::Invalid(format!(
                "unknown phase `{other}`: cold, starts or last-step"
            )));
        }
    }
    Ok(())
}
