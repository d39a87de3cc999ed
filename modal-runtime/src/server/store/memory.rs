//! The embedded control plane's store: nothing to keep, since it ends with its program.

use super::{LogRow, Op, Snapshot, Store, StoreFuture};

/// A store that keeps nothing.
pub(crate) struct MemoryStore;

impl Store for MemoryStore {
    fn load(&self) -> StoreFuture<'_, Snapshot> {
        Box::pin(async { Ok(Snapshot::default()) })
    }

    fn apply(&self, _ops: Vec<Op>) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn logs(&self, _app_id: &str, _tail: usize) -> StoreFuture<'_, Vec<LogRow>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}
