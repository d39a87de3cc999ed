//! The image requests of the client API: builds on this machine (off the async threads, their
//! output streamed back line by line), the files images copy in, listing and removing images.
//! Users only: a container builds nothing.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, BoxStream, Images};
use crate::images::build::{self, BuildFailure, Files};
use crate::images::store::ImageRecord;
use crate::model::image::ImageSpec;
use crate::server::binaries::Binaries;
use crate::wire::pb;

/// A built image, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageSummary {
    pub(crate) image_id: String,
    pub(crate) layers: Vec<String>,
    pub(crate) bytes: u64,
    pub(crate) created_at_ms: i64,
    pub(crate) last_step: String,
}

impl Files for Binaries {
    fn path(&self, hash: &str) -> Option<std::path::PathBuf> {
        Binaries::path(self, hash).ok().filter(|p| p.is_file())
    }
}

fn failed(f: BuildFailure) -> pb::ImageBuildEvent {
    pb::ImageBuildEvent {
        event: Some(pb::image_build_event::Event::Failed(
            pb::ImageBuildFailure {
                step: f.step,
                message: f.message,
                output: f.output,
            },
        )),
    }
}

fn line(text: String) -> pb::ImageBuildEvent {
    pb::ImageBuildEvent {
        event: Some(pb::image_build_event::Event::Line(text)),
    }
}

impl Api {
    fn images(&self) -> Result<&Images, Status> {
        self.images.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this control plane cannot build images: its image directory could not be made (see its log)",
            )
        })
    }

    pub(super) async fn image_build(
        &self,
        req: Request<pb::ImageBuildRequest>,
    ) -> Result<Response<BoxStream<pb::ImageBuildEvent>>, Status> {
        self.user(&req)?;
        let req = req.into_inner();
        let spec =
            ImageSpec::try_from(req.image.unwrap_or_default()).map_err(Status::invalid_argument)?;
        let images = self.images()?.clone();
        let force = req.force_build;
        let (tx, rx) = mpsc::channel::<Result<pb::ImageBuildEvent, Status>>(256);
        tokio::task::spawn_blocking(move || {
            let mut out = |text: String| {
                let _ = tx.blocking_send(Ok(line(text)));
            };
            let built = build::build(&images.store, &spec, &images.files, force, &mut out);
            let last = match built {
                Ok(image) => {
                    let record = ImageRecord {
                        image: image.clone(),
                        created_ms: chrono::Utc::now().timestamp_millis(),
                        last_step: spec.steps.last().map(build::describe).unwrap_or_default(),
                    };
                    if let Err(e) = images.store.record(&record) {
                        tracing::warn!("{e}");
                    }
                    pb::ImageBuildEvent {
                        event: Some(pb::image_build_event::Event::Built((&image).into())),
                    }
                }
                Err(f) => failed(f),
            };
            let _ = tx.blocking_send(Ok(last));
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    pub(super) async fn image_file_check(
        &self,
        req: Request<pb::VolumeBlobCheckRequest>,
    ) -> Result<Response<pb::VolumeBlobCheckResponse>, Status> {
        self.user(&req)?;
        let missing = self.images()?.files.missing(req.into_inner().hashes)?;
        Ok(Response::new(pb::VolumeBlobCheckResponse { missing }))
    }

    pub(super) async fn image_file_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::Empty>, Status> {
        self.user(&req)?;
        self.images()?.files.receive(req.into_inner()).await?;
        Ok(Response::new(pb::Empty {}))
    }

    /// The images this control plane built, each with its layers' size.
    pub(crate) async fn image_summaries(&self) -> Result<Vec<ImageSummary>, Status> {
        let store = self.images()?.store.clone();
        tokio::task::spawn_blocking(move || {
            let bytes: std::collections::HashMap<String, u64> = store
                .list()
                .into_iter()
                .map(|(digest, meta)| (digest, meta.bytes))
                .collect();
            store
                .images()
                .into_iter()
                .map(|r| ImageSummary {
                    bytes: r.image.layers.iter().filter_map(|d| bytes.get(d)).sum(),
                    image_id: r.image.image_id,
                    layers: r.image.layers,
                    created_at_ms: r.created_ms,
                    last_step: r.last_step,
                })
                .collect()
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))
    }

    pub(super) async fn image_list(
        &self,
        req: Request<pb::ImageListRequest>,
    ) -> Result<Response<pb::ImageListResponse>, Status> {
        self.user(&req)?;
        let images = self
            .image_summaries()
            .await?
            .into_iter()
            .map(|i| pb::ImageSummary {
                bytes: i.bytes,
                image_id: i.image_id,
                layers: i.layers,
                created_at_ms: i.created_at_ms,
                last_step: i.last_step,
            })
            .collect();
        Ok(Response::new(pb::ImageListResponse { images }))
    }

    pub(super) async fn image_remove(
        &self,
        req: Request<pb::ImageRemoveRequest>,
    ) -> Result<Response<pb::ImageRemoveResponse>, Status> {
        self.user(&req)?;
        let store = self.images()?.store.clone();
        let ids = req.into_inner().image_ids;
        let removed = tokio::task::spawn_blocking(move || store.remove_images(&ids))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(Status::not_found)?;
        Ok(Response::new(pb::ImageRemoveResponse {
            images: removed.images,
            layers: removed.layers,
            bytes: removed.bytes,
        }))
    }
}
