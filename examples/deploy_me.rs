//! A deployable app: `modal server` running, a token created (`modal token new`), then
//! `cargo run --example deploy_me -- deploy`. Other programs call it by name (see `lookup.rs`);
//! its `nightly` function runs every day at 03:00 in Paris.

modal::app!(APP = App::new("deploy-me").tags([("example", "deploy")]));

/// Squares a number, in a container of the deployed app.
#[modal::function(app = APP, min_containers = 0, scaledown_window = 120)]
fn square(x: i64) -> i64 {
    x * x
}

/// Runs by itself once a day while the app is deployed.
#[modal::function(app = APP, schedule = modal::Cron::new("0 3 * * *").timezone("Europe/Paris"))]
fn nightly() {
    println!("nightly run");
}

/// `cargo run --example deploy_me` runs it once as an ephemeral app, too.
#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    println!("square.remote(12) = {}", square.remote(12).await?);
    Ok(())
}
