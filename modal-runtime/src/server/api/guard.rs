//! What every request passes before its body is read: who is calling (a request without a valid
//! token is refused here, having cost nothing), and how large each RPC's messages may be.

use std::task::{Context, Poll};

use http_body_util::{BodyExt, Limited};
use tonic::body::Body;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::server::auth::{Auth, Principal};

/// Checks the caller's token from the headers alone and hands the [`Principal`] to the handler
/// (in the request's extensions).
/// A worker token reaches the worker API only: whatever a handler checks, the client and
/// container APIs refuse it here.
#[derive(Clone)]
pub(crate) struct Authenticate {
    pub(crate) auth: Auth,
    pub(crate) service: Api,
}

/// Which API an [`Authenticate`] guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    Client,
    Container,
    Worker,
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let principal = self.auth.authenticate(req.metadata())?;
        if self.service != Api::Worker && matches!(principal, Principal::Worker { .. }) {
            return Err(Status::permission_denied(crate::server::auth::WORKER_ONLY));
        }
        req.extensions_mut().insert(principal);
        Ok(req)
    }
}

/// The principal [`Authenticate`] found for `req`.
pub(crate) fn principal_of<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Status::internal("this request did not pass authentication (a control plane defect)")
    })
}

/// The most a control request's body may hold: everything but payloads and binaries is small.
pub(crate) const CONTROL_REQUEST_BYTES: usize = 4 << 20;

/// The body limit of a unary RPC, by path; `None` for RPCs that carry payloads (limited per
/// message by [`crate::wire::MAX_MESSAGE_BYTES`]) and for streams (limited per message by their
/// service).
fn body_limit(path: &str) -> Option<usize> {
    let method = path.rsplit('/').next().unwrap_or(path);
    match method {
        // Payloads (inputs, class parameters).
        "FunctionCall" | "FunctionCallGenerator" | "FunctionBind" => None,
        // Streams.
        "FunctionMap" | "BinaryUpload" | "AppGetLogs" | "ContainerConnect" | "WorkerConnect"
        | "BinaryDownload" => None,
        // Volume files stream in chunks; a commit lists every changed path.
        "VolumeBlobUpload" | "VolumeBlobDownload" | "VolumeCommit" => None,
        "ImageFileUpload" | "ImageBuild" => None,
        // Large payloads stream in chunks.
        "PayloadUpload" | "PayloadDownload" => None,
        _ => Some(CONTROL_REQUEST_BYTES),
    }
}

/// Limits each unary control request's body to [`CONTROL_REQUEST_BYTES`]; a larger one is
/// refused with `out of range`, read no further than the limit.
#[derive(Clone, Copy, Default)]
pub(crate) struct LimitBodies;

impl<S> Layer<S> for LimitBodies {
    type Service = LimitedBodies<S>;

    fn layer(&self, inner: S) -> LimitedBodies<S> {
        LimitedBodies { inner }
    }
}

/// The service [`LimitBodies`] makes.
#[derive(Clone)]
pub(crate) struct LimitedBodies<S> {
    inner: S,
}

impl<S> Service<http::Request<Body>> for LimitedBodies<S>
where
    S: Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> S::Future {
        let Some(limit) = body_limit(req.uri().path()) else {
            return self.inner.call(req);
        };
        let path = req.uri().path().to_owned();
        let (parts, body) = req.into_parts();
        let body = Limited::new(body, limit).map_err(move |e| -> Box<dyn std::error::Error + Send + Sync> {
            if e.is::<http_body_util::LengthLimitError>() {
                Box::new(Status::out_of_range(format!(
                    "the request to {path} is larger than its limit of {} MiB: only calls carry large payloads",
                    limit >> 20
                )))
            } else {
                e
            }
        });
        self.inner
            .call(http::Request::from_parts(parts, Body::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_payloads_and_streams_may_be_large() {
        assert_eq!(body_limit("/modal.v1.ClientApi/FunctionCall"), None);
        assert_eq!(body_limit("/modal.v1.ClientApi/FunctionMap"), None);
        assert_eq!(body_limit("/modal.v1.ContainerApi/ContainerConnect"), None);
        assert_eq!(
            body_limit("/modal.v1.ClientApi/AppCreate"),
            Some(CONTROL_REQUEST_BYTES)
        );
        assert_eq!(
            body_limit("/modal.v1.ClientApi/TokenCreate"),
            Some(CONTROL_REQUEST_BYTES)
        );
    }

    #[test]
    fn a_worker_token_passes_the_worker_api_only() {
        let auth = Auth::default();
        let (id, secret, hash) = Auth::mint_worker_token();
        auth.add_token(id.clone(), hash);
        let request = || {
            let mut req = Request::new(());
            req.metadata_mut().insert(
                crate::credentials::TOKEN_ID_HEADER,
                id.parse().expect("ascii"),
            );
            req.metadata_mut().insert(
                crate::credentials::TOKEN_SECRET_HEADER,
                secret.parse().expect("ascii"),
            );
            req
        };
        for service in [Api::Client, Api::Container] {
            let mut guard = Authenticate {
                auth: auth.clone(),
                service,
            };
            let refused = guard.call(request()).expect_err("refused");
            assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{service:?}");
            assert!(refused.message().contains("worker token"));
        }
        let mut guard = Authenticate {
            auth,
            service: Api::Worker,
        };
        let passed = guard.call(request()).expect("a worker registers");
        assert!(matches!(
            principal_of(&passed),
            Ok(Principal::Worker { .. })
        ));
    }
}
