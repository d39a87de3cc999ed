//! The parameters of `#[modal::function]` and `#[modal::cls]`, one row each: the name as the
//! user writes it, where it is allowed, how its value is read and checked, and whether the
//! process runtime honours it.
//!
//! Like `rules.rs`, this file is pure `std` and is compiled twice: into `modal` (which reports
//! the parameters its runtime cannot honour, in `support.rs`) and, through `#[path]`, into
//! `modal-macros` (which accepts exactly these names and parses, checks and expands each value
//! by its [`Kind`]). Adding a parameter means adding a row here, a field to `FunctionSpec`
//! named like the parameter (without a leading `_`), and, when it is [`Runtime::Unsupported`],
//! an arm in `support.rs` saying when it is given.

// Each crate reads its own columns: the macros the kinds, the runtime the support column.
#![allow(dead_code)]

use super::rules;
use Kind::*;
use On::{Both, Function};
use Runtime::{Honoured, Unsupported, UnsupportedForm};

/// A literal check on a whole number, from `rules.rs`.
pub(crate) type WholeRule = fn(u64) -> Result<(), String>;
/// A literal check on a string, from `rules.rs`.
pub(crate) type TextRule = fn(&str) -> Result<(), String>;

/// The attribute a parameter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Function,
    Cls,
}

impl Target {
    /// The attribute as the user writes it, for messages.
    pub(crate) fn attribute(self) -> &'static str {
        match self {
            Target::Function => "#[modal::function]",
            Target::Cls => "#[modal::cls]",
        }
    }
}

/// Where a parameter is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum On {
    /// `#[modal::function]` only: it describes one function, not a class.
    Function,
    /// `#[modal::function]` and `#[modal::cls]`.
    Both,
}

impl On {
    pub(crate) fn allows(self, target: Target) -> bool {
        matches!(
            (self, target),
            (On::Both, _) | (On::Function, Target::Function)
        )
    }
}

/// How a parameter's value is written, checked and stored. Literals are checked at compile
/// time with the rule; any other expression is converted and checked when the app starts. The
/// `Opt` kinds fill an `Option` field of `FunctionSpec` (`None` when not given).
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// `app = APP`: the static declared with `modal::app!`.
    App,
    /// `name = "…"`: a string literal checked by the rule; it becomes the function's tag.
    Tag(TextRule),
    /// `key`, `key = true|false` or a `bool` expression, into a `bool`.
    Bool,
    /// Like [`Kind::Bool`], into an `Option<bool>`.
    OptBool,
    /// A whole number or a `u64` expression, into a `u64`.
    U64(WholeRule),
    /// Like [`Kind::U64`], into an `Option<u64>`.
    OptU64(WholeRule),
    /// A string or an expression convertible into `String`, into an `Option<String>`.
    OptString(TextRule),
    /// An expression converted with `Into` into the named `modal` type, into an `Option`.
    OptInto(&'static str),
    /// A list of strings (`["a", "b"]` or any iterable of string-likes).
    Strings,
    /// `[("KEY", "value"), …]` (or any iterable of string-like pairs).
    StringPairs,
    /// Any iterable of `modal::Secret`.
    Secrets,
    /// `[("/mnt", volume), …]`: mount paths and `modal::Volume`s.
    Volumes,
    /// `gpu = "H100"`, `"A100:2"` or a ranked list of them.
    Gpu,
    /// `cpu = 1.5` or `cpu = (request, limit)` in cores.
    Cpu,
    /// `memory = 512` or `memory = (request, limit)` in MiB.
    Memory,
    /// `retries = 3`, `retries(max_retries = …, …)` or a `modal::Retries`.
    Retries,
    /// A service that does not exist: the value is evaluated for nothing and the spec records
    /// that one was asked for (`true`).
    Requested,
}

/// Whether modal-rs does what a parameter asks. Limits and `block_network` are enforced by the
/// worker's `oci` runtime; a `process` worker refuses a function that gives them, when it would
/// start its container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Honoured,
    /// Giving the parameter is an error that names it and gives this reason.
    Unsupported(&'static str),
    /// Only `form` of the parameter (e.g. a limit on top of a request) is an error: it names
    /// the form and gives the reason.
    UnsupportedForm {
        form: &'static str,
        why: &'static str,
    },
}

impl Runtime {
    /// What an error names and why, for a parameter the runtime does not honour (in part).
    pub(crate) fn unsupported(self, name: &'static str) -> Option<(&'static str, &'static str)> {
        match self {
            Runtime::Honoured => None,
            Runtime::Unsupported(why) => Some((name, why)),
            Runtime::UnsupportedForm { form, why } => Some((form, why)),
        }
    }
}

/// One parameter.
#[derive(Clone, Copy)]
pub(crate) struct Param {
    /// As the user writes it; the `FunctionSpec` field is this without a leading `_`.
    pub(crate) name: &'static str,
    pub(crate) on: On,
    pub(crate) kind: Kind,
    pub(crate) runtime: Runtime,
}

const fn param(name: &'static str, on: On, kind: Kind, runtime: Runtime) -> Param {
    Param {
        name,
        on,
        kind,
        runtime,
    }
}

/// A rule that accepts every whole number.
fn any_u64(_: u64) -> Result<(), String> {
    Ok(())
}

