//! Who is calling: API tokens (user tokens kept hashed, container tokens scoped to one app and
//! valid while their container lives), checked on every request of a standalone control plane.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tonic::{Request, Status};

use crate::credentials::{TOKEN_ID_HEADER, TOKEN_SECRET_HEADER};

/// How a caller is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Principal {
    /// The embedded control plane trusts its own process and children: auth is off.
    Local,
    /// A user token.
    User { token_id: String },
    /// A container's token: only its own task and the functions of its app.
    Container { task_id: String, app_id: String },
    /// No valid credentials; `loopback` when the request came from this machine.
    Anonymous { loopback: bool, reason: String },
}

impl Principal {
    /// Requires a user (or the embedded control plane's own process).
    pub(crate) fn require_user(&self) -> Result<(), Status> {
        match self {
            Principal::Local | Principal::User { .. } => Ok(()),
            Principal::Container { .. } => Err(Status::permission_denied(
                "a container's token may only call functions of its own app",
            )),
            Principal::Anonymous { reason, .. } => Err(unauthenticated(reason)),
        }
    }

    /// Requires a user, or a container of `app_id`.
    pub(crate) fn require_app(&self, app_id: &str) -> Result<(), Status> {
        match self {
            Principal::Container { app_id: own, .. } if own == app_id => Ok(()),
            Principal::Container { .. } => Err(Status::permission_denied(
                "a container's token may only call functions of its own app",
            )),
            other => other.require_user(),
        }
    }

    /// Requires the container `task_id` itself.
    pub(crate) fn require_task(&self, task_id: &str) -> Result<(), Status> {
        match self {
            Principal::Local => Ok(()),
            Principal::Container { task_id: own, .. } if own == task_id => Ok(()),
            Principal::Anonymous { reason, .. } => Err(unauthenticated(reason)),
            _ => Err(Status::permission_denied(format!(
                "only container {task_id} may open its stream"
            ))),
        }
    }
}

fn unauthenticated(reason: &str) -> Status {
    Status::unauthenticated(format!(
        "{reason}: create a token with `modal token new` on the server's host, then set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or keep the config file it writes)"
    ))
}

struct ContainerToken {
    secret_hash: String,
    task_id: String,
    app_id: String,
}

#[derive(Default)]
struct Tokens {
    users: HashMap<String, String>,
    containers: HashMap<String, ContainerToken>,
}

/// The token registry. Read by every request (through [`Auth::principal`]); written when a token
/// is created, loaded, or a container starts and exits.
#[derive(Clone)]
pub(crate) struct Auth {
    enabled: bool,
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

impl Auth {
    /// Auth that accepts every request as [`Principal::Local`] (the embedded control plane).
    pub(crate) fn disabled() -> Self {
        Auth {
            enabled: false,
            tokens: Arc::default(),
        }
    }

    /// Auth that requires a valid token.
    // Only a standalone control plane (feature `server`) checks tokens.
    #[cfg_attr(not(feature = "server"), allow(dead_code))]
    pub(crate) fn enabled() -> Self {
        Auth {
            enabled: true,
            tokens: Arc::default(),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// A new user token: `(id, secret, hash of the secret)`. The caller persists the hash.
    pub(crate) fn mint_user_token() -> (String, String, String) {
        let id = crate::ids::new_id("ak-");
        let secret = format!("as-{}", random_secret());
        let hash = hash_secret(&secret);
        (id, secret, hash)
    }

    /// Accepts a user token from now on.
    pub(crate) fn add_user_token(&self, id: String, secret_hash: String) {
        if let Ok(mut t) = self.tokens.write() {
            t.users.insert(id, secret_hash);
        }
    }

    /// A token for container `task_id` of `app_id`: `(id, secret)`, valid until revoked.
    pub(crate) fn issue_container_token(&self, task_id: &str, app_id: &str) -> (String, String) {
        let id = format!("tk-{}", task_id.trim_start_matches("ta-"));
        let secret = format!("ts-{}", random_secret());
        if let Ok(mut t) = self.tokens.write() {
            t.containers.insert(
                id.clone(),
                ContainerToken {
                    secret_hash: hash_secret(&secret),
                    task_id: task_id.to_owned(),
                    app_id: app_id.to_owned(),
                },
            );
        }
        (id, secret)
    }

    /// Forgets a container's token (it exited).
    pub(crate) fn revoke_container_token(&self, task_id: &str) {
        let id = format!("tk-{}", task_id.trim_start_matches("ta-"));
        if let Ok(mut t) = self.tokens.write() {
            t.containers.remove(&id);
        }
    }

    /// Who sent `req`.
    pub(crate) fn principal<T>(&self, req: &Request<T>) -> Principal {
        if !self.enabled {
            return Principal::Local;
        }
        let loopback = req
            .remote_addr()
            .is_some_and(|a: SocketAddr| a.ip().is_loopback());
        let meta = req.metadata();
        let header = |name: &str| {
            meta.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (Some(id), Some(secret)) = (header(TOKEN_ID_HEADER), header(TOKEN_SECRET_HEADER))
        else {
            return Principal::Anonymous {
                loopback,
                reason: "this request carries no token".into(),
            };
        };
        let hash = hash_secret(&secret);
        let Ok(tokens) = self.tokens.read() else {
            return Principal::Anonymous {
                loopback,
                reason: "the token registry is unavailable".into(),
            };
        };
        if tokens.users.get(&id).is_some_and(|h| *h == hash) {
            return Principal::User { token_id: id };
        }
        if let Some(c) = tokens.containers.get(&id)
            && c.secret_hash == hash
        {
            return Principal::Container {
                task_id: c.task_id.clone(),
                app_id: c.app_id.clone(),
            };
        }
        Principal::Anonymous {
            loopback,
            reason: format!("token `{id}` is not valid on this server"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str, secret: &str) -> Request<()> {
        let mut r = Request::new(());
        r.metadata_mut()
            .insert(TOKEN_ID_HEADER, id.parse().unwrap());
        r.metadata_mut()
            .insert(TOKEN_SECRET_HEADER, secret.parse().unwrap());
        r
    }

    #[test]
    fn tokens_are_checked() {
        let auth = Auth::enabled();
        let (id, secret, hash) = Auth::mint_user_token();
        auth.add_user_token(id.clone(), hash);
        assert_eq!(
            auth.principal(&request(&id, &secret)),
            Principal::User {
                token_id: id.clone()
            }
        );
        let wrong = auth.principal(&request(&id, "as-wrong"));
        assert!(matches!(wrong, Principal::Anonymous { .. }));
        let status = wrong.require_user().unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert!(
            status.message().contains("modal token new"),
            "{}",
            status.message()
        );
        assert!(matches!(
            auth.principal(&Request::new(())),
            Principal::Anonymous { .. }
        ));
    }

    #[test]
    fn container_tokens_are_scoped_and_revocable() {
        let auth = Auth::enabled();
        let (id, secret) = auth.issue_container_token("ta-abc", "ap-1");
        let p = auth.principal(&request(&id, &secret));
        assert!(p.require_task("ta-abc").is_ok());
        assert!(p.require_task("ta-other").is_err());
        assert!(p.require_app("ap-1").is_ok());
        assert_eq!(
            p.require_app("ap-2").unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            p.require_user().unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        auth.revoke_container_token("ta-abc");
        assert!(matches!(
            auth.principal(&request(&id, &secret)),
            Principal::Anonymous { .. }
        ));
    }

    #[test]
    fn disabled_auth_trusts_everyone() {
        assert_eq!(
            Auth::disabled().principal(&Request::new(())),
            Principal::Local
        );
    }
}
