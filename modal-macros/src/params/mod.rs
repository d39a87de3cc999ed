//! The parameters of `#[modal::function]` and `#[modal::cls]`, in stages driven by the shared
//! parameter table (`param_table`): the key check (known, renamed, allowed here), then per
//! argument `parse` (tokens into a typed value) and `validate` (literals against their rules),
//! the checks across parameters, and `expand` (values into assignments to the function's spec).

mod expand;
mod parse;
mod validate;

use proc_macro2::{Span, TokenStream};
use syn::Path;
use syn::spanned::Spanned;

use crate::attr::{self, Param};
use crate::ctxt::Ctxt;
use crate::param_table::{self, Target};
use parse::{BoolValue, Value};

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

/// A parameter that parsed and passed its literal checks, with its row in the table.
pub(crate) struct Given<'a> {
    pub(crate) row: &'static param_table::Param,
    pub(crate) value: Value<'a>,
}

/// Parses and validates the attribute of `target`; every problem goes to `cx`.
pub(crate) fn parse_attr(
    cx: &mut Ctxt,
    tokens: TokenStream,
    target: Target,
) -> Option<FunctionAttr> {
    let params = match attr::parse_params(tokens) {
        Ok(p) => p,
        Err(e) => {
            cx.push(e);
            return None;
        }
    };
    let what = target.attribute();
    let params = attr::check_keys(
        cx,
        params,
        what,
        &param_table::names_on(target),
        param_table::renamed,
    );
    let mut given = Vec::new();
    for p in &params {
        // `check_keys` kept only names of rows.
        let Some(row) = param_table::find(&p.name()) else {
            continue;
        };
        if let Some(value) = parse::value(cx, row.kind, p)
            && validate::literals(cx, row.kind, &value)
        {
            given.push(Given { row, value });
        }
    }
    validate::across(cx, &given);
    let app = validate::app(cx, &given, what)?.clone();
    Some(FunctionAttr {
        app,
        name: given.iter().find_map(|g| match &g.value {
            Value::Tag(name, e) => Some((name.clone(), e.span())),
            _ => None,
        }),
        assignments: expand::assignments(&given),
        // Where these were written, even with a malformed value: the signature checks still
        // apply.
        has_schedule: key_span(&params, "schedule"),
        retries: key_span(&params, "retries"),
        is_generator: given.iter().find_map(|g| match &g.value {
            Value::Bool(BoolValue::Flag(key)) if g.row.name == "is_generator" => {
                Some((true, key.span()))
            }
            Value::Bool(BoolValue::Literal(b, e)) if g.row.name == "is_generator" => {
                Some((*b, e.span()))
            }
            _ => None,
        }),
    })
}

fn key_span(params: &[Param], name: &str) -> Option<Span> {
    params.iter().find(|p| p.key == name).map(|p| p.key.span())
}

#[cfg(test)]
mod tests;
