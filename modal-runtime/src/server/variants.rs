//! Variants: a class with parameter values, or a function or class with `with_options`,
//! `with_concurrency` or `with_batching`. Each is a function of its own (its own pool of
//! containers) derived from its base, and re-derived when the base is redeployed.

use prost::Message;
use tonic::Status;

use super::auth::Principal;
use super::state::{FunctionRec, State, Variant};
use crate::ids::new_id;
use crate::wire::pb;

/// The base definition with the variant's parameters and overrides applied.
fn derive(base_id: &str, base: &pb::FunctionDefinition, v: &Variant) -> pb::FunctionDefinition {
    let mut d = base.clone();
    d.class_params = v.params.clone();
    d.schedule = None;
    d.variant_of = base_id.to_owned();
    let Some(o) = &v.options else { return d };
    if let Some(t) = o.timeout_secs {
        d.timeout_secs = t;
        d.startup_timeout_secs = d.startup_timeout_secs.max(t);
    }
    let a = d.autoscaler.get_or_insert_with(Default::default);
    if let Some(w) = o.scaledown_window_secs {
        a.scaledown_window_secs = w;
    }
    if let Some(m) = o.max_containers {
        a.max_containers = Some(m);
    }
    if let Some(m) = o.min_containers {
        a.min_containers = m;
    }
    if let Some(b) = o.buffer_containers {
        a.buffer_containers = b;
    }
    let r = d.resources.get_or_insert_with(Default::default);
    if let Some(c) = o.milli_cpu {
        r.milli_cpu = c;
    }
    if let Some(m) = o.memory_mb {
        r.memory_mb = m;
    }
    if !o.gpu.is_empty() {
        d.gpu.clone_from(&o.gpu);
    }
    if o.retry_policy.is_some() {
        d.retry_policy = o.retry_policy;
    }
    d.env
        .extend(o.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Secrets given to a variant replace the function's (Modal's rule).
    if !o.named_secrets.is_empty() || !o.secret_env.is_empty() {
        d.named_secrets.clone_from(&o.named_secrets);
        d.secret_env.clone_from(&o.secret_env);
    }
    if let Some(m) = o.max_concurrent_inputs {
        d.max_concurrent_inputs = m.max(1);
        d.target_concurrent_inputs = o.target_concurrent_inputs.unwrap_or(m).clamp(1, m.max(1));
    }
    if o.batch.is_some() {
        d.batch = o.batch;
    }
    d
}

impl State {
    pub(super) fn function_bind(
        &mut self,
        req: pb::FunctionBindRequest,
        principal: &Principal,
    ) -> Result<String, Status> {
        let base = self
            .functions
            .get(&req.function_id)
            .ok_or_else(|| Status::not_found(format!("function {} not found", req.function_id)))?;
        principal.require_app(&base.app_id)?;
        if base.variant.is_some() {
            return Err(Status::invalid_argument(
                "bind the function or class itself, not one of its variants",
            ));
        }
        if let Some(o) = &req.options {
            if let Some(b) = &o.batch {
                crate::app::rules::check_batching(
                    u64::from(b.max_batch_size),
                    u64::from(b.wait_ms),
                )
                .map_err(Status::invalid_argument)?;
            }
            if let Some(m) = o.max_concurrent_inputs {
                crate::app::rules::check_concurrency(
                    u64::from(m),
                    o.target_concurrent_inputs.map(u64::from),
                )
                .map_err(Status::invalid_argument)?;
            }
        }
        let mut key = req
            .params
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default();
        key.extend(
            req.options
                .as_ref()
                .map(Message::encode_to_vec)
                .unwrap_or_default(),
        );
        let cache_key = (req.function_id.clone(), key);
        if let Some(id) = self.variants.get(&cache_key) {
            return Ok(id.clone());
        }
        let variant = Variant {
            base: req.function_id.clone(),
            params: req.params,
            options: req.options,
        };
        let def = derive(&req.function_id, &base.def, &variant);
        let mut rec = FunctionRec::new(base.app_id.clone(), def, base.version);
        rec.variant = Some(variant);
        let id = new_id("fu-");
        self.functions.insert(id.clone(), rec);
        self.variants.insert(cache_key, id.clone());
        self.save_function(&id);
        Ok(id)
    }

    /// After a redeploy of `base_id`: its variants follow the new definition and version.
    pub(super) fn refresh_variants(&mut self, base_id: &str) {
        let Some(base) = self.functions.get(base_id) else {
            return;
        };
        let (def, version) = (base.def.clone(), base.version);
        let ids: Vec<String> = self
            .functions
            .iter()
            .filter(|(_, f)| f.variant.as_ref().is_some_and(|v| v.base == base_id))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(f) = self.functions.get_mut(&id)
                && let Some(v) = &f.variant
            {
                f.def = derive(base_id, &def, v);
                f.version = version;
            }
            self.save_function(&id);
            self.dirty.insert(id);
        }
    }
}
