modal::app!(APP = App::new("ui"));

struct Worker;

impl Worker {
    #[modal::function(app = APP)]
    fn f(&self, x: i64) -> i64 {
        x
    }
}

fn main() {}
