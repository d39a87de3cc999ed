//! The parameters of `#[modal::function]` and `#[modal::cls]`: every parameter of Modal's
//! `App.function`, parsed and validated (literals at compile time), turned into assignments to
//! the function's spec.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, Path};

use crate::attr::{self, Literal, Param, ParamValue};
use crate::ctxt::Ctxt;
use crate::rules;

/// Every parameter `#[modal::function]` accepts: Modal's `App.function` plus `app`.
pub(crate) const PARAMS: &[&str] = &[
    "app",
    "image",
    "schedule",
    "env",
    "secrets",
    "gpu",
    "serialized",
    "network_file_systems",
    "volumes",
    "cpu",
    "memory",
    "ephemeral_disk",
    "min_containers",
    "max_containers",
    "buffer_containers",
    "scaledown_window",
    "proxy",
    "retries",
    "timeout",
    "startup_timeout",
    "name",
    "is_generator",
    "cloud",
    "region",
    "routing_region",
    "nonpreemptible",
    "enable_memory_snapshot",
    "block_network",
    "restrict_modal_access",
    "single_use_containers",
    "i6pn",
    "include_source",
    "experimental_options",
    "_experimental_restrict_output",
    "max_inputs",
];

/// Every parameter `#[modal::cls]` accepts: those of functions but `schedule`, `name` and
/// `is_generator` (which belong to a function, not to a class).
pub(crate) fn cls_params() -> Vec<&'static str> {
    PARAMS
        .iter()
        .copied()
        .filter(|k| !matches!(*k, "schedule" | "name" | "is_generator"))
        .collect()
}

const RETRIES_KEYS: &[&str] = &[
    "max_retries",
    "backoff_coefficient",
    "initial_delay",
    "max_delay",
];

/// The validated attribute: the app it belongs to and one spec-field assignment per parameter.
pub(crate) struct FunctionAttr {
    pub(crate) app: Path,
    pub(crate) name: Option<(String, Span)>,
    /// Statements that set fields of a `spec` variable.
    pub(crate) assignments: Vec<TokenStream>,
    pub(crate) has_schedule: Option<Span>,
    /// Where `retries` was given.
    pub(crate) retries: Option<Span>,
    /// A literal `is_generator`, to check against the signature.
    pub(crate) is_generator: Option<(bool, Span)>,
}

fn expr_of<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<&'a Expr> {
    match &p.value {
        ParamValue::Expr(e) => Some(e),
        _ => {
            cx.error_spanned_by(
                &p.key,
                format!("`{}` takes a value: `{} = …`", p.name(), p.name()),
            );
            None
        }
    }
}

