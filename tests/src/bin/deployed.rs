//! The app the deployment tests deploy: a slow function and a slow class method (for the
//! restart test), a 2-second schedule, a function with a named secret and one without, and a
//! long-running one.

use std::time::Duration;

use modal::prelude::*;

modal::app!(APP = App::new("e2e-deployed"));

#[modal::function(app = APP)]
fn square(x: i64) -> i64 {
    x * x
}

/// Takes no arguments, so `run --detach square_of_two` can run it from the command line.
#[modal::function(app = APP)]
fn square_of_two() -> i64 {
    4
}

#[modal::function(app = APP, timeout = 120)]
fn slow(secs: u64) -> String {
    std::thread::sleep(Duration::from_secs(secs));
    format!("slept {secs}")
}

#[modal::cls(app = APP, timeout = 120)]
struct Sleeper {}

#[modal::methods]
impl Sleeper {
    #[modal::method]
    fn nap(&self, secs: u64) -> String {
        std::thread::sleep(Duration::from_secs(secs));
        format!("napped {secs}")
    }
}

#[modal::function(app = APP, schedule = modal::Period::seconds(2.0))]
fn tick() {
    println!("tick {}", std::process::id());
}

/// Whether `name` is set in the container, and its length (never its value).
#[modal::function(app = APP, secrets = [Secret::from_name("e2e-secret")])]
fn with_secret(name: String) -> Option<usize> {
    std::env::var(name).ok().map(|v| v.len())
}

/// A secret given inline: the control plane keeps its values sealed.
#[modal::function(app = APP, secrets = [Secret::from_dict([("DICT_KEY", "dict-value-e2e-sealed")])])]
fn with_dict_secret(name: String) -> Option<usize> {
    std::env::var(name).ok().map(|v| v.len())
}

#[modal::function(app = APP)]
fn without_secret(name: String) -> Option<usize> {
    std::env::var(name).ok().map(|v| v.len())
}

#[modal::function(app = APP, timeout = 600)]
fn linger(secs: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(secs));
    secs
}

fn main() -> std::process::ExitCode {
    modal::main()
}
