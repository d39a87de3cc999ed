//! `FunctionSpec`: every parameter of `#[modal::function]`, as data, and its run-time validation.

use super::rules;
use super::{Image, Retries, Schedule, Secret, Volume};

/// A GPU request as written (`"H100"`, `"A100-80GB:2"`), validated when the app starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuConfig(pub String);

impl From<&str> for GpuConfig {
    fn from(s: &str) -> Self {
        GpuConfig(s.to_owned())
    }
}

impl From<String> for GpuConfig {
    fn from(s: String) -> Self {
        GpuConfig(s)
    }
}

/// The parameters of one function, as the `#[modal::function]` macro collected them.
///
/// Literal values were already validated at compile time; values given as expressions are
/// validated by [`FunctionSpec::validate`] when the app starts.
#[derive(Debug, Clone, PartialEq)]
#[doc(hidden)]
pub struct FunctionSpec {
    pub tag: String,
    pub image: Option<Image>,
    pub schedule: Option<Schedule>,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<Secret>,
    /// Ranked alternatives.
    pub gpu: Vec<GpuConfig>,
    pub serialized: bool,
    pub network_file_systems: bool,
    pub volumes: Vec<(String, Volume)>,
    /// `(request, limit)` in cores.
    pub cpu: Option<(f64, Option<f64>)>,
    /// `(request, limit)` in MiB.
    pub memory: Option<(u64, Option<u64>)>,
    pub ephemeral_disk: Option<u64>,
    pub min_containers: Option<u64>,
    pub max_containers: Option<u64>,
    pub buffer_containers: Option<u64>,
    pub scaledown_window: Option<u64>,
    pub proxy: bool,
    pub retries: Option<Retries>,
    pub timeout: u64,
    pub startup_timeout: Option<u64>,
    /// Checked against the signature (a generator returns `impl Iterator`/`impl Stream`).
    pub is_generator: Option<bool>,
    /// Only on workers labelled `cloud=…` (`modal worker --label cloud=aws`); `auto`: any.
    pub cloud: Option<String>,
    /// Only on workers labelled `region=` one of these (empty: any region).
    pub region: Vec<String>,
    pub routing_region: Option<String>,
    /// Never on workers labelled `preemptible=true`.
    pub nonpreemptible: bool,
    pub enable_memory_snapshot: bool,
    pub block_network: bool,
    pub restrict_modal_access: bool,
    pub single_use_containers: bool,
    pub i6pn: Option<bool>,
    pub include_source: Option<bool>,
    pub experimental_options: Vec<(String, String)>,
    /// Always in effect: results are decoded with serde into the declared types, never as code.
    pub experimental_restrict_output: bool,
    pub max_inputs: Option<u64>,
    /// Whether the function takes arguments (a schedule needs one that does not).
    pub takes_arguments: bool,
    /// `#[modal::concurrent(max_inputs, target_inputs)]`.
    pub concurrency: Option<(u64, Option<u64>)>,
    /// `#[modal::batched(max_batch_size, wait_ms)]`.
    pub batch: Option<(u64, u64)>,
    /// For a class: its methods, and those that are generators (for a function, `""` marks
    /// the function itself as a generator).
    pub methods: Vec<String>,
    pub generator_methods: Vec<String>,
    pub is_class: bool,
}

impl FunctionSpec {
    /// A spec with Modal's defaults for the function tagged `tag`.
    pub fn new(tag: &str) -> Self {
        FunctionSpec {
            tag: tag.to_owned(),
            image: None,
            schedule: None,
            env: Vec::new(),
            secrets: Vec::new(),
            gpu: Vec::new(),
            serialized: false,
            network_file_systems: false,
            volumes: Vec::new(),
            cpu: None,
            memory: None,
            ephemeral_disk: None,
            min_containers: None,
            max_containers: None,
            buffer_containers: None,
            scaledown_window: None,
            proxy: false,
            retries: None,
            timeout: rules::DEFAULT_TIMEOUT_SECS,
            startup_timeout: None,
            is_generator: None,
            cloud: None,
            region: Vec::new(),
            routing_region: None,
            nonpreemptible: false,
            enable_memory_snapshot: false,
            block_network: false,
            restrict_modal_access: false,
            single_use_containers: false,
            i6pn: None,
            include_source: None,
            experimental_options: Vec::new(),
            experimental_restrict_output: false,
            max_inputs: None,
            takes_arguments: false,
            concurrency: None,
            batch: None,
            methods: Vec::new(),
            generator_methods: Vec::new(),
            is_class: false,
        }
    }

