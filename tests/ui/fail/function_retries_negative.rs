modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, retries = -1)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