/// A rule that accepts every string.
fn any_string(_: &str) -> Result<(), String> {
    Ok(())
}

/// Every parameter: Modal's `App.function` plus `app`, in the order messages list them.
#[rustfmt::skip]
pub(crate) const PARAMS: &[Param] = &[
    param("app",                           Both,     App,                                   Honoured),
    param("image",                         Both,     OptInto("Image"),                      Honoured),
    param("schedule",                      Function, OptInto("Schedule"),                   Honoured),
    param("env",                           Both,     StringPairs,                           Honoured),
    param("secrets",                       Both,     Secrets,                               Honoured),
    param("gpu",                           Both,     Gpu,                                   Honoured),
    param("serialized",                    Both,     Bool,                                  Unsupported("Rust functions are always found by identity in the same binary")),
    param("network_file_systems",          Both,     Requested,                             Unsupported("there is no network file system service")),
    param("volumes",                       Both,     Volumes,                               Honoured),
    param("cpu",                           Both,     Cpu,                                   Honoured),
    param("memory",                        Both,     Memory,                                Honoured),
    param("ephemeral_disk",                Both,     OptU64(any_u64),                       Honoured),
    param("min_containers",                Both,     OptU64(any_u64),                       Honoured),
    param("max_containers",                Both,     OptU64(any_u64),                       Honoured),
    param("buffer_containers",             Both,     OptU64(any_u64),                       Honoured),
    param("scaledown_window",              Both,     OptU64(rules::check_scaledown_window), Honoured),
    param("proxy",                         Both,     Requested,                             Unsupported("there is no proxy service")),
    param("retries",                       Both,     Retries,                               Honoured),
    param("timeout",                       Both,     U64(rules::check_timeout),             Honoured),
    param("startup_timeout",               Both,     OptU64(rules::check_startup_timeout),  Honoured),
    param("name",                          Function, Tag(rules::check_function_name),       Honoured),
    param("is_generator",                  Function, OptBool,                               Honoured),
    param("cloud",                         Both,     OptString(rules::check_cloud),         Honoured),
    param("region",                        Both,     Strings,                               Honoured),
    param("routing_region",                Both,     OptString(any_string),                 Unsupported("calls reach the one control plane directly: there are no regional gateways to route them through (`region` places containers)")),
    param("nonpreemptible",                Both,     Bool,                                  Honoured),
    param("enable_memory_snapshot",        Both,     Bool,                                  Unsupported("memory snapshots are not available on this platform")),
    param("block_network",                 Both,     Bool,                                  Honoured),
    param("restrict_modal_access",         Both,     Bool,                                  Honoured),
    param("single_use_containers",         Both,     Bool,                                  Honoured),
    param("i6pn",                          Both,     OptBool,                               Unsupported("there is no container network between containers")),
    param("include_source",                Both,     OptBool,                               UnsupportedForm { form: "include_source = false", why: "a Rust function's code is always part of the binary the container runs" }),
    param("experimental_options",          Both,     StringPairs,                           Unsupported("no experimental option is known")),
    param("_experimental_restrict_output", Both,     Bool,                                  Honoured),
    param("max_inputs",                    Both,     OptU64(rules::check_max_inputs),       Honoured),
];

/// Parameters Modal renamed, `(old, new)`: the old name is an error that names the new one.
#[rustfmt::skip]
pub(crate) const RENAMED: &[(&str, &str)] = &[
    ("keep_warm", "min_containers"),
    ("concurrency_limit", "max_containers"),
    ("container_idle_timeout", "scaledown_window"),
    ("allow_concurrent_inputs", "#[modal::concurrent(max_inputs = …)]"),
];

/// The row of the parameter called `name`.
pub(crate) fn find(name: &str) -> Option<&'static Param> {
    PARAMS.iter().find(|p| p.name == name)
}

/// The names allowed in `target`, in table order.
pub(crate) fn names_on(target: Target) -> Vec<&'static str> {
    PARAMS
        .iter()
        .filter(|p| p.on.allows(target))
        .map(|p| p.name)
        .collect()
}

/// What a renamed parameter is called now.
pub(crate) fn renamed(name: &str) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(old, _)| *old == name)
        .map(|(_, new)| *new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_renamed_ones_are_gone() {
        for (i, p) in PARAMS.iter().enumerate() {
            assert!(
                PARAMS[..i].iter().all(|q| q.name != p.name),
                "`{}` has two rows",
                p.name
            );
        }
        for (old, new) in RENAMED {
            assert!(find(old).is_none(), "`{old}` is renamed and still a row");
            assert!(
                find(new).is_some() || new.starts_with("#["),
                "`{old}` is renamed to `{new}`, which is not a row"
            );
        }
        assert_eq!(renamed("keep_warm"), Some("min_containers"));
        assert_eq!(renamed("timeout"), None);
    }

    #[test]
    fn classes_take_all_but_the_function_only_parameters() {
        let function = names_on(Target::Function);
        let cls = names_on(Target::Cls);
        assert_eq!(function.len(), PARAMS.len());
        let function_only: Vec<&str> = function
            .iter()
            .copied()
            .filter(|n| !cls.contains(n))
            .collect();
        assert_eq!(function_only, ["schedule", "name", "is_generator"]);
    }
}
