//! The modal-rs wire protocol: generated protobuf messages and tonic services (never edited by hand).
//!
//! Only `modal-runtime`'s `wire` and `server::api` modules use these types; everything else sees
//! the runtime's own model types.

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// Version 1 of the protocol (`package modal.v1`).
pub mod v1 {
    tonic::include_proto!("modal.v1");
}
