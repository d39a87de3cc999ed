//! A function as the control plane knows it (`FunctionDef`, built from the app's
//! `FunctionSpec` when an app runs or deploys) and the option overrides of a variant
//! (`FunctionOptions`), with the one implementation of how overrides merge and apply.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Payload;
use crate::app::{FunctionSpec, Retries, Schedule, Secret, rules};

/// Resources of one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    /// Requested CPU in thousandths of a core; 0 = the platform default.
    pub(crate) milli_cpu: u32,
    /// Hard CPU limit in thousandths of a core; 0 = none.
    pub(crate) milli_cpu_max: u32,
    /// Requested memory in MiB; 0 = the platform default.
    pub(crate) memory_mb: u32,
    /// Hard memory limit in MiB; 0 = none.
    pub(crate) memory_mb_max: u32,
    pub(crate) ephemeral_disk_mb: u32,
}

/// One ranked alternative of a GPU request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GpuRequest {
    /// Canonical upper-case type: `H100`, `A100-80GB`, `ANY`…
    pub(crate) kind: String,
    pub(crate) count: u32,
}

/// How many containers a function keeps and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Autoscaler {
    pub(crate) min_containers: u32,
    /// `None`: no limit beyond the workers' capacity.
    pub(crate) max_containers: Option<u32>,
    pub(crate) buffer_containers: u32,
    pub(crate) scaledown_window_secs: u32,
}

impl Default for Autoscaler {
    fn default() -> Self {
        Autoscaler {
            min_containers: 0,
            max_containers: None,
            buffer_containers: 0,
            scaledown_window_secs: clamp_u32(rules::DEFAULT_SCALEDOWN_WINDOW_SECS),
        }
    }
}

impl Autoscaler {
    /// How long an idle container is kept (at least a second).
    pub(crate) fn scaledown_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.scaledown_window_secs.max(1)))
    }
}

/// A batched function: the control plane assembles batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BatchConfig {
    pub(crate) max_batch_size: u32,
    pub(crate) wait_ms: u32,
}

/// A secret stored on the control plane, resolved when a container starts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NamedSecret {
    pub(crate) name: String,
    /// Empty: the app's environment.
    pub(crate) environment: String,
    pub(crate) required_keys: Vec<String>,
}

impl NamedSecret {
    /// The named secret a `Secret` refers to, if it is one.
    pub(crate) fn of(secret: &Secret) -> Option<Self> {
        secret
            .named()
            .map(|(name, environment, required_keys)| NamedSecret {
                name: name.to_owned(),
                environment: environment.unwrap_or_default().to_owned(),
                required_keys: required_keys.to_vec(),
            })
    }
}

/// Secret environment variables in clear, on their way to being sealed or into a container.
/// `Debug` shows their names only.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct SecretValues(pub(crate) BTreeMap<String, String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl std::ops::Deref for SecretValues {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for SecretValues {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<BTreeMap<String, String>> for SecretValues {
    fn from(m: BTreeMap<String, String>) -> Self {
        SecretValues(m)
    }
}

impl FromIterator<(String, String)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        SecretValues(iter.into_iter().collect())
    }
}

/// Secret values sealed with a control plane's key. Two are equal when their values are (a digest
/// keyed by the same key), so a redeploy or a `with_options` with the same secrets is the same.
#[derive(Clone)]
pub(crate) struct SealedValues {
    pub(crate) digest: Vec<u8>,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

impl PartialEq for SealedValues {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl std::fmt::Debug for SealedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedValues(..)")
    }
}

