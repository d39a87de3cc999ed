struct Point {
    x: i32,
}

modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn f(x: i32) -> Point {
    Point { x }
}

fn main() {}
