modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, memory = (1024, 512))]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
