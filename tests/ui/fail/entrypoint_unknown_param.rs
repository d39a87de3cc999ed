modal::app!(APP = App::new("ui"));

#[modal::local_entrypoint(app = APP, detach = true)]
async fn run() {}

fn main() {}
