modal::app!(APP = App::new("ui"));

#[modal::cls(app = APP)]
struct Model {}

#[modal::methods]
impl Model {
    #[modal::batched(max_batch_size = 8, wait_ms = 100)]
    fn embed(&self, xs: Vec<String>) -> Vec<usize> {
        xs.iter().map(String::len).collect()
    }

    #[modal::batched(max_batch_size = 8, wait_ms = 100)]
    fn score(&self, xs: Vec<String>) -> Vec<usize> {
        xs.iter().map(String::len).collect()
    }
}

fn main() {}
