//! Credentials on every request: the interceptor that adds a token's headers (and says that
//! this build downloads large payloads by their handle).

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;

use crate::credentials::{Credentials, TOKEN_ID_HEADER, TOKEN_SECRET_HEADER};

/// Adds the token to every request.
#[derive(Clone, Default)]
pub(crate) struct AuthHeaders {
    values: Option<(
        MetadataValue<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )>,
}

impl AuthHeaders {
    pub(crate) fn new(credentials: Option<&Credentials>) -> Self {
        let values = credentials
            .and_then(|c| Some((c.token_id.parse().ok()?, c.token_secret.parse().ok()?)));
        AuthHeaders { values }
    }
}

/// Present on the requests of a peer that downloads a large payload by its handle
/// (`PayloadDownload`) instead of receiving it inline.
pub(crate) const PAYLOAD_DOWNLOADS_HEADER: &str = "modal-payload-downloads";

impl Interceptor for AuthHeaders {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(PAYLOAD_DOWNLOADS_HEADER, MetadataValue::from_static("1"));
        if let Some((id, secret)) = &self.values {
            req.metadata_mut().insert(TOKEN_ID_HEADER, id.clone());
            req.metadata_mut()
                .insert(TOKEN_SECRET_HEADER, secret.clone());
        }
        Ok(req)
    }
}
