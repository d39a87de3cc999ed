//! TLS toward a control plane: the client settings of an `https://` URL (the certificate
//! trusted, the name checked), the connections that carry it (TCP, or a worker's unix socket),
//! and plain words for what goes wrong: a certificate not trusted, a TLS server reached with
//! `http://`, a plain one with `https://`.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Certificate, ClientTlsConfig};

use crate::credentials::{SERVER_CERT_ENV, Trust};

/// The TLS settings of a connection to `uri` trusting `trust`; `None` for a plain URL.
pub(super) fn client_config(
    uri: &http::Uri,
    trust: &Trust,
) -> Result<Option<ClientTlsConfig>, String> {
    if uri.scheme_str() != Some("https") {
        return Ok(None);
    }
    // The name the certificate must carry: the URL's host (an IPv6 address without brackets).
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let config = ClientTlsConfig::new().domain_name(host);
    let config = match trust {
        Trust::System => config.with_native_roots(),
        Trust::Cert { pem, source } => {
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!("{source} holds no PEM certificate"));
            }
            config.ca_certificate(Certificate::from_pem(pem))
        }
        Trust::Unreadable(why) => {
            return Err(format!(
                "the control plane's certificate cannot be read ({why})"
            ));
        }
    };
    Ok(Some(config))
}

/// Said by a plain (`http://`) connection whose server answered with TLS.
#[derive(Debug, thiserror::Error)]
#[error(
    "it serves TLS, and this connection is plain: connect with {https} (and trust its certificate: `modal token new --server {https}` saves it, or set {SERVER_CERT_ENV}=PATH)"
)]
pub(crate) struct ServesTls {
    url: String,
    https: String,
}

impl ServesTls {
    /// The plain URL that was used.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// The first bytes an HTTP/2 client sends.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection to a control plane. A plain one (`http://`) has sent the HTTP/2 preface and
/// read the server's first bytes before it is used ([`Conn::open`]), so that a TLS server's
/// answer is told at once; it then reads those bytes again and does not send the preface a
/// second time. Over TLS, the bytes pass untouched.
pub(super) struct Conn<T> {
    inner: T,
    /// The server's first bytes, read again first.
    replay: Vec<u8>,
    /// How many bytes of the preface the HTTP/2 client will write that were sent already.
    skip: usize,
}

impl<T: AsyncRead + AsyncWrite + Unpin> Conn<T> {
    /// `inner`, a new connection to `uri`; a plain one is checked to reach a plain server: a TLS
    /// record (an alert, `0x15 0x03`) where the server's first HTTP/2 frame (a small SETTINGS
    /// frame, whose length starts with a zero byte) must start is an error saying so.
    pub(super) async fn open(mut inner: T, uri: &http::Uri) -> std::io::Result<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if uri.scheme_str() == Some("https") {
            return Ok(Conn {
                inner,
                replay: Vec::new(),
                skip: 0,
            });
        }
        inner.write_all(PREFACE).await?;
        let mut first = vec![0; 256];
        let n = inner.read(&mut first).await?;
        first.truncate(n);
        let url = uri.to_string();
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "{} closed the connection on its first bytes (a server that serves TLS does; then use {})",
                    url.trim_end_matches('/'),
                    as_https(&url)
                ),
            ));
        }
        if looks_like_tls(&first) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                ServesTls {
                    https: as_https(&url),
                    url: url.trim_end_matches('/').to_owned(),
                },
            ));
        }
        Ok(Conn {
            inner,
            replay: first,
            skip: PREFACE.len(),
        })
    }
}

/// Whether `first` (a server's first bytes) start a TLS alert or handshake record.
fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x15 | 0x16, 0x03, ..] | [0x15 | 0x16])
}

/// `http://host:port/…` as `https://host:port`.
fn as_https(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    format!("https://{}", rest.trim_end_matches('/'))
}

impl<T: AsyncRead + Unpin> AsyncRead for Conn<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.replay.is_empty() {
            let n = self.replay.len().min(buf.remaining());
            buf.put_slice(&self.replay[..n]);
            self.replay.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Conn<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.skip > 0 && !buf.is_empty() {
            // The HTTP/2 client starts with the preface, which went out already.
            let sent = PREFACE.len() - self.skip;
            let n = self.skip.min(buf.len());
            if buf[..n] == PREFACE[sent..sent + n] {
                self.skip -= n;
                return Poll::Ready(Ok(n));
            }
            self.skip = 0;
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.skip > 0 {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The errors in `e`'s chain, with those an `io::Error` wraps (whose `source` skips them).
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    let mut next = Some(e);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as _),
            None => current.source(),
        };
        Some(current)
    })
}

/// The [`ServesTls`] in `e`'s chain, if a plain connection met a TLS server.
pub(crate) fn serves_tls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ServesTls> {
    chain(e).find_map(|e| e.downcast_ref::<ServesTls>())
}

