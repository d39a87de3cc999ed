//! Calls the deployed `deploy-me` app by name, from a program that declares no app itself:
//! `cargo run --example lookup -- 7` (after deploying `deploy_me`).

#[modal::main]
async fn main() -> modal::Result<()> {
    let x: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    // The handle's types are this program's declaration of the function.
    let square: modal::Function<(i64,), i64> = modal::Function::from_name("deploy-me", "square");
    println!("square({x}) = {}", square.remote(x).await?);
    let app = modal::App::lookup("deploy-me", None, false).await?;
    println!(
        "deploy-me is {} with tags {:?}",
        app.app_id(),
        app.get_tags().await?
    );
    Ok(())
}
