//! Durable state of a standalone control plane: the rows it keeps, the write operations the
//! event loop issues, and the `Store` trait with its implementations (in memory for the embedded
//! control plane; SQLite by default and PostgreSQL by URL for `modal server`).

mod memory;
#[cfg(feature = "server")]
mod sql;
#[cfg(feature = "server")]
mod sql_rows;
#[cfg(feature = "server")]
mod sql_volumes;

use std::future::Future;
use std::pin::Pin;

pub(crate) use memory::MemoryStore;

/// An app and its lifecycle. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) environment: String,
    /// The app state as its wire code (`wire::app_state_code`).
    pub(crate) state: i32,
    /// Tags as a JSON object of strings.
    pub(crate) tags_json: String,
    pub(crate) created_at: i64,
    pub(crate) stopped_at: Option<i64>,
    /// Latest deployment version (0 = never deployed).
    pub(crate) deployed_version: i64,
}

/// A function of an app, with its definition (its wire encoding, `wire::encode_definition`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionRow {
    pub(crate) id: String,
    pub(crate) app_id: String,
    pub(crate) tag: String,
    pub(crate) definition: Vec<u8>,
    /// The deployment version that last defined it (0 for ephemeral and detached apps).
    pub(crate) version: i64,
}

/// One entry of an app's deployment history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeploymentRow {
    pub(crate) app_id: String,
    pub(crate) version: i64,
    pub(crate) tag: String,
    pub(crate) deployed_at: i64,
    /// Who deployed: user and host of the client.
    pub(crate) client: String,
    /// `rolling` or `recreate`.
    pub(crate) strategy: String,
}

/// A named secret. Values are encrypted with the server's key; key names are kept in clear
/// (listings show names and key names only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRow {
    pub(crate) environment: String,
    pub(crate) name: String,
    /// Key names as a JSON array of strings.
    pub(crate) keys_json: String,
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
}

/// An API token: its id and the blake3 hash of its secret (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRow {
    pub(crate) id: String,
    pub(crate) secret_hash: String,
    pub(crate) label: String,
    pub(crate) created_at: i64,
}

/// A spawned call (one input): kept until its result expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallRow {
    pub(crate) id: String,
    pub(crate) function_id: String,
    pub(crate) app_id: String,
    /// For a class: the method called (empty for a function).
    pub(crate) method: String,
    /// The input in its wire encoding (`wire::encode_payload`).
    pub(crate) input: Vec<u8>,
    /// Attempts already started (for retries after a restart).
    pub(crate) attempt: i64,
    pub(crate) created_at: i64,
    /// The final result in its wire encoding (`wire::encode_result`).
    pub(crate) result: Option<Vec<u8>>,
    pub(crate) finished_at: Option<i64>,
}

/// When a scheduled function last fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScheduleRow {
    pub(crate) function_id: String,
    pub(crate) last_fire_ms: i64,
}

/// An uploaded executable, stored as a file named by its hash in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BinaryRow {
    pub(crate) hash: String,
    pub(crate) size: i64,
    pub(crate) uploaded_at: i64,
}

/// One line of an app's logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRow {
    pub(crate) app_id: String,
    pub(crate) timestamp_ms: i64,
    pub(crate) function_id: String,
    pub(crate) function_tag: String,
    pub(crate) task_id: String,
    pub(crate) input_id: String,
    /// The log source as its wire code (`wire::log_source_code`).
    pub(crate) source: i32,
    pub(crate) data: String,
}

/// A volume: its identity (its versions are rows of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeRow {
    pub(crate) id: String,
    pub(crate) environment: String,
    pub(crate) name: String,
    /// For an ephemeral volume: the app it belongs to; empty for a named volume.
    pub(crate) app_id: String,
    pub(crate) created_at: i64,
}

/// One version of a volume: its whole manifest (JSON array of entries), whose files are blobs
/// named by their digests in the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeVersionRow {
    pub(crate) volume_id: String,
    pub(crate) version: i64,
    pub(crate) manifest_json: String,
    pub(crate) committed_at: i64,
}

/// A write. The event loop batches them; a batch is applied in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    UpsertApp(AppRow),
    UpsertFunction(FunctionRow),
    InsertDeployment(DeploymentRow),
    UpsertSecret(SecretRow),
    DeleteSecret {
        environment: String,
        name: String,
    },
    InsertToken(TokenRow),
    UpsertCall(CallRow),
    /// Records a call's final result.
    FinishCall {
        id: String,
        result: Vec<u8>,
        finished_at: i64,
    },
    UpsertSchedule(ScheduleRow),
    InsertBinary(BinaryRow),
    AppendLogs(Vec<LogRow>),
    /// Forgets calls finished before the time (result retention).
    PruneCalls {
        finished_before: i64,
    },
    /// Forgets log lines written before the time.
    PruneLogs {
        before: i64,
    },
    UpsertVolume(VolumeRow),
    /// A volume's new latest version (older ones past the kept count are forgotten).
    InsertVolumeVersion(VolumeVersionRow),
    /// Forgets a volume and its versions.
    DeleteVolume {
        id: String,
    },
}

/// Everything the control plane reloads at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) apps: Vec<AppRow>,
    pub(crate) functions: Vec<FunctionRow>,
    pub(crate) deployments: Vec<DeploymentRow>,
    pub(crate) secrets: Vec<SecretRow>,
    pub(crate) tokens: Vec<TokenRow>,
    /// Unfinished calls, and finished ones not yet pruned.
    pub(crate) calls: Vec<CallRow>,
    pub(crate) schedules: Vec<ScheduleRow>,
    pub(crate) binaries: Vec<BinaryRow>,
    pub(crate) volumes: Vec<VolumeRow>,
    /// The latest version of each volume that has one.
    pub(crate) volume_heads: Vec<VolumeVersionRow>,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
// Only the SQL store (feature `server`) fails this way; the memory store never does.
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) enum StoreError {
    #[error("cannot open the store at {url}: {message}")]
    Open { url: String, message: String },
    #[error("store query failed: {0}")]
    Query(String),
    #[error("the store holds invalid data: {0}")]
    Corrupt(String),
}

pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where the control plane keeps what must survive a restart.
pub(crate) trait Store: Send + Sync {
    /// Everything needed to resume after a restart.
    fn load(&self) -> StoreFuture<'_, Snapshot>;
    /// Applies the writes in one transaction, in order.
    fn apply(&self, ops: Vec<Op>) -> StoreFuture<'_, ()>;
    /// The last `tail` log lines of an app, oldest first.
    fn logs(&self, app_id: &str, tail: usize) -> StoreFuture<'_, Vec<LogRow>>;
    /// A short description for messages ("sqlite:/var/lib/modal/state.db").
    fn describe(&self) -> String;
}

/// Opens the store at `url`: `postgres://…` or `postgresql://…` for PostgreSQL, otherwise
/// `sqlite:PATH` or a plain file path for SQLite (created if missing, WAL mode). The schema is
/// created or migrated on open.
#[cfg(feature = "server")]
pub(crate) async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    sql::open(url).await
}
