modal::app!(APP = App::new("has space"));

fn main() {}
