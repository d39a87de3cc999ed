modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn f(s: &str) -> usize {
    s.len()
}

fn main() {}
