modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn f<T: Clone>(x: T) -> T {
    x
}

fn main() {}
