//! What an app hands its control plane before it runs or deploys: every function's validated
//! definition, and (for a standalone control plane) this program's executable.

use tokio::io::AsyncReadExt;

use super::Client;
use crate::app::{App, support};
use crate::error::{Error, Result};
use crate::model::FunctionDef;
use crate::model::function::Origin;
use crate::registry::{self, FunctionRegistration};
use crate::wire::pb;

/// Every function of the app, validated and turned into its definition; all problems at once.
pub(crate) fn definitions(
    app: &'static App,
    interactive: bool,
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
    let hash = crate::binhash::current_exe_hash().map_err(Error::Invalid)?;
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
            binary_hash: hash,
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
    let mut file = tokio::fs::File::open(&exe)
        .await
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", exe.display())))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<pb::BinaryChunk>(4);
    let reader = tokio::spawn(async move {
        let mut first = true;
        loop {
            let mut buf = vec![0u8; crate::wire::BINARY_CHUNK];
            let n = match file.read(&mut buf).await {
                Ok(0) if !first => return Ok(()),
                Ok(n) => n,
                Err(e) => return Err(e.to_string()),
            };
            buf.truncate(n);
            let chunk = pb::BinaryChunk {
                hash: if first { hash.clone() } else { String::new() },
                data: buf.into(),
            };
            first = false;
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    });
    api.binary_upload(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?;
    reader
        .await
        .map_err(|e| Error::Invalid(format!("upload failed: {e}")))?
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", exe.display())))?;
    tracing::info!("uploaded {}", exe.display());
    Ok(())
}
