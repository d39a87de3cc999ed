//! A program with its own `#[modal::main] async fn main()` that runs an app explicitly.

modal::app!(APP = App::new("ui-pass"));

#[modal::function(app = APP)]
fn square(x: i64) -> i64 {
    x * x
}

#[modal::main]
async fn main() -> modal::Result<()> {
    // trybuild runs pass programs; starting an app is left to an explicit opt-in.
    if std::env::var_os("MODAL_UI_RUN_APP").is_none() {
        println!("{}", square.local(7));
        return Ok(());
    }
    let run = APP.run().output(false).await?;
    println!("{}", square.remote(7).await?);
    run.stop().await?;
    Ok(())
}
