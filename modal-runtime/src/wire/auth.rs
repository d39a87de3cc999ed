//! Credentials on every request: the interceptor that adds a token's headers.

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

impl Interceptor for AuthHeaders {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((id, secret)) = &self.values {
            req.metadata_mut().insert(TOKEN_ID_HEADER, id.clone());
            req.metadata_mut()
                .insert(TOKEN_SECRET_HEADER, secret.clone());
        }
        Ok(req)
    }
}
