modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
fn countdown(n: u32) -> impl Iterator<Item = u32> {
    (0..n).rev()
}

#[allow(dead_code)]
async fn misuse() {
    let _ = countdown.map(0..3);
}

fn main() {}
