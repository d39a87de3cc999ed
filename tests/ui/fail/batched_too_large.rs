modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
#[modal::batched(max_batch_size = 5000, wait_ms = 100)]
fn embed(texts: Vec<String>) -> Vec<usize> {
    texts.iter().map(String::len).collect()
}

fn main() {}
