modal::app!(APP = App::new("ui"));

#[modal::function(timeout = 10)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
