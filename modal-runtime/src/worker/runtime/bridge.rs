//! The unix socket a container reaches its control plane through: the worker listens on it
//! (the socket is mounted into the container) and carries each connection's bytes to the
//! control plane's address, so that a container needs no network of its own.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tokio::net::{TcpStream, UnixListener};
use tokio::task::JoinSet;

/// A listening bridge; dropping it ends its connections.
pub(crate) struct Bridge {
    task: tokio::task::JoinHandle<()>,
}

impl Bridge {
    /// Listens at `socket` and carries connections to the control plane at `server_url`
    /// (`http://host:port`, or `https://…`: the bytes pass untouched, TLS runs end to end between
    /// the container and the control plane).
    pub(crate) fn open(socket: &Path, server_url: &str) -> Result<Bridge, String> {
        let uri: http::Uri = server_url
            .parse()
            .map_err(|e| format!("invalid control plane url `{server_url}`: {e}"))?;
        let host = uri
            .host()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket)
            .map_err(|e| format!("cannot listen at {}: {e}", socket.display()))?;
        let _ = std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600));
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inside, _)) = accepted else { return };
                        let (host, port) = (host.clone(), port);
                        connections.spawn(async move {
                            match TcpStream::connect((host.as_str(), port)).await {
                                Ok(mut outside) => {
                                    let _ = outside.set_nodelay(true);
                                    let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                                }
                                Err(e) => tracing::warn!("a container cannot reach the control plane at {host}:{port}: {e}"),
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Bridge { task })
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.task.abort();
    }
}
