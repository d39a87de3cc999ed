//! A second modal program: a different binary, for the test that a container whose binary
//! differs from the registered one is refused.

modal::app!(APP = modal::App::new("fixture"));

#[modal::function(app = APP)]
fn square(x: i64) -> i64 {
    x * x + 1
}

fn main() -> std::process::ExitCode {
    modal::main()
}