/// A `u64` parameter: literals are range-checked here by `check`, other expressions at app start.
fn u64_param(
    cx: &mut Ctxt,
    p: &Param,
    check: impl Fn(u64) -> Result<(), String>,
) -> Option<TokenStream> {
    let e = expr_of(cx, p)?;
    match attr::literal(e) {
        Some(Literal::Int(i)) => {
            let Ok(v) = u64::try_from(i) else {
                cx.error_spanned_by(e, format!("`{}` must not be negative", p.name()));
                return None;
            };
            if let Err(msg) = check(v) {
                cx.error_spanned_by(e, msg);
                return None;
            }
            Some(quote!(#v))
        }
        Some(_) => {
            cx.error_spanned_by(e, format!("`{}` takes a whole number", p.name()));
            None
        }
        None => Some(quote_spanned!(e.span()=> ::core::convert::Into::<u64>::into(#e))),
    }
}

fn bool_param(cx: &mut Ctxt, p: &Param) -> Option<TokenStream> {
    match &p.value {
        ParamValue::Flag => Some(quote!(true)),
        ParamValue::Expr(e) => match attr::literal(e) {
            Some(Literal::Bool(b)) => Some(quote!(#b)),
            Some(_) => {
                cx.error_spanned_by(e, format!("`{}` takes `true` or `false`", p.name()));
                None
            }
            None => Some(quote!(#e)),
        },
        ParamValue::List(_) => {
            cx.error_spanned_by(&p.key, format!("`{}` takes `true` or `false`", p.name()));
            None
        }
    }
}

fn string_param(
    cx: &mut Ctxt,
    p: &Param,
    check: impl Fn(&str) -> Result<(), String>,
) -> Option<TokenStream> {
    let e = expr_of(cx, p)?;
    match attr::literal(e) {
        Some(Literal::Str(s)) => {
            if let Err(msg) = check(&s) {
                cx.error_spanned_by(e, msg);
                return None;
            }
            Some(quote!(::std::string::String::from(#s)))
        }
        Some(_) => {
            cx.error_spanned_by(e, format!("`{}` takes a string", p.name()));
            None
        }
        None => Some(quote!(::std::string::String::from(#e))),
    }
}

/// `gpu = "H100"`, `gpu = "A100:2"` or `gpu = ["H100", "A100"]` (ranked), or an expression.
fn gpu_param(cx: &mut Ctxt, p: &Param) -> Option<TokenStream> {
    let e = expr_of(cx, p)?;
    let items: Vec<&Expr> = match e {
        Expr::Array(a) => a.elems.iter().collect(),
        other => vec![other],
    };
    // Names of constants (or any expression) are checked when the app starts.
    if items.iter().any(|item| attr::literal(item).is_none()) {
        return Some(quote_spanned!(e.span()=> ::modal::__private::gpu_list(#e)));
    }
    let mut literals = Vec::new();
    for item in &items {
        match attr::string(item) {
            Some(s) => match rules::parse_gpu(&s) {
                Ok(_) => literals.push(s),
                Err(msg) => cx.error_spanned_by(item, msg),
            },
            None => cx.error_spanned_by(
                item,
                "`gpu` takes a string such as \"H100\" or \"A100-80GB:2\", or a list of them",
            ),
        }
    }
    if matches!(e, Expr::Array(a) if a.elems.is_empty()) {
        cx.error_spanned_by(e, "`gpu` needs at least one GPU type");
    }
    Some(quote!(
        ::std::vec![#(::modal::__private::GpuConfig::from(#literals)),*]
    ))
}

/// One element of a `(request, limit)` pair: a literal of the right kind as written, anything
/// else converted losslessly with `Into` (a cast would silently truncate or wrap).
fn pair_element(cx: &mut Ctxt, x: &Expr, param: &str, ty: &str) -> Option<TokenStream> {
    let ok = match attr::literal(x) {
        None => {
            let ty = format_ident!("{ty}");
            return Some(quote_spanned!(x.span()=> ::core::convert::Into::<#ty>::into(#x)));
        }
        Some(Literal::Int(i)) => i >= 0,
        Some(Literal::Float(f)) => ty == "f64" && f >= 0.0,
        Some(_) => false,
    };
    if !ok {
        let what = if ty == "u64" {
            "whole numbers of MiB"
        } else {
            "numbers of cores"
        };
        cx.error_spanned_by(
            x,
            format!("`{param}` takes {what}, or `(request, limit)` of them"),
        );
        return None;
    }
    Some(if ty == "u64" {
        quote!((#x) as u64)
    } else {
        quote!((#x) as f64)
    })
}

/// `cpu = 1.5` or `cpu = (0.5, 2.0)`.
fn cpu_param(cx: &mut Ctxt, p: &Param) -> Option<TokenStream> {
    let e = expr_of(cx, p)?;
    match e {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (req, lim) = (&t.elems[0], &t.elems[1]);
            if let (Some(r), Some(l)) = (attr::number(req), attr::number(lim))
                && let Err(msg) = rules::check_cpu(r, Some(l))
            {
                cx.error_spanned_by(e, msg);
                return None;
            }
            let (req, lim) = (
                pair_element(cx, req, "cpu", "f64")?,
                pair_element(cx, lim, "cpu", "f64")?,
            );
            Some(quote!(::core::option::Option::Some((#req, ::core::option::Option::Some(#lim)))))
        }
        _ => {
            if let Some(r) = attr::number(e) {
                if let Err(msg) = rules::check_cpu(r, None) {
                    cx.error_spanned_by(e, msg);
                    return None;
                }
                return Some(
                    quote!(::core::option::Option::Some(((#e) as f64, ::core::option::Option::None))),
                );
            }
            Some(
                quote_spanned!(e.span()=> ::core::option::Option::Some(::modal::__private::cpu(#e))),
            )
        }
    }
}

/// `memory = 512` or `memory = (256, 1024)` in MiB.
fn memory_param(cx: &mut Ctxt, p: &Param) -> Option<TokenStream> {
    let e = expr_of(cx, p)?;
    let as_u64 = |x: &Expr| match attr::literal(x) {
        Some(Literal::Int(i)) => u64::try_from(i).ok(),
        _ => None,
    };
    match e {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (req, lim) = (&t.elems[0], &t.elems[1]);
            if let (Some(r), Some(l)) = (as_u64(req), as_u64(lim))
                && let Err(msg) = rules::check_memory(r, Some(l))
            {
                cx.error_spanned_by(e, msg);
                return None;
            }
            let (req, lim) = (
                pair_element(cx, req, "memory", "u64")?,
                pair_element(cx, lim, "memory", "u64")?,
            );
            Some(quote!(::core::option::Option::Some((#req, ::core::option::Option::Some(#lim)))))
        }
        _ => match attr::literal(e) {
            Some(_) => match as_u64(e) {
                Some(r) if rules::check_memory(r, None).is_ok() => {
                    Some(quote!(::core::option::Option::Some((#r, ::core::option::Option::None))))
                }
                _ => {
                    cx.error_spanned_by(
                        e,
                        "`memory` takes a positive number of MiB, or `(request, limit)`",
                    );
                    None
                }
            },
            None => Some(
                quote_spanned!(e.span()=> ::core::option::Option::Some(::modal::__private::memory(#e))),
            ),
        },
    }
}

/// `retries = 3`, `retries(max_retries = 3, backoff_coefficient = 2.0, initial_delay = 1.0,
/// max_delay = 60.0)` (seconds), or an expression convertible into `modal::Retries`.
fn retries_param(cx: &mut Ctxt, p: &Param) -> Option<TokenStream> {
    match &p.value {
        ParamValue::Expr(e) => match attr::literal(e) {
            Some(Literal::Int(n)) => {
                if let Err(msg) =
                    rules::check_retries(i64::try_from(n).unwrap_or(-1), 1.0, 1.0, 60.0)
                {
                    cx.error_spanned_by(e, msg);
                    return None;
                }
                let n = n as i64;
                Some(quote!(::core::option::Option::Some(::modal::Retries::fixed(#n))))
            }
            Some(_) => {
                cx.error_spanned_by(e, "`retries` takes a number of retries, `retries(max_retries = …, …)`, or a `modal::Retries`");
                None
            }
            None => Some(
                quote_spanned!(e.span()=> ::core::option::Option::Some(::core::convert::Into::<::modal::Retries>::into(#e))),
            ),
        },
        ParamValue::List(items) => {
            let items = attr::check_keys(
                cx,
                items_clone(items),
                "`retries(…)`",
                RETRIES_KEYS,
                |_| None,
            );
            let mut max_retries = None;
            let (mut coef, mut initial, mut max_delay) = (2.0f64, 1.0f64, 60.0f64);
            for item in &items {
                let Some(e) = expr_of(cx, item) else { continue };
                let Some(v) = attr::number(e) else {
                    cx.error_spanned_by(e, format!("`{}` takes a number", item.name()));
                    continue;
                };
                match item.name().as_str() {
                    "max_retries" => max_retries = Some(v),
                    "backoff_coefficient" => coef = v,
                    "initial_delay" => initial = v,
                    _ => max_delay = v,
                }
            }
            let Some(n) = max_retries else {
                cx.error_spanned_by(&p.key, "`retries(…)` needs `max_retries = N`");
                return None;
            };
            if n.fract() != 0.0 {
                cx.error_spanned_by(&p.key, "`max_retries` takes a whole number");
                return None;
            }
            if let Err(msg) = rules::check_retries(n as i64, coef, initial, max_delay) {
                cx.error_spanned_by(&p.key, msg);
                return None;
            }
            let n = n as i64;
            Some(quote!(::core::option::Option::Some(
                ::modal::Retries::new(#n)
                    .backoff_coefficient(#coef)
                    .initial_delay(::std::time::Duration::from_secs_f64(#initial))
                    .max_delay(::std::time::Duration::from_secs_f64(#max_delay))
            )))
        }
        ParamValue::Flag => {
            cx.error_spanned_by(&p.key, "`retries` takes a value: `retries = 3`");
            None
        }
    }
}

fn items_clone(items: &[Param]) -> Vec<Param> {
    items
        .iter()
        .map(|p| Param {
            key: p.key.clone(),
            value: match &p.value {
                ParamValue::Expr(e) => ParamValue::Expr(e.clone()),
                ParamValue::List(l) => ParamValue::List(items_clone(l)),
                ParamValue::Flag => ParamValue::Flag,
            },
        })
        .collect()
}

/// Parses and validates the attribute; every problem goes to `cx`.
pub(crate) fn parse_attr(
    cx: &mut Ctxt,
    tokens: TokenStream,
    what: &str,
    allowed: &[&str],
) -> Option<FunctionAttr> {
    let params = match attr::parse_params(tokens) {
        Ok(p) => p,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    let params = attr::check_keys(cx, params, what, allowed, rules::renamed_parameter);
    let mut app = None;
    let mut name = None;
    let mut assignments = Vec::new();
    let mut has_schedule = None;
    let mut retries_at = None;
    let mut is_generator = None;
    // Literal `min_containers` and `max_containers`, to compare once both are known.
    let mut min_containers: Option<(u64, Span)> = None;
    let mut max_containers: Option<(u64, Span)> = None;
    for p in &params {
        let key = p.name();
        let field = format_ident!("{}", key.trim_start_matches('_'));
        let value: Option<TokenStream> = match key.as_str() {
            "app" => {
                if let Some(Expr::Path(ep)) = expr_of(cx, p) {
                    app = Some(ep.path.clone());
                } else if let ParamValue::Expr(e) = &p.value {
                    cx.error_spanned_by(e, "`app` takes the name of the app static declared with `modal::app!`");
                }
                continue;
            }
            "name" => {
                let Some(e) = expr_of(cx, p) else { continue };
                match attr::string(e) {
                    Some(s) => match rules::check_function_name(&s) {
                        Ok(()) => name = Some((s, e.span())),
                        Err(msg) => cx.error_spanned_by(e, msg),
                    },
                    None => cx.error_spanned_by(e, "`name` takes a string literal"),
                }
                continue;
            }
            "timeout" => u64_param(cx, p, rules::check_timeout),
            "startup_timeout" => u64_param(cx, p, rules::check_startup_timeout).map(|v| quote!(Some(#v))),
            "scaledown_window" => u64_param(cx, p, rules::check_scaledown_window).map(|v| quote!(Some(#v))),
            "max_inputs" => u64_param(cx, p, rules::check_max_inputs).map(|v| quote!(Some(#v))),
            "ephemeral_disk" | "buffer_containers" => u64_param(cx, p, |_| Ok(())).map(|v| quote!(Some(#v))),
            "min_containers" | "max_containers" => {
                if let Some(e) = expr_of(cx, p)
                    && let Some(Literal::Int(i)) = attr::literal(e)
                    && let Ok(v) = u64::try_from(i)
                {
                    let slot = Some((v, e.span()));
                    if key == "min_containers" {
                        min_containers = slot;
                    } else {
                        max_containers = slot;
                    }
                }
                u64_param(cx, p, |_| Ok(())).map(|v| quote!(Some(#v)))
            }
            "serialized" | "nonpreemptible" | "enable_memory_snapshot" | "block_network"
            | "restrict_modal_access" | "single_use_containers" | "_experimental_restrict_output" => bool_param(cx, p),
            "is_generator" | "i6pn" | "include_source" => {
                let v = bool_param(cx, p);
                if key == "is_generator" {
                    is_generator = match &p.value {
                        ParamValue::Flag => Some((true, p.key.span())),
                        ParamValue::Expr(e) => match attr::literal(e) {
                            Some(Literal::Bool(b)) => Some((b, e.span())),
                            _ => None,
                        },
                        ParamValue::List(_) => None,
                    };
                }
                v.map(|v| quote!(Some(#v)))
            }
            "cloud" => string_param(cx, p, rules::check_cloud).map(|v| quote!(Some(#v))),
            "routing_region" => string_param(cx, p, |_| Ok(())).map(|v| quote!(Some(#v))),
            "region" => expr_of(cx, p).map(|e| quote_spanned!(e.span()=> ::modal::__private::strings(#e))),
            "gpu" => gpu_param(cx, p),
            "cpu" => cpu_param(cx, p),
            "memory" => memory_param(cx, p),
            "retries" => {
                retries_at = Some(p.key.span());
                retries_param(cx, p)
            }
            "schedule" => {
                has_schedule = Some(p.key.span());
                expr_of(cx, p).map(|e| {
                    quote_spanned!(e.span()=> Some(::core::convert::Into::<::modal::Schedule>::into(#e)))
                })
            }
            "env" => expr_of(cx, p).map(|e| quote_spanned!(e.span()=> ::modal::__private::string_pairs(#e))),
            "experimental_options" => {
                expr_of(cx, p).map(|e| quote_spanned!(e.span()=> ::modal::__private::string_pairs(#e)))
            }
            "secrets" => expr_of(cx, p).map(|e| {
                quote_spanned!(e.span()=> ::core::iter::IntoIterator::into_iter(#e).collect())
            }),
            "image" => expr_of(cx, p)
                .map(|e| quote_spanned!(e.span()=> Some(::core::convert::Into::<::modal::Image>::into(#e)))),
            "volumes" => expr_of(cx, p).map(|e| quote_spanned!(e.span()=> ::modal::__private::volumes(#e))),
            // No such service exists, so there is no value to build: record that one was asked for.
            "network_file_systems" | "proxy" => expr_of(cx, p).map(|_| quote!(true)),
            other => {
                cx.error_spanned_by(&p.key, format!("`{other}` is not handled"));
                None
            }
        };
        if let Some(v) = value {
            assignments.push(quote!(spec.#field = #v;));
        }
    }
    if let (Some((min, _)), Some((max, span))) = (min_containers, max_containers)
        && let Err(msg) = rules::check_container_counts(Some(min), Some(max))
    {
        cx.push(syn::Error::new(span, msg));
    }
    let Some(app) = app else {
        cx.push(syn::Error::new(
            Span::call_site(),
            format!("{what} needs the app it belongs to: `app = APP` (the static declared with `modal::app!`)"),
        ));
        return None;
    };
    Some(FunctionAttr {
        app,
        name,
        assignments,
        has_schedule,
        retries: retries_at,
        is_generator,
    })
}