/// A function (or class) registered with the control plane.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionDef {
    /// Its tag within its app (`name = …` or its Rust name).
    pub(crate) tag: String,
    /// Rust path of the implementation, for display.
    pub(crate) implementation: String,
    /// Hex blake3 digest of the executable that holds it.
    pub(crate) binary_hash: String,
    /// Path of that executable on the machine that registered it.
    pub(crate) binary_path: String,
    pub(crate) resources: Resources,
    /// Ranked alternatives; empty = no GPU.
    pub(crate) gpu: Vec<GpuRequest>,
    pub(crate) retries: Option<Retries>,
    pub(crate) timeout_secs: u32,
    pub(crate) startup_timeout_secs: u32,
    pub(crate) autoscaler: Autoscaler,
    /// Plain environment variables (`env = …`).
    pub(crate) env: BTreeMap<String, String>,
    /// Secret environment variables as a client sends them: injected like `env`, never listed
    /// or logged. The control plane seals them into `sealed_secret_env` on arrival.
    pub(crate) secret_env: SecretValues,
    /// `secret_env` sealed with the control plane's key.
    pub(crate) sealed_secret_env: Option<SealedValues>,
    pub(crate) single_use_containers: bool,
    /// Inputs one container runs at once.
    pub(crate) max_concurrent_inputs: u32,
    /// Inputs one container should run at once, for the autoscaler (≤ the maximum).
    pub(crate) target_concurrent_inputs: u32,
    pub(crate) batch: Option<BatchConfig>,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) named_secrets: Vec<NamedSecret>,
    /// Rust types of the argument tuple and the result, for messages.
    pub(crate) args_type: String,
    pub(crate) return_type: String,
    pub(crate) is_class: bool,
    pub(crate) methods: Vec<String>,
    /// Methods (or, with an empty name, the function itself) that are generators.
    pub(crate) generator_methods: Vec<String>,
    /// A class variant's encoded parameter values.
    pub(crate) class_params: Option<Payload>,
    /// For a variant: the function it derives from.
    pub(crate) variant_of: String,
    /// The app that declares the function in its executable (a deploy may use another name).
    pub(crate) app_in_code: String,
    /// No network in its containers but their own loopback.
    pub(crate) block_network: bool,
    /// Its containers' tokens serve their own inputs only.
    pub(crate) restrict_modal_access: bool,
    /// Which workers may run its containers (`region`, `cloud`, `nonpreemptible`).
    pub(crate) constraints: super::worker::Constraints,
    /// Volumes mounted in its containers, resolved to ids when the app starts.
    pub(crate) volumes: Vec<super::volume::VolumeMount>,
    /// The image its containers run in, built when the app starts (none: the host's system
    /// directories).
    pub(crate) image: Option<super::image::ImageRef>,
}

/// Where a function's code lives, for its definition.
pub(crate) struct Origin<'a> {
    /// The app that declares the function in the executable.
    pub(crate) app: &'a str,
    pub(crate) implementation: &'a str,
    pub(crate) binary_hash: &'a str,
    pub(crate) binary_path: &'a str,
    /// The argument tuple's and the result's types, as written.
    pub(crate) types: (&'a str, &'a str),
}

impl FunctionDef {
    /// The definition as it may leave the control plane (to a caller or a worker): without its
    /// sealed secret values.
    pub(crate) fn shareable(&self) -> FunctionDef {
        FunctionDef {
            sealed_secret_env: None,
            ..self.clone()
        }
    }

