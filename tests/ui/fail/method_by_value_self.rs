modal::app!(APP = App::new("ui"));

#[modal::cls(app = APP)]
struct Model {}

#[modal::methods]
impl Model {
    #[modal::method]
    fn predict(self, x: i64) -> i64 {
        x
    }
}

fn main() {}
