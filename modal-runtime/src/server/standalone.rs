//! A standalone control plane (what `modal server` runs): it outlives its clients, with durable
//! state in a data directory (SQLite by default, PostgreSQL by URL), token auth and a binary
//! store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Config, auth, binaries, secrets, store};
use crate::credentials::{BOOTSTRAP_FILE, Credentials};

/// How to run a standalone control plane.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; default: SQLite in the data directory.
    pub(crate) store_url: Option<String>,
    /// The URL containers and workers use (default: `http://` + the listen address, with an
    /// unspecified IP replaced by 127.0.0.1; `https://` with `tls`).
    pub(crate) advertise_url: Option<String>,
    /// Serve TLS: with the given certificate and key, or a self-signed pair kept in the data
    /// directory (`None`: plain HTTP/2).
    pub(crate) tls: Option<super::tls::Source>,
    pub(crate) retention: Duration,
    /// Make a new one-time bootstrap secret although tokens exist (an operator who lost them
    /// all): printed, not written to disk.
    pub(crate) new_bootstrap_secret: bool,
    /// Pilot jobs through Slurm (`--backend slurm`).
    pub(crate) pilots: Option<super::pilots::Settings>,
    /// Where the dashboard listens (`None`: no dashboard); it asks for a login with a token.
    pub(crate) dashboard: Option<SocketAddr>,
}

/// The default data directory: `$XDG_DATA_HOME/modal-rs`, else `~/.local/share/modal-rs`.
pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("modal-rs")
}

/// A server's one-time bootstrap secret.
pub(crate) enum Bootstrap {
    /// It has tokens: none.
    None,
    /// In `DATA_DIR/bootstrap.secret`, which `modal token new` reads.
    InDataDir,
    /// Given to the operator (asked for with tokens existing): the secret.
    Printed(String),
}

/// A running standalone control plane.
pub(crate) struct Running {
    pub(crate) url: String,
    /// The store, described for messages (no password).
    pub(crate) store: String,
    /// Where uploaded executables are kept (a worker on this host reads them from there).
    pub(crate) binaries_dir: PathBuf,
    /// Where the bootstrap secret is, if the server has one.
    pub(crate) bootstrap: Bootstrap,
    /// The certificate (PEM) clients trust the server by when it serves TLS: the self-signed
    /// one, or the chain given.
    pub(crate) server_cert: Option<String>,
    /// Where the dashboard is (`http://host:port`), if it serves one.
    pub(crate) dashboard: Option<String>,
    auth: auth::Auth,
}

impl Running {
    /// A user token valid while this process runs (for a worker it starts itself).
    pub(crate) fn process_token(&self) -> Credentials {
        self.auth.process_token()
    }
}

/// Writes a new bootstrap secret to `data_dir` (mode 0600, replacing the last run's): whoever
/// can read it (the server's own user) can create one token, the first, and nobody else. No
/// container exists before that token (nothing can be deployed without it), so none can read it.
fn write_bootstrap_secret(data_dir: &Path, auth: &auth::Auth) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let secret = auth::new_bootstrap_secret();
    let path = data_dir.join(BOOTSTRAP_FILE);
    let tmp = data_dir.join(format!("{BOOTSTRAP_FILE}.new"));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.write_all(secret.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    auth.set_bootstrap_secret(&secret, Some(path));
    Ok(())
}

