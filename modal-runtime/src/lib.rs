//! modal-rs: Modal's programming model for Rust, self-hosted.
//!
//! Annotate functions with `#[modal::function(app = APP, ...)]`; `cargo run` starts an
//! ephemeral app in which `.remote()`, `.spawn()` and `.map()` run the functions in containers
//! that execute this same binary. With no control plane configured (`MODAL_SERVER_URL`), one is
//! embedded in the program, with a local worker whose containers are OCI containers run by
//! `crun` (their own namespaces; `cpu`/`memory` limits, `ephemeral_disk`, `block_network` and
//! `restrict_modal_access` enforced) where the machine has it, and plain child processes
//! otherwise (`MODAL_RUNTIME=oci|process` chooses; see the README's "Containers").
//!
//! ```no_run
//! use modal::prelude::*;
//!
//! modal::app!(APP = App::new("hello"));
//!
//! #[modal::function(app = APP, retries = 2, timeout = 60)]
//! fn square(x: i64) -> i64 {
//!     x * x
//! }
//!
//! #[modal::local_entrypoint(app = APP)]
//! async fn main(n: i64) -> modal::Result<()> {
//!     let squares: Vec<i64> = square.map(0..n).try_collect().await?;
//!     println!("{}", squares.iter().sum::<i64>());
//!     Ok(())
//! }
//! ```
//!
//! The attribute is `#[modal::function(app = APP, ...)]` rather than Modal's `@app.function(...)`
//! because a Rust attribute is a path, not an expression: the app is named as a parameter.

mod alloc_tuning;
mod app;
mod binhash;
mod cli;
mod client;
mod codec;
mod container;
mod credentials;
mod embedded;
mod error;
pub mod gpu;
mod ids;
mod images;
mod model;
mod paths;
mod payloads;
mod registry;
mod server;
mod task_env;
mod telemetry;
mod wire;
mod worker;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use app::objects::SecretValue;
pub use app::{App, Cron, Image, IntoVolume, Period, Retries, Schedule, Secret, Volume};
/// Shared, immutable bytes: as a function's one argument or its result, a large one is read
/// without a copy (the payload's file, mapped in memory, stays mapped while the value lives).
///
/// ```no_run
/// use modal::prelude::*;
///
/// modal::app!(APP = App::new("checksums"));
///
/// #[modal::function(app = APP)]
/// fn checksum(data: modal::Bytes) -> u64 {
///     data.iter().map(|b| u64::from(*b)).sum()
/// }
///
/// #[modal::main]
/// async fn main() -> modal::Result<()> {
///     let _run = APP.run().await?;
///     let data = modal::Bytes::from(vec![1u8; 64 << 20]);
///     assert_eq!(checksum.remote(data).await?, 64 << 20);
///     Ok(())
/// }
/// ```
pub use bytes::Bytes;
pub use cli::args::CliArg;
pub use cli::main;
pub use client::{
    AppRef, AppRun, AutoscalerSettings, Cls, DeployBuilder, Deployment, ForEach, Function,
    FunctionCall, FunctionCurrentStats, GenStream, Generator, MapCall, Options, RunBuilder,
    Strategy,
};
pub use error::{Error, FailureKind, RemoteFailure, Result};
pub use modal_macros::{
    app, batched, cls, concurrent, enter, exit, function, local_entrypoint, main, method, methods,
    parameter,
};
pub use registry::Identity;
/// Bytes that serde encodes as one block (a `Vec<u8>` inside another type is encoded byte by
/// byte): use it for binary fields of your own types.
pub use serde_bytes::ByteBuf;

/// What most programs need: `use modal::prelude::*;`.
pub mod prelude {
    pub use crate::{App, Cron, FunctionCall, Image, Period, Retries, Secret, Volume};
    pub use futures::{StreamExt, TryStreamExt};
}
