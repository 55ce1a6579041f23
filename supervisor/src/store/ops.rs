//! The store's operational records: supervisor settings (safe mode), the record of
//! backups with the online backup and restore themselves, and raised alerts.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{collect, PluginState, Store, StoreError, Tx};
use crate::clock::now_ms;

/// Safe mode as kept in `settings`: on or off, since when, by whom and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SafeMode {
    pub enabled: bool,
    pub since_ms: i64,
    pub by: String,
    pub comment: String,
}

/// One backup file as recorded when it was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRow {
    pub id: String,
    pub created_at: i64,
    pub reason: String,
    pub created_by: String,
    pub comment: String,
    pub bytes: u64,
    pub sha256: String,
    pub plugins: u32,
}

/// One alert a rule raised.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    pub plugin: String,
    pub rule: String,
    pub kind: String,
    pub count: u64,
    pub threshold: u64,
    pub window_secs: u64,
    pub raised_at: i64,
    pub quarantined: bool,
    pub message: String,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
}

const SAFE_MODE_KEY: &str = "safe_mode";

/// The tables a restore replaces. The audit log, settings, backups and alerts are
/// history or the operator's current posture, and are never rolled back.
const RESTORED_TABLES: [&str; 3] = ["plugins", "plugin_permissions", "plugin_config"];

impl Store {
    pub fn safe_mode(&self) -> Result<SafeMode, StoreError> {
        self.read(read_safe_mode)
    }

    /// Copies the whole database to `dest` with SQLite's online backup API, under the
    /// connection lock so the copy is one consistent state.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.backup(rusqlite::DatabaseName::Main, dest, None)?;
        Ok(())
    }

    pub fn backups(&self) -> Result<Vec<BackupRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {BACKUP_COLS} FROM backups ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([], map_backup)?;
            collect(rows)
        })
    }

    pub fn backup(&self, id: &str) -> Result<Option<BackupRow>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                &format!("SELECT {BACKUP_COLS} FROM backups WHERE id = ?1"),
                params![id],
                map_backup,
            )
            .optional()?)
        })
    }

    /// Replaces the plugin tables with those of the database at `source` (already
    /// migrated to this schema) and runs `f` in the same transaction, so the restore,
    /// whatever `f` changes and their audit records commit together or not at all.
    pub fn restore_from<T, E>(
        &self,
        source: &Path,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let source = source.to_str().ok_or_else(|| StoreError::Corrupt {
            table: "backups",
            message: "backup path is not UTF-8".into(),
        })?;
        {
            let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
            conn.execute("ATTACH DATABASE ?1 AS restore_source", params![source])
                .map_err(StoreError::from)?;
        }
        let result = self.write(|tx| {
            tx.sql
                .execute("DELETE FROM plugins", [])
                .map_err(StoreError::from)?;
            for table in RESTORED_TABLES {
                tx.sql
                    .execute(
                        &format!("INSERT INTO main.{table} SELECT * FROM restore_source.{table}"),
                        [],
                    )
                    .map_err(StoreError::from)?;
            }
            // Setting values and package records go with their plugins (the delete
            // above cascaded to them); a backup taken before a table existed has none.
            for table in ["plugin_settings", "plugin_packages"] {
                if has_table(&tx.sql, "restore_source", table)? {
                    tx.sql
                        .execute(
                            &format!(
                                "INSERT INTO main.{table} SELECT * FROM restore_source.{table}"
                            ),
                            [],
                        )
                        .map_err(StoreError::from)?;
                }
            }
            f(tx)
        });
        if let Ok(conn) = self.conn.lock() {
            if let Err(e) = conn.execute("DETACH DATABASE restore_source", []) {
                tracing::error!(error = %e, "could not detach the restored backup");
            }
        }
        result
    }

    pub fn alerts(&self, include_acknowledged: bool) -> Result<Vec<AlertRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE ?1 OR acknowledged_at IS NULL ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![include_acknowledged], map_alert)?;
            collect(rows)
        })
    }

    /// The latest security events, alerts, crashes and quarantines, oldest first.
    pub fn recent_incidents(&self, limit: u32) -> Result<Vec<super::AuditRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {} FROM audit_log
                 WHERE action LIKE 'security.%' OR action IN ('plugin.crash', 'plugin.quarantine')
                 ORDER BY id DESC LIMIT ?1",
                super::AUDIT_ROW_COLS
            ))?;
            let mut rows = collect(stmt.query_map(params![limit], super::map_audit_row)?)?;
            rows.reverse();
            Ok(rows)
        })
    }
}

/// Brings a copy of a backup to this supervisor's schema so its tables can be
/// restored; a backup from a newer supervisor (a later schema) is refused.
pub fn migrate_copy(path: &Path) -> Result<(), StoreError> {
    let mut conn = Connection::open(path)?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > super::schema::latest_version() {
        return Err(StoreError::Corrupt {
            table: "backups",
            message: format!(
                "the backup has store schema {version}, newer than this supervisor's {}",
                super::schema::latest_version()
            ),
        });
    }
    super::schema::migrate(&mut conn)?;
    Ok(())
}