/// Starts the control plane in tasks of the current runtime.
pub(crate) async fn start(opts: Options) -> Result<Running, String> {
    std::fs::create_dir_all(&opts.data_dir)
        .map_err(|e| format!("{}: {e}", opts.data_dir.display()))?;
    let store_url = opts
        .store_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", opts.data_dir.join("state.db").display()));
    let store: Arc<dyn store::Store> =
        Arc::from(store::open(&store_url).await.map_err(|e| e.to_string())?);
    let described = store.describe();
    let binaries = binaries::Binaries::new(opts.data_dir.join("binaries"))
        .map_err(|e| format!("{}: {e}", opts.data_dir.join("binaries").display()))?;
    let volume_dir = opts.data_dir.join("volumes");
    let volume_files = binaries::Binaries::private_files(volume_dir.clone(), "volume file")
        .map_err(|e| format!("{}: {e}", volume_dir.display()))?;
    let secret_key = secrets::SecretKey::load_or_create(&opts.data_dir.join("secret.key"))?;
    let auth = auth::Auth::default();
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    let url = opts.advertise_url.clone().unwrap_or_else(|| {
        let ip = if bound.ip().is_unspecified() {
            "127.0.0.1".parse().unwrap_or(bound.ip())
        } else {
            bound.ip()
        };
        format!("{scheme}://{}", SocketAddr::new(ip, bound.port()))
    });
    if opts.tls.is_some() != url.starts_with("https://") {
        // A proxy in front may change the scheme; without one, workers cannot connect.
        tracing::warn!(
            "the advertise URL {url} is not {scheme}:// although this server {} TLS",
            if opts.tls.is_some() {
                "serves"
            } else {
                "does not serve"
            }
        );
    }
    let tls = match &opts.tls {
        Some(source) => {
            let advertised = url
                .parse::<http::Uri>()
                .ok()
                .and_then(|u| u.host().map(str::to_owned))
                .unwrap_or_default();
            let listen = bound.ip().to_string();
            let names = super::tls::names(&[advertised.as_str(), listen.as_str()]);
            Some(super::tls::load(source, &opts.data_dir, &names)?)
        }
        None => None,
    };
    let server_cert = tls.as_ref().map(|t| t.cert_pem.clone());
    let config = Config {
        durable: true,
        store,
        auth: auth.clone(),
        secret_key,
        binaries: Some(binaries.clone()),
        volume_files: Some(volume_files),
        images: super::image_stores(&opts.data_dir.join("images")),
        retention: opts.retention,
        advertise_url: Some(url.clone()),
        // On disk with the state: a stored call's payloads outlive a restart of the server.
        payloads: super::hosted_payloads(crate::payloads::Store::open(
            &opts.data_dir.join("payloads"),
        )),
        // Pilot jobs' workers trust the self-signed certificate this server made (one from a
        // CA is checked as clients check it: MODAL_SERVER_CERT, passed on by sbatch, or the
        // system's roots).
        pilots: opts.pilots.clone().map(|mut p| {
            if let (Some(pem), Some(super::tls::Source::SelfSigned)) = (&server_cert, &opts.tls) {
                p.worker_env
                    .insert("MODAL_SERVER_CERT_PEM".to_owned(), pem.clone());
            }
            p
        }),
        tls,
        dashboard: opts.dashboard.map(|listen| super::DashboardConfig {
            listen,
            access: super::dashboard::Access::Login,
        }),
    };
    let plane = super::serve(listener, config).await?;
    // The tokens are loaded: a bootstrap secret in the data directory only for a server without
    // any. Asked for one although tokens exist (apps, hence containers, may run on this host),
    // the secret is given to the operator instead of a file.
    let _ = std::fs::remove_file(opts.data_dir.join(BOOTSTRAP_FILE));
    let bootstrap = if !auth.has_user_tokens() {
        write_bootstrap_secret(&opts.data_dir, &auth)?;
        Bootstrap::InDataDir
    } else if opts.new_bootstrap_secret {
        let secret = auth::new_bootstrap_secret();
        auth.set_bootstrap_secret(&secret, None);
        Bootstrap::Printed(secret)
    } else {
        Bootstrap::None
    };
    Ok(Running {
        dashboard: plane.dashboard.map(|d| d.base),
        bootstrap,
        server_cert,
        url,
        store: described,
        binaries_dir: binaries.dir().to_path_buf(),
        auth,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bootstrap_secret_file_is_the_owners_alone_and_goes_once_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("modal-bootstrap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let auth = auth::Auth::default();
        write_bootstrap_secret(&dir, &auth).unwrap();
        let path = dir.join(BOOTSTRAP_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = std::fs::read_to_string(&path).unwrap();
        let mut meta = tonic::metadata::MetadataMap::new();
        meta.insert(
            crate::credentials::BOOTSTRAP_HEADER,
            secret.parse().unwrap(),
        );
        assert_eq!(
            auth.authenticate(&meta).unwrap(),
            auth::Principal::Bootstrap
        );
        assert!(auth.consume_bootstrap_secret());
        assert!(!path.exists(), "a used secret's file is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
