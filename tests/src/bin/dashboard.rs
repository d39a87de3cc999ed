//! The app the dashboard tests look at: a map, a failing spawned call and printed lines, then
//! the app stays up (printing `url:` and `call:` lines) until its standard input closes or the
//! app is stopped from the dashboard.

use std::io::BufRead;

use futures::TryStreamExt;
use std::time::Duration;

modal::app!(APP = modal::App::new("dashboard"));

#[modal::function(app = APP)]
fn square(x: u64) -> u64 {
    x * x
}

#[modal::function(app = APP)]
fn explode(why: String) -> u64 {
    panic!("exploded: {why}");
}

#[modal::function(app = APP)]
fn shout(line: String) -> String {
    println!("{line}");
    line
}

/// Runs the calls, prints what the tests need, then prints a marker line from a function every
/// second while it waits.
#[modal::local_entrypoint(app = APP)]
async fn show() -> modal::Result<()> {
    let squares: Vec<u64> = square.map(0..20).try_collect().await?;
    println!("squares: {}", squares.len());
    let failed = explode.spawn("on purpose".to_owned()).await?;
    let _ = failed.get(None).await;
    println!("call: {}", failed.object_id());
    println!(
        "url: {}",
        APP.get_dashboard_url().unwrap_or_else(|| "none".into())
    );
    // Until the test closes standard input (or stops the app), a numbered line a second.
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        let _ = tx.send(());
    });
    for i in 0.. {
        if rx.try_recv().is_ok() {
            break;
        }
        if shout.remote(format!("marker {i}")).await.is_err() {
            println!("stopped: yes");
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    modal::main()
}