    /// The definition of a function with `spec`: its resolved local secrets in `secret_env`,
    /// the app's named secrets along with its own.
    pub(crate) fn new(
        spec: &FunctionSpec,
        origin: Origin<'_>,
        secret_env: Vec<(String, String)>,
        app_secrets: &[Secret],
    ) -> Self {
        let (milli_cpu, milli_cpu_max) = match spec.cpu {
            Some((req, lim)) => (cores_to_milli(req), lim.map(cores_to_milli).unwrap_or(0)),
            None => (0, 0),
        };
        let (memory_mb, memory_mb_max) = match spec.memory {
            Some((req, lim)) => (clamp_u32(req), lim.map(clamp_u32).unwrap_or(0)),
            None => (0, 0),
        };
        FunctionDef {
            tag: spec.tag.clone(),
            implementation: origin.implementation.to_owned(),
            binary_hash: origin.binary_hash.to_owned(),
            binary_path: origin.binary_path.to_owned(),
            resources: Resources {
                milli_cpu,
                milli_cpu_max,
                memory_mb,
                memory_mb_max,
                ephemeral_disk_mb: spec.ephemeral_disk.map(clamp_u32).unwrap_or(0),
            },
            gpu: spec
                .gpu_rules()
                .unwrap_or_default()
                .into_iter()
                .map(|g| GpuRequest {
                    kind: g.kind,
                    count: g.count,
                })
                .collect(),
            retries: spec.retries,
            timeout_secs: clamp_u32(spec.timeout),
            startup_timeout_secs: clamp_u32(spec.startup_timeout.unwrap_or(spec.timeout)),
            autoscaler: Autoscaler {
                min_containers: spec.min_containers.map(clamp_u32).unwrap_or(0),
                max_containers: spec.max_containers.map(clamp_u32),
                buffer_containers: spec.buffer_containers.map(clamp_u32).unwrap_or(0),
                scaledown_window_secs: clamp_u32(
                    spec.scaledown_window
                        .unwrap_or(rules::DEFAULT_SCALEDOWN_WINDOW_SECS),
                ),
            },
            env: spec.env.iter().cloned().collect(),
            secret_env: secret_env.into_iter().collect(),
            single_use_containers: spec.single_use(),
            max_concurrent_inputs: spec.concurrency.map_or(1, |(max, _)| clamp_u32(max)),
            target_concurrent_inputs: spec
                .concurrency
                .map_or(1, |(max, target)| clamp_u32(target.unwrap_or(max))),
            batch: spec.batch.map(|(size, wait)| BatchConfig {
                max_batch_size: clamp_u32(size),
                wait_ms: clamp_u32(wait),
            }),
            schedule: spec.schedule.clone(),
            named_secrets: spec
                .secrets
                .iter()
                .chain(app_secrets)
                .filter_map(NamedSecret::of)
                .collect(),
            args_type: origin.types.0.to_owned(),
            return_type: origin.types.1.to_owned(),
            is_class: spec.is_class,
            methods: spec.methods.clone(),
            generator_methods: spec.generator_methods.clone(),
            class_params: None,
            variant_of: String::new(),
            sealed_secret_env: None,
            app_in_code: origin.app.to_owned(),
            block_network: spec.block_network,
            restrict_modal_access: spec.restrict_modal_access,
            constraints: super::worker::Constraints {
                regions: spec.region.clone(),
                cloud: spec.cloud.clone().filter(|c| c != "auto"),
                nonpreemptible: spec.nonpreemptible,
            },
            volumes: Vec::new(),
            image: None,
        }
    }

    /// What is wrong with the definition, as the control plane checks what it is sent: the
    /// same rules as the macros and `FunctionSpec::validate` (an empty list when all is well).
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut check = |r: Result<(), String>| {
            if let Err(e) = r {
                out.push(e);
            }
        };
        if self.tag.is_empty() || self.binary_path.is_empty() || self.binary_hash.is_empty() {
            check(Err(
                "a definition needs a tag, a binary path and a binary hash".into(),
            ));
        }
        check(rules::check_timeout(u64::from(self.timeout_secs)));
        check(rules::check_startup_timeout(u64::from(
            self.startup_timeout_secs,
        )));
        check(rules::check_scaledown_window(u64::from(
            self.autoscaler.scaledown_window_secs,
        )));
        check(rules::check_container_counts(
            Some(u64::from(self.autoscaler.min_containers)),
            self.autoscaler.max_containers.map(u64::from),
        ));
        check(rules::check_concurrency(
            u64::from(self.max_concurrent_inputs.max(1)),
            Some(u64::from(self.target_concurrent_inputs.max(1))),
        ));
        if let Some(b) = self.batch {
            check(rules::check_batching(
                u64::from(b.max_batch_size),
                u64::from(b.wait_ms),
            ));
        }
        if let Some(r) = &self.retries {
            check(r.validate());
        }
        if let Some(s) = &self.schedule {
            check(s.validate());
        }
        out.extend(rules::check_volume_mounts(
            self.volumes
                .iter()
                .map(|m| (m.path.as_str(), m.name.as_str())),
        ));
        out
    }

    /// Inputs a container runs at once (at least one).
    pub(crate) fn concurrency(&self) -> usize {
        usize::try_from(self.max_concurrent_inputs.max(1)).unwrap_or(1)
    }

    /// Inputs the autoscaler plans per container: the batch size of a batched function, else
    /// `target_inputs` (or the maximum), never more than the maximum.
    pub(crate) fn planned_per_container(&self) -> usize {
        if let Some(b) = self.batch {
            return usize::try_from(b.max_batch_size.max(1)).unwrap_or(1);
        }
        let t = if self.target_concurrent_inputs == 0 {
            self.max_concurrent_inputs
        } else {
            self.target_concurrent_inputs
        };
        usize::try_from(t.max(1))
            .unwrap_or(1)
            .min(self.concurrency())
    }

    /// How long one attempt may run.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_secs))
    }

    /// How long a container may take to start, `enter` hooks included (at least a second).
    pub(crate) fn startup_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.startup_timeout_secs.max(1)))
    }

    /// Whether `method` is a generator (`""` for the function itself).
    pub(crate) fn is_generator(&self, method: &str) -> bool {
        self.generator_methods.iter().any(|m| m == method)
    }
}

