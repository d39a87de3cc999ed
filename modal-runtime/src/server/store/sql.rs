//! The SQL stores of `modal server`: SQLite (a file, the default) and PostgreSQL (by URL). One
//! implementation over sqlx's `Any` driver, whose `$N` placeholders both databases accept; only
//! the schema's column types and the connection set-up differ by dialect.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Any, AnyPool, Connection as _, Executor as _, Transaction};

use super::sql_rows::get;
use super::{
    AppRow, BinaryRow, CallRow, DeploymentRow, FunctionRow, LogRow, Op, ScheduleRow, SecretRow,
    Snapshot, Store, StoreError, StoreFuture, TokenRow,
};

/// The schema this program writes. Raise it with a migration in `SqlStore::create_schema`.
const SCHEMA_VERSION: i64 = 2;
/// Key of the PostgreSQL advisory lock that serializes schema creation between servers.
const SCHEMA_LOCK_KEY: i64 = 0x6d6f_6461_6c73_7172; // "modalsqr"
/// Log lines per multi-row INSERT (8 parameters each; both databases allow far more).
const LOG_ROWS_PER_INSERT: usize = 100;
/// Columns of an inserted log line.
const LOG_COLUMNS: usize = 8;
/// How long a SQLite connection waits for another writer's lock.
const SQLITE_BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";
/// Connections of a SQLite store (WAL: readers run beside the one writer).
const SQLITE_CONNECTIONS: u32 = 4;
/// Connections of a PostgreSQL store.
const POSTGRES_CONNECTIONS: u32 = 8;
/// How long to wait for a free connection (or for the server, at open).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens the SQLite or PostgreSQL store at `url` (see `super::open`).
pub(super) async fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    Ok(Box::new(SqlStore::open(url).await?))
}

/// Which SQL the database speaks where the two differ (column types, locking).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Text compared bytewise, so that `ORDER BY` agrees between databases (and with Rust's `Ord`).
    fn text(self) -> &'static str {
        match self {
            Dialect::Sqlite => "TEXT",
            Dialect::Postgres => "TEXT COLLATE \"C\"",
        }
    }

    fn blob(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BLOB",
            Dialect::Postgres => "BYTEA",
        }
    }

    /// An increasing row number that is never reused.
    fn sequence_key(self) -> &'static str {
        match self {
            Dialect::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
            Dialect::Postgres => "BIGSERIAL PRIMARY KEY",
        }
    }
}

/// The schema, as idempotent statements.
fn schema(d: Dialect) -> Vec<String> {
    let (t, b, seq) = (d.text(), d.blob(), d.sequence_key());
    vec![
        "CREATE TABLE IF NOT EXISTS schema_version (\
         id INTEGER NOT NULL PRIMARY KEY, version BIGINT NOT NULL)"
            .into(),
        format!(
            "CREATE TABLE IF NOT EXISTS apps (id {t} NOT NULL PRIMARY KEY, name {t} NOT NULL, \
             environment {t} NOT NULL, state INTEGER NOT NULL, tags_json {t} NOT NULL, \
             created_at BIGINT NOT NULL, stopped_at BIGINT, deployed_version BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS functions (id {t} NOT NULL PRIMARY KEY, \
             app_id {t} NOT NULL, tag {t} NOT NULL, definition {b} NOT NULL, \
             version BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS deployments (app_id {t} NOT NULL, \
             version BIGINT NOT NULL, tag {t} NOT NULL, deployed_at BIGINT NOT NULL, \
             client {t} NOT NULL, strategy {t} NOT NULL, PRIMARY KEY (app_id, version))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS secrets (environment {t} NOT NULL, name {t} NOT NULL, \
             keys_json {t} NOT NULL, nonce {b} NOT NULL, ciphertext {b} NOT NULL, \
             created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
             PRIMARY KEY (environment, name))"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS tokens (id {t} NOT NULL PRIMARY KEY, \
             secret_hash {t} NOT NULL, label {t} NOT NULL, created_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS calls (id {t} NOT NULL PRIMARY KEY, \
             function_id {t} NOT NULL, app_id {t} NOT NULL, input {b} NOT NULL, \
             attempt BIGINT NOT NULL, created_at BIGINT NOT NULL, result {b}, \
             finished_at BIGINT, method {t} NOT NULL DEFAULT '')"
        ),
        "CREATE INDEX IF NOT EXISTS calls_by_finish ON calls (finished_at)".into(),
        format!(
            "CREATE TABLE IF NOT EXISTS schedules (function_id {t} NOT NULL PRIMARY KEY, \
             last_fire_ms BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS binaries (hash {t} NOT NULL PRIMARY KEY, \
             size BIGINT NOT NULL, uploaded_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS logs (seq {seq}, app_id {t} NOT NULL, \
             timestamp_ms BIGINT NOT NULL, function_id {t} NOT NULL, function_tag {t} NOT NULL, \
             task_id {t} NOT NULL, input_id {t} NOT NULL, source INTEGER NOT NULL, \
             data {t} NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS logs_by_app ON logs (app_id, seq)".into(),
        "CREATE INDEX IF NOT EXISTS logs_by_time ON logs (timestamp_ms)".into(),
    ]
    .into_iter()
    .chain(super::sql_volumes::schema(t))
    .collect()
}

// Upserts replace the whole row, so that replaying a batch (or re-sending a row) is harmless.
const UPSERT_APP: &str = "INSERT INTO apps (id, name, environment, state, tags_json, \
     created_at, stopped_at, deployed_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET name = excluded.name, environment = excluded.environment, \
     state = excluded.state, tags_json = excluded.tags_json, created_at = excluded.created_at, \
     stopped_at = excluded.stopped_at, deployed_version = excluded.deployed_version";
const UPSERT_FUNCTION: &str = "INSERT INTO functions (id, app_id, tag, definition, version) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET app_id = excluded.app_id, \
     tag = excluded.tag, definition = excluded.definition, version = excluded.version";
const UPSERT_DEPLOYMENT: &str = "INSERT INTO deployments (app_id, version, tag, deployed_at, \
     client, strategy) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_id, version) DO UPDATE \
     SET tag = excluded.tag, deployed_at = excluded.deployed_at, client = excluded.client, \
     strategy = excluded.strategy";
const UPSERT_SECRET: &str = "INSERT INTO secrets (environment, name, keys_json, nonce, \
     ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (environment, name) DO UPDATE SET keys_json = excluded.keys_json, \
     nonce = excluded.nonce, ciphertext = excluded.ciphertext, created_at = excluded.created_at, \
     updated_at = excluded.updated_at";
const DELETE_SECRET: &str = "DELETE FROM secrets WHERE environment = $1 AND name = $2";
const UPSERT_TOKEN: &str = "INSERT INTO tokens (id, secret_hash, label, created_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, \
     label = excluded.label, created_at = excluded.created_at";
const UPSERT_CALL: &str = "INSERT INTO calls (id, function_id, app_id, input, attempt, \
     created_at, result, finished_at, method) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
     ON CONFLICT (id) DO UPDATE SET function_id = excluded.function_id, \
     app_id = excluded.app_id, input = excluded.input, attempt = excluded.attempt, \
     created_at = excluded.created_at, result = excluded.result, \
     finished_at = excluded.finished_at, method = excluded.method";
