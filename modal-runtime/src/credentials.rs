//! Where a client finds its control plane and token: `MODAL_SERVER_URL`, `MODAL_TOKEN_ID` and
//! `MODAL_TOKEN_SECRET`, else the config file `modal token new` writes (in the user's config
//! directory, or at `MODAL_CONFIG_PATH`). The secret is sent in request metadata and never
//! printed. For an `https://` control plane, the certificate it trusts ([`Trust`]):
//! `MODAL_SERVER_CERT_PEM`, `MODAL_SERVER_CERT`, the config file's, else the system's roots.

use std::path::PathBuf;

/// Metadata headers a client sends its credentials in.
pub(crate) const TOKEN_ID_HEADER: &str = "x-modal-token-id";
pub(crate) const TOKEN_SECRET_HEADER: &str = "x-modal-token-secret";
/// The header `modal token new` sends a server's bootstrap secret in.
pub(crate) const BOOTSTRAP_HEADER: &str = "x-modal-bootstrap-secret";
/// The variable `modal token new` takes a bootstrap secret from (before the data directory's).
#[cfg_attr(not(feature = "server"), allow(dead_code))] // The `modal` command reads it.
pub(crate) const BOOTSTRAP_ENV: &str = "MODAL_BOOTSTRAP_SECRET";
#[cfg_attr(not(feature = "server"), allow(dead_code))] // `modal server` writes it.
/// The file in a server's data directory that holds its bootstrap secret (mode 0600).
pub(crate) const BOOTSTRAP_FILE: &str = "bootstrap.secret";

/// A PEM file of the certificate (or of its CA) a client trusts for an `https://` control plane.
pub(crate) const SERVER_CERT_ENV: &str = "MODAL_SERVER_CERT";
/// The same certificate as PEM text: how a worker hands it to its containers (which may not see
/// the worker's files).
pub(crate) const SERVER_CERT_PEM_ENV: &str = "MODAL_SERVER_CERT_PEM";

/// What a client trusts when its control plane's URL is `https://`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Trust {
    /// The system's root certificates.
    #[default]
    System,
    /// Only this certificate (PEM: the server's own, self-signed, or a CA's), and where it came
    /// from (for messages).
    Cert { pem: String, source: String },
    /// A certificate was named but cannot be read: why (said when a TLS connection is made).
    Unreadable(String),
}

impl Trust {
    /// `MODAL_SERVER_CERT_PEM` (text), else `MODAL_SERVER_CERT` (a path); `None` when neither is
    /// set.
    pub(crate) fn from_env() -> Option<Trust> {
        if let Some(pem) = env(SERVER_CERT_PEM_ENV) {
            return Some(Trust::Cert {
                pem,
                source: SERVER_CERT_PEM_ENV.to_owned(),
            });
        }
        let path = env(SERVER_CERT_ENV)?;
        Some(Trust::from_file(
            std::path::Path::new(&path),
            &format!("{SERVER_CERT_ENV}={path}"),
        ))
    }

    /// The certificate in the PEM file at `path`; `source` names it in messages.
    pub(crate) fn from_file(path: &std::path::Path, source: &str) -> Trust {
        match std::fs::read_to_string(path) {
            Ok(pem) => Trust::Cert {
                pem,
                source: source.to_owned(),
            },
            Err(e) => Trust::Unreadable(format!("{source}: cannot read {}: {e}", path.display())),
        }
    }

    /// The certificate's PEM text, if one is trusted alone.
    pub(crate) fn pem(&self) -> Option<&str> {
        match self {
            Trust::Cert { pem, .. } => Some(pem),
            _ => None,
        }
    }
}

/// How a process reaches its control plane besides the URL: what it trusts over TLS, and the
/// unix socket that carries its connections when it has no network of its own (a container
/// behind its worker's bridge: `MODAL_SERVER_SOCKET`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) trust: Trust,
    pub(crate) socket: Option<String>,
}

impl Route {
    /// A route over the network with `trust`.
    pub(crate) fn trusting(trust: Trust) -> Route {
        Route {
            trust,
            socket: None,
        }
    }

    /// What the environment says (a container's: its worker sets both).
    pub(crate) fn from_env() -> Route {
        Route {
            trust: Trust::from_env().unwrap_or_default(),
            socket: env(crate::task_env::SERVER_SOCKET),
        }
    }
}