/// Overrides of a function's options for a variant (`with_options`, `with_concurrency`,
/// `with_batching`); unset fields keep the function's.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FunctionOptions {
    pub(crate) timeout_secs: Option<u32>,
    pub(crate) scaledown_window_secs: Option<u32>,
    pub(crate) max_containers: Option<u32>,
    pub(crate) min_containers: Option<u32>,
    pub(crate) buffer_containers: Option<u32>,
    pub(crate) milli_cpu: Option<u32>,
    pub(crate) memory_mb: Option<u32>,
    /// Empty: the function's.
    pub(crate) gpu: Vec<GpuRequest>,
    pub(crate) retries: Option<Retries>,
    /// Added to the function's.
    pub(crate) env: BTreeMap<String, String>,
    /// With `secret_env`: when either is set, they replace the function's secrets (Modal's rule).
    pub(crate) named_secrets: Vec<NamedSecret>,
    pub(crate) secret_env: SecretValues,
    /// `secret_env` sealed by the control plane on arrival.
    pub(crate) sealed_secret_env: Option<SealedValues>,
    pub(crate) max_concurrent_inputs: Option<u32>,
    pub(crate) target_concurrent_inputs: Option<u32>,
    pub(crate) batch: Option<BatchConfig>,
}

impl FunctionOptions {
    fn replaces_secrets(&self) -> bool {
        !self.named_secrets.is_empty()
            || !self.secret_env.is_empty()
            || self.sealed_secret_env.is_some()
    }

    /// These overrides with `later`'s on top, field by field (a variant of a variant).
    pub(crate) fn then(mut self, later: FunctionOptions) -> FunctionOptions {
        let replace_secrets = later.replaces_secrets();
        macro_rules! take {
            ($($f:ident),*) => {$( if later.$f.is_some() { self.$f = later.$f; } )*};
        }
        take!(
            timeout_secs,
            scaledown_window_secs,
            max_containers,
            min_containers,
            buffer_containers,
            milli_cpu,
            memory_mb,
            retries,
            max_concurrent_inputs,
            target_concurrent_inputs,
            batch
        );
        if !later.gpu.is_empty() {
            self.gpu = later.gpu;
        }
        if replace_secrets {
            self.named_secrets = later.named_secrets;
            self.secret_env = later.secret_env;
            self.sealed_secret_env = later.sealed_secret_env;
        }
        self.env.extend(later.env);
        self
    }

    /// These overrides on top of `earlier` ones, when there are some.
    pub(crate) fn on_top_of(self, earlier: Option<FunctionOptions>) -> FunctionOptions {
        match earlier {
            Some(e) => e.then(self),
            None => self,
        }
    }

    /// Applies the overrides to a function's definition.
    pub(crate) fn apply(&self, d: &mut FunctionDef) {
        if let Some(t) = self.timeout_secs {
            d.timeout_secs = t;
            d.startup_timeout_secs = d.startup_timeout_secs.max(t);
        }
        let a = &mut d.autoscaler;
        if let Some(w) = self.scaledown_window_secs {
            a.scaledown_window_secs = w;
        }
        if let Some(m) = self.max_containers {
            a.max_containers = Some(m);
        }
        if let Some(m) = self.min_containers {
            a.min_containers = m;
        }
        if let Some(b) = self.buffer_containers {
            a.buffer_containers = b;
        }
        if let Some(c) = self.milli_cpu {
            d.resources.milli_cpu = c;
        }
        if let Some(m) = self.memory_mb {
            d.resources.memory_mb = m;
        }
        if !self.gpu.is_empty() {
            d.gpu.clone_from(&self.gpu);
        }
        if self.retries.is_some() {
            d.retries = self.retries;
        }
        d.env
            .extend(self.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        if self.replaces_secrets() {
            d.named_secrets.clone_from(&self.named_secrets);
            d.secret_env.clone_from(&self.secret_env);
            d.sealed_secret_env.clone_from(&self.sealed_secret_env);
        }
        if let Some(m) = self.max_concurrent_inputs {
            d.max_concurrent_inputs = m.max(1);
            d.target_concurrent_inputs = self
                .target_concurrent_inputs
                .unwrap_or(m)
                .clamp(1, m.max(1));
        }
        if self.batch.is_some() {
            d.batch = self.batch;
        }
    }
}

/// A type name without its module paths (`alloc::vec::Vec<app::Point>` → `Vec<Point>`), so
/// that two programs declaring the same types in different crates agree.
pub(crate) fn short_type_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut word = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
        } else {
            out.push_str(&word);
            word.clear();
            if !c.is_whitespace() {
                out.push(c);
            }
        }
    }
    out.push_str(&word);
    out
}

