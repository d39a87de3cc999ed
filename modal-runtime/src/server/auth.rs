//! Who is calling: API tokens (user tokens kept hashed, container tokens scoped to one app and
//! valid while their container lives, the bootstrap secret that may only create tokens),
//! checked on every request before its body is read (`api::guard`). Every control plane checks
//! them, the embedded one too: its program holds a token made for the run.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tonic::Status;
use tonic::metadata::MetadataMap;

use crate::credentials::{BOOTSTRAP_HEADER, TOKEN_ID_HEADER, TOKEN_SECRET_HEADER};

/// How a caller is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The control plane itself (schedules it fires); no request is ever this.
    Local,
    /// A user token.
    User { token_id: String },
    /// A container's token: only its own task and the functions of its app; with
    /// `restricted` (`restrict_modal_access`), only its own task.
    Container {
        task_id: String,
        app_id: String,
        restricted: bool,
    },
    /// The holder of the bootstrap secret: may create tokens, nothing else.
    Bootstrap,
    /// A worker token: may register a worker and serve its containers, nothing else.
    Worker { token_id: String },
}

/// What a restricted container is told when it asks for more than its own inputs.
const RESTRICTED: &str = "this container's function has restrict_modal_access = true: it may serve its own inputs only (no lookups, calls, spawns or object reads)";

impl Principal {
    /// Refuses a container whose function has `restrict_modal_access`: every request of the
    /// client API.
    pub(crate) fn require_unrestricted(&self) -> Result<(), Status> {
        match self {
            Principal::Container {
                restricted: true, ..
            } => Err(Status::permission_denied(RESTRICTED)),
            _ => Ok(()),
        }
    }

    /// Requires a user (or the control plane itself).
    pub(crate) fn require_user(&self) -> Result<(), Status> {
        self.require_unrestricted()?;
        match self {
            Principal::Local | Principal::User { .. } => Ok(()),
            Principal::Container { .. } => Err(Status::permission_denied(
                "a container's token may only call functions of its own app",
            )),
            Principal::Bootstrap => Err(Status::permission_denied(
                "the bootstrap secret only creates tokens: create one with `modal token new` and use it",
            )),
            Principal::Worker { .. } => Err(Status::permission_denied(WORKER_ONLY)),
        }
    }

    /// Requires a worker's token or a user's (registering a worker, fetching the executables
    /// its containers run).
    pub(crate) fn require_worker(&self) -> Result<(), Status> {
        match self {
            Principal::Worker { .. } => Ok(()),
            other => other.require_user(),
        }
    }

    /// Requires a user, or a container of `app_id` (not restricted).
    pub(crate) fn require_app(&self, app_id: &str) -> Result<(), Status> {
        self.require_unrestricted()?;
        match self {
            Principal::Container { app_id: own, .. } if own == app_id => Ok(()),
            other => other.require_user(),
        }
    }

    /// Requires the container `task_id` itself.
    pub(crate) fn require_task(&self, task_id: &str) -> Result<(), Status> {
        match self {
            Principal::Local => Ok(()),
            Principal::Container { task_id: own, .. } if own == task_id => Ok(()),
            _ => Err(Status::permission_denied(format!(
                "only container {task_id} may open its stream"
            ))),
        }
    }

    /// Requires a user or the bootstrap secret (creating a token).
    pub(crate) fn require_token_creator(&self) -> Result<(), Status> {
        match self {
            Principal::Bootstrap => Ok(()),
            other => other.require_user(),
        }
    }
}

/// What a worker token is told when it asks for anything but serving as a worker.
pub(crate) const WORKER_ONLY: &str = "a worker token may only register a worker and serve its containers: use a user token (`modal token new`) for this";

/// Worker token ids start with this; user token ids do not.
const WORKER_TOKEN_PREFIX: &str = "wt-";

fn unauthenticated(reason: &str) -> Status {
    Status::unauthenticated(format!(
        "{reason}: create a token with `modal token new` on the server's host, then set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or keep the config file it writes)"
    ))
}

struct ContainerToken {
    secret_hash: String,
    task_id: String,
    app_id: String,
    restricted: bool,
}

#[derive(Default)]
struct Tokens {
    users: HashMap<String, String>,
    /// Worker tokens: id → hash of the secret.
    workers: HashMap<String, String>,
    containers: HashMap<String, ContainerToken>,
    bootstrap_hash: Option<String>,
    /// The file the bootstrap secret was written to (removed once it is used).
    bootstrap_file: Option<std::path::PathBuf>,
}

/// The token registry. Read by every request (through [`Auth::authenticate`]); written when a
/// token is created, loaded, or a container starts and exits.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    tokens: Arc<RwLock<Tokens>>,
}

fn hash_secret(secret: &str) -> String {
    blake3::hash(secret.as_bytes()).to_hex().to_string()
}

fn random_secret() -> String {
    crate::ids::new_id("")
        .chars()
        .chain(crate::ids::new_id("").chars())
        .collect()
}

