//! The app the autoscaler tests run: `Function::update_autoscaler` and
//! `Function::get_current_stats` from code, each step printing `key: value`.

use std::time::{Duration, Instant};

use futures::TryStreamExt;

modal::app!(APP = modal::App::new("autoscaler"));

#[modal::function(app = APP)]
fn idle() -> u32 {
    0
}

#[modal::function(app = APP, max_containers = 8)]
fn slow(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Waits (up to 30 s) until `idle` has `n` containers: how long that took, in ms.
async fn runners(n: u32) -> modal::Result<u128> {
    let started = Instant::now();
    loop {
        let stats = idle.get_current_stats().await?;
        if stats.num_total_runners == n {
            return Ok(started.elapsed().as_millis());
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(modal::Error::Invalid(format!(
                "{} containers after 30 s, not {n}: {stats:?}",
                stats.num_total_runners
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[modal::local_entrypoint(app = APP)]
async fn tune() -> modal::Result<()> {
    // Warm containers without a call.
    idle.update_autoscaler(modal::AutoscalerSettings {
        min_containers: Some(2),
        ..Default::default()
    })
    .await?;
    runners(2).await?;
    println!("warm: 2");
    // Lower again: they scale down once idle for the (short) window.
    idle.update_autoscaler(modal::AutoscalerSettings {
        min_containers: Some(0),
        scaledown_window: Some(2),
        ..Default::default()
    })
    .await?;
    runners(0).await?;
    println!("cold: 0");
    // A refused setting says why.
    let refused = idle
        .update_autoscaler(modal::AutoscalerSettings {
            max_containers: Some(0),
            ..Default::default()
        })
        .await;
    println!(
        "refused: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );
    // Spare containers while a map runs: more containers than inputs running.
    slow.update_autoscaler(modal::AutoscalerSettings {
        buffer_containers: Some(2),
        ..Default::default()
    })
    .await?;
    let map = tokio::spawn(async move {
        slow.map(std::iter::repeat_n(300u64, 8))
            .try_collect::<Vec<u64>>()
            .await
    });
    let mut spare = 0;
    while !map.is_finished() {
        let s = slow.get_current_stats().await?;
        if s.num_running_inputs > 0 {
            spare = spare.max(s.num_total_runners.saturating_sub(s.num_running_inputs));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let done = map
        .await
        .map_err(|e| modal::Error::Invalid(e.to_string()))??;
    println!("mapped: {}", done.len());
    println!("spare: {spare}");
    let s = slow.get_current_stats().await?;
    println!("succeeded: {}", s.succeeded);
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
