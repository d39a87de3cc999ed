modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, gpu = "H100:9")]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
