//! Every row of the parameter table parses, validates and expands; the key check and the
//! messages follow the table.

use proc_macro2::TokenStream;
use quote::quote;

use super::{FunctionAttr, parse_attr};
use crate::ctxt::Ctxt;
use crate::param_table::{Kind, On, PARAMS, Target};

/// Runs the stages on `tokens`: the attribute, or every error message.
fn run(target: Target, tokens: TokenStream) -> Result<FunctionAttr, Vec<String>> {
    let mut cx = Ctxt::new();
    let parsed = parse_attr(&mut cx, tokens, target);
    match cx.check() {
        Ok(()) => parsed.ok_or_else(Vec::new),
        Err(e) => Err(e.into_iter().map(|e| e.to_string()).collect()),
    }
}

/// A literal value of `kind` its rule accepts; `None` for `app`.
fn literal_sample(kind: Kind) -> Option<TokenStream> {
    Some(match kind {
        Kind::App => return None,
        Kind::Tag(_) => quote!("f"),
        Kind::Bool | Kind::OptBool => quote!(true),
        Kind::U64(rule) | Kind::OptU64(rule) => {
            let v = [60u64, 1].into_iter().find(|v| rule(*v).is_ok())?;
            quote!(#v)
        }
        Kind::OptString(rule) => {
            let s = ["auto", "us-east"].into_iter().find(|s| rule(s).is_ok())?;
            quote!(#s)
        }
        Kind::OptInto(_) | Kind::Requested => quote!(x),
        Kind::Strings => quote!(["a"]),
        Kind::StringPairs => quote!([("K", "V")]),
        Kind::Secrets | Kind::Volumes => quote!([]),
        Kind::Gpu => quote!(["H100", "a100-80gb:2"]),
        Kind::Cpu => quote!((0.5, 2.0)),
        Kind::Memory => quote!(512),
        Kind::Retries => quote!(retries(max_retries = 3, max_delay = 30.0)),
    })
}

#[test]
fn every_row_parses_and_expands_with_a_literal_and_an_expression() {
    for row in PARAMS {
        let Some(literal) = literal_sample(row.kind) else {
            continue;
        };
        let name = proc_macro2::Ident::new(row.name, proc_macro2::Span::call_site());
        let mut args = vec![match row.kind {
            Kind::Retries => literal,
            _ => quote!(#name = #literal),
        }];
        // A function name is a literal; every other value may be an expression.
        if !matches!(row.kind, Kind::Tag(_)) {
            args.push(quote!(#name = x));
        }
        for arg in args {
            let attr = run(Target::Function, quote!(app = APP, #arg))
                .unwrap_or_else(|e| panic!("`{arg}`: {e:?}"));
            let field = row.name.trim_start_matches('_');
            match row.kind {
                Kind::Tag(_) => {
                    assert!(attr.assignments.is_empty());
                    assert_eq!(attr.name.map(|(n, _)| n).as_deref(), Some("f"));
                }
                _ => {
                    assert_eq!(attr.assignments.len(), 1, "`{arg}`");
                    let assignment = attr.assignments[0].to_string();
                    assert!(
                        assignment.starts_with(&format!("spec . {field} =")),
                        "`{arg}` expands to `{assignment}`"
                    );
                }
            }
        }
    }
}

#[test]
fn names_follow_the_table() {
    let errors = run(Target::Function, quote!(app = APP, gpus = "H100")).err();
    let expected = format!(
        "unknown parameter `gpus` for #[modal::function]; expected one of: {}",
        PARAMS.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
    );
    assert_eq!(errors, Some(vec![expected]));

    for row in PARAMS.iter().filter(|p| p.on == On::Function) {
        let name = proc_macro2::Ident::new(row.name, proc_macro2::Span::call_site());
        let errors = run(Target::Cls, quote!(app = APP, #name = x)).err();
        let first = errors.as_deref().and_then(|e| e.first()).cloned();
        assert!(
            first.is_some_and(|e| e.starts_with(&format!(
                "unknown parameter `{}` for #[modal::cls]; expected one of: app, image, env,",
                row.name
            ))),
            "{errors:?}"
        );
    }

    let errors = run(Target::Cls, quote!(app = APP, keep_warm = 1)).err();
    assert_eq!(
        errors,
        Some(vec![
            "`keep_warm` was renamed: use `min_containers`".to_owned()
        ])
    );
}

#[test]
fn literal_errors_keep_their_messages() {
    let cases: &[(TokenStream, &[&str])] = &[
        (
            quote!(timeout = 0),
            &["`timeout` is 0 s; it must be between 1 and 86400 s"],
        ),
        (quote!(timeout = -1), &["`timeout` must not be negative"]),
        (quote!(timeout = "1"), &["`timeout` takes a whole number"]),
        (
            quote!(serialized = 1),
            &["`serialized` takes `true` or `false`"],
        ),
        (quote!(cloud = 1), &["`cloud` takes a string"]),
        (quote!(name = 1), &["`name` takes a string literal"]),
        (quote!(env), &["`env` takes a value: `env = …`"]),
        (quote!(gpu = []), &["`gpu` needs at least one GPU type"]),
        (
            quote!(gpu = ["H100", 3]),
            &["`gpu` takes a string such as \"H100\" or \"A100-80GB:2\", or a list of them"],
        ),
        (
            quote!(cpu = ("a", 1.0)),
            &["`cpu` takes numbers of cores, or `(request, limit)` of them"],
        ),
        (
            quote!(memory = (1.5, x)),
            &["`memory` takes whole numbers of MiB, or `(request, limit)` of them"],
        ),
        (
            quote!(memory = 0),
            &["`memory` takes a positive number of MiB, or `(request, limit)`"],
        ),
        (
            quote!(cpu = (2.0, 1.0)),
            &["`cpu` limit (1.0) must be greater than or equal to the request (2.0)"],
        ),
        (
            quote!(retries(max_delay = 2.0)),
            &["`retries(…)` needs `max_retries = N`"],
        ),
        (
            quote!(retries(max_retries = 1.5)),
            &["`max_retries` takes a whole number"],
        ),
        (
            quote!(retries(max_retries = 1, initial_delay = 61)),
            &["`retries` initial_delay must be between 0 and 60 seconds, got 61.0"],
        ),
        (
            quote!(min_containers = 3, max_containers = 2),
            &["`min_containers` (3) must not be greater than `max_containers` (2)"],
        ),
        (
            quote!(timeout = 0, app = "x"),
            &[
                "`timeout` is 0 s; it must be between 1 and 86400 s",
                "`app` takes the name of the app static declared with `modal::app!`",
                "#[modal::function] needs the app it belongs to: `app = APP` (the static declared with `modal::app!`)",
            ],
        ),
    ];
    for (args, expected) in cases {
        let tokens = if args.to_string().contains("app =") {
            args.clone()
        } else {
            quote!(app = APP, #args)
        };
        let errors = run(Target::Function, tokens).err().unwrap_or_default();
        assert_eq!(errors, *expected, "`{args}`");
    }
}

#[test]
fn signature_checks_get_where_parameters_were_written() {
    let attr = run(
        Target::Function,
        quote!(app = APP, schedule = x, retries = 1, is_generator),
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(attr.has_schedule.is_some() && attr.retries.is_some());
    assert_eq!(attr.is_generator.map(|(b, _)| b), Some(true));
    let attr = run(Target::Function, quote!(app = APP, is_generator = x))
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(attr.is_generator.is_none() && attr.has_schedule.is_none());
}
