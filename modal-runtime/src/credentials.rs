//! Where a client finds its control plane and token: `MODAL_SERVER_URL`, `MODAL_TOKEN_ID` and
//! `MODAL_TOKEN_SECRET`, else the config file `modal token new` writes (in the user's config
//! directory, or at `MODAL_CONFIG_PATH`). The secret is sent in request metadata and never
//! printed.

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
}

/// The client's settings, from the environment first, then the config file.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub(crate) server_url: Option<String>,
    pub(crate) credentials: Option<Credentials>,
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
        Settings {
            server_url: env("MODAL_SERVER_URL").or(file.server_url),
            credentials: Credentials::from_env().or_else(|| pair(file.token_id, file.token_secret)),
        }
    }
}

/// Writes the config file (owner-readable only) and returns its path.
#[cfg(feature = "cli")]
pub(crate) fn save(server_url: &str, credentials: &Credentials) -> Result<PathBuf, String> {
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
