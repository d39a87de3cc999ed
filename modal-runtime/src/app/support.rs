//! Which parameters the runtime honours: the one place that turns an option it cannot honour
//! yet into an error naming the option, instead of a silent no-op.

use super::{App, FunctionSpec};

/// The container runtime this build provides.
pub(crate) const RUNTIME: &str = "the process runtime";

/// One message per parameter of `spec` (or of its app) that the runtime does not provide yet.
pub(crate) fn unsupported(app: &App, spec: &FunctionSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut no = |param: &str, why: &str| {
        out.push(format!(
            "function `{}`: `{param}` is not supported by {RUNTIME}: {why}",
            spec.tag
        ));
    };
    if spec.image.is_some() || app.image.is_some() {
        no(
            "image",
            "containers run the app's own binary on the host filesystem",
        );
    }
    if spec.serialized {
        no(
            "serialized",
            "Rust functions are always found by identity in the same binary",
        );
    }
    if spec.network_file_systems {
        no(
            "network_file_systems",
            "there is no network file system service",
        );
    }
    if !spec.volumes.is_empty() || !app.volumes.is_empty() {
        no("volumes", "there is no volume service yet");
    }
    if matches!(spec.cpu, Some((_, Some(_)))) {
        no(
            "cpu (request, limit)",
            "CPU limits need cgroup enforcement; give a request only",
        );
    }
    if matches!(spec.memory, Some((_, Some(_)))) {
        no(
            "memory (request, limit)",
            "memory limits need cgroup enforcement; give a request only",
        );
    }
    if spec.ephemeral_disk.is_some() {
        no("ephemeral_disk", "containers share the host's disk");
    }
    if spec.proxy {
        no("proxy", "there is no proxy service");
    }
    if spec.cloud.as_deref().is_some_and(|c| c != "auto") {
        no("cloud", "workers are not grouped by cloud provider");
    }
    if !spec.region.is_empty() {
        no("region", "workers are not grouped by region");
    }
    if spec.routing_region.is_some() {
        no("routing_region", "workers are not grouped by region");
    }
    if spec.nonpreemptible {
        no(
            "nonpreemptible",
            "workers are not classified by preemptibility",
        );
    }
    if spec.enable_memory_snapshot {
        no(
            "enable_memory_snapshot",
            "memory snapshots are not available on this platform",
        );
    }
    if spec.block_network {
        no("block_network", "containers share the host's network");
    }
    if spec.restrict_modal_access {
        no(
            "restrict_modal_access",
            "container tokens are not scoped yet",
        );
    }
    if spec.i6pn == Some(true) {
        no("i6pn", "there is no container network between containers");
    }
    if spec.include_source == Some(false) || (!app.include_source && spec.include_source.is_none())
    {
        no(
            "include_source = false",
            "a Rust function's code is always part of the binary the container runs",
        );
    }
    if !spec.experimental_options.is_empty() {
        let keys: Vec<&str> = spec
            .experimental_options
            .iter()
            .map(|(k, _)| k.as_str())
            .collect();
        no(
            "experimental_options",
            &format!(
                "no experimental option is known (given: {})",
                keys.join(", ")
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        spec.memory = Some((128, Some(256)));
        let msgs = unsupported(&app, &spec);
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(msgs[0].contains("`memory (request, limit)`"));
        assert!(msgs[1].contains("`region`"));
        assert!(msgs[2].contains("`block_network`"));
    }
}
