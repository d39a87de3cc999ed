//! `#[modal::concurrent(max_inputs, target_inputs)]` and `#[modal::batched(max_batch_size,
//! wait_ms)]`, read from the attributes under `#[modal::function]`, `#[modal::cls]` or a method.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::Attribute;
use syn::spanned::Spanned;

use crate::attr::{self, Literal, ParamValue};
use crate::ctxt::Ctxt;
use crate::rules;

#[derive(Default)]
pub(crate) struct Modifiers {
    /// `(max_inputs, target_inputs)`.
    pub(crate) concurrency: Option<(u64, Option<u64>)>,
    /// `(max_batch_size, wait_ms)`, and where it was written.
    pub(crate) batch: Option<(u64, u64, Span)>,
}

impl Modifiers {
    /// Statements that set the spec's fields.
    pub(crate) fn assignments(&self) -> TokenStream {
        let c = self.concurrency.map(|(max, target)| {
            let target = match target {
                Some(t) => quote!(::core::option::Option::Some(#t)),
                None => quote!(::core::option::Option::None),
            };
            quote!(spec.concurrency = ::core::option::Option::Some((#max, #target));)
        });
        let b = self.batch.map(
            |(size, wait, _)| quote!(spec.batch = ::core::option::Option::Some((#size, #wait));),
        );
        quote!(#c #b)
    }
}

/// Whether `attr` is `#[modal::NAME]` (or `#[NAME]`).
pub(crate) fn is(attr: &Attribute, name: &str) -> bool {
    let segments: Vec<String> = attr
        .path()
        .segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect();
    match segments.as_slice() {
        [only] => only == name,
        [first, last] => first == "modal" && last == name,
        _ => false,
    }
}

fn int(cx: &mut Ctxt, p: &attr::Param) -> Option<u64> {
    match &p.value {
        ParamValue::Expr(e) => match attr::literal(e) {
            Some(Literal::Int(i)) if i >= 0 => u64::try_from(i).ok(),
            _ => {
                cx.error_spanned_by(e, format!("`{}` takes a whole number", p.name()));
                None
            }
        },
        _ => {
            cx.error_spanned_by(
                &p.key,
                format!("`{}` takes a value: `{} = …`", p.name(), p.name()),
            );
            None
        }
    }
}

/// Removes the modifier attributes from `attrs` and reads them; `batched` is an error unless
/// `allow_batched`.
pub(crate) fn take(cx: &mut Ctxt, attrs: &mut Vec<Attribute>, allow_batched: bool) -> Modifiers {
    let mut m = Modifiers::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for a in attrs.drain(..) {
        if is(&a, "concurrent") {
            let params = match a
                .meta
                .require_list()
                .map(|l| l.tokens.clone())
                .and_then(attr::parse_params)
            {
                Ok(p) => attr::check_keys(
                    cx,
                    p,
                    "#[modal::concurrent]",
                    &["max_inputs", "target_inputs"],
                    |_| None,
                ),
                Err(e) => {
                    cx.push(e);
                    continue;
                }
            };
            let get = |cx: &mut Ctxt, key: &str| {
                params
                    .iter()
                    .find(|p| p.name() == key)
                    .and_then(|p| int(cx, p))
            };
            let Some(max) = get(cx, "max_inputs") else {
                cx.error_spanned_by(&a, "#[modal::concurrent] needs `max_inputs = N`");
                continue;
            };
            let target = get(cx, "target_inputs");
            match rules::check_concurrency(max, target) {
                Ok(()) => m.concurrency = Some((max, target)),
                Err(e) => cx.error_spanned_by(&a, e),
            }
        } else if is(&a, "batched") {
            if !allow_batched {
                cx.error_spanned_by(
                    &a,
                    "#[modal::batched] goes on a function or on one method of a class",
                );
                continue;
            }
            let params = match a
                .meta
                .require_list()
                .map(|l| l.tokens.clone())
                .and_then(attr::parse_params)
            {
                Ok(p) => attr::check_keys(
                    cx,
                    p,
                    "#[modal::batched]",
                    &["max_batch_size", "wait_ms"],
                    |_| None,
                ),
                Err(e) => {
                    cx.push(e);
                    continue;
                }
            };
            let get = |cx: &mut Ctxt, key: &str| {
                params
                    .iter()
                    .find(|p| p.name() == key)
                    .and_then(|p| int(cx, p))
            };
            let (Some(size), Some(wait)) = (get(cx, "max_batch_size"), get(cx, "wait_ms")) else {
                cx.error_spanned_by(
                    &a,
                    "#[modal::batched] needs `max_batch_size = N, wait_ms = W`",
                );
                continue;
            };
            match rules::check_batching(size, wait) {
                Ok(()) => m.batch = Some((size, wait, a.span())),
                Err(e) => cx.error_spanned_by(&a, e),
            }
        } else {
            kept.push(a);
        }
    }
    *attrs = kept;
    m
}
