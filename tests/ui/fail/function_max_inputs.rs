modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, max_inputs = 2)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
