modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, gpu = "V100")]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
