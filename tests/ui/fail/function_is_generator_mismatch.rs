modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, is_generator = true)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
