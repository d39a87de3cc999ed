//! Expand stage: typed values into `spec.field = …;` assignments to the function's spec. The
//! field is named like the parameter (without a leading `_`); literals are written as checked,
//! other expressions converted (and checked when the app starts) through `::modal` paths.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::Given;
use super::parse::{BoolValue, GpuValue, PairElement, Resource, RetriesValue, Value, Written};
use crate::param_table::Kind;

/// One assignment per given value that sets a field (`app` and `name` do not).
pub(crate) fn assignments(given: &[Given<'_>]) -> Vec<TokenStream> {
    given
        .iter()
        .filter_map(|g| {
            let field = format_ident!("{}", g.row.name.trim_start_matches('_'));
            let value = value(g.row.kind, &g.value)?;
            Some(quote!(spec.#field = #value;))
        })
        .collect()
}

/// `Some(v)` for the kinds that fill an `Option` field.
fn some(v: TokenStream) -> TokenStream {
    quote!(Some(#v))
}

fn value(kind: Kind, value: &Value<'_>) -> Option<TokenStream> {
    Some(match (kind, value) {
        (_, Value::App(_) | Value::Tag(..)) => return None,
        (Kind::OptBool, Value::Bool(b)) => some(boolean(b)),
        (_, Value::Bool(b)) => boolean(b),
        (Kind::OptU64(_), Value::U64(w)) => some(whole(w)),
        (_, Value::U64(w)) => whole(w),
        (_, Value::String(w)) => some(string(w)),
        (_, Value::Gpu(g)) => gpu(g),
        (_, Value::Cpu(r)) => cpu(r),
        (_, Value::Memory(r)) => memory(r),
        (_, Value::Retries(r)) => retries(r),
        (kind, Value::Expr(e)) => expression(kind, e),
    })
}

fn boolean(b: &BoolValue<'_>) -> TokenStream {
    match b {
        BoolValue::Flag(_) => quote!(true),
        BoolValue::Literal(b, _) => quote!(#b),
        BoolValue::Expr(e) => quote!(#e),
    }
}

fn whole(w: &Written<'_, u64>) -> TokenStream {
    match w {
        Written::Literal(v, _) => quote!(#v),
        Written::Expr(e) => quote_spanned!(e.span()=> ::core::convert::Into::<u64>::into(#e)),
    }
}

fn string(w: &Written<'_, String>) -> TokenStream {
    match w {
        Written::Literal(s, _) => quote!(::std::string::String::from(#s)),
        Written::Expr(e) => quote!(::std::string::String::from(#e)),
    }
}

fn gpu(g: &GpuValue<'_>) -> TokenStream {
    match g {
        GpuValue::Literals { items, .. } => {
            let literals = items.iter().map(|(s, _)| s);
            quote!(::std::vec![#(::modal::__private::GpuConfig::from(#literals)),*])
        }
        GpuValue::Expr(e) => quote_spanned!(e.span()=> ::modal::__private::gpu_list(#e)),
    }
}

/// A pair element: a literal as written (cast to `ty`), anything else converted with `Into`.
fn element(x: &PairElement<'_>, ty: TokenStream) -> TokenStream {
    match x {
        PairElement::Literal(x) => quote!((#x) as #ty),
        PairElement::Expr(x) => {
            quote_spanned!(x.span()=> ::core::convert::Into::<#ty>::into(#x))
        }
    }
}

fn cpu(r: &Resource<'_, f64>) -> TokenStream {
    match r {
        Resource::Literal {
            request: (_, req),
            limit: Some((_, lim)),
            ..
        } => pair(quote!((#req) as f64), quote!((#lim) as f64)),
        Resource::Literal {
            request: (_, req),
            limit: None,
            ..
        } => quote!(::core::option::Option::Some(((#req) as f64, ::core::option::Option::None))),
        Resource::Pair(req, lim) => pair(element(req, quote!(f64)), element(lim, quote!(f64))),
        Resource::Expr(e) => {
            quote_spanned!(e.span()=> ::core::option::Option::Some(::modal::__private::cpu(#e)))
        }
    }
}

fn memory(r: &Resource<'_, u64>) -> TokenStream {
    match r {
        Resource::Literal {
            request: (_, req),
            limit: Some((_, lim)),
            ..
        } => pair(quote!((#req) as u64), quote!((#lim) as u64)),
        Resource::Literal {
            request: (r, _),
            limit: None,
            ..
        } => quote!(::core::option::Option::Some((#r, ::core::option::Option::None))),
        Resource::Pair(req, lim) => pair(element(req, quote!(u64)), element(lim, quote!(u64))),
        Resource::Expr(e) => {
            quote_spanned!(e.span()=> ::core::option::Option::Some(::modal::__private::memory(#e)))
        }
    }
}

/// `Some((request, Some(limit)))`.
fn pair(request: TokenStream, limit: TokenStream) -> TokenStream {
    quote!(::core::option::Option::Some((#request, ::core::option::Option::Some(#limit))))
}

fn retries(r: &RetriesValue<'_>) -> TokenStream {
    match r {
        RetriesValue::Count(n, _) => {
            let n = *n as i64;
            quote!(::core::option::Option::Some(::modal::Retries::fixed(#n)))
        }
        RetriesValue::Policy {
            max_retries,
            backoff_coefficient,
            initial_delay,
            max_delay,
            ..
        } => {
            let n = *max_retries as i64;
            quote!(::core::option::Option::Some(
                ::modal::Retries::new(#n)
                    .backoff_coefficient(#backoff_coefficient)
                    .initial_delay(::std::time::Duration::from_secs_f64(#initial_delay))
                    .max_delay(::std::time::Duration::from_secs_f64(#max_delay))
            ))
        }
        RetriesValue::Expr(e) => quote_spanned!(e.span()=>
            ::core::option::Option::Some(::core::convert::Into::<::modal::Retries>::into(#e))
        ),
    }
}

/// A value taken as an expression, by what its kind turns it into.
fn expression(kind: Kind, e: &syn::Expr) -> TokenStream {
    match kind {
        Kind::OptInto(ty) => {
            let ty = Ident::new(ty, e.span());
            quote_spanned!(e.span()=> Some(::core::convert::Into::<::modal::#ty>::into(#e)))
        }
        Kind::Strings => quote_spanned!(e.span()=> ::modal::__private::strings(#e)),
        Kind::StringPairs => quote_spanned!(e.span()=> ::modal::__private::string_pairs(#e)),
        Kind::Secrets => {
            quote_spanned!(e.span()=> ::core::iter::IntoIterator::into_iter(#e).collect())
        }
        Kind::Volumes => quote_spanned!(e.span()=> ::modal::__private::volumes(#e)),
        // No such service exists, so there is no value to build: record that one was asked for.
        Kind::Requested => quote!(true),
        // Every other kind has a value of its own (see `parse::value`).
        _ => quote!(::core::compile_error!(
            "modal: parameter kind without an expansion"
        )),
    }
}
