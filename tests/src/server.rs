//! A real `modal server` for end-to-end tests and the chaos suite: its own directory, port and
//! config file, with a token created the way a user creates the first one (the bootstrap secret
//! in its data directory); over TLS with a self-signed certificate if asked ([`Server::start_tls`]).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::show;

/// A `modal server` in its own directory, on its own port, with a token in its own config file.
pub struct Server {
    /// Its directory: data, logs and the config file its token is saved in.
    pub dir: PathBuf,
    pub port: u16,
    store: Option<String>,
    /// The `modal server` process.
    pub child: Option<Child>,
    modal: PathBuf,
    builtin_worker: bool,
    /// Whether it serves TLS (`--tls-self-signed`; its certificate in `data/tls/cert.pem`).
    pub tls: bool,
    /// More arguments for `modal server` at the next launch.
    pub extra_args: Vec<String>,
    /// More environment variables for `modal server`.
    pub env: Vec<(String, String)>,
}

/// What a server is launched with besides its defaults.
#[derive(Default)]
struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// Starts `modal` (`modal server`, with its built-in worker when `builtin_worker`) in a new
    /// directory named after `name`, and creates a token the way a user creates the first one.
    pub fn start(modal: &str, name: &str, store: Option<String>, builtin_worker: bool) -> Server {
        Self::start_with(modal, name, store, builtin_worker, false, Launch::default())
    }

    /// Like [`Server::start`] without a built-in worker, launched with more `args` (`--backend
    /// slurm …`; `--tls-self-signed` makes it [`Server::start_tls`]'s) and more environment
    /// variables.
    pub fn start_launched(modal: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let launch = Launch {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        let tls = args.contains(&"--tls-self-signed");
        let mut launch = launch;
        launch.args.retain(|a| a != "--tls-self-signed");
        Self::start_with(modal, name, None, false, tls, launch)
    }

    /// Like [`Server::start`], serving TLS with a self-signed certificate made in its data
    /// directory; `modal token new` saves that certificate in the config file with the token.
    pub fn start_tls(modal: &str, name: &str, builtin_worker: bool) -> Server {
        Self::start_with(modal, name, None, builtin_worker, true, Launch::default())
    }

    fn start_with(
        modal: &str,
        name: &str,
        store: Option<String>,
        builtin_worker: bool,
        tls: bool,
        launch: Launch,
    ) -> Server {
        let dir = std::env::temp_dir().join(format!("modal-deploy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("test dir");
        let mut s = Server {
            dir,
            port: free_port(),
            store,
            child: None,
            modal: PathBuf::from(modal),
            builtin_worker,
            tls,
            extra_args: launch.args,
            env: launch.env,
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
        s
    }

    /// The user token `modal token new` saved for this server: `(id, secret)`.
    pub fn token(&self) -> (String, String) {
        let text = std::fs::read_to_string(self.dir.join("config.toml")).unwrap_or_default();
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key} = ")))
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        (value("token_id"), value("token_secret"))
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The self-signed certificate of a server started with [`Server::start_tls`].
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("data").join("tls").join("cert.pem")
    }

    /// What the server printed on its standard output, every launch.
    pub fn printed(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Starts `modal server` on the port; false when it exited instead (the port was taken).
    pub fn launch(&mut self) -> bool {
        let mut cmd = Command::new(&self.modal);
        cmd.args(["server", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .stdout(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("server.out"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .stderr(
                std::fs::File::create(self.dir.join("server.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        if let Some(store) = &self.store {
            cmd.args(["--store", store]);
        }
        if !self.builtin_worker {
            cmd.arg("--no-worker");
        }
        if self.tls {
            cmd.arg("--tls-self-signed");
        }
        if let Some(runtime) = crate::runtime_override() {
            cmd.env("MODAL_RUNTIME", runtime);
        }
        cmd.args(&self.extra_args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("modal server starts");
        let port = self.port;
        let mut exited = false;
        let up = crate::wait_until(Duration::from_secs(30), || {
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

    /// Starts `modal worker` for this server (its log: `worker.log` in the directory).
    pub fn start_worker(&self) -> Child {
        let mut cmd = self.command_path(&self.modal, &["worker", "--server", &self.url()]);
        if let Some(runtime) = crate::runtime_override() {
            cmd.env("MODAL_RUNTIME", runtime);
        }
        cmd.stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("worker.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .expect("modal worker starts")
    }

    /// `exe` with `args`, configured for this server and its token (nothing from the caller's
    /// environment).
    pub fn command(&self, exe: &str, args: &[&str]) -> Command {
        self.command_path(std::path::Path::new(exe), args)
    }

    fn command_path(&self, exe: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env("MODAL_CONFIG_PATH", self.dir.join("config.toml"))
            .env_remove("MODAL_SERVER_URL")
            .env_remove("MODAL_TOKEN_ID")
            .env_remove("MODAL_TOKEN_SECRET")
            .env_remove("MODAL_SERVER_CERT")
            .env_remove("MODAL_SERVER_CERT_PEM");
        cmd
    }

    pub fn run(&self, exe: &str, args: &[&str]) -> Output {
        self.command(exe, args).output().expect("runs")
    }

    pub fn modal(&self, args: &[&str]) -> Output {
        self.command_path(&self.modal, args).output().expect("runs")
    }

    pub fn container_ids(&self) -> Vec<String> {
        let out = self.modal(&["container", "list", "--json"]);
        assert!(out.status.success(), "{}", crate::show(&out));
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
