//! How a client reaches its control plane: over gRPC, or, for the control plane embedded in
//! this process, by calling its service directly (same protocol, no socket).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tower_service::Service;

use crate::server::ClientService;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub(crate) enum Transport {
    Remote(tonic::transport::Channel),
    InProcess(ClientService),
}

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Transport::Remote(c) => c.poll_ready(cx).map_err(Into::into),
            Transport::InProcess(s) => {
                Service::<http::Request<Body>>::poll_ready(s, cx).map_err(|e| match e {})
            }
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(c) => {
                let f = c.call(req);
                Box::pin(async move { f.await.map_err(Into::into) })
            }
            Transport::InProcess(s) => {
                let f = s.call(req);
                Box::pin(async move { f.await.map_err(|e| match e {}) })
            }
        }
    }
}
