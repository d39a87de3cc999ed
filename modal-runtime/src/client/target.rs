//! What a handle calls: a function of this program, one found by name on the control plane, or
//! a variant of either (class parameters, `with_options`…), resolved to a function id on first use.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::Client;
use super::reconnect::reconnecting;
use crate::error::{Error, Result};
use crate::model::{FunctionOptions, Payload};
use crate::registry::FunctionRegistration;
use crate::wire::pb;

/// A function's binding: the client to call through and the function's id on its control plane.
#[derive(Clone)]
pub(crate) struct Bound {
    pub(crate) client: Client,
    pub(crate) function_id: String,
}

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
    resolved: OnceCell<(Bound, Declared)>,
}

/// What the control plane says a function found by name takes and returns.
#[derive(Default)]
pub(crate) struct Declared {
    /// The argument tuple's and the result's types, shortened (`short_type_name`) once.
    pub(crate) args: String,
    pub(crate) returns: String,
    /// A class registers no types of its own (its methods are not checked).
    pub(crate) is_class: bool,
}

pub(crate) struct VariantTarget {
    pub(crate) base: Target,
    pub(crate) params: Option<Payload>,
    pub(crate) options: Option<FunctionOptions>,
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

    /// A variant of `base`. A variant of a variant binds the original function with both
    /// layers: the later parameters and options win, field by field.
    pub(crate) fn variant(
        base: Target,
        params: Option<Payload>,
        options: Option<FunctionOptions>,
        invalid: Option<String>,
    ) -> Self {
        let (base, params, options, invalid) = match base {
            Target::Variant(v) => (
                v.base.clone(),
                params.or_else(|| v.params.clone()),
                match options {
                    Some(o) => Some(o.on_top_of(v.options.clone())),
                    None => v.options.clone(),
                },
                invalid.or_else(|| v.invalid.clone()),
            ),
            other => (other, params, options, invalid),
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

    /// The types the control plane declared for a function found by name, once resolved.
    pub(crate) fn declared(&self) -> Option<&Declared> {
        match self {
            Target::Named(n) => n.resolved.get().map(|(_, d)| d),
            Target::Variant(v) => v.base.declared(),
            Target::Registered(_) => None,
        }
    }

    /// The app a function found by name belongs to.
    pub(crate) fn app_name(&self) -> Option<&str> {
        match self {
            Target::Named(n) => Some(&n.app),
            Target::Variant(v) => v.base.app_name(),
            Target::Registered(_) => None,
        }
    }

    /// The client and function id to call.
    pub(crate) async fn bound(&self) -> Result<Bound> {
        match self {
            Target::Registered(r) => {
                if let Some(bound) = r.bound.get::<Bound>() {
                    return Ok(bound);
                }
                // Its app may be publishing in the background (the first run of a new binary).
                let app = (r.app)().name();
                if super::pending::wait(app).await?
                    && let Some(bound) = r.bound.get::<Bound>()
                {
                    return Ok(bound);
                }
                Err(Error::NotRunning {
                    app: app.to_owned(),
                    function: r.tag.to_owned(),
                })
            }
            Target::Named(n) => n
                .resolved
                .get_or_try_init(|| async {
                    let client = Client::from_env().await?;
                    let resp = reconnecting("looking up a function", || {
                        let mut api = client.api.clone();
                        let req = pb::FunctionGetRequest {
                            app_name: n.app.clone(),
                            tag: n.tag.clone(),
                            environment_name: n.environment.clone(),
                        };
                        async move { api.function_get(req).await }
                    })
                    .await
                    .map_err(|s| {
                            if client.embedded && s.code() == tonic::Code::NotFound {
                                Error::ControlPlane(format!(
                                    "{}: this program looked in the control plane embedded in it, which knows only this program's apps; to call a deployed app, point the program at its server: set MODAL_SERVER_URL and a token (`modal token new --server URL` writes both to its config file)",
                                    s.message()
                                ))
                            } else {
                                s.into()
                            }
                        })?
                        .into_inner();
                    let declared = resp
                        .definition
                        .map(|d| Declared {
                            args: crate::model::function::short_type_name(&d.args_type),
                            returns: crate::model::function::short_type_name(&d.return_type),
                            is_class: d.is_class,
                        })
                        .unwrap_or_default();
                    Ok::<_, Error>((
                        Bound {
                            client,
                            function_id: resp.function_id,
                        },
                        declared,
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
                        // Binding the same variant again finds the same function.
                        let resp = reconnecting("binding a variant", || {
                            let mut api = base.client.api.clone();
                            let req = pb::FunctionBindRequest {
                                function_id: base.function_id.clone(),
                                params: v.params.clone().map(Into::into),
                                options: v.options.as_ref().map(Into::into),
                            };
                            async move { api.function_bind(req).await }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_of_a_variant_keeps_both_layers() {
        let base = Target::named("app", "Model", "");
        let with_params = Target::variant(
            base,
            Some(Payload::new(vec![1, 2])),
            Some(FunctionOptions {
                timeout_secs: Some(10),
                max_containers: Some(3),
                ..Default::default()
            }),
            Some("`size` has no value".into()),
        );
        let layered = Target::variant(
            with_params,
            None,
            Some(FunctionOptions {
                timeout_secs: Some(20),
                ..Default::default()
            }),
            None,
        );
        let Target::Variant(v) = layered else {
            panic!("a variant");
        };
        assert!(matches!(v.base, Target::Named(_)));
        assert_eq!(v.params.as_ref().map(|p| p.data.to_vec()), Some(vec![1, 2]));
        let options = v.options.clone().unwrap_or_default();
        assert_eq!(options.timeout_secs, Some(20));
        assert_eq!(options.max_containers, Some(3));
        assert_eq!(v.invalid.as_deref(), Some("`size` has no value"));
    }
}
