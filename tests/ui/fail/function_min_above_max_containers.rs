modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, min_containers = 3, max_containers = 2)]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
