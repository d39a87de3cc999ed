//! The wire edge: the protobuf messages (`pb`), the transport settings every gRPC endpoint
//! shares, credentials on requests, and (in `convert`) conversions between the runtime's own
//! types and the messages. The only module that names `modal_proto`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub(crate) use modal_proto::v1 as pb;

mod auth;
mod calls;
mod chunks;
mod control;
mod convert;
mod functions;
mod images;
mod tls;
mod volumes;

pub(crate) use auth::{AuthHeaders, PAYLOAD_DOWNLOADS_HEADER};
pub(crate) use calls::*;
pub(crate) use chunks::*;
pub(crate) use control::*;
pub(crate) use convert::*;
pub(crate) use functions::*;

/// Largest message any endpoint accepts or sends (payloads travel inline).
pub(crate) const MAX_MESSAGE_BYTES: usize = 1 << 30;
/// Largest message a worker sends (registrations, logs, exits with the results a crashed
/// container's journal kept).
pub(crate) const MAX_WORKER_MESSAGE_BYTES: usize = 64 << 20;
/// HTTP/2 flow-control windows: large, so a 16 MiB payload is not throttled to 64 KiB steps.
pub(crate) const STREAM_WINDOW: u32 = 32 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 64 << 20;
/// HTTP/2 frame size: large frames cut per-frame work on big payloads.
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// Size of the chunks an executable travels in (upload and download).
pub(crate) const BINARY_CHUNK: usize = 1 << 20;

/// Opens a channel to a control plane with the shared transport settings: over TLS for an
/// `https://` URL (checked against `route.trust`), through `route.socket` (or the path of a
/// `unix:///path` URL) instead of the network when there is one. A failure says what to do when
/// TLS is why.
pub(crate) async fn connect(
    url: &str,
    keepalive: bool,
    route: &crate::credentials::Route,
) -> Result<tonic::transport::Channel, String> {
    let socket = route.socket.as_deref().or_else(|| unix_socket(url));
    // A `unix://` URL's own address is not used (its connector dials the path); an `https://`
    // one through a socket still names the host its certificate must carry.
    let address = if unix_socket(url).is_some() {
        "http://localhost"
    } else {
        url
    };
    let mut endpoint = tonic::transport::Endpoint::from_shared(address.to_owned())
        .map_err(|e| format!("invalid control plane url `{url}`: {e}"))?
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .connect_timeout(Duration::from_secs(5));
    if let Some(config) = tls::client_config(endpoint.uri(), &route.trust)? {
        endpoint = endpoint.tls_config(config).map_err(|e| {
            format!(
                "cannot set up TLS for {url}: {}",
                crate::error::with_causes(&e)
            )
        })?;
    }
    if keepalive {
        endpoint = endpoint
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .keep_alive_while_idle(true);
    }
    let connected = match socket {
        // A container without a network reaches its control plane through its worker's socket.
        Some(path) => {
            let path = path.to_owned();
            endpoint
                .connect_with_connector(tower::service_fn(move |uri: http::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        let conn = tls::Conn::open(stream, &uri).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(conn))
                    }
                }))
                .await
        }
        None => {
            endpoint
                .connect_with_connector(tower::service_fn(|uri: http::Uri| async move {
                    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
                    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
                        Some("https") => 443,
                        _ => 80,
                    });
                    let stream = tokio::net::TcpStream::connect((host, port)).await?;
                    stream.set_nodelay(true)?;
                    let conn = tls::Conn::open(stream, &uri).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(conn))
                }))
                .await
        }
    };
    connected.map_err(|e| {
        tls::explain(url, &route.trust, &e).unwrap_or_else(|| crate::error::with_causes(&e))
    })
}

/// The path of a `unix:///path` URL.
fn unix_socket(url: &str) -> Option<&str> {
    url.strip_prefix("unix://").filter(|p| p.starts_with('/'))
}

/// What to say of a request that failed with `status`: the status's code and message, or,
/// when a plain connection met a TLS control plane, that.
pub(crate) fn status_text(status: &tonic::Status) -> String {
    match tls::serves_tls(status) {
        Some(plain) => format!("the control plane at {}: {plain}", plain.url()),
        None => format!("{}: {}", code_name(status.code()), status.message()),
    }
}

/// Whether `status` says a plain connection met a TLS control plane (sending the request
/// again cannot help).
pub(crate) fn met_tls(status: &tonic::Status) -> bool {
    tls::serves_tls(status).is_some()
}

/// The name of a gRPC status code, for messages.
pub(crate) fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "ok",
        Cancelled => "cancelled",
        Unknown => "unknown",
        InvalidArgument => "invalid argument",
        DeadlineExceeded => "deadline exceeded",
        NotFound => "not found",
        AlreadyExists => "already exists",
        PermissionDenied => "permission denied",
        ResourceExhausted => "resource exhausted",
        FailedPrecondition => "failed precondition",
        Aborted => "aborted",
        OutOfRange => "out of range",
        Unimplemented => "unimplemented",
        Internal => "internal",
        Unavailable => "unavailable",
        DataLoss => "data loss",
        Unauthenticated => "unauthenticated",
    }
}

impl From<tonic::Status> for crate::error::Error {
    fn from(s: tonic::Status) -> Self {
        match tls::serves_tls(&s) {
            Some(plain) => crate::error::Error::Connect {
                url: plain.url().to_owned(),
                message: plain.to_string(),
            },
            None => crate::error::Error::ControlPlane(format!(
                "{}: {}",
                code_name(s.code()),
                s.message()
            )),
        }
    }
}

/// Milliseconds, saturating at `u32::MAX`.
pub(crate) fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// A protobuf map as the runtime keeps it (sorted).
pub(crate) fn sorted(m: HashMap<String, String>) -> BTreeMap<String, String> {
    m.into_iter().collect()
}

/// A sorted map as a protobuf map.
pub(crate) fn unsorted(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A message as the store keeps it (protobuf bytes).
pub(crate) fn stored<M: prost::Message>(m: &M) -> Vec<u8> {
    prost::Message::encode_to_vec(m)
}

/// A message the store kept; `what` names it in the error.
pub(crate) fn unstored<M: prost::Message + Default>(bytes: &[u8], what: &str) -> Result<M, String> {
    M::decode(bytes).map_err(|e| format!("undecodable {what}: {e}"))
}