/// A token id and secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) token_id: String,
    pub(crate) token_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// What the config file holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct FileConfig {
    server_url: Option<String>,
    token_id: Option<String>,
    token_secret: Option<String>,
    /// The certificate (PEM) trusted for `server_url` (a self-signed server's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    server_cert: Option<String>,
}

/// The client's settings, from the environment first, then the config file.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) server_url: Option<String>,
    pub(crate) credentials: Option<Credentials>,
    /// What an `https://` control plane's certificate is checked against, and a socket to
    /// reach it through.
    pub(crate) route: Route,
}

/// The config file's path.
pub(crate) fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MODAL_CONFIG_PATH") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("modal-rs").join("config.toml"))
}

fn read_file() -> FileConfig {
    config_path()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| toml::from_str(&s).ok())
        .unwrap_or_default()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn pair(token_id: Option<String>, token_secret: Option<String>) -> Option<Credentials> {
    Some(Credentials {
        token_id: token_id?,
        token_secret: token_secret?,
    })
}

impl Credentials {
    /// `MODAL_TOKEN_ID` and `MODAL_TOKEN_SECRET` (how a container gets its token).
    pub(crate) fn from_env() -> Option<Self> {
        pair(env("MODAL_TOKEN_ID"), env("MODAL_TOKEN_SECRET"))
    }
}

impl Settings {
    pub(crate) fn load() -> Self {
        let file = read_file();
        let server_url = env("MODAL_SERVER_URL").or_else(|| file.server_url.clone());
        Settings {
            route: Route {
                trust: Trust::from_env()
                    .or_else(|| file_trust(&file, server_url.as_deref()))
                    .unwrap_or_default(),
                socket: env(crate::task_env::SERVER_SOCKET),
            },
            server_url,
            credentials: Credentials::from_env().or_else(|| pair(file.token_id, file.token_secret)),
        }
    }
}

/// The config file's certificate, for the server it was saved with only (another server named
/// by `MODAL_SERVER_URL` is checked against the system's roots).
fn file_trust(file: &FileConfig, server_url: Option<&str>) -> Option<Trust> {
    let pem = file.server_cert.clone()?;
    if file.server_url.as_deref() != server_url {
        return None;
    }
    let source = config_path().map_or_else(
        || "the config file".to_owned(),
        |p| format!("the config file {}", p.display()),
    );
    Some(Trust::Cert { pem, source })
}

/// Writes the config file (owner-readable only), with the certificate `server_cert` (PEM) the
/// server is trusted by if it has one, and returns its path.
#[cfg(feature = "cli")]
pub(crate) fn save(
    server_url: &str,
    credentials: &Credentials,
    server_cert: Option<&str>,
) -> Result<PathBuf, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path().ok_or("no config directory (set HOME or MODAL_CONFIG_PATH)")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let file = FileConfig {
        server_url: Some(server_url.to_owned()),
        token_id: Some(credentials.token_id.clone()),
        token_secret: Some(credentials.token_secret.clone()),
        server_cert: server_cert.map(str::to_owned),
    };
    let text = toml::to_string(&file).map_err(|e| e.to_string())?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_config_files_certificate_is_for_its_own_server_only() {
        let file = FileConfig {
            server_url: Some("https://ctl:7878".into()),
            token_id: Some("ak-1".into()),
            token_secret: Some("as-1".into()),
            server_cert: Some(PEM.into()),
        };
        // It survives the file's format (a multi-line string).
        let text = toml::to_string(&file).unwrap();
        let back: FileConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.server_cert.as_deref(), Some(PEM));
        let trust = file_trust(&back, Some("https://ctl:7878")).unwrap();
        assert_eq!(trust.pem(), Some(PEM));
        assert_eq!(file_trust(&back, Some("https://other:7878")), None);
        // A file written before certificates were saved reads as none.
        let old: FileConfig = toml::from_str("server_url = \"http://x\"\n").unwrap();
        assert_eq!(old.server_cert, None);
        assert!(!toml::to_string(&old).unwrap().contains("server_cert"));
    }

    #[test]
    fn a_certificate_file_that_cannot_be_read_says_where_it_was_named() {
        let trust = Trust::from_file(
            std::path::Path::new("/nonexistent/ca.pem"),
            "MODAL_SERVER_CERT=/nonexistent/ca.pem",
        );
        match trust {
            Trust::Unreadable(why) => assert!(
                why.starts_with("MODAL_SERVER_CERT=/nonexistent/ca.pem: cannot read"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(Trust::System.pem(), None);
    }
}
