modal::app!(APP = App::new("ui"));

#[modal::local_entrypoint(app = APP, name = "a.b")]
async fn run() {}

fn main() {}
