//! Parse stage: one attribute argument into a typed value, as its row's [`Kind`] says. Errors
//! of form (a flag where a value is needed, a string where a number is) are reported here;
//! literals are checked against their rules by `validate`.

use syn::{Expr, Ident, Path};

use crate::attr::{self, Literal, Param, ParamValue};
use crate::ctxt::Ctxt;
use crate::param_table::Kind;

/// The keys `retries(…)` accepts.
const RETRIES_KEYS: &[&str] = &[
    "max_retries",
    "backoff_coefficient",
    "initial_delay",
    "max_delay",
];

/// A parameter value as written.
pub(crate) enum Value<'a> {
    App(&'a Path),
    /// A function name literal.
    Tag(String, &'a Expr),
    Bool(BoolValue<'a>),
    U64(Written<'a, u64>),
    String(Written<'a, String>),
    Gpu(GpuValue<'a>),
    Cpu(Resource<'a, f64>),
    Memory(Resource<'a, u64>),
    Retries(RetriesValue<'a>),
    /// A value taken as an expression whatever it is (its kind says what it becomes).
    Expr(&'a Expr),
}

/// A literal (with the expression it was read from, to point errors at) or an expression
/// converted when the app starts.
pub(crate) enum Written<'a, T> {
    Literal(T, &'a Expr),
    Expr(&'a Expr),
}

pub(crate) enum BoolValue<'a> {
    /// `key` alone: `true`.
    Flag(&'a Ident),
    Literal(bool, &'a Expr),
    Expr(&'a Expr),
}

pub(crate) enum GpuValue<'a> {
    /// String literals, in preference order; `list` is the whole value.
    Literals {
        items: Vec<(String, &'a Expr)>,
        list: &'a Expr,
    },
    /// Anything else (names of constants, …): checked when the app starts.
    Expr(&'a Expr),
}

/// `cpu` or `memory`: a request, or `(request, limit)`.
pub(crate) enum Resource<'a, T> {
    /// Literal numbers, each with the expression it was read from; `value` is the whole value.
    Literal {
        request: (T, &'a Expr),
        limit: Option<(T, &'a Expr)>,
        value: &'a Expr,
    },
    /// `(request, limit)` where at least one is not a literal number.
    Pair(PairElement<'a>, PairElement<'a>),
    /// Anything else: converted and checked when the app starts.
    Expr(&'a Expr),
}

/// One element of a `(request, limit)` pair.
pub(crate) enum PairElement<'a> {
    /// A literal number of the right kind, used as written.
    Literal(&'a Expr),
    /// Converted losslessly with `Into` (a cast would silently truncate or wrap).
    Expr(&'a Expr),
}

pub(crate) enum RetriesValue<'a> {
    /// `retries = N`.
    Count(i128, &'a Expr),
    /// `retries(max_retries = …, …)` (delays in seconds), with defaults for what is not given.
    Policy {
        max_retries: f64,
        backoff_coefficient: f64,
        initial_delay: f64,
        max_delay: f64,
        key: &'a Ident,
    },
    /// An expression convertible into `modal::Retries`.
    Expr(&'a Expr),
}

/// Reads `p` as `kind` says; `None` (with the error in `cx`) when it is malformed.
pub(crate) fn value<'a>(cx: &mut Ctxt, kind: Kind, p: &'a Param) -> Option<Value<'a>> {
    match kind {
        Kind::App => app(cx, p).map(Value::App),
        Kind::Tag(_) => tag(cx, p),
        Kind::Bool | Kind::OptBool => boolean(cx, p).map(Value::Bool),
        Kind::U64(_) | Kind::OptU64(_) => whole(cx, p).map(Value::U64),
        Kind::OptString(_) => string(cx, p).map(Value::String),
        Kind::Gpu => gpu(cx, p).map(Value::Gpu),
        Kind::Cpu => cpu(cx, p).map(Value::Cpu),
        Kind::Memory => memory(cx, p).map(Value::Memory),
        Kind::Retries => retries(cx, p).map(Value::Retries),
        Kind::OptInto(_)
        | Kind::Strings
        | Kind::StringPairs
        | Kind::Secrets
        | Kind::Volumes
        | Kind::Requested => expr_of(cx, p).map(Value::Expr),
    }
}

/// The value of `key = value`; a flag or a list is an error.
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

fn app<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<&'a Path> {
    match expr_of(cx, p)? {
        Expr::Path(ep) => Some(&ep.path),
        e => {
            cx.error_spanned_by(
                e,
                "`app` takes the name of the app static declared with `modal::app!`",
            );
            None
        }
    }
}

fn tag<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<Value<'a>> {
    let e = expr_of(cx, p)?;
    match attr::string(e) {
        Some(s) => Some(Value::Tag(s, e)),
        None => {
            cx.error_spanned_by(e, format!("`{}` takes a string literal", p.name()));
            None
        }
    }
}

fn boolean<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<BoolValue<'a>> {
    match &p.value {
        ParamValue::Flag => Some(BoolValue::Flag(&p.key)),
        ParamValue::Expr(e) => match attr::literal(e) {
            Some(Literal::Bool(b)) => Some(BoolValue::Literal(b, e)),
            Some(_) => {
                cx.error_spanned_by(e, format!("`{}` takes `true` or `false`", p.name()));
                None
            }
            None => Some(BoolValue::Expr(e)),
        },
        ParamValue::List(_) => {
            cx.error_spanned_by(&p.key, format!("`{}` takes `true` or `false`", p.name()));
            None
        }
    }
}

fn whole<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<Written<'a, u64>> {
    let e = expr_of(cx, p)?;
    match attr::literal(e) {
        Some(Literal::Int(i)) => match u64::try_from(i) {
            Ok(v) => Some(Written::Literal(v, e)),
            Err(_) => {
                cx.error_spanned_by(e, format!("`{}` must not be negative", p.name()));
                None
            }
        },
        Some(_) => {
            cx.error_spanned_by(e, format!("`{}` takes a whole number", p.name()));
            None
        }
        None => Some(Written::Expr(e)),
    }
}

fn string<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<Written<'a, String>> {
    let e = expr_of(cx, p)?;
    match attr::literal(e) {
        Some(Literal::Str(s)) => Some(Written::Literal(s, e)),
        Some(_) => {
            cx.error_spanned_by(e, format!("`{}` takes a string", p.name()));
            None
        }
        None => Some(Written::Expr(e)),
    }
}

/// `gpu = "H100"`, `gpu = "A100:2"` or `gpu = ["H100", "A100"]` (ranked), or an expression.
fn gpu<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<GpuValue<'a>> {
    let e = expr_of(cx, p)?;
    let list: Vec<&Expr> = match e {
        Expr::Array(a) => a.elems.iter().collect(),
        other => vec![other],
    };
    // Names of constants (or any expression) are checked when the app starts.
    if list.iter().any(|item| attr::literal(item).is_none()) {
        return Some(GpuValue::Expr(e));
    }
    let mut items = Vec::new();
    for item in list {
        match attr::string(item) {
            Some(s) => items.push((s, item)),
            None => cx.error_spanned_by(
                item,
                "`gpu` takes a string such as \"H100\" or \"A100-80GB:2\", or a list of them",
            ),
        }
    }
    Some(GpuValue::Literals { items, list: e })
}

/// A non-negative integer literal.
fn literal_u64(x: &Expr) -> Option<u64> {
    match attr::literal(x) {
        Some(Literal::Int(i)) => u64::try_from(i).ok(),
        _ => None,
    }
}

/// `cpu = 1.5` or `cpu = (0.5, 2.0)`; another single value is converted at app start.
fn cpu<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<Resource<'a, f64>> {
    let e = expr_of(cx, p)?;
    match e {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (req, lim) = (&t.elems[0], &t.elems[1]);
            if let (Some(r), Some(l)) = (attr::number(req), attr::number(lim)) {
                return Some(Resource::Literal {
                    request: (r, req),
                    limit: Some((l, lim)),
                    value: e,
                });
            }
            pair(cx, "cpu", "numbers of cores", req, lim, |l| match *l {
                Literal::Int(i) => i >= 0,
                Literal::Float(f) => f >= 0.0,
                _ => false,
            })
        }
        _ => Some(match attr::number(e) {
            Some(r) => Resource::Literal {
                request: (r, e),
                limit: None,
                value: e,
            },
            None => Resource::Expr(e),
        }),
    }
}

/// `memory = 512` or `memory = (256, 1024)` in MiB.
fn memory<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<Resource<'a, u64>> {
    let e = expr_of(cx, p)?;
    match e {
        Expr::Tuple(t) if t.elems.len() == 2 => {
            let (req, lim) = (&t.elems[0], &t.elems[1]);
            if let (Some(r), Some(l)) = (literal_u64(req), literal_u64(lim)) {
                return Some(Resource::Literal {
                    request: (r, req),
                    limit: Some((l, lim)),
                    value: e,
                });
            }
            pair(
                cx,
                "memory",
                "whole numbers of MiB",
                req,
                lim,
                |l| matches!(*l, Literal::Int(i) if i >= 0),
            )
        }
        _ => match attr::literal(e) {
            None => Some(Resource::Expr(e)),
            Some(_) => match literal_u64(e) {
                Some(r) => Some(Resource::Literal {
                    request: (r, e),
                    limit: None,
                    value: e,
                }),
                None => {
                    cx.error_spanned_by(e, MEMORY_FORMS);
                    None
                }
            },
        },
    }
}

/// What `memory` takes, when a single literal is not it.
pub(crate) const MEMORY_FORMS: &str =
    "`memory` takes a positive number of MiB, or `(request, limit)`";

/// A `(request, limit)` pair of which one element at least is not a literal number; a literal
/// element must be accepted by `fits` (`what` says what fits). Stops at the first wrong one.
fn pair<'a, T>(
    cx: &mut Ctxt,
    param: &str,
    what: &str,
    request: &'a Expr,
    limit: &'a Expr,
    fits: impl Fn(&Literal) -> bool,
) -> Option<Resource<'a, T>> {
    let mut element = |x: &'a Expr| match attr::literal(x) {
        None => Some(PairElement::Expr(x)),
        Some(l) if fits(&l) => Some(PairElement::Literal(x)),
        Some(_) => {
            cx.error_spanned_by(
                x,
                format!("`{param}` takes {what}, or `(request, limit)` of them"),
            );
            None
        }
    };
    let request = element(request)?;
    let limit = element(limit)?;
    Some(Resource::Pair(request, limit))
}

/// `retries = 3`, `retries(max_retries = 3, backoff_coefficient = 2.0, initial_delay = 1.0,
/// max_delay = 60.0)` (seconds), or an expression convertible into `modal::Retries`.
fn retries<'a>(cx: &mut Ctxt, p: &'a Param) -> Option<RetriesValue<'a>> {
    match &p.value {
        ParamValue::Expr(e) => match attr::literal(e) {
            Some(Literal::Int(n)) => Some(RetriesValue::Count(n, e)),
            Some(_) => {
                cx.error_spanned_by(
                    e,
                    "`retries` takes a number of retries, `retries(max_retries = …, …)`, or a `modal::Retries`",
                );
                None
            }
            None => Some(RetriesValue::Expr(e)),
        },
        ParamValue::List(items) => retry_policy(cx, &p.key, items),
        ParamValue::Flag => {
            cx.error_spanned_by(&p.key, "`retries` takes a value: `retries = 3`");
            None
        }
    }
}

fn retry_policy<'a>(cx: &mut Ctxt, key: &'a Ident, items: &[Param]) -> Option<RetriesValue<'a>> {
    let items = attr::check_keys(cx, items.to_vec(), "`retries(…)`", RETRIES_KEYS, |_| None);
    let mut max_retries = None;
    let (mut backoff_coefficient, mut initial_delay, mut max_delay) = (2.0f64, 1.0f64, 60.0f64);
    for item in &items {
        let Some(e) = expr_of(cx, item) else { continue };
        let Some(v) = attr::number(e) else {
            cx.error_spanned_by(e, format!("`{}` takes a number", item.name()));
            continue;
        };
        match item.name().as_str() {
            "max_retries" => max_retries = Some(v),
            "backoff_coefficient" => backoff_coefficient = v,
            "initial_delay" => initial_delay = v,
            _ => max_delay = v,
        }
    }
    let Some(max_retries) = max_retries else {
        cx.error_spanned_by(key, "`retries(…)` needs `max_retries = N`");
        return None;
    };
    if max_retries.fract() != 0.0 {
        cx.error_spanned_by(key, "`max_retries` takes a whole number");
        return None;
    }
    Some(RetriesValue::Policy {
        max_retries,
        backoff_coefficient,
        initial_delay,
        max_delay,
        key,
    })
}
