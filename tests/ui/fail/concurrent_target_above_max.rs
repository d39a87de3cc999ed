modal::app!(APP = App::new("ui"));

#[modal::function(app = APP)]
#[modal::concurrent(max_inputs = 2, target_inputs = 4)]
fn nap(ms: u64) -> u64 {
    ms
}

fn main() {}
