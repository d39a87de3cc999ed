modal::app!(APP = App::new("ui"));

#[modal::local_entrypoint(app = APP)]
async fn run(files: Vec<String>) {
    let _ = files;
}

fn main() {}
