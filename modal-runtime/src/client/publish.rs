//! What an app hands its control plane before it runs or deploys: every function's validated
//! definition, and (for a standalone control plane) this program's executable.

use super::Client;
use crate::app::{App, FunctionSpec, Volume, rules, support};
use crate::error::{Error, Result};
use crate::model::FunctionDef;
use crate::model::function::Origin;
use crate::model::volume::VolumeMount;
use crate::registry::{self, FunctionRegistration};
use crate::wire::pb;

/// Every function of the app, validated and turned into its definition; all problems at once.
/// `binary_hash`: the executable's digest (empty: filled in once known, before publishing).
pub(crate) fn definitions(
    app: &'static App,
    interactive: bool,
    binary_hash: &str,
) -> Result<Vec<(&'static FunctionRegistration, FunctionDef)>> {
    let mut errors: Vec<String> = app.config_errors().to_vec();
    if interactive {
        errors.push(format!(
            "`interactive` is not supported by {}",
            support::NOT_YET
        ));
    }
    let functions = registry::functions_of(app).map_err(|e| Error::InvalidApp {
        app: app.name().to_owned(),
        errors: vec![e.to_string()],
    })?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find this program's executable: {e}")))?;
    let mut app_secret_env = Vec::new();
    for s in &app.secrets {
        match s.resolve() {
            Ok(kv) => app_secret_env.extend(kv),
            Err(e) => errors.push(e),
        }
    }
    let mut out = Vec::new();
    for reg in functions {
        let mut spec = (reg.spec)();
        // The container finds the function by this identity: the same function computes it.
        let identity = registry::identity(app, reg);
        let tag = identity.tag;
        spec.tag.clone_from(&tag);
        errors.extend(
            spec.validate()
                .into_iter()
                .map(|e| format!("function `{tag}`: {e}")),
        );
        errors.extend(support::unsupported(app, &spec));
        let volumes = declared_volumes(app, &spec);
        errors.extend(
            rules::check_volume_mounts(volumes.iter().map(|(p, v)| (p.as_str(), v.name())))
                .into_iter()
                .map(|e| format!("function `{tag}`: {e}")),
        );
        let mut secret_env = app_secret_env.clone();
        for s in &spec.secrets {
            match s.resolve() {
                Ok(kv) => secret_env.extend(kv),
                Err(e) => errors.push(format!("function `{tag}`: {e}")),
            }
        }
        let origin = Origin {
            app: &identity.app,
            implementation: reg.implementation,
            binary_hash,
            binary_path: &exe.to_string_lossy(),
            types: (reg.types)(),
        };
        let def = FunctionDef::new(&spec, origin, secret_env, &app.secrets);
        out.push((reg, def));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::InvalidApp {
            app: app.name().to_owned(),
            errors,
        })
    }
}

/// The volumes a function mounts: the app's, then its own (its own win at the same path).
fn declared_volumes(app: &App, spec: &FunctionSpec) -> Vec<(String, Volume)> {
    let mut out: Vec<(String, Volume)> = Vec::new();
    for (path, volume) in app.volumes.iter().chain(&spec.volumes) {
        out.retain(|(p, _)| p != path);
        out.push((path.clone(), volume.clone()));
    }
    out
}

/// Looks up (or creates) every volume the functions mount, and gives each definition its
/// mounts by volume id. `ephemeral_app`: the app of this run (none for a deploy, which cannot
/// have ephemeral volumes).
pub(crate) async fn resolve_volumes(
    client: &Client,
    app: &App,
    definitions: &mut [(&'static FunctionRegistration, FunctionDef)],
    environment_name: &str,
    ephemeral_app: Option<&str>,
) -> Result<()> {
    let mut api = client.api.clone();
    let mut ids: std::collections::HashMap<(String, bool), String> =
        std::collections::HashMap::new();
    for (reg, def) in definitions.iter_mut() {
        let spec = (reg.spec)();
        for (path, volume) in declared_volumes(app, &spec) {
            let key = (volume.name().to_owned(), volume.is_ephemeral());
            let volume_id = match ids.get(&key) {
                Some(id) => id.clone(),
                None => {
                    let app_id = match (volume.is_ephemeral(), ephemeral_app) {
                        (false, _) => String::new(),
                        (true, Some(app_id)) => app_id.to_owned(),
                        (true, None) => {
                            return Err(Error::Invalid(format!(
                                "function `{}`: ephemeral volume `{}` cannot belong to a deployed app (it lasts one run); use Volume::from_name(..).create_if_missing(true)",
                                def.tag,
                                volume.name()
                            )));
                        }
                    };
                    let id = api
                        .volume_get_or_create(pb::VolumeGetOrCreateRequest {
                            volume: Some(pb::VolumeRef {
                                name: volume.name().to_owned(),
                                environment_name: environment_name.to_owned(),
                                volume_id: String::new(),
                            }),
                            create_if_missing: volume.creates_if_missing(),
                            ephemeral_app_id: app_id,
                        })
                        .await
                        .map_err(|status| {
                            Error::Invalid(format!(
                                "function `{}` mounts volume `{}` at {path}: {}",
                                def.tag,
                                volume.name(),
                                status.message()
                            ))
                        })?
                        .into_inner()
                        .volume_id;
                    ids.insert(key, id.clone());
                    id
                }
            };
            def.volumes.push(VolumeMount {
                path,
                volume_id,
                name: volume.name().to_owned(),
            });
        }
    }
    Ok(())
}

/// Uploads this program's executable unless the control plane has it (content-addressed).
pub(crate) async fn upload_binary(client: &Client) -> Result<()> {
    if client.embedded {
        return Ok(());
    }
    let hash = crate::binhash::current_exe_hash()
        .map_err(Error::Invalid)?
        .to_owned();
    let mut api = client.api.clone();
    if api
        .binary_check(pb::BinaryCheckRequest { hash: hash.clone() })
        .await?
        .into_inner()
        .present
    {
        return Ok(());
    }
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("cannot find this program's executable: {e}")))?;
    let (chunks, check) = crate::wire::open_upload(&exe, &hash).await?;
    check.result(api.binary_upload(chunks).await)?;
    tracing::info!("uploaded {}", exe.display());
    Ok(())
}
