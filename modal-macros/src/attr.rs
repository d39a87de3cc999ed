//! Parsing attribute arguments: `key = value`, `key(nested = …)` and bare flags, with
//! duplicate and unknown keys reported against the list of keys that are allowed.

use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, Meta, Token};

use crate::ctxt::Ctxt;

/// One argument of an attribute.
#[derive(Clone)]
pub(crate) struct Param {
    pub(crate) key: Ident,
    pub(crate) value: ParamValue,
}

#[derive(Clone)]
pub(crate) enum ParamValue {
    /// `key = expr`
    Expr(Expr),
    /// `key(a = 1, b = 2)`
    List(Vec<Param>),
    /// `key`
    Flag,
}

impl Param {
    pub(crate) fn name(&self) -> String {
        self.key.to_string()
    }
}

/// Parses `a = 1, b(c = 2), d` into params; syntax errors end parsing.
pub(crate) fn parse_params(tokens: TokenStream) -> syn::Result<Vec<Param>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    metas.into_iter().map(param_from_meta).collect()
}

fn param_from_meta(meta: Meta) -> syn::Result<Param> {
    let key = meta.path().get_ident().cloned().ok_or_else(|| {
        syn::Error::new_spanned(
            meta.path(),
            "expected a parameter name such as `gpu` or `timeout`",
        )
    })?;
    let value = match meta {
        Meta::Path(_) => ParamValue::Flag,
        Meta::NameValue(nv) => ParamValue::Expr(nv.value),
        Meta::List(list) => ParamValue::List(parse_params(list.tokens)?),
    };
    Ok(Param { key, value })
}

/// Reports keys given twice and keys not in `allowed`; returns the params that are fine.
pub(crate) fn check_keys(
    cx: &mut Ctxt,
    params: Vec<Param>,
    what: &str,
    allowed: &[&str],
    renamed: impl Fn(&str) -> Option<&'static str>,
) -> Vec<Param> {
    let mut seen: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for p in params {
        let name = p.name();
        if let Some(new) = renamed(&name) {
            cx.error_spanned_by(&p.key, format!("`{name}` was renamed: use `{new}`"));
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            cx.error_spanned_by(
                &p.key,
                format!(
                    "unknown parameter `{name}` for {what}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
            continue;
        }
        if seen.contains(&name) {
            cx.error_spanned_by(&p.key, format!("duplicate parameter `{name}`"));
            continue;
        }
        seen.push(name);
        out.push(p);
    }
    out
}

/// A literal found in a parameter value.
pub(crate) enum Literal {
    Int(i128),
    Float(f64),
    Str(String),
    Bool(bool),
}

/// The literal an expression is, if it is one (a leading `-` is folded in).
pub(crate) fn literal(expr: &Expr) -> Option<Literal> {
    match expr {
        Expr::Lit(l) => match &l.lit {
            Lit::Int(i) => i.base10_parse::<i128>().ok().map(Literal::Int),
            Lit::Float(f) => f.base10_parse::<f64>().ok().map(Literal::Float),
            Lit::Str(s) => Some(Literal::Str(s.value())),
            Lit::Bool(b) => Some(Literal::Bool(b.value)),
            _ => None,
        },
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => match literal(&u.expr)? {
            Literal::Int(i) => Some(Literal::Int(-i)),
            Literal::Float(f) => Some(Literal::Float(-f)),
            _ => None,
        },
        Expr::Group(g) => literal(&g.expr),
        Expr::Paren(p) => literal(&p.expr),
        _ => None,
    }
}

/// A number literal as f64.
pub(crate) fn number(expr: &Expr) -> Option<f64> {
    match literal(expr)? {
        Literal::Int(i) => Some(i as f64),
        Literal::Float(f) => Some(f),
        _ => None,
    }
}

/// The string literal an expression is, if it is one.
pub(crate) fn string(expr: &Expr) -> Option<String> {
    match literal(expr)? {
        Literal::Str(s) => Some(s),
        _ => None,
    }
}
