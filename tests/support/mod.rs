//! A real `modal server` for end-to-end tests: its own directory, port and config file, with a
//! token created the way a user creates the first one (the bootstrap secret in its data
//! directory). Shared by the test crates that need a server; each uses part of it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use modal_tests::show;

pub const MODAL: &str = env!("CARGO_BIN_EXE_modal");
pub const DEPLOYED: &str = env!("CARGO_BIN_EXE_deployed");
pub const CALLER: &str = env!("CARGO_BIN_EXE_caller");

/// A `modal server` in its own directory, on its own port, with a token in its own config file.
pub struct Server {
    pub dir: PathBuf,
    pub port: u16,
    store: Option<String>,
    pub child: Option<Child>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    pub fn start(name: &str, store: Option<String>) -> Server {
        let dir = std::env::temp_dir().join(format!("modal-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut s = Server {
            dir,
            port: free_port(),
            store,
            child: None,
        };
        // Another test's server may take the port between `free_port` and the bind: then this
        // server exits, and the next free port is tried.
        for _ in 0..5 {
            if s.launch() {
                break;
            }
            s.port = free_port();
        }
        assert!(s.child.is_some(), "modal server did not start: {}", s.log());
        let data = s.dir.join("data");
        let data = data.to_str().expect("a UTF-8 path");
        let out = s.modal(&["token", "new", "--server", &s.url(), "--data-dir", data]);
        assert!(out.status.success(), "token new: {}", show(&out));
        // The deployed app uses this secret; a deploy without it is refused.
        let out = s.modal(&["secret", "create", "e2e-secret", "API_KEY=placeholder"]);
        assert!(out.status.success(), "secret create: {}", show(&out));
        s
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Starts `modal server` on the port; false when it exited instead (the port was taken).
    pub fn launch(&mut self) -> bool {
        let mut cmd = Command::new(MODAL);
        cmd.args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        if let Some(store) = &self.store {
            cmd.args(["--store", store]);
        }
        let mut child = cmd.spawn().expect("modal server starts");
        let port = self.port;
        let mut exited = false;
        let up = modal_tests::wait_until(Duration::from_secs(30), || {
            exited = !matches!(child.try_wait(), Ok(None));
            exited || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "modal server did not listen on {port}: {}", self.log());
        // Listening on the port is not enough: it must be this server that listens.
        std::thread::sleep(Duration::from_millis(100));
        if exited || !matches!(child.try_wait(), Ok(None)) {
            let _ = child.wait();
            return false;
        }
        self.child = Some(child);
        true
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn command(&self, exe: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env("MODAL_CONFIG_PATH", self.dir.join("config.toml"))
            .env_remove("MODAL_SERVER_URL")
            .env_remove("MODAL_TOKEN_ID")
            .env_remove("MODAL_TOKEN_SECRET");
        cmd
    }

    pub fn run(&self, exe: &str, args: &[&str]) -> Output {
        self.command(exe, args).output().expect("runs")
    }

    pub fn modal(&self, args: &[&str]) -> Output {
        self.run(MODAL, args)
    }

    pub fn deploy(&self, args: &[&str]) -> String {
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

    pub fn caller(&self, args: &[&str]) -> Output {
        self.run(CALLER, args)
    }

    pub fn ticks(&self) -> usize {
        let out = self.modal(&["app", "logs", "e2e-deployed", "-n", "5000"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("[tick] tick "))
            .count()
    }

    pub fn container_ids(&self) -> Vec<String> {
        let out = self.modal(&["container", "list", "--json"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.split('"')
            .filter(|w| w.starts_with("ta-"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn field(out: &Output, key: &str) -> Option<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_owned))
}
