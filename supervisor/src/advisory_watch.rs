//! Advisories against installed plugins: importing the offline database (which flags
//! every installed plugin it matches) and the alert a matching plugin raises.

use crate::advisories::{Database, Finding};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::store::{self, AdvisoryDbRow, Store, StoreError, Tx};

/// The alert rule a matching advisory raises under, one open alert per plugin.
pub const RULE: &str = "vulnerable_dependency";

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the advisory database cannot be read: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The database last imported, parsed; `None` before any import.
pub fn current(c: &rusqlite::Connection) -> Result<Option<Database>, StoreError> {
    let Some(row) = store::advisory_db(c)? else {
        return Ok(None);
    };
    Database::from_json(&row.database)
        .map(Some)
        .map_err(|e| StoreError::Corrupt {
            table: "advisory_db",
            message: e.to_string(),
        })
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub row: AdvisoryDbRow,
    /// Each installed plugin an advisory now matches, with the matches.
    pub flagged: Vec<(String, Vec<Finding>)>,
}

/// Replaces the database with `json` (as `Database::to_json` wrote it) and matches it
/// against every installed plugin's recorded dependencies, raising an alert for each
/// plugin a (non-informational) advisory names. One transaction: all or nothing.
pub fn import(
    store: &Store,
    actor: &Actor,
    json: &str,
    source: &str,
) -> Result<Imported, WatchError> {
    let db = Database::from_json(json).map_err(|e| WatchError::Invalid(e.to_string()))?;
    let normalised = db
        .to_json()
        .map_err(|e| WatchError::Invalid(e.to_string()))?;
    store.write(|tx| {
        let row = AdvisoryDbRow {
            database: normalised,
            source: source.to_string(),
            advisories: u32::try_from(db.len()).unwrap_or(u32::MAX),
            imported_at: now_ms(),
            imported_by: actor.approver_key().to_string(),
        };
        store::put_advisory_db(&tx.sql, &row)?;
        let mut flagged = Vec::new();
        for name in store::plugin_names(&tx.sql)? {
            let Some(package) = store::package(&tx.sql, &name)? else {
                continue;
            };
            let findings = package.inventory.findings(Some(&db));
            if raise(tx, &name, &findings)? {
                flagged.push((name, findings));
            }
        }
        tx.audit(
            AuditEntry::new(actor, "advisories.imported", Outcome::Ok).detail(serde_json::json!({
                "source": source,
                "advisories": row.advisories,
                "withdrawn_skipped": db.stats.withdrawn,
                "flagged": flagged.iter().map(|(p, f)| serde_json::json!({
                    "plugin": p,
                    "advisories": f.iter().map(|f| f.advisory_id.as_str()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })),
        );
        Ok(Imported { row, flagged })
    })
}

/// Raises (or bumps) the plugin's advisory alert when a finding is a vulnerability;
/// true if it did. Informational advisories (unmaintained, unsound) are shown to the
/// reviewer but raise nothing.
pub fn raise(tx: &mut Tx<'_>, plugin: &str, findings: &[Finding]) -> Result<bool, StoreError> {
    let serious: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.informational.is_none())
        .collect();
    if serious.is_empty() {
        return Ok(false);
    }
    let message = format!(
        "{plugin} depends on {} package version(s) an advisory names: {}",
        serious.len(),
        serious
            .iter()
            .map(|f| format!("{} {} {}", f.advisory_id, f.package, f.version))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let detail = serde_json::json!({
        "advisories": serious.iter().map(|f| f.advisory_id.as_str()).collect::<Vec<_>>(),
    });
    crate::alerts::raise_event(tx, plugin, RULE, message, detail)?;
    Ok(true)
}