pub fn read_safe_mode(c: &Connection) -> Result<SafeMode, StoreError> {
    let value: Option<String> = c
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![SAFE_MODE_KEY],
            |r| r.get(0),
        )
        .optional()?;
    match value {
        None => Ok(SafeMode::default()),
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            table: "settings",
            message: format!("safe_mode: {e}"),
        }),
    }
}

pub fn set_safe_mode(c: &Connection, mode: &SafeMode) -> Result<(), StoreError> {
    let value = serde_json::to_string(mode).map_err(|e| StoreError::Corrupt {
        table: "settings",
        message: e.to_string(),
    })?;
    c.execute(
        "INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
             updated_by = excluded.updated_by",
        params![SAFE_MODE_KEY, value, now_ms(), mode.by],
    )?;
    Ok(())
}

const BACKUP_COLS: &str = "id, created_at, reason, created_by, comment, bytes, sha256, plugins";

fn map_backup(r: &Row<'_>) -> rusqlite::Result<BackupRow> {
    Ok(BackupRow {
        id: r.get(0)?,
        created_at: r.get(1)?,
        reason: r.get(2)?,
        created_by: r.get(3)?,
        comment: r.get(4)?,
        bytes: r.get::<_, i64>(5)?.try_into().unwrap_or(0),
        sha256: r.get(6)?,
        plugins: r.get(7)?,
    })
}

pub fn insert_backup(c: &Connection, b: &BackupRow) -> Result<(), StoreError> {
    c.execute(
        &format!("INSERT INTO backups ({BACKUP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
        params![
            b.id,
            b.created_at,
            b.reason,
            b.created_by,
            b.comment,
            i64::try_from(b.bytes).unwrap_or(i64::MAX),
            b.sha256,
            b.plugins
        ],
    )?;
    Ok(())
}

pub fn delete_backup(c: &Connection, id: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM backups WHERE id = ?1", params![id])?;
    Ok(())
}

/// Leaves every enabled plugin disabled with `reason` (a restore that starts none);
/// returns their names.
pub fn disable_enabled(c: &Connection, reason: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare("SELECT name FROM plugins WHERE state = ?1 ORDER BY name")?;
    let names = collect(stmt.query_map(params![PluginState::Enabled.as_str()], |r| {
        r.get::<_, String>(0)
    })?)?;
    for name in &names {
        super::set_state(c, name, PluginState::Disabled, reason)?;
    }
    Ok(names)
}

const ALERT_COLS: &str = "id, plugin, rule, kind, count, threshold, window_secs, raised_at, quarantined, message, acknowledged_at, acknowledged_by";

fn map_alert(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.try_into().unwrap_or(0)) };
    Ok(AlertRow {
        id: r.get(0)?,
        plugin: r.get(1)?,
        rule: r.get(2)?,
        kind: r.get(3)?,
        count: n(4)?,
        threshold: n(5)?,
        window_secs: n(6)?,
        raised_at: r.get(7)?,
        quarantined: r.get(8)?,
        message: r.get(9)?,
        acknowledged_at: r.get(10)?,
        acknowledged_by: r.get(11)?,
    })
}

pub fn open_alert(
    c: &Connection,
    plugin: &str,
    rule: &str,
) -> Result<Option<AlertRow>, StoreError> {
    Ok(c.query_row(
        &format!(
            "SELECT {ALERT_COLS} FROM alerts WHERE plugin = ?1 AND rule = ?2 AND acknowledged_at IS NULL"
        ),
        params![plugin, rule],
        map_alert,
    )
    .optional()?)
}

pub fn alert(c: &Connection, id: i64) -> Result<Option<AlertRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?1"),
        params![id],
        map_alert,
    )
    .optional()?)
}