const FINISH_CALL: &str = "UPDATE calls SET result = $1, finished_at = $2 WHERE id = $3";
const UPSERT_SCHEDULE: &str = "INSERT INTO schedules (function_id, last_fire_ms) \
     VALUES ($1, $2) ON CONFLICT (function_id) DO UPDATE SET last_fire_ms = excluded.last_fire_ms";
const UPSERT_BINARY: &str = "INSERT INTO binaries (hash, size, uploaded_at) VALUES ($1, $2, $3) \
     ON CONFLICT (hash) DO UPDATE SET size = excluded.size, uploaded_at = excluded.uploaded_at";
const PRUNE_CALLS: &str = "DELETE FROM calls WHERE finished_at IS NOT NULL AND finished_at < $1";
const PRUNE_LOGS: &str = "DELETE FROM logs WHERE timestamp_ms < $1";
const INSERT_LOGS: &str = "INSERT INTO logs (app_id, timestamp_ms, function_id, function_tag, \
     task_id, input_id, source, data) VALUES ";

const SELECT_APPS: &str = "SELECT id, name, environment, state, tags_json, created_at, \
     stopped_at, deployed_version FROM apps ORDER BY id";
const SELECT_FUNCTIONS: &str =
    "SELECT id, app_id, tag, definition, version FROM functions ORDER BY id";
const SELECT_DEPLOYMENTS: &str = "SELECT app_id, version, tag, deployed_at, client, strategy \
     FROM deployments ORDER BY app_id, version";
const SELECT_SECRETS: &str = "SELECT environment, name, keys_json, nonce, ciphertext, \
     created_at, updated_at FROM secrets ORDER BY environment, name";
const SELECT_TOKENS: &str = "SELECT id, secret_hash, label, created_at FROM tokens ORDER BY id";
const SELECT_CALLS: &str = "SELECT id, function_id, app_id, input, attempt, created_at, \
     result, finished_at, method FROM calls ORDER BY id";
const SELECT_SCHEDULES: &str =
    "SELECT function_id, last_fire_ms FROM schedules ORDER BY function_id";
const SELECT_BINARIES: &str = "SELECT hash, size, uploaded_at FROM binaries ORDER BY hash";
/// The last `$2` lines of app `$1`, oldest first.
const SELECT_LOG_TAIL: &str = "SELECT app_id, timestamp_ms, function_id, function_tag, \
     task_id, input_id, source, data FROM (SELECT seq, app_id, timestamp_ms, function_id, \
     function_tag, task_id, input_id, source, data FROM logs WHERE app_id = $1 \
     ORDER BY seq DESC LIMIT $2) AS tail ORDER BY seq";

/// A store in a SQLite file or a PostgreSQL database.
pub(super) struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
    /// `sqlite:PATH` or `postgres://user@host:port/db` (never a password).
    description: String,
}

impl SqlStore {
    /// Connects, creating the SQLite file or the schema where missing.
    pub(super) async fn open(url: &str) -> Result<SqlStore, StoreError> {
        SqlStore::open_waiting(url, ACQUIRE_TIMEOUT).await
    }

    /// `open`, waiting up to `patience` for a PostgreSQL server that refuses connections (one
    /// that is still starting).
    async fn open_waiting(url: &str, patience: Duration) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let store = if strip_prefix_ignore_case(url, "postgres://").is_some()
            || strip_prefix_ignore_case(url, "postgresql://").is_some()
        {
            open_postgres(url, patience).await?
        } else {
            open_sqlite(url).await?
        };
        store.create_schema().await?;
        tracing::debug!(store = %store.description, "store opened");
        Ok(store)
    }

    fn open_error(&self, what: &str, e: &sqlx::Error) -> StoreError {
        StoreError::Open {
            url: self.description.clone(),
            message: format!("{what}: {e}"),
        }
    }

    /// Creates the tables where missing and checks the schema version (later: migrates).
    async fn create_schema(&self) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.open_error("cannot begin a transaction", &e))?;
        if self.dialect == Dialect::Postgres {
            // Two servers starting on one database must not race to create the same table.
            sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock($1)) AS locked")
                .bind(SCHEMA_LOCK_KEY)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.open_error("cannot lock the schema", &e))?;
        }
        for statement in schema(self.dialect) {
            sqlx::query(&statement)
                .persistent(false)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.open_error("cannot create the schema", &e))?;
        }
        sqlx::query(
            "INSERT INTO schema_version (id, version) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(SCHEMA_VERSION)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.open_error("cannot record the schema version", &e))?;
        let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| self.open_error("cannot read the schema version", &e))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Open {
                url: self.description.clone(),
                message: format!(
                    "its schema is version {version}, newer than this program's \
                     ({SCHEMA_VERSION}); a newer modal wrote it"
                ),
            });
        }
        // Migrations from older versions, in this transaction.
        if version < 2 {
            // Version 2: a spawned call keeps the class method it calls.
            let t = self.dialect.text();
            sqlx::query(&format!(
                "ALTER TABLE calls ADD COLUMN method {t} NOT NULL DEFAULT ''"
            ))
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.open_error("cannot migrate the schema to version 2", &e))?;
        }
        if version < SCHEMA_VERSION {
            sqlx::query("UPDATE schema_version SET version = $1 WHERE id = 1")
                .bind(SCHEMA_VERSION)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.open_error("cannot record the schema version", &e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.open_error("cannot commit the schema", &e))
    }

    async fn load_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| query_error("beginning a read transaction", &e))?;
        if self.dialect == Dialect::Postgres {
            // One consistent view of all tables (SQLite's transactions already read one snapshot).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(|e| query_error("starting a read-only transaction", &e))?;
        }
        let snapshot = Snapshot {
            apps: select(&mut tx, "apps", SELECT_APPS, app_row).await?,
            functions: select(&mut tx, "functions", SELECT_FUNCTIONS, function_row).await?,
            deployments: select(&mut tx, "deployments", SELECT_DEPLOYMENTS, deployment_row).await?,
            secrets: select(&mut tx, "secrets", SELECT_SECRETS, secret_row).await?,
            tokens: select(&mut tx, "tokens", SELECT_TOKENS, token_row).await?,
            calls: select(&mut tx, "calls", SELECT_CALLS, call_row).await?,
            schedules: select(&mut tx, "schedules", SELECT_SCHEDULES, schedule_row).await?,
            binaries: select(&mut tx, "binaries", SELECT_BINARIES, binary_row).await?,
            volumes: select(
                &mut tx,
                "volumes",
                super::sql_volumes::SELECT_VOLUMES,
                super::sql_volumes::volume_row,
            )
            .await?,
            volume_heads: select(
                &mut tx,
                "volume_versions",
                super::sql_volumes::SELECT_HEADS,
                super::sql_volumes::version_row,
            )
            .await?,
        };
        tx.commit()
            .await
            .map_err(|e| query_error("ending the read transaction", &e))?;
        Ok(snapshot)
    }

    async fn apply_ops(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let count = ops.len();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| query_error("beginning a transaction", &e))?;
        for (i, op) in ops.into_iter().enumerate() {
            let name = op_name(&op);
            apply_op(&mut tx, op).await.map_err(|e| {
                StoreError::Query(format!("{name} (write {} of {count}): {e}", i + 1))
            })?;
        }
        tx.commit()
            .await
            .map_err(|e| query_error(&format!("committing {count} writes"), &e))
    }

    async fn log_tail(&self, app_id: String, tail: usize) -> Result<Vec<LogRow>, StoreError> {
        if tail == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(SELECT_LOG_TAIL)
            .bind(app_id)
            .bind(i64::try_from(tail).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| query_error("reading logs", &e))?;
        rows.iter().map(log_row).collect()
    }
}

