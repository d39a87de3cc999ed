modal::app!(APP = App::new("ui"));

#[modal::cls(app = APP, schedule = modal::Period::days(1))]
struct Model {}

#[modal::methods]
impl Model {
    #[modal::method]
    fn predict(&self) -> u32 {
        1
    }
}

fn main() {}
