//! A generator: items reach the caller as they are produced, in order.
//!
//! `cargo run --example streaming`

use std::time::{Duration, Instant};

use modal::prelude::*;

modal::app!(APP = App::new("streaming"));

/// Counts down, one number every 200 ms.
#[modal::function(app = APP)]
fn countdown(from: u32) -> impl Iterator<Item = String> {
    (0..=from).rev().map(|n| {
        std::thread::sleep(Duration::from_millis(200));
        if n == 0 {
            "liftoff".to_string()
        } else {
            n.to_string()
        }
    })
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    let t0 = Instant::now();
    let mut items = countdown.remote_gen(5);
    while let Some(item) = items.next().await {
        println!("{:>5} ms  {}", t0.elapsed().as_millis(), item?);
    }
    Ok(())
}
