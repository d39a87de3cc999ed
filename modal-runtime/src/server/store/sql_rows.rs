//! Reading the columns of SQL rows, shared by the SQL store's tables.

use sqlx::any::AnyRow;
use sqlx::{Any, Row as _};

use super::StoreError;

/// A column of a row, or `Corrupt` naming the column.
pub(super) fn get<'r, T>(row: &'r AnyRow, table: &str, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("{table}.{column}: {e}")))
}
