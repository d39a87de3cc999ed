//! Variants: a class with parameter values, or a function or class with `with_options`,
//! `with_concurrency` or `with_batching`. Each is a function of its own (its own pool of
//! containers) derived from its base, and re-derived when the base is redeployed.

use tonic::Status;

use super::auth::Principal;
use super::state::{FunctionRec, State, Variant};
use crate::app::rules;
use crate::ids::new_id;
use crate::model::{FunctionDef, FunctionOptions, Payload};

/// The base definition with the variant's parameters and overrides applied.
fn derive(base_id: &str, base: &FunctionDef, v: &Variant) -> FunctionDef {
    let mut d = base.clone();
    d.class_params.clone_from(&v.params);
    d.schedule = None;
    d.variant_of = base_id.to_owned();
    if let Some(o) = &v.options {
        o.apply(&mut d);
    }
    d
}

fn check_options(o: &FunctionOptions) -> Result<(), Status> {
    if let Some(b) = &o.batch {
        rules::check_batching(u64::from(b.max_batch_size), u64::from(b.wait_ms))
            .map_err(Status::invalid_argument)?;
    }
    if let Some(m) = o.max_concurrent_inputs {
        rules::check_concurrency(u64::from(m), o.target_concurrent_inputs.map(u64::from))
            .map_err(Status::invalid_argument)?;
    }
    Ok(())
}

impl State {
    /// The function id of a variant of `function_id`: an existing one with the same parameters
    /// and options, or a new one.
    pub(crate) fn function_bind(
        &mut self,
        function_id: &str,
        params: Option<Payload>,
        options: Option<FunctionOptions>,
        principal: &Principal,
    ) -> Result<String, Status> {
        let base = self
            .functions
            .get(function_id)
            .ok_or_else(|| Status::not_found(format!("function {function_id} not found")))?;
        principal.require_app(&base.app_id)?;
        if base.variant.is_some() {
            return Err(Status::invalid_argument(
                "bind the function or class itself, not one of its variants",
            ));
        }
        if let Some(o) = &options {
            check_options(o)?;
        }
        let options = options.map(|o| self.seal_options(o)).transpose()?;
        let variant = Variant {
            base: function_id.to_owned(),
            params,
            options,
        };
        if let Some((_, id)) = self.variants.iter().find(|(v, _)| *v == variant) {
            return Ok(id.clone());
        }
        let def = derive(function_id, &base.def, &variant);
        let mut rec = FunctionRec::new(base.app_id.clone(), def, base.version, self.clock.unix_ms);
        rec.variant = Some(variant.clone());
        let id = new_id("fu-");
        self.functions.insert(id.clone(), rec);
        self.variants.push((variant, id.clone()));
        self.save_function(&id);
        Ok(id)
    }

    /// After a redeploy of `base_id`: its variants follow the new definition and version.
    pub(crate) fn refresh_variants(&mut self, base_id: &str) {
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
