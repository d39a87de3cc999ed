//! The modal-rs wire protocol: protobuf messages and tonic services generated from
//! `proto/modal/v1/api.proto` into `generated/` by `cargo xtask proto` (never edited by hand:
//! `cargo xtask tidy` fails when the file differs from what the `.proto` generates). Generating
//! ahead of time keeps protox and prost-build out of every build of a user's program.
//!
//! Only `modal-runtime`'s `wire` module names this crate; the runtime's roles see its own model
//! types and convert at their edges.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// Version 1 of the protocol (`package modal.v1`).
pub mod v1 {
    include!("../generated/modal.v1.rs");
}
