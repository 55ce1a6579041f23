//! The `trusted_keys` table (publisher keys with their history) and the lookup of
//! which installed plugins each key signed.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{collect, StoreError};
use crate::trust::{KeyRow, NamePattern};

const KEY_COLS: &str = "fingerprint, publisher, plugins, public_key, state, comment, proposed_by, proposed_at, approved_by, approved_at, ended_by, ended_at, end_comment";

fn corrupt(col: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, message.into())
}

fn map_key(r: &Row<'_>) -> rusqlite::Result<KeyRow> {
    let plugins: String = r.get(2)?;
    let state: String = r.get(4)?;
    Ok(KeyRow {
        fingerprint: r.get(0)?,
        publisher: r.get(1)?,
        plugins: NamePattern::parse(&plugins).map_err(|e| corrupt(2, e))?,
        public_key: r.get(3)?,
        state: state.parse().map_err(|e: String| corrupt(4, e))?,
        comment: r.get(5)?,
        proposed_by: r.get(6)?,
        proposed_at: r.get(7)?,
        approved_by: r.get(8)?,
        approved_at: r.get(9)?,
        ended_by: r.get(10)?,
        ended_at: r.get(11)?,
        end_comment: r.get(12)?,
    })
}

pub fn trusted_key(c: &Connection, fingerprint: &str) -> Result<Option<KeyRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {KEY_COLS} FROM trusted_keys WHERE fingerprint = ?1"),
        params![fingerprint],
        map_key,
    )
    .optional()?)
}

/// Every key, oldest proposal first.
pub fn trusted_keys(c: &Connection) -> Result<Vec<KeyRow>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {KEY_COLS} FROM trusted_keys ORDER BY proposed_at, fingerprint"
    ))?;
    let rows = stmt.query_map([], map_key)?;
    collect(rows)
}

/// Writes the key's row as it is now (a new proposal, or a change of state).
pub fn put_trusted_key(c: &Connection, k: &KeyRow) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT OR REPLACE INTO trusted_keys ({KEY_COLS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ),
        params![
            k.fingerprint,
            k.publisher,
            k.plugins.as_str(),
            k.public_key,
            k.state.as_str(),
            k.comment,
            k.proposed_by,
            k.proposed_at,
            k.approved_by,
            k.approved_at,
            k.ended_by,
            k.ended_at,
            k.end_comment
        ],
    )?;
    Ok(())
}

/// The installed plugins whose current version the key signed, by name.
pub fn plugins_signed_by(c: &Connection, fingerprint: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare(
        "SELECT name FROM plugins WHERE json_extract(signer, '$.fingerprint') = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![fingerprint], |r| r.get::<_, String>(0))?;
    collect(rows)
}