    /// The parsed GPU alternatives, in preference order.
    pub(crate) fn gpu_rules(&self) -> Result<Vec<rules::GpuRule>, String> {
        self.gpu.iter().map(|g| rules::parse_gpu(&g.0)).collect()
    }

    /// Checks the values that could not be checked at compile time; one message per problem.
    pub fn validate(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        check(rules::check_function_name(&self.tag));
        check(rules::check_timeout(self.timeout));
        if let Some(s) = self.startup_timeout {
            check(rules::check_startup_timeout(s));
        }
        if let Some(s) = self.scaledown_window {
            check(rules::check_scaledown_window(s));
        }
        check(rules::check_container_counts(
            self.min_containers,
            self.max_containers,
        ));
        if let Some((req, lim)) = self.cpu {
            check(rules::check_cpu(req, lim));
        }
        if let Some((req, lim)) = self.memory {
            check(rules::check_memory(req, lim));
        }
        if let Some(r) = &self.retries {
            check(r.validate());
        }
        if let Some(n) = self.max_inputs {
            check(rules::check_max_inputs(n));
        }
        if let Some(c) = &self.cloud {
            check(rules::check_cloud(c));
        }
        check(self.gpu_rules().map(drop));
        if let Some(s) = &self.schedule {
            check(s.validate());
        }
        let generator = !self.generator_methods.is_empty();
        if self.is_generator.is_some_and(|g| g != generator) {
            check(Err(format!(
                "`is_generator = {}` contradicts the signature: `{}` {} a generator (a generator returns `impl Iterator` or `impl Stream`)",
                !generator,
                self.tag,
                if generator { "is" } else { "is not" }
            )));
        }
        if self.schedule.is_some() && self.takes_arguments {
            check(Err(format!(
                "function `{}` has a schedule, so it must take no arguments",
                self.tag
            )));
        }
        if let Some((max, target)) = self.concurrency {
            check(rules::check_concurrency(max, target));
        }
        if let Some((size, wait)) = self.batch {
            check(rules::check_batching(size, wait));
        }
        if !self.generator_methods.is_empty() && self.retries.is_some_and(|r| r.max_retries > 0) {
            check(Err(format!(
                "`{}` is a generator, and generators cannot have `retries` (a retry would repeat items already delivered)",
                self.tag
            )));
        }
        errors
    }

    /// Whether containers run a single input and exit.
    pub(crate) fn single_use(&self) -> bool {
        self.single_use_containers || self.max_inputs == Some(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_values_are_validated() {
        let mut spec = FunctionSpec::new("f");
        spec.gpu = vec!["H100:9".into()];
        spec.timeout = 0;
        spec.retries = Some(Retries::new(3).backoff_coefficient(20.0));
        spec.schedule = Some(crate::app::Period::days(1).into());
        spec.takes_arguments = true;
        let errors = spec.validate();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert!(errors.iter().any(|e| e.contains("between 1 and 8")));
        assert!(errors.iter().any(|e| e.contains("timeout")));
        assert!(errors.iter().any(|e| e.contains("backoff_coefficient")));
        assert!(errors.iter().any(|e| e.contains("must take no arguments")));
    }

    #[test]
    fn defaults_are_valid() {
        assert!(FunctionSpec::new("square").validate().is_empty());
    }
}
