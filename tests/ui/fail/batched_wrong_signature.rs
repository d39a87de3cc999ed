modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
#[modal::batched(max_batch_size = 8, wait_ms = 100)]
fn embed(text: String) -> Vec<f32> {
    vec![text.len() as f32]
}

fn main() {}
