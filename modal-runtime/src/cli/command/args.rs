//! The `modal` command line as data: its subcommands and flags (`server`, `worker`,
//! `token new`, `app list|logs|stop|history`, `secret create|list|delete`, `container list|stop`, `volume create|list|ls|put|get|rm|delete`, `image list|rm`,
//! `worker list`, `app dashboard`, `function stats`).

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
#[allow(clippy::large_enum_variant)] // Parsed once; boxing would only obscure the flags.
pub(super) enum Command {
    /// Run a control plane that outlives its clients (with a worker for this machine).
    Server(ServerArgs),
    /// Offer this machine's CPUs and memory to a control plane (`modal worker list`: the
    /// workers connected to it).
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
    /// Functions of running and deployed apps.
    #[command(subcommand)]
    Function(FunctionCommand),
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
    /// URL containers and workers reach this server at (default: http:// or, serving TLS,
    /// https:// and the listen address).
    #[arg(long)]
    pub(super) advertise_url: Option<String>,
    /// Serve TLS with this certificate chain (PEM; with --tls-key). Clients check it against
    /// the system's roots, or a certificate they are given (`modal token new --server-cert`,
    /// MODAL_SERVER_CERT).
    #[arg(
        long,
        value_name = "PEM",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub(super) tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub(super) tls_key: Option<PathBuf>,
    /// Serve TLS with a self-signed certificate made at the first start in DATA_DIR/tls
    /// (cert.pem, and key.pem readable by this user only) and kept, for localhost, 127.0.0.1,
    /// this host's name and the --advertise-url host. `modal token new --server https://…`
    /// on this host saves it for clients; elsewhere copy DATA_DIR/tls/cert.pem and pass it
    /// with --server-cert or MODAL_SERVER_CERT.
    #[arg(long)]
    pub(super) tls_self_signed: bool,
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
    /// Pilot jobs: more workers through a cluster's scheduler.
    #[command(flatten)]
    pub(super) slurm: SlurmArgs,
    /// Where the dashboard listens (default: the --listen address's host, on a free port;
    /// printed at start). It asks for a login with a token.
    #[arg(long)]
    pub(super) dashboard_listen: Option<SocketAddr>,
    /// Serve no dashboard.
    #[arg(long, conflicts_with = "dashboard_listen")]
    pub(super) no_dashboard: bool,
}

/// Where workers come from besides those that connect by themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Backend {
    /// Only the built-in worker and `modal worker` processes.
    Local,
    /// Also pilot jobs submitted with `sbatch`, each running `modal worker`, when the demand
    /// no connected worker can take needs them; let go when idle.
    Slurm,
}

/// `modal server --backend slurm` and its settings.
#[derive(Args)]
pub(super) struct SlurmArgs {
    /// Where workers come from besides those that connect by themselves.
    #[arg(long, value_enum, default_value = "local")]
    pub(super) backend: Backend,
    /// A partition pilot jobs may go to (repeat for several; default: the cluster's default).
    #[arg(long = "slurm-partition", value_name = "PARTITION")]
    pub(super) partitions: Vec<String>,
    /// Labels the workers of a partition's pilots carry, matched against functions'
    /// `region`/`cloud`/`nonpreemptible`: `PARTITION=KEY=VALUE[,KEY=VALUE…]`, e.g.
    /// `gpu-spot=preemptible=true` (repeat for several partitions).
    #[arg(long = "slurm-partition-labels", value_name = "PARTITION=KEY=VALUE,…")]
    pub(super) partition_labels: Vec<String>,
    /// The account pilot jobs are charged to (`sbatch --account`).
    #[arg(long = "slurm-account")]
    pub(super) account: Option<String>,
    /// At most this many pilot jobs at once, pending or running.
    #[arg(long = "slurm-max-jobs", default_value_t = 8)]
    pub(super) max_jobs: usize,
    /// CPUs a pilot job asks for (more when one container needs more).
    #[arg(long = "slurm-cpus-per-job", default_value_t = 1)]
    pub(super) cpus_per_job: u32,
    /// A pilot whose worker has run no container for this many seconds is let go.
    #[arg(long = "slurm-idle-secs", default_value_t = 30)]
    pub(super) idle_secs: u64,
    /// A time limit for pilot jobs (`sbatch --time`; default: the partition's).
    #[arg(long = "slurm-time")]
    pub(super) time_limit: Option<String>,
    /// More `sbatch` arguments, split at spaces, e.g. "--qos=high --constraint=a100".
    #[arg(long = "slurm-extra", allow_hyphen_values = true)]
    pub(super) extra: Option<String>,
    /// The `modal` executable pilot jobs run (default: this one; on a cluster it must be at a
    /// path every node sees).
    #[arg(long = "slurm-worker-exe")]
    pub(super) worker_exe: Option<PathBuf>,
    /// Where pilot jobs write their output (default: DATA_DIR/pilots). Slurm opens it on the
    /// node that runs the job, so it must exist there too (a shared file system, or e.g. /tmp).
    #[arg(long = "slurm-log-dir")]
    pub(super) log_dir: Option<PathBuf>,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(super) struct WorkerArgs {
    #[command(subcommand)]
    pub(super) action: Option<WorkerCommand>,
    /// The control plane (default: MODAL_SERVER_URL or the config file's).
    #[arg(long)]
    pub(super) server: Option<String>,
    /// A label placement constraints are matched against, e.g. `region=eu-west`,
    /// `cloud=aws`, `preemptible=true` (repeat for several).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(super) labels: Vec<String>,
    /// Leave after running no container for this many seconds.
    #[arg(long, value_name = "SECS")]
    pub(super) idle_exit: Option<u64>,
    #[command(flatten)]
    pub(super) containers: RuntimeArgs,
}

#[derive(Subcommand)]
pub(super) enum WorkerCommand {
    /// The workers connected to the control plane, and pilot jobs not connected yet.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
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
        /// A worker token: it may register a `modal worker` and serve its containers, nothing
        /// else (give it to the machines that run workers). Printed, never saved.
        #[arg(long)]
        worker: bool,
        /// The server's data directory, where it keeps the bootstrap secret that creates the first
        /// token (default: the server's default; needs the server's user). Not needed with a
        /// token already configured. Its self-signed TLS certificate (tls/cert.pem) is trusted and
        /// saved too.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The certificate (PEM) an https:// server is trusted by (its self-signed certificate or
        /// its CA's), saved in the config file with the token (default: MODAL_SERVER_CERT, the
        /// data directory's, the config file's, else the system's roots).
        #[arg(long, value_name = "PEM")]
        server_cert: Option<PathBuf>,
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
    /// The app's page on the control plane's dashboard.
    Dashboard {
        /// App name or id.
        app: String,
        /// Open it in a browser (`xdg-open`, or `$BROWSER`).
        #[arg(long)]
        open: bool,
        #[arg(short = 'e', long = "env", default_value = "")]
        env: String,
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
pub(super) enum FunctionCommand {
    /// What a function is doing now: backlog, containers, running inputs, results so far.
    Stats {
        /// App name.
        app: String,
        /// The function's name in its app.
        function: String,
        #[command(flatten)]
        common: Common,
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
