//! `modal volume create|list|ls|put|get|rm|delete`: volumes of a control plane, tables like
//! Modal's and `--json` for scripts.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use serde_json::json;

use super::admin::{client, confirm, size, table, time};
use super::args::VolumeCommand;
use crate::client::volumes::{Moved, Volumes};
use crate::error::Result;
use crate::model::volume::{self, EntryKind};

fn moved(m: Moved) -> String {
    let files = if m.files == 1 { "file" } else { "files" };
    format!("{} {files} ({})", m.files, size(m.bytes))
}

pub(super) async fn run(cmd: VolumeCommand) -> Result<()> {
    let client = client().await?;
    match cmd {
        VolumeCommand::Create { name, env } => {
            if Volumes::new(&client, &env).create(&name).await? {
                println!("Created volume {name}");
            } else {
                println!("Volume {name} exists already");
            }
        }
        VolumeCommand::List(c) => {
            let volumes = Volumes::new(&client, &c.env).list().await?;
            if c.json {
                let rows: Vec<_> = volumes
                    .iter()
                    .map(|v| {
                        json!({"name": v.name, "volume_id": v.volume_id, "environment": v.environment_name,
                               "created_at": time(v.created_at_ms), "version": v.version,
                               "committed_at": time(v.committed_at_ms), "files": v.files,
                               "bytes": v.bytes, "ephemeral_app_id": v.app_id})
                    })
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = volumes
                    .iter()
                    .map(|v| {
                        vec![
                            if v.app_id.is_empty() {
                                v.name.clone()
                            } else {
                                format!("{} (ephemeral, {})", v.name, v.app_id)
                            },
                            v.environment_name.clone(),
                            v.files.to_string(),
                            size(v.bytes),
                            format!("v{}", v.version),
                            time(v.created_at_ms),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &[
                            "Name",
                            "Environment",
                            "Files",
                            "Size",
                            "Version",
                            "Created at"
                        ],
                        rows
                    )
                );
            }
        }
        VolumeCommand::Ls { name, path, common } => {
            let dir = volume::normalize(&path).map_err(crate::error::Error::Invalid)?;
            let (_, _, entries) = Volumes::new(&client, &common.env).entries(&name).await?;
            let prefix = if dir.is_empty() {
                String::new()
            } else {
                format!("{dir}/")
            };
            let listed: Vec<_> = entries
                .iter()
                .filter(|e| e.path.starts_with(&prefix) && !e.path[prefix.len()..].contains('/'))
                .collect();
            let is_file = entries
                .iter()
                .any(|e| e.path == dir && e.kind != EntryKind::Directory);
            if listed.is_empty() && !dir.is_empty() && !entries.iter().any(|e| e.path == dir) {
                return Err(crate::error::Error::Invalid(format!(
                    "no `/{dir}` in volume `{name}`"
                )));
            }
            let listed: Vec<_> = if is_file {
                entries.iter().filter(|e| e.path == dir).collect()
            } else {
                listed
            };
            let kind = |k: EntryKind| match k {
                EntryKind::File => "file",
                EntryKind::Directory => "dir",
                EntryKind::Symlink => "link",
            };
            if common.json {
                let rows: Vec<_> = listed
                    .iter()
                    .map(|e| {
                        json!({"path": format!("/{}", e.path), "type": kind(e.kind), "size": e.size,
                               "modified": time(e.mtime_ms), "sha": e.hash})
                    })
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = listed
                    .iter()
                    .map(|e| {
                        vec![
                            format!("/{}", e.path),
                            kind(e.kind).to_owned(),
                            time(e.mtime_ms),
                            if e.kind == EntryKind::File {
                                size(e.size)
                            } else {
                                String::new()
                            },
                        ]
                    })
                    .collect();
                println!("{}", table(&["Filename", "Type", "Modified", "Size"], rows));
            }
        }
        VolumeCommand::Put {
            name,
            local_path,
            remote_path,
            force,
            env,
        } => {
            let file_name = local_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let remote = match remote_path {
                None => format!("/{file_name}"),
                Some(r) if r.ends_with('/') && local_path.is_file() => format!("{r}{file_name}"),
                Some(r) => r,
            };
            let m = Volumes::new(&client, &env)
                .put(&name, &local_path, &remote, force)
                .await?;
            println!("Uploaded {} to volume {name} at {remote}", moved(m));
        }
        VolumeCommand::Get {
            name,
            remote_path,
            local_destination,
            env,
        } => {
            let m = Volumes::new(&client, &env)
                .get(&name, &remote_path, &local_destination)
                .await?;
            if local_destination.as_os_str() != "-" {
                println!(
                    "Downloaded {} from volume {name} to {}",
                    moved(m),
                    local_destination.display()
                );
            }
        }
        VolumeCommand::Rm {
            name,
            remote_path,
            recursive,
            env,
        } => {
            Volumes::new(&client, &env)
                .remove(&name, &remote_path, recursive)
                .await?;
            println!("Removed {remote_path} from volume {name}");
        }
        VolumeCommand::Delete { name, yes, env } => {
            if !confirm(
                &format!("Delete volume {name} and every file in it? This cannot be undone."),
                yes,
            ) {
                println!("Not deleted.");
                return Ok(());
            }
            Volumes::new(&client, &env).delete(&name).await?;
            println!("Deleted volume {name}");
        }
    }
    Ok(())
}
