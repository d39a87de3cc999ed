modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn f((a, b): (i32, i32)) -> i32 {
    a + b
}

fn main() {}
