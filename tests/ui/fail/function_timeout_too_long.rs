modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, timeout = 100000)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