/// Records a new alert; returns its id.
pub fn insert_alert(c: &Connection, a: &AlertRow) -> Result<i64, StoreError> {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    c.execute(
        "INSERT INTO alerts (plugin, rule, kind, count, threshold, window_secs, raised_at, quarantined, message)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            a.plugin,
            a.rule,
            a.kind,
            i(a.count),
            i(a.threshold),
            i(a.window_secs),
            a.raised_at,
            a.quarantined,
            a.message
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// An open alert fired again: keep the highest count seen and the quarantine flag.
pub fn bump_alert(
    c: &Connection,
    id: i64,
    count: u64,
    quarantined: bool,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE alerts SET count = max(count, ?2), quarantined = quarantined OR ?3 WHERE id = ?1",
        params![id, i64::try_from(count).unwrap_or(i64::MAX), quarantined],
    )?;
    Ok(())
}

pub fn acknowledge_alert(c: &Connection, id: i64, by: &str) -> Result<bool, StoreError> {
    let n = c.execute(
        "UPDATE alerts SET acknowledged_at = ?2, acknowledged_by = ?3
         WHERE id = ?1 AND acknowledged_at IS NULL",
        params![id, now_ms(), by],
    )?;
    Ok(n == 1)
}

fn has_table(c: &Connection, schema: &str, table: &str) -> Result<bool, StoreError> {
    let n: i64 = c.query_row(
        &format!("SELECT count(*) FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?1"),
        params![table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditEntry, LogFiles, Outcome};
    use crate::catalog::Permission;
    use crate::store::{insert_plugin, insert_request, AuditFilter, PluginRow};
    use std::sync::Arc;

    fn store(dir: &Path, file: &str) -> Store {
        let logs = Arc::new(LogFiles::open(&dir.join("log")).unwrap());
        Store::open(&dir.join(file), logs).unwrap()
    }

    fn install(s: &Store, name: &str, offset: u32) {
        s.write(|tx| {
            insert_plugin(
                &tx.sql,
                &PluginRow {
                    name: name.into(),
                    version: "1.0.0".into(),
                    state: PluginState::Enabled,
                    state_reason: String::new(),
                    sha256: "00".into(),
                    manifest: String::new(),
                    install_dir: "/x".into(),
                    core: false,
                    installed_at: 0,
                    uid_offset: offset,
                    python: None,
                    signer: None,
                },
            )?;
            insert_request(&tx.sql, name, Permission::FileRead, &["/srv".into()], "why")?;
            tx.audit(AuditEntry::new(&Actor::system(), "plugin.install", Outcome::Ok).plugin(name));
            Ok::<_, StoreError>(())
        })
        .unwrap();
    }

    #[test]
    fn a_restore_brings_back_the_plugins_and_keeps_history_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "store.db");
        install(&s, "a", 0);
        s.backup_to(&dir.path().join("b.sqlite")).unwrap();
        install(&s, "b", 1);
        s.write(|tx| {
            set_safe_mode(
                &tx.sql,
                &SafeMode {
                    enabled: true,
                    by: "root".into(),
                    ..SafeMode::default()
                },
            )
        })
        .unwrap();
        let restored = s
            .restore_from(&dir.path().join("b.sqlite"), |tx| {
                tx.audit(AuditEntry::new(
                    &Actor::system(),
                    "backup.restore",
                    Outcome::Ok,
                ));
                disable_enabled(&tx.sql, "restored")
            })
            .unwrap();
        assert_eq!(restored, ["a"]);
        let names: Vec<String> = s.plugins().unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a"], "b was installed after the backup");
        assert_eq!(s.plugin("a").unwrap().unwrap().state, PluginState::Disabled);
        assert_eq!(s.permissions("a").unwrap().len(), 1);
        assert!(
            s.safe_mode().unwrap().enabled,
            "settings are not rolled back"
        );
        let audit = s
            .query_audit(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(
            audit.len(),
            3,
            "history is kept: two installs and the restore"
        );
        assert_eq!(s.verify_audit_chain().unwrap().broken, None);
        // The source is detached again: a second restore works.
        s.restore_from(&dir.path().join("b.sqlite"), |_| Ok::<_, StoreError>(()))
            .unwrap();
    }

    #[test]
    fn a_failed_restore_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "store.db");
        install(&s, "a", 0);
        s.backup_to(&dir.path().join("b.sqlite")).unwrap();
        install(&s, "b", 1);
        let r: Result<(), StoreError> = s.restore_from(&dir.path().join("b.sqlite"), |_| {
            Err(StoreError::NoSuchPlugin("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.plugins().unwrap().len(), 2);
    }

    #[test]
    fn alerts_stay_open_until_acknowledged_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "store.db");
        let row = AlertRow {
            id: 0,
            plugin: "a".into(),
            rule: "denials".into(),
            kind: "denials".into(),
            count: 5,
            threshold: 5,
            window_secs: 60,
            raised_at: 1,
            quarantined: false,
            message: "m".into(),
            acknowledged_at: None,
            acknowledged_by: None,
        };
        let id = s.write(|tx| insert_alert(&tx.sql, &row)).unwrap();
        s.write(|tx| bump_alert(&tx.sql, id, 9, true)).unwrap();
        let open = s.read(|c| open_alert(c, "a", "denials")).unwrap().unwrap();
        assert_eq!((open.count, open.quarantined), (9, true));
        assert!(s
            .write(|tx| acknowledge_alert(&tx.sql, id, "root"))
            .unwrap());
        assert!(!s
            .write(|tx| acknowledge_alert(&tx.sql, id, "root"))
            .unwrap());
        assert!(s.read(|c| open_alert(c, "a", "denials")).unwrap().is_none());
        assert_eq!(s.alerts(false).unwrap().len(), 0);
        assert_eq!(s.alerts(true).unwrap().len(), 1);
    }
}
