//! `modal image list|rm`: the images a control plane built, and removing them with the layers
//! no other image uses.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use serde_json::json;

use super::admin::{client, size, table, time};
use super::args::ImageCommand;
use crate::error::Result;
use crate::wire::pb;

pub(super) async fn run(cmd: ImageCommand) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    match cmd {
        ImageCommand::List { json } => {
            let images = api
                .image_list(pb::ImageListRequest {})
                .await?
                .into_inner()
                .images;
            if json {
                let rows: Vec<_> = images
                    .iter()
                    .map(|i| {
                        json!({"image_id": i.image_id, "layers": i.layers.len(), "bytes": i.bytes,
                               "created_at": time(i.created_at_ms), "last_step": i.last_step})
                    })
                    .collect();
                println!("{}", json!(rows));
            } else {
                let rows = images
                    .iter()
                    .map(|i| {
                        vec![
                            i.image_id.clone(),
                            i.layers.len().to_string(),
                            size(i.bytes),
                            time(i.created_at_ms),
                            i.last_step.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    table(
                        &["Image ID", "Layers", "Size", "Created at", "Last step"],
                        rows
                    )
                );
            }
        }
        ImageCommand::Rm { image_ids, all } => {
            let removed = api
                .image_remove(pb::ImageRemoveRequest {
                    image_ids: if all { Vec::new() } else { image_ids },
                })
                .await?
                .into_inner();
            println!(
                "Removed {} image(s) and {} unused layer(s) ({})",
                removed.images,
                removed.layers,
                size(removed.bytes)
            );
        }
    }
    Ok(())
}