/// A new bootstrap secret (see [`Auth::set_bootstrap_secret`]).
#[cfg_attr(not(feature = "server"), allow(dead_code))] // Only `modal server` writes one.
pub(crate) fn new_bootstrap_secret() -> String {
    format!("bs-{}", random_secret())
}

impl Auth {
    /// A new user token: `(id, secret, hash of the secret)`. The caller persists the hash.
    pub(crate) fn mint_user_token() -> (String, String, String) {
        let id = crate::ids::new_id("ak-");
        let secret = format!("as-{}", random_secret());
        let hash = hash_secret(&secret);
        (id, secret, hash)
    }

    /// A new worker token: `(id, secret, hash of the secret)`. The caller persists the hash.
    pub(crate) fn mint_worker_token() -> (String, String, String) {
        let id = crate::ids::new_id(WORKER_TOKEN_PREFIX);
        let secret = format!("ws-{}", random_secret());
        let hash = hash_secret(&secret);
        (id, secret, hash)
    }

    /// The worker token of the pilot jobs a control plane submits, derived from its key (so
    /// that pilots outlive a restart of the control plane), and accepted from now on.
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // Only `modal server` submits pilots.
    pub(crate) fn pilot_token(
        &self,
        key: &super::secrets::SecretKey,
    ) -> crate::credentials::Credentials {
        let token_id = format!("{WORKER_TOKEN_PREFIX}pilots");
        let token_secret = format!("ws-{}", key.derive_secret("modal-rs pilot worker token v1"));
        self.add_token(token_id.clone(), hash_secret(&token_secret));
        crate::credentials::Credentials {
            token_id,
            token_secret,
        }
    }

    /// A user token accepted while this process runs (not stored): how the embedded control
    /// plane's program and a server's own worker authenticate.
    pub(crate) fn process_token(&self) -> crate::credentials::Credentials {
        let (token_id, token_secret, hash) = Auth::mint_user_token();
        self.add_token(token_id.clone(), hash);
        crate::credentials::Credentials {
            token_id,
            token_secret,
        }
    }

    /// Accepts a token from now on: a worker token by its id, else a user token.
    pub(crate) fn add_token(&self, id: String, secret_hash: String) {
        let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if id.starts_with(WORKER_TOKEN_PREFIX) {
            t.workers.insert(id, secret_hash);
        } else {
            t.users.insert(id, secret_hash);
        }
    }

    /// Accepts `secret`, kept in `file`, as the bootstrap secret: it creates one token, and
    /// nothing else.
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // Only `modal server` has one.
    pub(crate) fn set_bootstrap_secret(&self, secret: &str, file: Option<std::path::PathBuf>) {
        let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        t.bootstrap_hash = Some(hash_secret(secret));
        t.bootstrap_file = file;
    }

    /// Whether any user token is accepted.
    #[cfg_attr(not(feature = "server"), allow(dead_code))] // Only `modal server` asks.
    pub(crate) fn has_user_tokens(&self) -> bool {
        let t = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        !t.users.is_empty()
    }

    /// Uses up the bootstrap secret (its file is removed): true for the one caller that got
    /// it first.
    pub(crate) fn consume_bootstrap_secret(&self) -> bool {
        let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        let had = t.bootstrap_hash.take().is_some();
        if let Some(file) = t.bootstrap_file.take() {
            let _ = std::fs::remove_file(file);
        }
        had
    }

    /// A token for container `task_id` of `app_id`: `(id, secret)`, valid until revoked;
    /// `restricted`: it serves the container's own inputs only.
    pub(crate) fn issue_container_token(
        &self,
        task_id: &str,
        app_id: &str,
        restricted: bool,
    ) -> (String, String) {
        let id = format!("tk-{}", task_id.trim_start_matches("ta-"));
        let secret = format!("ts-{}", random_secret());
        let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        t.containers.insert(
            id.clone(),
            ContainerToken {
                secret_hash: hash_secret(&secret),
                task_id: task_id.to_owned(),
                app_id: app_id.to_owned(),
                restricted,
            },
        );
        (id, secret)
    }

    /// Forgets a container's token (it exited).
    pub(crate) fn revoke_container_token(&self, task_id: &str) {
        let id = format!("tk-{}", task_id.trim_start_matches("ta-"));
        let mut t = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        t.containers.remove(&id);
    }

