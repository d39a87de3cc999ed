modal::app!(APP = App::new("ui"));

#[modal::local_entrypoint(name = "run")]
async fn run() {}

fn main() {}
