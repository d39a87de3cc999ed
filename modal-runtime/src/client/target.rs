//! What a handle calls: a function of this program, one found by name on the control plane, or
//! a variant of either (class parameters, `with_options`…), resolved to a function id on first use.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::Client;
use crate::error::{Error, Result};
use crate::registry::{Bound, FunctionRegistration};
use crate::wire::pb;

#[derive(Clone)]
pub(crate) enum Target {
    /// Declared in this program; bound while its app runs (or after a deploy).
    Registered(&'static FunctionRegistration),
    /// Looked up by name.
    Named(Arc<Named>),
    /// A variant of a registered or named function: its own pool of containers.
    Variant(Arc<VariantTarget>),
}

pub(crate) struct Named {
    pub(crate) app: String,
    pub(crate) tag: String,
    pub(crate) environment: String,
    resolved: OnceCell<(Bound, String)>,
}

pub(crate) struct VariantTarget {
    pub(crate) base: Target,
    pub(crate) params: Option<pb::Payload>,
    pub(crate) options: Option<pb::FunctionOptions>,
    /// Why this variant cannot be used (a required class parameter without a value).
    pub(crate) invalid: Option<String>,
    resolved: OnceCell<Bound>,
}

impl Target {
    pub(crate) fn named(app: &str, tag: &str, environment: &str) -> Self {
        Target::Named(Arc::new(Named {
            app: app.to_owned(),
            tag: tag.to_owned(),
            environment: environment.to_owned(),
            resolved: OnceCell::new(),
        }))
    }

    /// A variant of `base` (a variant of a variant binds the original function).
    pub(crate) fn variant(
        base: Target,
        params: Option<pb::Payload>,
        options: Option<pb::FunctionOptions>,
        invalid: Option<String>,
    ) -> Self {
        let base = match base {
            Target::Variant(v) => v.base.clone(),
            other => other,
        };
        Target::Variant(Arc::new(VariantTarget {
            base,
            params,
            options,
            invalid,
            resolved: OnceCell::new(),
        }))
    }

    pub(crate) fn tag(&self) -> &str {
        match self {
            Target::Registered(r) => r.tag,
            Target::Named(n) => &n.tag,
            Target::Variant(v) => v.base.tag(),
        }
    }

    /// The return type the control plane declared for a function found by name.
    pub(crate) fn declared_return(&self) -> Option<&str> {
        match self {
            Target::Named(n) => n
                .resolved
                .get()
                .map(|(_, r)| r.as_str())
                .filter(|r| !r.is_empty()),
            Target::Variant(v) => v.base.declared_return(),
            Target::Registered(_) => None,
        }
    }

    /// The client and function id to call.
    pub(crate) async fn bound(&self) -> Result<Bound> {
        match self {
            Target::Registered(r) => r.bound.get().ok_or_else(|| Error::NotRunning {
                app: (r.app)().name().to_owned(),
                function: r.tag.to_owned(),
            }),
            Target::Named(n) => n
                .resolved
                .get_or_try_init(|| async {
                    let client = Client::from_env().await?;
                    let mut api = client.api.clone();
                    let resp = api
                        .function_get(pb::FunctionGetRequest {
                            app_name: n.app.clone(),
                            tag: n.tag.clone(),
                            environment_name: n.environment.clone(),
                        })
                        .await?
                        .into_inner();
                    let returns = resp.definition.map(|d| d.return_type).unwrap_or_default();
                    Ok::<_, Error>((
                        Bound {
                            client,
                            function_id: resp.function_id,
                        },
                        returns,
                    ))
                })
                .await
                .map(|(b, _)| b.clone()),
            Target::Variant(v) => {
                if let Some(why) = &v.invalid {
                    return Err(Error::Invalid(why.clone()));
                }
                v.resolved
                    .get_or_try_init(|| async {
                        let base = Box::pin(v.base.bound()).await?;
                        if v.params.is_none() && v.options.is_none() {
                            return Ok(base);
                        }
                        let mut api = base.client.api.clone();
                        let resp = api
                            .function_bind(pb::FunctionBindRequest {
                                function_id: base.function_id.clone(),
                                params: v.params.clone(),
                                options: v.options.clone(),
                            })
                            .await?
                            .into_inner();
                        Ok::<_, Error>(Bound {
                            client: base.client,
                            function_id: resp.bound_function_id,
                        })
                    })
                    .await
                    .cloned()
            }
        }
    }
}
