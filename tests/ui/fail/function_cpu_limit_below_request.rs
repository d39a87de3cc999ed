modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, cpu = (2.0, 1.0))]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
