modal::app!(APP = modal::App::new("a"));

#[modal::function(app = APP)]
fn square(x: i64) -> i64 {
    x * x
}

/// A handle of this program's own function is typed: a wrong argument does not compile.
async fn caller() -> modal::Result<i64> {
    square.remote("seven").await
}

fn main() {}
