//! Function definitions and option overrides as messages (with their retry policies, named
//! secrets, GPU requests and batching), and the stored encoding of a definition.

use std::time::Duration;

use super::{millis, pb, sorted, stored, unsorted, unstored};
use crate::app::{Retries, Schedule};
use crate::model::{
    Autoscaler, BatchConfig, FunctionDef, FunctionOptions, GpuRequest, NamedSecret, Resources,
    SealedValues,
};

impl From<&Retries> for pb::RetryPolicy {
    fn from(r: &Retries) -> Self {
        pb::RetryPolicy {
            max_retries: u32::try_from(r.max_retries).unwrap_or(0),
            backoff_coefficient: r.backoff_coefficient as f32,
            initial_delay_ms: millis(r.initial_delay),
            max_delay_ms: millis(r.max_delay),
        }
    }
}

impl From<pb::RetryPolicy> for Retries {
    fn from(p: pb::RetryPolicy) -> Self {
        Retries::new(i64::from(p.max_retries))
            .backoff_coefficient(f64::from(p.backoff_coefficient))
            .initial_delay(Duration::from_millis(u64::from(p.initial_delay_ms)))
            .max_delay(Duration::from_millis(u64::from(p.max_delay_ms)))
    }
}

impl From<&NamedSecret> for pb::NamedSecret {
    fn from(s: &NamedSecret) -> Self {
        pb::NamedSecret {
            name: s.name.clone(),
            environment_name: s.environment.clone(),
            required_keys: s.required_keys.clone(),
        }
    }
}

impl From<pb::NamedSecret> for NamedSecret {
    fn from(s: pb::NamedSecret) -> Self {
        NamedSecret {
            name: s.name,
            environment: s.environment_name,
            required_keys: s.required_keys,
        }
    }
}

fn gpu_to_pb(g: &[GpuRequest]) -> Vec<pb::GpuRequest> {
    g.iter()
        .map(|g| pb::GpuRequest {
            kind: g.kind.clone(),
            count: g.count,
        })
        .collect()
}

fn gpu_of(g: Vec<pb::GpuRequest>) -> Vec<GpuRequest> {
    g.into_iter()
        .map(|g| GpuRequest {
            kind: g.kind,
            count: g.count,
        })
        .collect()
}

fn batch_to_pb(b: BatchConfig) -> pb::BatchConfig {
    pb::BatchConfig {
        max_batch_size: b.max_batch_size,
        wait_ms: b.wait_ms,
    }
}

fn batch_of(b: pb::BatchConfig) -> BatchConfig {
    BatchConfig {
        max_batch_size: b.max_batch_size,
        wait_ms: b.wait_ms,
    }
}