impl Store for SqlStore {
    fn load(&self) -> StoreFuture<'_, Snapshot> {
        Box::pin(self.load_snapshot())
    }

    fn apply(&self, ops: Vec<Op>) -> StoreFuture<'_, ()> {
        Box::pin(self.apply_ops(ops))
    }

    fn logs(&self, app_id: &str, tail: usize) -> StoreFuture<'_, Vec<LogRow>> {
        Box::pin(self.log_tail(app_id.to_owned(), tail))
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// `sqlite:PATH`, `sqlite://PATH` or a plain path (`:memory:` for a database that ends with the
/// program). The file and its directory are created if missing; the journal is a WAL.
async fn open_sqlite(url: &str) -> Result<SqlStore, StoreError> {
    let raw = strip_prefix_ignore_case(url, "sqlite://")
        .or_else(|| strip_prefix_ignore_case(url, "sqlite:"))
        .unwrap_or(url);
    if raw.is_empty() {
        return Err(StoreError::Open {
            url: url.to_owned(),
            message: "no database file named".into(),
        });
    }
    let in_memory = raw == ":memory:";
    let (connect_url, description) = if in_memory {
        ("sqlite::memory:".to_owned(), "sqlite::memory:".to_owned())
    } else {
        let path = std::path::absolute(raw).map_err(|e| StoreError::Open {
            url: format!("sqlite:{raw}"),
            message: format!("cannot resolve the path: {e}"),
        })?;
        let description = format!("sqlite:{}", path.display());
        let fail = |message: String| StoreError::Open {
            url: description.clone(),
            message,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                fail(format!(
                    "cannot create the directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let text = path
            .to_str()
            .ok_or_else(|| fail("the path is not valid UTF-8".into()))?;
        (
            format!("sqlite://{}?mode=rwc", escape_sqlite_path(text)),
            description,
        )
    };
    let mut options = AnyPoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SQLITE_BUSY_TIMEOUT).await?;
                Ok(())
            })
        });
    if in_memory {
        // An in-memory database lives as long as its one connection.
        options = options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    let pool = options
        .connect(&connect_url)
        .await
        .map_err(|e| StoreError::Open {
            url: description.clone(),
            message: format!("cannot open the database: {e}"),
        })?;
    let store = SqlStore {
        pool,
        dialect: Dialect::Sqlite,
        description,
    };
    if !in_memory {
        // WAL is a property of the file: set once, kept by every later connection.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&store.pool)
            .await
            .map_err(|e| store.open_error("cannot switch to WAL journal mode", &e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                store = %store.description,
                journal_mode = %mode,
                "SQLite did not switch to WAL mode"
            );
        }
    }
    Ok(store)
}

/// `postgres://user:password@host:port/database?…` (any form sqlx accepts).
async fn open_postgres(url: &str, patience: Duration) -> Result<SqlStore, StoreError> {
    let secrets = url_passwords(url);
    let scrub = |message: String| redact(message, &secrets);
    let options = PgConnectOptions::from_str(url).map_err(|e| StoreError::Open {
        url: url_without_password(url),
        message: scrub(format!("invalid PostgreSQL URL: {e}")),
    })?;
    let description = postgres_description(&options);
    let connected = AnyPoolOptions::new()
        .max_connections(POSTGRES_CONNECTIONS)
        .acquire_timeout(patience)
        .connect(url)
        .await;
    let pool = match connected {
        Ok(pool) => pool,
        Err(sqlx::Error::PoolTimedOut) => {
            // The pool retried a refused connection until `patience` ran out; say why it failed.
            let cause = match sqlx::AnyConnection::connect(url).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    "it answered only just now".to_owned()
                }
                Err(e) => e.to_string(),
            };
            return Err(StoreError::Open {
                url: description,
                message: scrub(format!(
                    "cannot connect within {} s: {cause}",
                    patience.as_secs_f32()
                )),
            });
        }
        Err(e) => {
            return Err(StoreError::Open {
                url: description,
                message: scrub(format!("cannot connect: {e}")),
            });
        }
    };
    Ok(SqlStore {
        pool,
        dialect: Dialect::Postgres,
        description,
    })
}

/// `postgres://user@host:port/database`: where the store is, without credentials.
fn postgres_description(options: &PgConnectOptions) -> String {
    let host = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => options.get_host().to_owned(),
    };
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    format!("postgres://{user}@{host}:{}/{database}", options.get_port())
}

/// The URL with the password of its user-info part removed, and without its query (which may
/// hold `password=`): for messages about a URL that did not parse.
fn url_without_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "(an unparsable PostgreSQL URL)".into();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    format!("{}{authority}{path}", &url[..scheme_end + 3])
}

/// Passwords a PostgreSQL URL carries (in its user info or a `password=` parameter), as written
/// and percent-decoded: what error messages must never show.
fn url_passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            found.push(password.to_owned());
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some((key, value)) = pair.split_once('=')
                && key == "password"
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    // Longest first, so that a password containing another is replaced whole.
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// Replaces each secret in `message` by `***`.
fn redact(mut message: String, secrets: &[String]) -> String {
    for secret in secrets {
        if message.contains(secret.as_str()) {
            message = message.replace(secret.as_str(), "***");
        }
    }
    message
}

/// Decodes `%XX` escapes (and `+` is left alone); invalid escapes and bytes stay as they are.
fn percent_decode(text: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escapes what sqlx's SQLite URL parser would otherwise take as a query, fragment or escape.
fn escape_sqlite_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

/// `text` without `prefix`, compared ignoring ASCII case (URL schemes are case-insensitive).
fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn query_error(what: &str, e: &sqlx::Error) -> StoreError {
    StoreError::Query(format!("{what}: {e}"))
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::UpsertApp(_) => "UpsertApp",
        Op::UpsertFunction(_) => "UpsertFunction",
        Op::InsertDeployment(_) => "InsertDeployment",
        Op::UpsertSecret(_) => "UpsertSecret",
        Op::DeleteSecret { .. } => "DeleteSecret",
        Op::InsertToken(_) => "InsertToken",
        Op::UpsertCall(_) => "UpsertCall",
        Op::FinishCall { .. } => "FinishCall",
        Op::UpsertSchedule(_) => "UpsertSchedule",
        Op::InsertBinary(_) => "InsertBinary",
        Op::AppendLogs(_) => "AppendLogs",
        Op::PruneCalls { .. } => "PruneCalls",
        Op::PruneLogs { .. } => "PruneLogs",
        Op::UpsertVolume(_) => "UpsertVolume",
        Op::InsertVolumeVersion(_) => "InsertVolumeVersion",
        Op::DeleteVolume { .. } => "DeleteVolume",
    }
}