/// `v`, saturating at `u32::MAX`.
pub(crate) fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Thousandths of a core, at least 1.
pub(crate) fn cores_to_milli(cores: f64) -> u32 {
    let m = (cores * 1000.0).round();
    if m <= 0.0 {
        1
    } else if m >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        m as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> FunctionDef {
        FunctionDef::new(
            &FunctionSpec::new("f"),
            Origin {
                app: "app",
                implementation: "crate::f",
                binary_hash: "h",
                binary_path: "/bin/f",
                types: ("(i64,)", "i64"),
            },
            vec![("LOCAL".into(), "1".into())],
            &[],
        )
    }

    #[test]
    fn layered_overrides_keep_both_layers_and_the_later_wins() {
        let first = FunctionOptions {
            timeout_secs: Some(10),
            max_containers: Some(3),
            env: BTreeMap::from([("A".into(), "1".into())]),
            ..Default::default()
        };
        let second = FunctionOptions {
            timeout_secs: Some(20),
            env: BTreeMap::from([("B".into(), "2".into())]),
            ..Default::default()
        };
        let o = first.then(second);
        assert_eq!(o.timeout_secs, Some(20));
        assert_eq!(o.max_containers, Some(3));
        assert_eq!(o.env.len(), 2);
    }

    #[test]
    fn overrides_apply_to_a_definition() {
        let mut d = def();
        let o = FunctionOptions {
            timeout_secs: Some(900),
            min_containers: Some(2),
            max_concurrent_inputs: Some(8),
            target_concurrent_inputs: Some(20),
            named_secrets: vec![NamedSecret {
                name: "s".into(),
                environment: String::new(),
                required_keys: Vec::new(),
            }],
            ..Default::default()
        };
        o.apply(&mut d);
        assert_eq!(d.timeout_secs, 900);
        assert!(d.startup_timeout_secs >= 900, "startup covers the timeout");
        assert_eq!(d.autoscaler.min_containers, 2);
        assert_eq!(
            (d.max_concurrent_inputs, d.target_concurrent_inputs),
            (8, 8)
        );
        assert!(
            d.secret_env.is_empty(),
            "secrets given to a variant replace the function's"
        );
        assert_eq!(d.named_secrets.len(), 1);
    }

    #[test]
    fn type_names_lose_their_paths_and_spaces() {
        for (name, short) in [
            ("(i64,)", "(i64,)"),
            ("( i64 , )", "(i64,)"),
            ("alloc::string::String", "String"),
            ("alloc::vec::Vec<deploy_me::Point>", "Vec<Point>"),
            (
                "core::option::Option<(alloc::string::String, u8)>",
                "Option<(String,u8)>",
            ),
            ("modal::ByteBuf", "ByteBuf"),
        ] {
            assert_eq!(short_type_name(name), short, "{name}");
        }
    }

    #[test]
    fn planned_inputs_per_container() {
        let mut d = def();
        assert_eq!(d.planned_per_container(), 1);
        d.max_concurrent_inputs = 10;
        d.target_concurrent_inputs = 4;
        assert_eq!(d.planned_per_container(), 4);
        d.batch = Some(BatchConfig {
            max_batch_size: 16,
            wait_ms: 10,
        });
        assert_eq!(d.planned_per_container(), 16);
    }
}
