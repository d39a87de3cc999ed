//! Which parameters the runtime honours: the one place that turns an option it cannot honour
//! yet into an error naming the option, instead of a silent no-op. What it cannot honour, and
//! why, is the support column of the parameter table (`param_table.rs`); this module only knows
//! how each such parameter shows on a `FunctionSpec`.

use super::param_table::PARAMS;
use super::{App, FunctionSpec};

/// What refuses the parameters below, in messages.
pub(crate) const NOT_YET: &str = "modal-rs yet";

/// Whether the unsupported form of a parameter is given.
#[derive(Debug, PartialEq, Eq)]
enum Given {
    No,
    Yes,
    /// Given, with what (added to the reason in parentheses).
    With(String),
}

/// One message per parameter of `spec` (or of its app) that the runtime does not provide yet,
/// in table order.
pub(crate) fn unsupported(app: &App, spec: &FunctionSpec) -> Vec<String> {
    let mut out: Vec<String> = PARAMS
        .iter()
        .filter_map(|p| {
            let (named, why) = p.runtime.unsupported(p.name)?;
            let detail = match unsupported_form_given(p.name, app, spec)? {
                Given::No => return None,
                Given::Yes => String::new(),
                Given::With(what) => format!(" ({what})"),
            };
            Some(format!(
                "function `{}`: `{named}` is not supported by {NOT_YET}: {why}{detail}",
                spec.tag
            ))
        })
        .collect();
    if !cfg!(feature = "gpu") && !spec.gpu.is_empty() {
        out.push(format!(
            "function `{}`: `gpu` needs the `gpu` feature of the modal crate (on by default); this program was built without it",
            spec.tag
        ));
    }
    out
}

/// Whether the form of parameter `name` that the runtime cannot honour is given on `spec` or
/// its app; `None` for a parameter the table says the runtime honours (it is not looked at).
fn unsupported_form_given(name: &str, app: &App, spec: &FunctionSpec) -> Option<Given> {
    let given = |yes: bool| if yes { Given::Yes } else { Given::No };
    Some(match name {
        "serialized" => given(spec.serialized),
        "network_file_systems" => given(spec.network_file_systems),
        "proxy" => given(spec.proxy),
        "routing_region" => given(spec.routing_region.is_some()),
        "enable_memory_snapshot" => given(spec.enable_memory_snapshot),
        "i6pn" => given(spec.i6pn == Some(true)),
        "include_source" => given(
            spec.include_source == Some(false)
                || (!app.include_source && spec.include_source.is_none()),
        ),
        "experimental_options" if spec.experimental_options.is_empty() => Given::No,
        "experimental_options" => {
            let keys: Vec<&str> = spec
                .experimental_options
                .iter()
                .map(|(k, _)| k.as_str())
                .collect();
            Given::With(format!("given: {}", keys.join(", ")))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_request_needs_the_gpu_feature() {
        let app = App::new("a");
        let mut spec = FunctionSpec::new("f");
        spec.gpu = vec!["H100".into()];
        let msgs = unsupported(&app, &spec);
        assert_eq!(
            msgs.iter().any(|m| m.contains("needs the `gpu` feature")),
            !cfg!(feature = "gpu"),
            "{msgs:?}"
        );
    }
    use crate::app::Volume;

    #[test]
    fn defaults_are_supported() {
        let app = App::new("a");
        assert!(unsupported(&app, &FunctionSpec::new("f")).is_empty());
    }

    #[test]
    fn each_unsupported_option_is_named() {
        let app = App::new("a");
        let mut spec = FunctionSpec::new("f");
        spec.block_network = true;
        spec.region = vec!["us-east".into()];
        spec.routing_region = Some("us-east".into());
        spec.memory = Some((128, Some(256)));
        spec.enable_memory_snapshot = true;
        let msgs = unsupported(&app, &spec);
        assert_eq!(msgs.len(), 2, "{msgs:#?}");
        assert!(msgs[0].contains("`routing_region`"));
        assert!(msgs[1].contains("`enable_memory_snapshot`"));
    }

    /// The table is the one list of parameters: this module looks at exactly the rows the
    /// table marks unsupported (a new unsupported row needs an arm here, and an arm for a
    /// parameter now honoured must go).
    #[test]
    fn every_row_is_looked_at_or_honoured() {
        let (app, spec) = (App::new("a"), FunctionSpec::new("f"));
        for p in PARAMS {
            let unsupported = p.runtime.unsupported(p.name).is_some();
            let looked_at = unsupported_form_given(p.name, &app, &spec);
            if unsupported {
                assert_eq!(
                    looked_at,
                    Some(Given::No),
                    "`{}` is unsupported in the table: say here when it is given",
                    p.name
                );
            } else {
                assert_eq!(
                    looked_at, None,
                    "`{}` is honoured in the table: nothing to look at here",
                    p.name
                );
            }
        }
    }

    #[test]
    fn every_unsupported_row_is_reported_with_its_reason() {
        let app = App::new("a")
            .volumes([("/data", Volume::from_name("v"))])
            .include_source(false);
        let mut spec = FunctionSpec::new("f");
        spec.serialized = true;
        spec.network_file_systems = true;
        spec.cpu = Some((1.0, Some(2.0)));
        spec.memory = Some((128, Some(256)));
        spec.ephemeral_disk = Some(1024);
        spec.proxy = true;
        spec.cloud = Some("aws".into());
        spec.region = vec!["us-east".into()];
        spec.routing_region = Some("us-east".into());
        spec.nonpreemptible = true;
        spec.enable_memory_snapshot = true;
        spec.block_network = true;
        spec.restrict_modal_access = true;
        spec.i6pn = Some(true);
        spec.experimental_options = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        let msgs = unsupported(&app, &spec);
        let expected: Vec<String> = PARAMS
            .iter()
            .filter_map(|p| p.runtime.unsupported(p.name))
            .map(|(named, why)| {
                format!("function `f`: `{named}` is not supported by modal-rs yet: {why}")
            })
            .collect();
        assert_eq!(msgs.len(), expected.len(), "{msgs:#?}");
        for (msg, expected) in msgs.iter().zip(&expected) {
            assert!(msg.starts_with(expected), "{msg} / {expected}");
        }
        assert!(msgs.iter().any(|m| m.ends_with(
            "`experimental_options` is not supported by modal-rs yet: no experimental option is known (given: a, b)"
        )));
    }
}
