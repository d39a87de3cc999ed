//! Dynamic batching: callers send one input at a time; the control plane groups them into
//! batches of up to 8, waiting at most 100 ms for company.
//!
//! `cargo run --example batching`

use modal::prelude::*;

modal::app!(APP = App::new("batching"));

/// Scores a whole batch at once (as a model on a GPU would); says how big its batch was.
#[modal::function(app = APP)]
#[modal::batched(max_batch_size = 8, wait_ms = 100)]
fn score(texts: Vec<String>) -> Vec<(usize, usize)> {
    let batch = texts.len();
    texts.iter().map(|t| (t.len(), batch)).collect()
}

#[modal::local_entrypoint(app = APP)]
async fn main() -> modal::Result<()> {
    let texts: Vec<String> = (0..20).map(|i| "x".repeat(i)).collect();
    let scored: Vec<(usize, usize)> = score.map(texts).try_collect().await?;
    for (i, (len, batch)) in scored.iter().enumerate() {
        println!("input {i:2}: length {len:2}, scored in a batch of {batch}");
    }
    println!("one call: {:?}", score.remote("hello".into()).await?);
    Ok(())
}