    /// Who sent a request with these headers; an error (`unauthenticated`) when no token or
    /// secret in them is valid.
    pub(crate) fn authenticate(&self, meta: &MetadataMap) -> Result<Principal, Status> {
        let header = |name: &str| meta.get(name).and_then(|v| v.to_str().ok());
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        if let (Some(id), Some(secret)) = (header(TOKEN_ID_HEADER), header(TOKEN_SECRET_HEADER)) {
            let hash = hash_secret(secret);
            if tokens.users.get(id).is_some_and(|h| *h == hash) {
                return Ok(Principal::User {
                    token_id: id.to_owned(),
                });
            }
            if tokens.workers.get(id).is_some_and(|h| *h == hash) {
                return Ok(Principal::Worker {
                    token_id: id.to_owned(),
                });
            }
            if let Some(c) = tokens.containers.get(id)
                && c.secret_hash == hash
            {
                return Ok(Principal::Container {
                    task_id: c.task_id.clone(),
                    app_id: c.app_id.clone(),
                    restricted: c.restricted,
                });
            }
            if header(BOOTSTRAP_HEADER).is_none() {
                return Err(unauthenticated(&format!(
                    "token `{id}` is not valid on this server"
                )));
            }
        }
        if let Some(secret) = header(BOOTSTRAP_HEADER) {
            return match &tokens.bootstrap_hash {
                Some(h) if *h == hash_secret(secret) => Ok(Principal::Bootstrap),
                Some(_) => Err(Status::unauthenticated(
                    "the bootstrap secret is not this server's: read it from the server's own data directory (`modal token new --data-dir DIR` on the server's host, as the server's user)",
                )),
                None => Err(Status::unauthenticated(
                    "this server has no bootstrap secret: it creates only the first token; create more with a token you have, or restart the server with --new-bootstrap-secret",
                )),
            };
        }
        Err(unauthenticated("this request carries no token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for (name, value) in pairs {
            m.insert(*name, value.parse().unwrap());
        }
        m
    }

    fn token(id: &str, secret: &str) -> MetadataMap {
        headers(&[(TOKEN_ID_HEADER, id), (TOKEN_SECRET_HEADER, secret)])
    }

    #[test]
    fn tokens_are_checked() {
        let auth = Auth::default();
        let (id, secret, hash) = Auth::mint_user_token();
        auth.add_token(id.clone(), hash);
        assert_eq!(
            auth.authenticate(&token(&id, &secret)).unwrap(),
            Principal::User {
                token_id: id.clone()
            }
        );
        let wrong = auth.authenticate(&token(&id, "as-wrong")).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(
            wrong.message().contains("modal token new") && wrong.message().contains(&id),
            "{}",
            wrong.message()
        );
        let none = auth.authenticate(&MetadataMap::new()).unwrap_err();
        assert!(none.message().contains("carries no token"), "{none:?}");
    }

    #[test]
    fn container_tokens_are_scoped_and_revocable() {
        let auth = Auth::default();
        let (id, secret) = auth.issue_container_token("ta-abc", "ap-1", false);
        let p = auth.authenticate(&token(&id, &secret)).unwrap();
        assert!(p.require_task("ta-abc").is_ok());
        assert!(p.require_task("ta-other").is_err());
        assert!(p.require_app("ap-1").is_ok());
        for refused in [
            p.require_app("ap-2"),
            p.require_user(),
            p.require_token_creator(),
        ] {
            assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
        }
        auth.revoke_container_token("ta-abc");
        assert!(auth.authenticate(&token(&id, &secret)).is_err());
    }

    #[test]
    fn a_restricted_container_serves_its_own_inputs_only() {
        let auth = Auth::default();
        let (id, secret) = auth.issue_container_token("ta-abc", "ap-1", true);
        let p = auth.authenticate(&token(&id, &secret)).unwrap();
        assert!(p.require_task("ta-abc").is_ok());
        for refused in [p.require_app("ap-1"), p.require_user()] {
            let e = refused.unwrap_err();
            assert_eq!(e.code(), tonic::Code::PermissionDenied);
            assert!(e.message().contains("restrict_modal_access"), "{e:?}");
        }
    }

    #[test]
    fn the_bootstrap_secret_only_creates_tokens() {
        let auth = Auth::default();
        let secret = new_bootstrap_secret();
        let with = |s: &str| headers(&[(BOOTSTRAP_HEADER, s)]);
        assert!(
            auth.authenticate(&with(&secret)).is_err(),
            "no secret set yet"
        );
        auth.set_bootstrap_secret(&secret, None);
        let p = auth.authenticate(&with(&secret)).unwrap();
        assert_eq!(p, Principal::Bootstrap);
        assert!(p.require_token_creator().is_ok());
        assert_eq!(
            p.require_user().unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(p.require_app("ap-1").is_err());
        let wrong = auth.authenticate(&with("bs-wrong")).unwrap_err();
        assert!(wrong.message().contains("data directory"), "{wrong:?}");
        // A stale token next to a valid bootstrap secret: the secret decides.
        let mut both = token("ak-stale", "as-stale");
        both.insert(BOOTSTRAP_HEADER, secret.parse().unwrap());
        assert_eq!(auth.authenticate(&both).unwrap(), Principal::Bootstrap);
        // It works once.
        assert!(auth.consume_bootstrap_secret());
        assert!(!auth.consume_bootstrap_secret());
        assert!(auth.authenticate(&with(&secret)).is_err());
    }
}
