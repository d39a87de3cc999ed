modal::app!(APP = App::new("ui").tags([("team", "a/b")]));

fn main() {}
