modal::app!(APP = App::new("ui").colour("red"));

fn main() {}
