modal::app!(APP App::new("x"));

fn main() {}
