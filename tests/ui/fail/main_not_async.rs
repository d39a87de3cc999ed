#[modal::main]
fn main() {}
