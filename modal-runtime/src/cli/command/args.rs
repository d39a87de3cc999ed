//! The `modal` command line as data: its subcommands and flags (`server`, `worker`,
//! `token new`, `app list|logs|stop|history`, `secret create|list|delete`, `container list|stop`, `volume create|list|ls|put|get|rm|delete`, `image list|rm`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Where `modal server` listens and clients look by default.
pub(super) const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

#[derive(Parser)]
#[command(
    name = "modal",
    version,
    about = "modal-rs: run Rust functions in containers, locally or on your cluster"
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Run a control plane that outlives its clients (with a worker for this machine).
    Server(ServerArgs),
    /// Offer this machine's CPUs and memory to a control plane.
    Worker(WorkerArgs),
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Apps: list, logs, stop, history.
    #[command(subcommand)]
    App(AppCommand),
    /// Named secrets.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Running containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Volumes: files that outlive containers.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Images built on the control plane's machine.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Args)]
pub(super) struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub(super) listen: SocketAddr,
    /// Where state, binaries and the secret key are kept.
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// State store: `sqlite:PATH` or `postgres://…` (default: SQLite in the data directory).
    #[arg(long)]
    pub(super) store: Option<String>,
    /// URL containers and workers reach this server at.
    #[arg(long)]
    pub(super) advertise_url: Option<String>,
    /// Do not run a worker in this process.
    #[arg(long)]
    pub(super) no_worker: bool,
    /// How long results of spawned calls are kept, in days (at least 1).
    #[arg(long, default_value_t = 7)]
    pub(super) retention_days: u64,
    /// Print a new one-time bootstrap secret (it is not written to disk) although tokens exist
    /// (when every token is lost).
    #[arg(long)]
    pub(super) new_bootstrap_secret: bool,
    /// How the built-in worker runs containers.
    #[command(flatten)]
    pub(super) containers: RuntimeArgs,
}

#[derive(Args)]
pub(super) struct WorkerArgs {
    /// The control plane (default: MODAL_SERVER_URL or the config file's).
    #[arg(long)]
    pub(super) server: Option<String>,
    #[command(flatten)]
    pub(super) containers: RuntimeArgs,
}

/// How a worker runs containers (`modal worker`, `modal server`'s built-in worker).
#[derive(Args)]
pub(super) struct RuntimeArgs {
    /// How containers run: `oci` (namespaces and cgroup limits through an OCI runtime; the
    /// default) or `process` (plain processes of this user, no limits). Default: MODAL_RUNTIME.
    #[arg(long)]
    pub(super) runtime: Option<String>,
    /// The OCI runtime of the `oci` runtime: a path or a name on PATH (default `crun`; e.g.
    /// `runc`, or gVisor's `runsc`). Default: MODAL_OCI_RUNTIME.
    #[arg(long)]
    pub(super) oci_runtime: Option<PathBuf>,
}

impl RuntimeArgs {
    /// The runtime the flags, or else the environment, choose (a worker started by a command
    /// never falls back to `process` by itself).
    pub(super) fn choice(self) -> crate::error::Result<crate::worker::runtime::Choice> {
        crate::worker::runtime::Choice::from_flags_or_env(self.runtime, self.oci_runtime, false)
            .map_err(crate::error::Error::Invalid)
    }
}

#[derive(Subcommand)]
pub(super) enum TokenCommand {
    /// Create a token on the server and save it in the config file.
    New {
        /// The control plane (default: MODAL_SERVER_URL, the config file's, or http://127.0.0.1:7878).
        #[arg(long)]
        server: Option<String>,
        /// A label for the token.
        #[arg(long, default_value = "")]
        label: String,
        /// Print `export MODAL_TOKEN_ID=… MODAL_TOKEN_SECRET=…` instead of saving the config file.
        #[arg(long)]
        print: bool,
        /// The server's data directory, where it keeps the bootstrap secret that creates the first
        /// token (default: the server's default; needs the server's user). Not needed with a
        /// token already configured.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
pub(super) struct Common {
    /// Environment.
    #[arg(short = 'e', long = "env", default_value = "")]
    pub(super) env: String,
    /// Machine-readable output.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Subcommand)]
pub(super) enum AppCommand {
    /// Apps, most containers first.
    List(Common),
    /// An app's logs: the last lines, or follow with -f.
    Logs {
        /// App name or id.
        app: String,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(short = 'n', long, default_value_t = 100)]
        tail: u32,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Stop an app: no more inputs, every container gone when this returns.
    Stop {
        /// App name or id.
        app: String,
        /// Do not ask for confirmation (asked only on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Deployment history of an app.
    History {
        /// App name or id.
        app: String,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand)]
pub(super) enum SecretCommand {
    /// Create a secret: `modal secret create NAME KEY=VALUE...`.
    Create {
        name: String,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
        /// Replace an existing secret of that name.
        #[arg(long)]
        force: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Secrets with their key names (never their values).
    List(Common),
    /// Delete a secret.
    Delete {
        name: String,
        /// Do not ask for confirmation (asked only on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
}

#[derive(Subcommand)]
pub(super) enum ContainerCommand {
    /// Running containers.
    List {
        #[arg(long, default_value = "")]
        app_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Stop a container; its inputs run elsewhere (with --graceful they finish first).
    Stop {
        task_id: String,
        #[arg(long)]
        graceful: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum VolumeCommand {
    /// Create a volume.
    Create {
        name: String,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Volumes, with their sizes and latest versions.
    List(Common),
    /// Files and directories of a volume under a path.
    Ls {
        name: String,
        /// A path in the volume.
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        common: Common,
    },
    /// Upload a local file or directory into a volume (one new version).
    Put {
        name: String,
        local_path: PathBuf,
        /// Where in the volume (default: the local file's name at the root; a path ending
        /// with `/` is a directory to put it in).
        remote_path: Option<String>,
        /// Replace files that exist.
        #[arg(short = 'f', long)]
        force: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Download a file or directory of a volume (`-` writes a file to standard output).
    Get {
        name: String,
        remote_path: String,
        #[arg(default_value = ".")]
        local_destination: PathBuf,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Remove a file (or, with -r, a directory) of a volume.
    Rm {
        name: String,
        remote_path: String,
        #[arg(short = 'r', long)]
        recursive: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
    /// Delete a volume and everything in it.
    Delete {
        name: String,
        /// Do not ask for confirmation (asked only on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
    },
}

#[derive(Subcommand)]
pub(super) enum ImageCommand {
    /// Images built, with their layers and sizes.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove images, and the layers no other image uses.
    Rm {
        /// Image ids (`im-…`).
        #[arg(required_unless_present = "all")]
        image_ids: Vec<String>,
        /// Every image.
        #[arg(long)]
        all: bool,
    },
}
