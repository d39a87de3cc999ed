//! The first program: an ephemeral app whose `square` runs in containers.
//!
//! `cargo run --example hello` prints the sum of the squares of 0..1000 (332833500), computed
//! with `map`, then a `remote` call and a `spawn`ed one.

use modal::prelude::*;

modal::app!(APP = App::new("hello").tags([("example", "hello")]));

/// Squares a number, in a container.
#[modal::function(app = APP, retries = 2, timeout = 60)]
fn square(x: i64) -> i64 {
    if x % 250 == 0 {
        println!("squaring {x}");
    }
    x * x
}

#[modal::local_entrypoint(app = APP)]
async fn main(n: Option<i64>) -> modal::Result<()> {
    let n = n.unwrap_or(1000);
    let squares: Vec<i64> = square.map(0..n).try_collect().await?;
    let sum: i64 = squares.iter().sum();
    println!("{sum}");

    let seven = square.remote(7).await?;
    println!("square.remote(7) = {seven}");

    let call = square.spawn(12).await?;
    println!("square.spawn(12) = {}", call.get(None).await?);
    Ok(())
}