impl From<&FunctionDef> for pb::FunctionDefinition {
    fn from(d: &FunctionDef) -> Self {
        let r = d.resources;
        let a = d.autoscaler;
        pb::FunctionDefinition {
            tag: d.tag.clone(),
            implementation: d.implementation.clone(),
            binary_hash: d.binary_hash.clone(),
            binary_path: d.binary_path.clone(),
            resources: Some(pb::Resources {
                milli_cpu: r.milli_cpu,
                milli_cpu_max: r.milli_cpu_max,
                memory_mb: r.memory_mb,
                memory_mb_max: r.memory_mb_max,
                ephemeral_disk_mb: r.ephemeral_disk_mb,
            }),
            gpu: gpu_to_pb(&d.gpu),
            retry_policy: d.retries.as_ref().map(Into::into),
            timeout_secs: d.timeout_secs,
            startup_timeout_secs: d.startup_timeout_secs,
            autoscaler: Some(pb::AutoscalerSettings {
                min_containers: a.min_containers,
                max_containers: a.max_containers,
                buffer_containers: a.buffer_containers,
                scaledown_window_secs: a.scaledown_window_secs,
            }),
            env: unsorted(&d.env),
            secret_env: unsorted(&d.secret_env),
            single_use_containers: d.single_use_containers,
            max_concurrent_inputs: d.max_concurrent_inputs,
            schedule: d.schedule.as_ref().map(super::schedule_to_pb),
            named_secrets: d.named_secrets.iter().map(Into::into).collect(),
            args_type: d.args_type.clone(),
            return_type: d.return_type.clone(),
            is_class: d.is_class,
            methods: d.methods.clone(),
            class_params: d.class_params.clone().map(Into::into),
            target_concurrent_inputs: d.target_concurrent_inputs,
            batch: d.batch.map(batch_to_pb),
            generator_methods: d.generator_methods.clone(),
            variant_of: d.variant_of.clone(),
            sealed_secret_env: d.sealed_secret_env.as_ref().map(sealed_to_pb),
            app_in_code: d.app_in_code.clone(),
            block_network: d.block_network,
            restrict_modal_access: d.restrict_modal_access,
            regions: d.constraints.regions.clone(),
            cloud: d.constraints.cloud.clone().unwrap_or_default(),
            nonpreemptible: d.constraints.nonpreemptible,
            volumes: d.volumes.iter().map(Into::into).collect(),
            image: d.image.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<pb::FunctionDefinition> for FunctionDef {
    type Error = String;

    fn try_from(d: pb::FunctionDefinition) -> Result<Self, String> {
        let schedule: Option<Schedule> = d
            .schedule
            .as_ref()
            .map(super::schedule_from_pb)
            .transpose()
            .map_err(|e| format!("function `{}`: {e}", d.tag))?;
        let r = d.resources.unwrap_or_default();
        let autoscaler = d
            .autoscaler
            .map_or_else(Autoscaler::default, |a| Autoscaler {
                min_containers: a.min_containers,
                max_containers: a.max_containers,
                buffer_containers: a.buffer_containers,
                scaledown_window_secs: a.scaledown_window_secs,
            });
        Ok(FunctionDef {
            tag: d.tag,
            implementation: d.implementation,
            binary_hash: d.binary_hash,
            binary_path: d.binary_path,
            resources: Resources {
                milli_cpu: r.milli_cpu,
                milli_cpu_max: r.milli_cpu_max,
                memory_mb: r.memory_mb,
                memory_mb_max: r.memory_mb_max,
                ephemeral_disk_mb: r.ephemeral_disk_mb,
            },
            gpu: gpu_of(d.gpu),
            retries: d.retry_policy.map(Into::into),
            timeout_secs: d.timeout_secs,
            startup_timeout_secs: d.startup_timeout_secs,
            autoscaler,
            env: sorted(d.env),
            secret_env: sorted(d.secret_env).into(),
            single_use_containers: d.single_use_containers,
            max_concurrent_inputs: d.max_concurrent_inputs,
            target_concurrent_inputs: d.target_concurrent_inputs,
            batch: d.batch.map(batch_of),
            schedule,
            named_secrets: d.named_secrets.into_iter().map(Into::into).collect(),
            args_type: d.args_type,
            return_type: d.return_type,
            is_class: d.is_class,
            methods: d.methods,
            generator_methods: d.generator_methods,
            class_params: d.class_params.map(Into::into),
            variant_of: d.variant_of,
            sealed_secret_env: d.sealed_secret_env.map(sealed_of),
            app_in_code: d.app_in_code,
            block_network: d.block_network,
            restrict_modal_access: d.restrict_modal_access,
            constraints: crate::model::Constraints {
                regions: d.regions,
                cloud: Some(d.cloud).filter(|c| !c.is_empty()),
                nonpreemptible: d.nonpreemptible,
            },
            volumes: d.volumes.into_iter().map(Into::into).collect(),
            image: d.image.map(Into::into),
        })
    }
}

impl From<&FunctionOptions> for pb::FunctionOptions {
    fn from(o: &FunctionOptions) -> Self {
        pb::FunctionOptions {
            timeout_secs: o.timeout_secs,
            scaledown_window_secs: o.scaledown_window_secs,
            max_containers: o.max_containers,
            min_containers: o.min_containers,
            buffer_containers: o.buffer_containers,
            milli_cpu: o.milli_cpu,
            memory_mb: o.memory_mb,
            gpu: gpu_to_pb(&o.gpu),
            retry_policy: o.retries.as_ref().map(Into::into),
            env: unsorted(&o.env),
            named_secrets: o.named_secrets.iter().map(Into::into).collect(),
            max_concurrent_inputs: o.max_concurrent_inputs,
            target_concurrent_inputs: o.target_concurrent_inputs,
            batch: o.batch.map(batch_to_pb),
            secret_env: unsorted(&o.secret_env),
            sealed_secret_env: o.sealed_secret_env.as_ref().map(sealed_to_pb),
        }
    }
}

impl From<pb::FunctionOptions> for FunctionOptions {
    fn from(o: pb::FunctionOptions) -> Self {
        FunctionOptions {
            timeout_secs: o.timeout_secs,
            scaledown_window_secs: o.scaledown_window_secs,
            max_containers: o.max_containers,
            min_containers: o.min_containers,
            buffer_containers: o.buffer_containers,
            milli_cpu: o.milli_cpu,
            memory_mb: o.memory_mb,
            gpu: gpu_of(o.gpu),
            retries: o.retry_policy.map(Into::into),
            env: sorted(o.env),
            named_secrets: o.named_secrets.into_iter().map(Into::into).collect(),
            secret_env: sorted(o.secret_env).into(),
            sealed_secret_env: o.sealed_secret_env.map(sealed_of),
            max_concurrent_inputs: o.max_concurrent_inputs,
            target_concurrent_inputs: o.target_concurrent_inputs,
            batch: o.batch.map(batch_of),
        }
    }
}

fn sealed_to_pb(s: &SealedValues) -> pb::SealedValues {
    pb::SealedValues {
        digest: s.digest.clone().into(),
        nonce: s.nonce.clone().into(),
        ciphertext: s.ciphertext.clone().into(),
    }
}

fn sealed_of(s: pb::SealedValues) -> SealedValues {
    SealedValues {
        digest: s.digest.into(),
        nonce: s.nonce.into(),
        ciphertext: s.ciphertext.into(),
    }
}

/// A function definition as the store keeps it (protobuf bytes).
pub(crate) fn encode_definition(d: &FunctionDef) -> Vec<u8> {
    stored(&pb::FunctionDefinition::from(d))
}

/// A function definition the store kept.
pub(crate) fn decode_definition(bytes: &[u8]) -> Result<FunctionDef, String> {
    unstored::<pb::FunctionDefinition>(bytes, "definition")?.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::FunctionSpec;
    use crate::model::function::Origin;

    #[test]
    fn a_definition_round_trips() {
        let mut spec = FunctionSpec::new("f");
        spec.retries = Some(Retries::fixed(3));
        spec.gpu = vec!["H100:2".into()];
        spec.schedule = Some(crate::app::Period::minutes(5).into());
        spec.env = vec![("A".into(), "1".into())];
        let def = FunctionDef::new(
            &spec,
            Origin {
                app: "app",
                implementation: "crate::f",
                binary_hash: "abc",
                binary_path: "/bin/x",
                types: ("(i64,)", "i64"),
            },
            vec![("S".into(), "v".into())],
            &[],
        );
        let back = decode_definition(&encode_definition(&def)).unwrap();
        assert_eq!(back, def);
    }
}
