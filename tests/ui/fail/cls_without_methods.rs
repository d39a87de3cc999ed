modal::app!(APP = App::new("ui"));

#[modal::cls(app = APP)]
struct Model {}

fn main() {}
