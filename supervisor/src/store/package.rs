//! What review reads of each installed package (`plugin_packages`: content list,
//! dependency inventory, the version an update replaced) and the advisory database.

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::advisories::Inventory;
use crate::trust::Signer;

/// The package record of one installed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    /// The content list of the installed files (`package::contents`).
    pub contents: String,
    pub inventory: Inventory,
    /// The version the last update replaced; `None` before any update.
    pub previous: Option<PreviousVersion>,
}

/// What an update replaced, kept for the review of the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousVersion {
    pub version: String,
    pub manifest: String,
    pub contents: String,
    pub signer: Option<Signer>,
}

fn corrupt(table: &'static str, e: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        table,
        message: e.to_string(),
    }
}

pub fn put_package(c: &Connection, plugin: &str, p: &PackageRecord) -> Result<(), StoreError> {
    let inventory =
        serde_json::to_string(&p.inventory).map_err(|e| corrupt("plugin_packages", e))?;
    let previous = p
        .previous
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| corrupt("plugin_packages", e))?;
    c.execute(
        "INSERT OR REPLACE INTO plugin_packages (plugin, contents, inventory, previous)
         VALUES (?1, ?2, ?3, ?4)",
        params![plugin, p.contents, inventory, previous],
    )?;
    Ok(())
}

pub fn package(c: &Connection, plugin: &str) -> Result<Option<PackageRecord>, StoreError> {
    let row: Option<(String, String, Option<String>)> = c
        .query_row(
            "SELECT contents, inventory, previous FROM plugin_packages WHERE plugin = ?1",
            params![plugin],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((contents, inventory, previous)) = row else {
        return Ok(None);
    };
    Ok(Some(PackageRecord {
        contents,
        inventory: serde_json::from_str(&inventory).map_err(|e| corrupt("plugin_packages", e))?,
        previous: previous
            .map(|p| serde_json::from_str(&p))
            .transpose()
            .map_err(|e| corrupt("plugin_packages", e))?,
    }))
}

/// The advisory database as imported (its normalised JSON) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryDbRow {
    pub database: String,
    pub source: String,
    pub advisories: u32,
    pub imported_at: i64,
    pub imported_by: String,
}

/// Replaces the advisory database.
pub fn put_advisory_db(c: &Connection, row: &AdvisoryDbRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT OR REPLACE INTO advisory_db (id, database, source, advisories, imported_at, imported_by)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)",
        params![row.database, row.source, row.advisories, row.imported_at, row.imported_by],
    )?;
    Ok(())
}

pub fn advisory_db(c: &Connection) -> Result<Option<AdvisoryDbRow>, StoreError> {
    Ok(c.query_row(
        "SELECT database, source, advisories, imported_at, imported_by FROM advisory_db WHERE id = 1",
        [],
        |r| {
            Ok(AdvisoryDbRow {
                database: r.get(0)?,
                source: r.get(1)?,
                advisories: r.get(2)?,
                imported_at: r.get(3)?,
                imported_by: r.get(4)?,
            })
        },
    )
    .optional()?)
}
