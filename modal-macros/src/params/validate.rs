//! Validate stage: literals checked with the runtime's own rules (`rules.rs`, the rule named
//! in each parameter's row), and the checks across parameters.

use proc_macro2::Span;
use quote::ToTokens;
use syn::Expr;
use syn::spanned::Spanned;

use super::Given;
use super::parse::{GpuValue, Resource, RetriesValue, Value, Written};
use crate::ctxt::Ctxt;
use crate::param_table::Kind;
use crate::rules;

/// Checks the literals of one value against its row's rule; `false` (with the error in `cx`)
/// when one breaks it.
pub(crate) fn literals(cx: &mut Ctxt, kind: Kind, value: &Value<'_>) -> bool {
    let mut ok = true;
    let mut check = |cx: &mut Ctxt, at: &dyn ToTokens, result: Result<(), String>| {
        if let Err(msg) = result {
            cx.error_spanned_by(at, msg);
            ok = false;
        }
    };
    match (kind, value) {
        (Kind::Tag(rule), Value::Tag(name, e)) => check(cx, e, rule(name)),
        (Kind::U64(rule) | Kind::OptU64(rule), Value::U64(Written::Literal(v, e))) => {
            check(cx, e, rule(*v));
        }
        (Kind::OptString(rule), Value::String(Written::Literal(s, e))) => check(cx, e, rule(s)),
        (_, Value::Gpu(GpuValue::Literals { items, list })) => {
            for (s, item) in items {
                check(cx, item, rules::parse_gpu(s).map(drop));
            }
            if matches!(list, Expr::Array(a) if a.elems.is_empty()) {
                check(cx, list, Err("`gpu` needs at least one GPU type".into()));
            }
        }
        (
            _,
            Value::Cpu(Resource::Literal {
                request,
                limit,
                value,
            }),
        ) => {
            check(cx, value, rules::check_cpu(request.0, limit.map(|l| l.0)));
        }
        (
            _,
            Value::Memory(Resource::Literal {
                request,
                limit,
                value,
            }),
        ) => {
            let result = rules::check_memory(request.0, limit.map(|l| l.0));
            // A single value has one message for every way it can be wrong.
            let result = match limit {
                Some(_) => result,
                None => result.map_err(|_| super::parse::MEMORY_FORMS.to_owned()),
            };
            check(cx, value, result);
        }
        (_, Value::Retries(RetriesValue::Count(n, e))) => {
            let n = i64::try_from(*n).unwrap_or(-1);
            check(cx, e, rules::check_retries(n, 1.0, 1.0, 60.0));
        }
        (
            _,
            Value::Retries(RetriesValue::Policy {
                max_retries,
                backoff_coefficient,
                initial_delay,
                max_delay,
                key,
            }),
        ) => {
            let result = rules::check_retries(
                *max_retries as i64,
                *backoff_coefficient,
                *initial_delay,
                *max_delay,
            );
            check(cx, key, result);
        }
        _ => {}
    }
    ok
}

/// Checks between parameters: `min_containers ≤ max_containers` when both are literals.
pub(crate) fn across(cx: &mut Ctxt, given: &[Given<'_>]) {
    let literal = |name: &str| {
        given.iter().find_map(|g| match &g.value {
            Value::U64(Written::Literal(v, e)) if g.row.name == name => Some((*v, e.span())),
            _ => None,
        })
    };
    if let (Some((min, _)), Some((max, span))) =
        (literal("min_containers"), literal("max_containers"))
        && let Err(msg) = rules::check_container_counts(Some(min), Some(max))
    {
        cx.push(syn::Error::new(span, msg));
    }
}

/// The app the attribute names; without one the attribute cannot expand.
pub(crate) fn app<'a>(cx: &mut Ctxt, given: &[Given<'a>], what: &str) -> Option<&'a syn::Path> {
    let app = given.iter().find_map(|g| match g.value {
        Value::App(path) => Some(path),
        _ => None,
    });
    if app.is_none() {
        cx.push(syn::Error::new(
            Span::call_site(),
            format!("{what} needs the app it belongs to: `app = APP` (the static declared with `modal::app!`)"),
        ));
    }
    app
}
