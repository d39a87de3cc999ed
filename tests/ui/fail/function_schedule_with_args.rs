modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, schedule = modal::Period::days(1))]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
