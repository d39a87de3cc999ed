//! How a client reaches its control plane: over gRPC, or, for a control plane in this process,
//! by calling its service directly (same protocol, no socket).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response of a service called in-process.
pub(crate) type LocalResponse =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

/// A control plane's client service in this process, called directly: whoever assembles the
/// control plane and the client (see `crate::embedded`) provides it.
pub(crate) type LocalService = Arc<dyn Fn(http::Request<Body>) -> LocalResponse + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Transport {
    Remote(tonic::transport::Channel),
    InProcess(LocalService),
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Remote(c) => c.poll_ready(cx).map_err(Into::into),
            // A service called in-process is always ready (tonic's servers are).
            Transport::InProcess(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(c) => {
                let f = c.call(req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Transport::InProcess(s) => {
                let f = s(req);
                Box::pin(async move { f.await.map_err(|e| match e {}) })
            }
        }
    }
}
