modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, cloud = "azure")]
fn f(x: i64) -> i64 {
    x
}

fn main() {}