/// One write, inside the batch's transaction.
async fn apply_op(tx: &mut Transaction<'static, Any>, op: Op) -> Result<(), sqlx::Error> {
    let conn = &mut **tx;
    match op {
        Op::UpsertApp(a) => {
            sqlx::query(UPSERT_APP)
                .bind(a.id)
                .bind(a.name)
                .bind(a.environment)
                .bind(a.state)
                .bind(a.tags_json)
                .bind(a.created_at)
                .bind(a.stopped_at)
                .bind(a.deployed_version)
                .execute(conn)
                .await?;
        }
        Op::UpsertFunction(f) => {
            sqlx::query(UPSERT_FUNCTION)
                .bind(f.id)
                .bind(f.app_id)
                .bind(f.tag)
                .bind(f.definition)
                .bind(f.version)
                .execute(conn)
                .await?;
        }
        Op::InsertDeployment(d) => {
            sqlx::query(UPSERT_DEPLOYMENT)
                .bind(d.app_id)
                .bind(d.version)
                .bind(d.tag)
                .bind(d.deployed_at)
                .bind(d.client)
                .bind(d.strategy)
                .execute(conn)
                .await?;
        }
        Op::UpsertSecret(s) => {
            sqlx::query(UPSERT_SECRET)
                .bind(s.environment)
                .bind(s.name)
                .bind(s.keys_json)
                .bind(s.nonce)
                .bind(s.ciphertext)
                .bind(s.created_at)
                .bind(s.updated_at)
                .execute(conn)
                .await?;
        }
        Op::DeleteSecret { environment, name } => {
            sqlx::query(DELETE_SECRET)
                .bind(environment)
                .bind(name)
                .execute(conn)
                .await?;
        }
        Op::InsertToken(t) => {
            sqlx::query(UPSERT_TOKEN)
                .bind(t.id)
                .bind(t.secret_hash)
                .bind(t.label)
                .bind(t.created_at)
                .execute(conn)
                .await?;
        }
        Op::UpsertCall(c) => {
            sqlx::query(UPSERT_CALL)
                .bind(c.id)
                .bind(c.function_id)
                .bind(c.app_id)
                .bind(c.input)
                .bind(c.attempt)
                .bind(c.created_at)
                .bind(c.result)
                .bind(c.finished_at)
                .bind(c.method)
                .execute(conn)
                .await?;
        }
        Op::FinishCall {
            id,
            result,
            finished_at,
        } => {
            let done = sqlx::query(FINISH_CALL)
                .bind(result)
                .bind(finished_at)
                .bind(id.as_str())
                .execute(conn)
                .await?;
            if done.rows_affected() == 0 {
                tracing::debug!(call = %id, "finished call not in the store");
            }
        }
        Op::UpsertSchedule(s) => {
            sqlx::query(UPSERT_SCHEDULE)
                .bind(s.function_id)
                .bind(s.last_fire_ms)
                .execute(conn)
                .await?;
        }
        Op::InsertBinary(b) => {
            sqlx::query(UPSERT_BINARY)
                .bind(b.hash)
                .bind(b.size)
                .bind(b.uploaded_at)
                .execute(conn)
                .await?;
        }
        Op::AppendLogs(lines) => append_logs(conn, lines).await?,
        op @ (Op::UpsertVolume(_) | Op::InsertVolumeVersion(_) | Op::DeleteVolume { .. }) => {
            super::sql_volumes::apply(conn, op).await?;
        }
        Op::PruneCalls { finished_before } => {
            sqlx::query(PRUNE_CALLS)
                .bind(finished_before)
                .execute(conn)
                .await?;
        }
        Op::PruneLogs { before } => {
            sqlx::query(PRUNE_LOGS).bind(before).execute(conn).await?;
        }
    }
    Ok(())
}