/// What to tell about a connection to `url` that failed with `e`, when TLS is why; `None`
/// otherwise.
pub(super) fn explain(
    url: &str,
    trust: &Trust,
    e: &(dyn std::error::Error + 'static),
) -> Option<String> {
    if let Some(plain) = serves_tls(e) {
        return Some(plain.to_string());
    }
    if !url.starts_with("https://") {
        return None;
    }
    let trusted = match trust {
        Trust::Cert { source, .. } => format!("the certificate from {source}"),
        _ => "the system's root certificates".to_owned(),
    };
    let save = format!(
        "`modal token new --server {url}` saves a self-signed server's certificate (it reads it from the server's data directory on its machine; elsewhere pass --server-cert PATH), or set {SERVER_CERT_ENV}=PATH to a PEM file of the server's certificate or of its CA"
    );
    for e in chain(e) {
        if let Some(rustls_error) = e.downcast_ref::<rustls::Error>() {
            use rustls::CertificateError as C;
            return Some(match rustls_error {
                rustls::Error::InvalidCertificate(
                    C::NotValidForName | C::NotValidForNameContext { .. },
                ) => format!(
                    "the control plane's certificate does not name the host of {url} ({rustls_error}): connect with a name it carries, or give the server a certificate for this one (a self-signed certificate is made for localhost, 127.0.0.1, its host name and the host of --advertise-url; remove tls/ in its data directory to make it again, then trust the new one)"
                ),
                rustls::Error::InvalidCertificate(
                    C::Expired
                    | C::ExpiredContext { .. }
                    | C::NotValidYet
                    | C::NotValidYetContext { .. },
                ) => format!(
                    "the control plane's certificate is not valid now ({rustls_error}): renew the server's certificate"
                ),
                rustls::Error::InvalidCertificate(_) => format!(
                    "the control plane's certificate is not trusted ({rustls_error}; this client trusts {trusted}): {save}"
                ),
                rustls::Error::InvalidMessage(_) => format!(
                    "the control plane at {url} does not speak TLS (it answered: {rustls_error}): connect with http://, or start the server with --tls-self-signed or --tls-cert and --tls-key"
                ),
                other => format!("TLS with the control plane at {url} failed: {other}"),
            });
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return Some(format!(
                "the control plane at {url} closed the connection during the TLS handshake: is it a plain http:// server? Connect with http://, or start the server with --tls-self-signed or --tls-cert and --tls-key"
            ));
        }
        if e.to_string().contains("no native certs found") {
            return Some(format!(
                "this machine has no root certificates to check the control plane's with: {save}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tls_record_is_told_from_an_http2_frame() {
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(looks_like_tls(&[0x15]));
        // A SETTINGS frame: a small length, type 4.
        assert!(!looks_like_tls(&[0x00, 0x00, 0x12, 0x04, 0x00]));
        assert!(!looks_like_tls(&[0x15, 0x00]));
        assert!(!looks_like_tls(&[]));
        assert_eq!(as_https("http://10.0.0.1:7878/"), "https://10.0.0.1:7878");
    }

    #[test]
    fn an_https_url_checks_its_host_against_the_trusted_certificate() {
        let plain: http::Uri = "http://127.0.0.1:7878".parse().unwrap();
        assert!(client_config(&plain, &Trust::System).unwrap().is_none());
        let tls: http::Uri = "https://[::1]:7878".parse().unwrap();
        assert!(client_config(&tls, &Trust::System).unwrap().is_some());
        let unreadable = Trust::Unreadable("MODAL_SERVER_CERT=/nowhere: not found".into());
        let e = client_config(&tls, &unreadable).unwrap_err();
        assert!(e.contains("/nowhere"), "{e}");
        let garbage = Trust::Cert {
            pem: "not a certificate".into(),
            source: "MODAL_SERVER_CERT_PEM".into(),
        };
        let e = client_config(&tls, &garbage).unwrap_err();
        assert!(
            e.contains("MODAL_SERVER_CERT_PEM holds no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn tls_failures_are_said_plainly() {
        let url = "https://10.0.0.1:7878";
        let untrusted = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let said = explain(url, &Trust::System, &untrusted).unwrap();
        assert!(said.contains("is not trusted"), "{said}");
        assert!(
            said.contains("modal token new --server https://10.0.0.1:7878"),
            "{said}"
        );
        assert!(said.contains("MODAL_SERVER_CERT=PATH"), "{said}");
        let name = rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName);
        let said = explain(url, &Trust::System, &name).unwrap();
        assert!(said.contains("does not name the host"), "{said}");
        let plain_server =
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let said = explain(url, &Trust::System, &plain_server).unwrap();
        assert!(said.contains("does not speak TLS"), "{said}");
        let tls_server = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            ServesTls {
                url: "http://10.0.0.1:7878".into(),
                https: as_https("http://10.0.0.1:7878"),
            },
        );
        let said = explain("http://10.0.0.1:7878", &Trust::System, &tls_server).unwrap();
        assert!(
            said.contains(
                "serves TLS, and this connection is plain: connect with https://10.0.0.1:7878"
            ),
            "{said}"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(explain(url, &Trust::System, &refused), None);
    }
}
