//! The volume tables of the SQL store: volumes, and the version log of each (its manifests).
//! A commit is one `InsertVolumeVersion` write: the new version and the pruning of the oldest
//! in the batch's transaction.

use sqlx::AnyConnection;
use sqlx::any::AnyRow;

use super::sql_rows::get;
use super::{Op, StoreError, VolumeRow, VolumeVersionRow};
use crate::server::volumes::VERSIONS_KEPT;

/// The volume tables, as idempotent statements (`t`: the dialect's text type).
pub(super) fn schema(t: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS volumes (id {t} NOT NULL PRIMARY KEY, \
             environment {t} NOT NULL, name {t} NOT NULL, app_id {t} NOT NULL, \
             created_at BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS volume_versions (volume_id {t} NOT NULL, \
             version BIGINT NOT NULL, manifest_json {t} NOT NULL, committed_at BIGINT NOT NULL, \
             PRIMARY KEY (volume_id, version))"
        ),
    ]
}

const UPSERT_VOLUME: &str = "INSERT INTO volumes (id, environment, name, app_id, created_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET environment = excluded.environment, \
     name = excluded.name, app_id = excluded.app_id, created_at = excluded.created_at";
const UPSERT_VERSION: &str = "INSERT INTO volume_versions (volume_id, version, manifest_json, \
     committed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (volume_id, version) DO UPDATE SET \
     manifest_json = excluded.manifest_json, committed_at = excluded.committed_at";
const PRUNE_VERSIONS: &str = "DELETE FROM volume_versions WHERE volume_id = $1 AND version <= $2";
const DELETE_VOLUME: &str = "DELETE FROM volumes WHERE id = $1";
const DELETE_VERSIONS: &str = "DELETE FROM volume_versions WHERE volume_id = $1";

pub(super) const SELECT_VOLUMES: &str =
    "SELECT id, environment, name, app_id, created_at FROM volumes ORDER BY id";
/// The latest version of each volume.
pub(super) const SELECT_HEADS: &str = "SELECT v.volume_id, v.version, v.manifest_json, \
     v.committed_at FROM volume_versions v WHERE v.version = (SELECT MAX(w.version) \
     FROM volume_versions w WHERE w.volume_id = v.volume_id) ORDER BY v.volume_id";

/// One volume write, inside the batch's transaction.
pub(super) async fn apply(conn: &mut AnyConnection, op: Op) -> Result<(), sqlx::Error> {
    match op {
        Op::UpsertVolume(v) => {
            sqlx::query(UPSERT_VOLUME)
                .bind(v.id)
                .bind(v.environment)
                .bind(v.name)
                .bind(v.app_id)
                .bind(v.created_at)
                .execute(conn)
                .await?;
        }
        Op::InsertVolumeVersion(v) => {
            let oldest_kept = v.version - VERSIONS_KEPT;
            let id = v.volume_id.clone();
            sqlx::query(UPSERT_VERSION)
                .bind(v.volume_id)
                .bind(v.version)
                .bind(v.manifest_json)
                .bind(v.committed_at)
                .execute(&mut *conn)
                .await?;
            sqlx::query(PRUNE_VERSIONS)
                .bind(id)
                .bind(oldest_kept)
                .execute(conn)
                .await?;
        }
        Op::DeleteVolume { id } => {
            sqlx::query(DELETE_VERSIONS)
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
            sqlx::query(DELETE_VOLUME).bind(id).execute(conn).await?;
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn volume_row(r: &AnyRow) -> Result<VolumeRow, StoreError> {
    const T: &str = "volumes";
    Ok(VolumeRow {
        id: get(r, T, "id")?,
        environment: get(r, T, "environment")?,
        name: get(r, T, "name")?,
        app_id: get(r, T, "app_id")?,
        created_at: get(r, T, "created_at")?,
    })
}

pub(super) fn version_row(r: &AnyRow) -> Result<VolumeVersionRow, StoreError> {
    const T: &str = "volume_versions";
    Ok(VolumeVersionRow {
        volume_id: get(r, T, "volume_id")?,
        version: get(r, T, "version")?,
        manifest_json: get(r, T, "manifest_json")?,
        committed_at: get(r, T, "committed_at")?,
    })
}
