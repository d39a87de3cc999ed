//! `Options`: the overrides `with_options` gives a function or class variant, validated as the
//! same parameters of `#[modal::function]` are.

use crate::app::{Retries, Secret, rules};
use crate::error::{Error, Result};
use crate::model::function::{clamp_u32, cores_to_milli};
use crate::model::{BatchConfig, FunctionOptions, GpuRequest, NamedSecret};

/// Options of a variant; unset ones keep the function's. Secrets given here replace the
/// function's (Modal's rule).
///
/// ```
/// let o = modal::Options::new().cpu(2.0).memory(2048).gpu("A100:2").timeout(600).max_containers(4);
/// # let _ = o;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Options {
    cpu: Option<f64>,
    memory: Option<u64>,
    gpu: Option<String>,
    env: Vec<(String, String)>,
    secrets: Option<Vec<Secret>>,
    retries: Option<Retries>,
    timeout: Option<u64>,
    scaledown_window: Option<u64>,
    min_containers: Option<u64>,
    max_containers: Option<u64>,
    buffer_containers: Option<u64>,
    concurrency: Option<(u32, Option<u32>)>,
    batching: Option<(u32, u32)>,
}

macro_rules! setter {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.$name = Some(v);
            self
        }
    )*};
}

impl Options {
    /// No overrides.
    pub fn new() -> Self {
        Options::default()
    }

    setter!(
        /// CPU request, in cores.
        cpu: f64,
        /// Memory request, in MiB.
        memory: u64,
        /// Retry policy.
        retries: Retries,
        /// Per-attempt timeout, in seconds (1–86400).
        timeout: u64,
        /// Idle time before a container stops, in seconds (2–3600).
        scaledown_window: u64,
        /// Containers kept warm.
        min_containers: u64,
        /// Most containers at once.
        max_containers: u64,
        /// Extra idle containers under load.
        buffer_containers: u64
    );

    /// GPU request, as in `gpu = "…"`.
    pub fn gpu(mut self, gpu: impl Into<String>) -> Self {
        self.gpu = Some(gpu.into());
        self
    }

    /// Environment variables added to the function's.
    pub fn env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Secrets, replacing the function's.
    pub fn secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        self.secrets = Some(secrets.into_iter().collect());
        self
    }

    /// Up to `max_inputs` inputs at once per container (the autoscaler plans for `target_inputs`).
    pub fn concurrency(mut self, max_inputs: u32, target_inputs: Option<u32>) -> Self {
        self.concurrency = Some((max_inputs, target_inputs));
        self
    }

    /// Batches of up to `max_batch_size` inputs, waiting at most `wait_ms` for company.
    pub fn batching(mut self, max_batch_size: u32, wait_ms: u32) -> Self {
        self.batching = Some((max_batch_size, wait_ms));
        self
    }

    /// The overrides as sent, after the same checks `#[modal::function]` makes.
    pub(crate) fn overrides(&self) -> Result<FunctionOptions> {
        let invalid = |e: String| Error::Invalid(format!("with_options: {e}"));
        let mut o = FunctionOptions::default();
        if let Some(c) = self.cpu {
            rules::check_cpu(c, None).map_err(invalid)?;
            o.milli_cpu = Some(cores_to_milli(c));
        }
        if let Some(m) = self.memory {
            rules::check_memory(m, None).map_err(invalid)?;
            o.memory_mb = Some(clamp_u32(m));
        }
        if let Some(g) = &self.gpu {
            let rule = rules::parse_gpu(g).map_err(invalid)?;
            o.gpu = vec![GpuRequest {
                kind: rule.kind,
                count: rule.count,
            }];
        }
        if let Some(t) = self.timeout {
            rules::check_timeout(t).map_err(invalid)?;
            o.timeout_secs = Some(clamp_u32(t));
        }
        if let Some(w) = self.scaledown_window {
            rules::check_scaledown_window(w).map_err(invalid)?;
            o.scaledown_window_secs = Some(clamp_u32(w));
        }
        rules::check_container_counts(self.min_containers, self.max_containers).map_err(invalid)?;
        o.min_containers = self.min_containers.map(clamp_u32);
        o.max_containers = self.max_containers.map(clamp_u32);
        o.buffer_containers = self.buffer_containers.map(clamp_u32);
        if let Some(r) = &self.retries {
            r.validate().map_err(invalid)?;
            o.retries = Some(*r);
        }
        o.env = self.env.iter().cloned().collect();
        if let Some(secrets) = &self.secrets {
            for s in secrets {
                match NamedSecret::of(s) {
                    Some(named) => o.named_secrets.push(named),
                    None => o.secret_env.extend(s.resolve().map_err(invalid)?),
                }
            }
        }
        if let Some((max, target)) = self.concurrency {
            rules::check_concurrency(u64::from(max), target.map(u64::from)).map_err(invalid)?;
            o.max_concurrent_inputs = Some(max);
            o.target_concurrent_inputs = target;
        }
        if let Some((size, wait)) = self.batching {
            rules::check_batching(u64::from(size), u64::from(wait)).map_err(invalid)?;
            o.batch = Some(BatchConfig {
                max_batch_size: size,
                wait_ms: wait,
            });
        }
        Ok(o)
    }
}
