//! What the test crates that need a `modal server` share: the fixture programs, a server with
//! the deployed app's secret, and the deployed app's helpers. Each crate uses part of it.

#![allow(dead_code)]

use std::process::Output;

pub use modal_tests::server::Server;
use modal_tests::show;

pub const MODAL: &str = env!("CARGO_BIN_EXE_modal");
pub const DEPLOYED: &str = env!("CARGO_BIN_EXE_deployed");
pub const CALLER: &str = env!("CARGO_BIN_EXE_caller");

/// A server with its built-in worker and the secret the deployed app uses (a deploy without it
/// is refused).
pub fn start(name: &str, store: Option<String>) -> Server {
    let s = Server::start(MODAL, name, store, true);
    let out = s.modal(&["secret", "create", "e2e-secret", "API_KEY=placeholder"]);
    assert!(out.status.success(), "secret create: {}", show(&out));
    s
}

/// The deployed fixture app (`deployed`) and the program that calls it (`caller`).
pub trait DeployedApp {
    /// Deploys it with `args`; returns the app id.
    fn deploy(&self, args: &[&str]) -> String;
    fn caller(&self, args: &[&str]) -> Output;
    /// How often its schedule has fired, from its logs.
    fn ticks(&self) -> usize;
}

impl DeployedApp for Server {
    fn deploy(&self, args: &[&str]) -> String {
        let mut all = vec!["deploy"];
        all.extend_from_slice(args);
        let out = self.run(DEPLOYED, &all);
        assert!(out.status.success(), "deploy: {}", show(&out));
        let text = String::from_utf8_lossy(&out.stderr).to_string();
        text.split_whitespace()
            .find(|w| w.starts_with("ap-"))
            .unwrap_or_default()
            .to_owned()
    }

    fn caller(&self, args: &[&str]) -> Output {
        self.run(CALLER, args)
    }

    fn ticks(&self) -> usize {
        let out = self.modal(&["app", "logs", "e2e-deployed", "-n", "5000"]);
        assert!(out.status.success(), "{}", show(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("[tick] tick "))
            .count()
    }
}
