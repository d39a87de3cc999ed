modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, keep_warm = 1)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
