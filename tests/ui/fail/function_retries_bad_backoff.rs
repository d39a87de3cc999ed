modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, retries(max_retries = 2, backoff_coefficient = 20.0))]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