/// Inserts log lines with multi-row INSERTs of up to `LOG_ROWS_PER_INSERT` lines. PostgreSQL's
/// text cannot hold NUL, so NUL in a line's data is stored as U+FFFD (on both databases alike):
/// one odd byte of output must not fail the whole batch of writes.
async fn append_logs(
    conn: &mut sqlx::AnyConnection,
    lines: Vec<LogRow>,
) -> Result<(), sqlx::Error> {
    let mut lines = lines.into_iter().peekable();
    while lines.peek().is_some() {
        let chunk: Vec<LogRow> = lines.by_ref().take(LOG_ROWS_PER_INSERT).collect();
        let sql = insert_logs_sql(chunk.len());
        // Full chunks share one cached statement; a last, shorter one is not worth caching.
        let mut query = sqlx::query(&sql).persistent(chunk.len() == LOG_ROWS_PER_INSERT);
        for line in chunk {
            let data = if line.data.contains('\0') {
                line.data.replace('\0', "\u{FFFD}")
            } else {
                line.data
            };
            query = query
                .bind(line.app_id)
                .bind(line.timestamp_ms)
                .bind(line.function_id)
                .bind(line.function_tag)
                .bind(line.task_id)
                .bind(line.input_id)
                .bind(line.source)
                .bind(data);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `INSERT INTO logs (…) VALUES ($1, …, $8), ($9, …)` for `rows` lines.
fn insert_logs_sql(rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = String::with_capacity(INSERT_LOGS.len() + rows * 48);
    sql.push_str(INSERT_LOGS);
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..LOG_COLUMNS {
            let sep = if column == 0 { "" } else { ", " };
            let _ = write!(sql, "{sep}${}", row * LOG_COLUMNS + column + 1);
        }
        sql.push(')');
    }
    sql
}

/// Runs a `SELECT` of the read transaction and converts its rows.
async fn select<T>(
    tx: &mut Transaction<'static, Any>,
    table: &str,
    sql: &'static str,
    convert: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = sqlx::query(sql)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| query_error(&format!("reading {table}"), &e))?;
    rows.iter().map(convert).collect()
}

fn app_row(r: &AnyRow) -> Result<AppRow, StoreError> {
    const T: &str = "apps";
    Ok(AppRow {
        id: get(r, T, "id")?,
        name: get(r, T, "name")?,
        environment: get(r, T, "environment")?,
        state: get(r, T, "state")?,
        tags_json: get(r, T, "tags_json")?,
        created_at: get(r, T, "created_at")?,
        stopped_at: get(r, T, "stopped_at")?,
        deployed_version: get(r, T, "deployed_version")?,
    })
}

fn function_row(r: &AnyRow) -> Result<FunctionRow, StoreError> {
    const T: &str = "functions";
    Ok(FunctionRow {
        id: get(r, T, "id")?,
        app_id: get(r, T, "app_id")?,
        tag: get(r, T, "tag")?,
        definition: get(r, T, "definition")?,
        version: get(r, T, "version")?,
    })
}

fn deployment_row(r: &AnyRow) -> Result<DeploymentRow, StoreError> {
    const T: &str = "deployments";
    Ok(DeploymentRow {
        app_id: get(r, T, "app_id")?,
        version: get(r, T, "version")?,
        tag: get(r, T, "tag")?,
        deployed_at: get(r, T, "deployed_at")?,
        client: get(r, T, "client")?,
        strategy: get(r, T, "strategy")?,
    })
}

fn secret_row(r: &AnyRow) -> Result<SecretRow, StoreError> {
    const T: &str = "secrets";
    Ok(SecretRow {
        environment: get(r, T, "environment")?,
        name: get(r, T, "name")?,
        keys_json: get(r, T, "keys_json")?,
        nonce: get(r, T, "nonce")?,
        ciphertext: get(r, T, "ciphertext")?,
        created_at: get(r, T, "created_at")?,
        updated_at: get(r, T, "updated_at")?,
    })
}

fn token_row(r: &AnyRow) -> Result<TokenRow, StoreError> {
    const T: &str = "tokens";
    Ok(TokenRow {
        id: get(r, T, "id")?,
        secret_hash: get(r, T, "secret_hash")?,
        label: get(r, T, "label")?,
        created_at: get(r, T, "created_at")?,
    })
}

fn call_row(r: &AnyRow) -> Result<CallRow, StoreError> {
    const T: &str = "calls";
    Ok(CallRow {
        id: get(r, T, "id")?,
        function_id: get(r, T, "function_id")?,
        app_id: get(r, T, "app_id")?,
        input: get(r, T, "input")?,
        attempt: get(r, T, "attempt")?,
        created_at: get(r, T, "created_at")?,
        result: get(r, T, "result")?,
        finished_at: get(r, T, "finished_at")?,
        method: get(r, T, "method")?,
    })
}

fn schedule_row(r: &AnyRow) -> Result<ScheduleRow, StoreError> {
    const T: &str = "schedules";
    Ok(ScheduleRow {
        function_id: get(r, T, "function_id")?,
        last_fire_ms: get(r, T, "last_fire_ms")?,
    })
}

fn binary_row(r: &AnyRow) -> Result<BinaryRow, StoreError> {
    const T: &str = "binaries";
    Ok(BinaryRow {
        hash: get(r, T, "hash")?,
        size: get(r, T, "size")?,
        uploaded_at: get(r, T, "uploaded_at")?,
    })
}

fn log_row(r: &AnyRow) -> Result<LogRow, StoreError> {
    const T: &str = "logs";
    Ok(LogRow {
        app_id: get(r, T, "app_id")?,
        timestamp_ms: get(r, T, "timestamp_ms")?,
        function_id: get(r, T, "function_id")?,
        function_tag: get(r, T, "function_tag")?,
        task_id: get(r, T, "task_id")?,
        input_id: get(r, T, "input_id")?,
        source: get(r, T, "source")?,
        data: get(r, T, "data")?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::server::store::{VolumeRow, VolumeVersionRow};

    /// A fresh directory under the system's temp directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "modal-store-{label}-{}-{}-{}",
                std::process::id(),
                unique(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn unique() -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    fn all_bytes() -> Vec<u8> {
        (0..=255u8).collect()
    }

    fn app(id: &str, name: &str, state: i32, stopped_at: Option<i64>) -> AppRow {
        AppRow {
            id: id.into(),
            name: name.into(),
            environment: "main".into(),
            state,
            tags_json: r#"{"team":"ml"}"#.into(),
            created_at: 1_700_000_000_000,
            stopped_at,
            deployed_version: 2,
        }
    }

    fn deployment(app_id: &str, version: i64, client: &str) -> DeploymentRow {
        DeploymentRow {
            app_id: app_id.into(),
            version,
            tag: format!("v{version}"),
            deployed_at: 1_700_000_000_000 + version,
            client: client.into(),
            strategy: if version % 2 == 0 {
                "rolling"
            } else {
                "recreate"
            }
            .into(),
        }
    }

    fn secret(environment: &str, name: &str, ciphertext: Vec<u8>, updated_at: i64) -> SecretRow {
        SecretRow {
            environment: environment.into(),
            name: name.into(),
            keys_json: r#"["USER","PASSWORD","ключ"]"#.into(),
            nonce: vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0xff],
            ciphertext,
            created_at: 10,
            updated_at,
        }
    }

    fn token(id: &str) -> TokenRow {
        TokenRow {
            id: id.into(),
            secret_hash: format!("blake3:{id}"),
            label: format!("label of {id} ✓"),
            created_at: 42,
        }
    }

    fn call(id: &str, attempt: i64, result: Option<Vec<u8>>, finished_at: Option<i64>) -> CallRow {
        CallRow {
            id: id.into(),
            function_id: "fu-1".into(),
            app_id: "ap-1".into(),
            method: if attempt % 2 == 0 {
                String::new()
            } else {
                format!("predict_{id}")
            },
            input: all_bytes(),
            attempt,
            created_at: 100,
            result,
            finished_at,
        }
    }

    fn log(app_id: &str, timestamp_ms: i64, source: i32, data: &str) -> LogRow {
        LogRow {
            app_id: app_id.into(),
            timestamp_ms,
            function_id: "fu-1".into(),
            function_tag: "square".into(),
            task_id: "ta-1".into(),
            input_id: format!("in-{timestamp_ms}"),
            source,
            data: data.into(),
        }
    }

    /// What `load` must return: the rows by primary key.
    fn sorted(mut s: Snapshot) -> Snapshot {
        s.apps.sort_by(|a, b| a.id.cmp(&b.id));
        s.functions.sort_by(|a, b| a.id.cmp(&b.id));
        s.deployments
            .sort_by(|a, b| (&a.app_id, a.version).cmp(&(&b.app_id, b.version)));
        s.secrets
            .sort_by(|a, b| (&a.environment, &a.name).cmp(&(&b.environment, &b.name)));
        s.tokens.sort_by(|a, b| a.id.cmp(&b.id));
        s.calls.sort_by(|a, b| a.id.cmp(&b.id));
        s.schedules
            .sort_by(|a, b| a.function_id.cmp(&b.function_id));
        s.binaries.sort_by(|a, b| a.hash.cmp(&b.hash));
        s.volumes.sort_by(|a, b| a.id.cmp(&b.id));
        s.volume_heads.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
        s
    }

    fn volume(id: &str, name: &str, app_id: &str) -> VolumeRow {
        VolumeRow {
            id: id.into(),
            environment: "main".into(),
            name: name.into(),
            app_id: app_id.into(),
            created_at: 7,
        }
    }

    fn version(volume_id: &str, version: i64) -> VolumeVersionRow {
        VolumeVersionRow {
            volume_id: volume_id.into(),
            version,
            manifest_json: format!("[{{\"path\":\"v{version}\"}}]"),
            committed_at: version * 10,
        }
    }

    fn app_logs(all: &[LogRow], app_id: &str) -> Vec<LogRow> {
        all.iter().filter(|l| l.app_id == app_id).cloned().collect()
    }

    fn last(lines: &[LogRow], n: usize) -> Vec<LogRow> {
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Checks `logs` against the lines expected in the store, for several tails.
    async fn check_logs(store: &dyn Store, expected: &[LogRow]) {
        for app_id in ["ap-1", "ap-2"] {
            let lines = app_logs(expected, app_id);
            assert!(!lines.is_empty());
            for tail in [
                1,
                2,
                5,
                lines.len() - 1,
                lines.len(),
                lines.len() + 1,
                usize::MAX,
            ] {
                assert_eq!(
                    store.logs(app_id, tail).await.unwrap(),
                    last(&lines, tail),
                    "{app_id} tail {tail}"
                );
            }
            assert!(store.logs(app_id, 0).await.unwrap().is_empty());
        }
        assert!(store.logs("ap-none", 10).await.unwrap().is_empty());
    }

    /// Applies every kind of write to an empty store at `url`, checks what `load` and `logs` give,
    /// then that a second `open` sees the same, and that a failing batch leaves nothing behind.
    async fn exercise(url: &str) {
        let store = SqlStore::open(url).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Snapshot::default());
        assert!(store.logs("ap-1", 10).await.unwrap().is_empty());
        store.apply(Vec::new()).await.unwrap();

        // Batch 1: one of everything, more than one of most.
        let weird = "Grüße 🌍 日本語 'single' \"double\" \\ %_ ; DROP TABLE apps; --\n\ttab";
        let a1 = app("ap-1", "hello", 1, Some(1_700_000_100_000));
        let a2 = AppRow {
            id: "ap-2".into(),
            name: weird.into(),
            environment: "ünïcödé".into(),
            state: i32::MAX,
            tags_json: r#"{"ключ":"値 ✓","empty":""}"#.into(),
            created_at: i64::MIN,
            stopped_at: None,
            deployed_version: i64::MAX,
        };
        // Bytewise order puts upper case first; a linguistic collation would not.
        let a0 = app("Ap-0", "", i32::MIN, Some(0));
        let az = app("ap-ü", "umlaut", 0, Some(-1));
        let f1 = FunctionRow {
            id: "fu-1".into(),
            app_id: "ap-1".into(),
            tag: "square".into(),
            definition: all_bytes(),
            version: 2,
        };
        let f2 = FunctionRow {
            id: "fu-2".into(),
            app_id: "ap-2".into(),
            tag: "λ".into(),
            definition: Vec::new(),
            version: 0,
        };
        let s_main_db = secret("main", "db", all_bytes().into_iter().rev().collect(), 10);
        let s_main_api = secret("main", "api", vec![0], 10);
        let s_dev_db = secret("dev", "db", Vec::new(), 10);
        let c1 = call("ca-1", 0, None, None);
        let c2 = call("ca-2", 1, None, None);
        let c3 = call("ca-3", 0, Some(Vec::new()), Some(500));
        let c4 = call("ca-4", i64::MAX, None, None);
        let sch1 = ScheduleRow {
            function_id: "fu-1".into(),
            last_fire_ms: 1000,
        };
        let sch2 = ScheduleRow {
            function_id: "fu-2".into(),
            last_fire_ms: -2000,
        };
        let b1 = BinaryRow {
            hash: "b3-aaa".into(),
            size: 0,
            uploaded_at: 1,
        };
        let b2 = BinaryRow {
            hash: "b3-bbb".into(),
            size: i64::MAX,
            uploaded_at: i64::MIN,
        };
        // 250 lines of two apps, interleaved, with equal timestamps in pairs (3 INSERTs).
        let mut logged: Vec<LogRow> = (0..250i64)
            .map(|i| {
                let app_id = if i % 5 == 4 { "ap-2" } else { "ap-1" };
                let source = i32::try_from(i % 3).unwrap() - 1;
                log(
                    app_id,
                    1000 + i / 2,
                    source,
                    &format!("line {i} ✓ \"q\" '{weird}'\n"),
                )
            })
            .collect();
        let nul_line = log("ap-2", 2000, 2, "before\0after");
        let batch1 = vec![
            Op::UpsertApp(a1.clone()),
            Op::UpsertApp(a2.clone()),
            Op::UpsertApp(a0.clone()),
            Op::UpsertApp(az.clone()),
            Op::UpsertFunction(f1.clone()),
            Op::UpsertFunction(f2.clone()),
            Op::InsertDeployment(deployment("ap-1", 2, "me@host")),
            Op::InsertDeployment(deployment("ap-1", 1, "me@host")),
            Op::InsertDeployment(deployment("ap-2", 1, "you@élsewhere")),
            Op::UpsertSecret(s_main_db.clone()),
            Op::UpsertSecret(s_main_api.clone()),
            Op::UpsertSecret(s_dev_db.clone()),
            Op::InsertToken(token("tk-2")),
            Op::InsertToken(token("tk-1")),
            Op::UpsertCall(c1.clone()),
            Op::UpsertCall(c2.clone()),
            Op::UpsertCall(c3.clone()),
            Op::UpsertCall(c4.clone()),
            Op::UpsertSchedule(sch1.clone()),
            Op::UpsertSchedule(sch2.clone()),
            Op::InsertBinary(b2.clone()),
            Op::InsertBinary(b1.clone()),
            Op::AppendLogs(logged.clone()),
            Op::AppendLogs(vec![nul_line.clone()]),
            Op::AppendLogs(Vec::new()),
            Op::UpsertVolume(volume("vo-1", "weights", "")),
            Op::UpsertVolume(volume("vo-2", "scratch", "ap-1")),
            Op::InsertVolumeVersion(version("vo-1", 1)),
            Op::InsertVolumeVersion(version("vo-1", 2)),
            Op::InsertVolumeVersion(version("vo-2", 1)),
        ];
        store.apply(batch1).await.unwrap();
        logged.push(LogRow {
            data: "before\u{FFFD}after".into(),
            ..nul_line
        });
        let expected = sorted(Snapshot {
            apps: vec![a1.clone(), a2.clone(), a0.clone(), az.clone()],
            functions: vec![f1.clone(), f2.clone()],
            deployments: vec![
                deployment("ap-1", 1, "me@host"),
                deployment("ap-1", 2, "me@host"),
                deployment("ap-2", 1, "you@élsewhere"),
            ],
            secrets: vec![s_main_db.clone(), s_main_api.clone(), s_dev_db.clone()],
            tokens: vec![token("tk-1"), token("tk-2")],
            calls: vec![c1.clone(), c2.clone(), c3.clone(), c4.clone()],
            schedules: vec![sch1.clone(), sch2.clone()],
            binaries: vec![b1.clone(), b2.clone()],
            volumes: vec![
                volume("vo-1", "weights", ""),
                volume("vo-2", "scratch", "ap-1"),
            ],
            volume_heads: vec![version("vo-1", 2), version("vo-2", 1)],
        });
        assert_eq!(expected.apps[0].id, "Ap-0");
        assert_eq!(store.load().await.unwrap(), expected);
        check_logs(&store, &logged).await;

        // Batch 2: overwrites, deletions, results, pruning; order within the batch matters.
        let a1b = AppRow {
            state: 3,
            stopped_at: None,
            tags_json: "{}".into(),
            deployed_version: 3,
            ..a1.clone()
        };
        let f1b = FunctionRow {
            definition: all_bytes().into_iter().rev().collect(),
            version: 3,
            ..f1.clone()
        };
        let s_main_db_b = secret("main", "db", vec![9; 1000], 20);
        let s_dev_db_b = secret("dev", "db", vec![7], 30);
        let c1b = call("ca-1", 2, None, None);
        let c5 = call("ca-5", 0, None, None);
        let sch1b = ScheduleRow {
            function_id: "fu-1".into(),
            last_fire_ms: 5000,
        };
        let b3 = BinaryRow {
            hash: "b3-ccc".into(),
            size: 12345,
            uploaded_at: 99,
        };
        let late: Vec<LogRow> = (0..3)
            .map(|i| log("ap-1", 5000 + i, 1, &format!("late {i}")))
            .collect();
        let old_after_prune = log("ap-1", 10, 1, "old timestamp, appended after the prune");
        let batch2 = vec![
            Op::UpsertApp(a1b.clone()),
            Op::UpsertFunction(f1b.clone()),
            Op::InsertDeployment(deployment("ap-1", 3, "me@host")),
            Op::InsertDeployment(deployment("ap-1", 2, "replayed@host")),
            Op::UpsertSecret(s_main_db_b.clone()),
            Op::DeleteSecret {
                environment: "main".into(),
                name: "api".into(),
            },
            Op::DeleteSecret {
                environment: "nowhere".into(),
                name: "db".into(),
            },
            Op::UpsertSecret(secret("dev", "tmp", vec![1], 1)),
            Op::DeleteSecret {
                environment: "dev".into(),
                name: "tmp".into(),
            },
            Op::DeleteSecret {
                environment: "dev".into(),
                name: "db".into(),
            },
            Op::UpsertSecret(s_dev_db_b.clone()),
            Op::InsertToken(token("tk-3")),
            Op::UpsertCall(c1b.clone()),
            Op::FinishCall {
                id: "ca-2".into(),
                result: all_bytes(),
                finished_at: 1000,
            },
            Op::FinishCall {
                id: "ca-4".into(),
                result: vec![1, 2, 3],
                finished_at: 3000,
            },
            Op::UpsertCall(c5.clone()),
            Op::FinishCall {
                id: "ca-5".into(),
                result: Vec::new(),
                finished_at: 1500,
            },
            Op::FinishCall {
                id: "ca-missing".into(),
                result: vec![1],
                finished_at: 1,
            },
            Op::PruneCalls {
                finished_before: 2000,
            },
            Op::UpsertSchedule(sch1b.clone()),
            Op::InsertBinary(b3.clone()),
            Op::AppendLogs(late.clone()),
            Op::PruneLogs { before: 1100 },
            Op::AppendLogs(vec![old_after_prune.clone()]),
            // Far ahead: the versions it leaves behind are pruned; a deleted volume's go too.
            Op::InsertVolumeVersion(version("vo-1", 40)),
            Op::DeleteVolume { id: "vo-2".into() },
        ];
        store.apply(batch2).await.unwrap();
        logged.extend(late);
        logged.retain(|l| l.timestamp_ms >= 1100);
        logged.push(old_after_prune);
        let c4b = CallRow {
            result: Some(vec![1, 2, 3]),
            finished_at: Some(3000),
            ..c4.clone()
        };
        let expected = sorted(Snapshot {
            apps: vec![a1b, a2, a0, az],
            functions: vec![f1b, f2],
            deployments: vec![
                deployment("ap-1", 1, "me@host"),
                deployment("ap-1", 2, "replayed@host"),
                deployment("ap-1", 3, "me@host"),
                deployment("ap-2", 1, "you@élsewhere"),
            ],
            secrets: vec![s_main_db_b, s_dev_db_b],
            tokens: vec![token("tk-1"), token("tk-2"), token("tk-3")],
            calls: vec![c1b, c4b],
            schedules: vec![sch1b, sch2],
            binaries: vec![b1, b2, b3],
            volumes: vec![volume("vo-1", "weights", "")],
            volume_heads: vec![version("vo-1", 40)],
        });
        let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM volume_versions")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(
            kept, 1,
            "versions past the kept count, and a deleted volume's, are gone"
        );
        assert_eq!(store.load().await.unwrap(), expected);
        check_logs(&store, &logged).await;
        assert_eq!(
            store.logs("ap-1", 1).await.unwrap()[0].data,
            "old timestamp, appended after the prune"
        );
        let description = store.describe();
        store.pool.close().await;

        // A second open (as after a restart) sees it all, through the trait object.
        let reopened = super::open(url).await.unwrap();
        assert_eq!(reopened.describe(), description);
        assert_eq!(reopened.load().await.unwrap(), expected);
        check_logs(reopened.as_ref(), &logged).await;
        drop(reopened);

        // A batch whose second write fails leaves nothing of its first.
        let store = SqlStore::open(url).await.unwrap();
        sqlx::query("DROP TABLE schedules")
            .execute(&store.pool)
            .await
            .unwrap();
        let failing = vec![
            Op::UpsertApp(app("ap-3", "never", 1, None)),
            Op::UpsertSchedule(ScheduleRow {
                function_id: "fu-3".into(),
                last_fire_ms: 1,
            }),
        ];
        match store.apply(failing).await {
            Err(StoreError::Query(message)) => {
                assert!(
                    message.starts_with("UpsertSchedule (write 2 of 2): "),
                    "{message}"
                );
            }
            other => panic!("expected a query error, got {other:?}"),
        }
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apps WHERE id = $1")
            .bind("ap-3")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(count, 0);
        store.pool.close().await;
        // Opening recreates the missing table.
        let store = SqlStore::open(url).await.unwrap();
        let snapshot = store.load().await.unwrap();
        assert_eq!(
            snapshot,
            Snapshot {
                schedules: Vec::new(),
                ..expected
            }
        );
        store.pool.close().await;
    }

    #[tokio::test]
    async fn sqlite_round_trip() {
        let dir = TempDir::new("round-trip");
        let path = dir.path().join("state.db");
        exercise(&format!("sqlite:{}", path.display())).await;
        assert!(path.is_file());
    }

    #[tokio::test]
    async fn sqlite_url_forms_and_wal() {
        let dir = TempDir::new("forms");
        // Missing parents, and characters URLs treat specially.
        let path = dir.path().join("a b/we?ird #dir %20 ü/state.db");
        let forms = [
            path.display().to_string(),
            format!("sqlite:{}", path.display()),
            format!("sqlite://{}", path.display()),
            format!("SQLite://{}", path.display()),
        ];
        for (i, url) in forms.iter().enumerate() {
            let store = SqlStore::open(url).await.unwrap();
            assert_eq!(store.describe(), format!("sqlite:{}", path.display()));
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            let id = format!("ap-{i}");
            store
                .apply(vec![Op::UpsertApp(app(&id, "x", 1, None))])
                .await
                .unwrap();
            let apps = store.load().await.unwrap().apps;
            assert_eq!(
                apps.len(),
                i + 1,
                "{url} sees the apps of the forms before it"
            );
            store.pool.close().await;
        }
        assert!(path.is_file());

        // A relative path is resolved against the working directory.
        let relative = SqlStore::open("sqlite:relative-never-created/../x.db").await;
        if let Ok(store) = relative {
            let cwd = std::env::current_dir().unwrap();
            assert!(
                store
                    .describe()
                    .starts_with(&format!("sqlite:{}", cwd.display()))
            );
            store.pool.close().await;
            let _ = std::fs::remove_dir_all(cwd.join("relative-never-created"));
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(cwd.join(format!("x.db{suffix}")));
            }
        }

        let memory = SqlStore::open("sqlite::memory:").await.unwrap();
        assert_eq!(memory.describe(), "sqlite::memory:");
        memory
            .apply(vec![Op::UpsertApp(app("ap-1", "x", 1, None))])
            .await
            .unwrap();
        assert_eq!(memory.load().await.unwrap().apps.len(), 1);
    }

    #[tokio::test]
    async fn a_version_1_store_is_migrated_and_keeps_its_calls() {
        let dir = TempDir::new("migrate");
        let url = format!("sqlite:{}", dir.path().join("state.db").display());
        let store = SqlStore::open(&url).await.unwrap();
        // Make it what version 1 wrote: no `method` column.
        for statement in [
            "DROP TABLE calls",
            "CREATE TABLE calls (id TEXT NOT NULL PRIMARY KEY, function_id TEXT NOT NULL, \
             app_id TEXT NOT NULL, input BLOB NOT NULL, attempt BIGINT NOT NULL, \
             created_at BIGINT NOT NULL, result BLOB, finished_at BIGINT)",
            "INSERT INTO calls VALUES ('fc-old', 'fu-1', 'ap-1', x'01', 0, 5, NULL, NULL)",
            "UPDATE schema_version SET version = 1",
        ] {
            sqlx::query(statement).execute(&store.pool).await.unwrap();
        }
        store.pool.close().await;
        let store = SqlStore::open(&url).await.unwrap();
        let version: i64 = sqlx::query_scalar("SELECT version FROM schema_version")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let calls = store.load().await.unwrap().calls;
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].method.as_str()),
            ("fc-old", "")
        );
        let mut with_method = calls[0].clone();
        with_method.method = "predict".into();
        store
            .apply(vec![Op::UpsertCall(with_method)])
            .await
            .unwrap();
        assert_eq!(store.load().await.unwrap().calls[0].method, "predict");
        store.pool.close().await;
    }

    #[tokio::test]
    async fn sqlite_open_errors() {
        let dir = TempDir::new("errors");
        // A newer schema is refused.
        let path = dir.path().join("state.db");
        let url = format!("sqlite:{}", path.display());
        let store = SqlStore::open(&url).await.unwrap();
        sqlx::query("UPDATE schema_version SET version = 99")
            .execute(&store.pool)
            .await
            .unwrap();
        store.pool.close().await;
        match SqlStore::open(&url).await {
            Err(StoreError::Open {
                url: shown,
                message,
            }) => {
                assert_eq!(shown, format!("sqlite:{}", path.display()));
                assert!(message.contains("version 99"), "{message}");
            }
            Err(other) => panic!("expected an open error, got {other}"),
            Ok(_) => panic!("a newer schema was accepted"),
        }
        // A directory that cannot be created.
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"").unwrap();
        match SqlStore::open(&format!("{}/sub/state.db", blocker.display())).await {
            Err(StoreError::Open { message, .. }) => {
                assert!(message.contains("directory"), "{message}");
            }
            Err(other) => panic!("expected an open error, got {other}"),
            Ok(_) => panic!("opened under a file"),
        }
        // A file that is not a database.
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
        assert!(matches!(
            SqlStore::open(&format!("sqlite:{}", junk.display())).await,
            Err(StoreError::Open { .. })
        ));
    }

    #[test]
    fn postgres_urls_without_passwords() {
        let url = "postgres://alice:s3cr%40t@db.example:6543/modal?sslmode=disable&password=other";
        assert_eq!(
            url_without_password(url),
            "postgres://alice@db.example:6543/modal"
        );
        assert_eq!(
            url_passwords(url),
            vec!["s3cr%40t".to_owned(), "s3cr@t".into(), "other".into()]
        );
        assert_eq!(
            redact("no s3cr@t or other here".into(), &url_passwords(url)),
            "no *** or *** here"
        );
        assert_eq!(
            url_without_password("postgresql://bob@h/db"),
            "postgresql://bob@h/db"
        );
        assert_eq!(
            url_without_password("postgres://h:5432"),
            "postgres://h:5432"
        );
        let options = PgConnectOptions::from_str(url).unwrap();
        assert_eq!(
            postgres_description(&options),
            "postgres://alice@db.example:6543/modal"
        );
        let options = PgConnectOptions::from_str("postgresql://bob@localhost:5433").unwrap();
        assert_eq!(
            postgres_description(&options),
            "postgres://bob@localhost:5433/bob"
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(
            insert_logs_sql(2),
            format!(
                "{INSERT_LOGS}($1, $2, $3, $4, $5, $6, $7, $8), \
                 ($9, $10, $11, $12, $13, $14, $15, $16)"
            )
        );
    }

    #[tokio::test]
    async fn postgres_errors_hide_the_password() {
        for (url, expected) in [
            ("postgres://alice:hunter2@127.0.0.1:1/modal", "refused"),
            (
                "postgres://alice:hunter2@127.0.0.1:notaport/modal",
                "invalid PostgreSQL URL",
            ),
            (
                "postgresql://alice@127.0.0.1:1/modal?password=hunter2",
                "refused",
            ),
        ] {
            match SqlStore::open_waiting(url, Duration::from_millis(300)).await {
                Err(StoreError::Open {
                    url: shown,
                    message,
                }) => {
                    let text = format!("{shown} {message}");
                    assert!(!text.contains("hunter2"), "{text}");
                    assert!(message.contains(expected), "{message}");
                    assert!(
                        shown.starts_with("postgres") && shown.contains("alice@127.0.0.1:"),
                        "{shown}"
                    );
                }
                Err(other) => panic!("expected an open error, got {other}"),
                Ok(_) => panic!("connected to port 1"),
            }
        }
    }

    /// Runs `exercise` in a schema of its own, dropped afterwards, in the database at
    /// `MODAL_TEST_POSTGRES_URL` (`source .ci/postgres.sh` starts a throwaway server and sets it).
    #[tokio::test]
    async fn postgres_round_trip() {
        let Ok(base) = std::env::var("MODAL_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI needs PostgreSQL: MODAL_TEST_POSTGRES_URL is not set (cargo xtask ci starts one)"
            );
            eprintln!(
                "skipped: MODAL_TEST_POSTGRES_URL is not set \
                 (`cargo xtask ci` or `source .ci/postgres.sh` starts a throwaway server)"
            );
            return;
        };
        let schema = format!("modal_test_{}_{}", std::process::id(), unique());
        let admin = sqlx::PgPool::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        let outcome = tokio::spawn(async move { exercise(&url).await }).await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
