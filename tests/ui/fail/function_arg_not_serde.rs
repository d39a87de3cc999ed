struct Point {
    x: i32,
}

modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn f(p: Point) -> i32 {
    p.x
}

fn main() {}
