modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
struct Job {
    x: i64,
}

fn main() {}
