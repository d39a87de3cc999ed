modal::app!(APP = App::new("ui"));

#[modal::function(app = APP, retries = 2)]
fn countdown(n: u32) -> impl Iterator<Item = u32> {
    (0..n).rev()
}

fn main() {}
