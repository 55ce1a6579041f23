//! Versioned schema migrations of the supervisor store, applied in order inside one
//! transaction each; `PRAGMA user_version` records the last one applied.

use rusqlite::Connection;

/// Each entry migrates from version `index` to `index + 1`. Never edit a shipped
/// migration: append a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE plugins (
    name          TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('disabled', 'enabled', 'quarantined')),
    state_reason  TEXT NOT NULL DEFAULT '',
    sha256        TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    install_dir   TEXT NOT NULL,
    core          INTEGER NOT NULL DEFAULT 0,
    installed_at  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE plugin_permissions (
    id              INTEGER PRIMARY KEY,
    plugin          TEXT NOT NULL REFERENCES plugins(name) ON DELETE CASCADE,
    permission      TEXT NOT NULL,
    requested_scope TEXT NOT NULL,
    justification   TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'denied', 'revoked')),
    granted_scope   TEXT,
    approvers       TEXT NOT NULL DEFAULT '[]',
    comment         TEXT,
    conditions      TEXT,
    decided_by      TEXT,
    granted_at      INTEGER,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    revoked_by      TEXT,
    UNIQUE (plugin, permission)
);

CREATE TABLE plugin_config (
    plugin      TEXT NOT NULL REFERENCES plugins(name) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (plugin, key)
);

CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    role          TEXT NOT NULL,
    on_behalf_of  TEXT,
    action        TEXT NOT NULL,
    plugin        TEXT,
    permission    TEXT,
    outcome       TEXT NOT NULL,
    before        TEXT,
    after         TEXT,
    detail        TEXT
);
CREATE INDEX audit_log_plugin_ts ON audit_log (plugin, ts);
CREATE INDEX audit_log_ts ON audit_log (ts);
"#,
    // Each plugin's uid/gid is uid_base + uid_offset, fixed for as long as it is installed.
    r#"
ALTER TABLE plugins ADD COLUMN uid_offset INTEGER;
UPDATE plugins SET uid_offset = rowid - 1;
CREATE UNIQUE INDEX plugins_uid_offset ON plugins (uid_offset);
"#,
    // The audit query walks the log backwards by id; no query used the ts index, and
    // every audit insert paid for it (the broker's batches insert thousands at a time).
    r#"
DROP INDEX audit_log_ts;
"#,
    // A fourth plugin state, changes_requested. SQLite cannot change a CHECK in place:
    // the table is rebuilt (foreign keys are off while migrations run, so the
    // permission and config rows that reference plugins stay as they are).
    r#"
CREATE TABLE plugins_new (
    name          TEXT PRIMARY KEY,
    version       TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('disabled', 'enabled', 'quarantined', 'changes_requested')),
    state_reason  TEXT NOT NULL DEFAULT '',
    sha256        TEXT NOT NULL,
    manifest      TEXT NOT NULL,
    install_dir   TEXT NOT NULL,
    core          INTEGER NOT NULL DEFAULT 0,
    installed_at  INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    uid_offset    INTEGER
);
INSERT INTO plugins_new (name, version, state, state_reason, sha256, manifest, install_dir, core, installed_at, updated_at, uid_offset)
    SELECT name, version, state, state_reason, sha256, manifest, install_dir, core, installed_at, updated_at, uid_offset FROM plugins;
DROP TABLE plugins;
ALTER TABLE plugins_new RENAME TO plugins;
CREATE UNIQUE INDEX plugins_uid_offset ON plugins (uid_offset);
"#,
    // The audit log's hash chain (audit::chain): records written before this have
    // neither and are reported as unchained by `verify system-integrity`.
    r#"
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
"#,
    // Operations: supervisor-wide settings (safe mode), the store backups taken, and
    // the alerts raised. None of the three is rolled back by a restore.
    r#"
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE TABLE backups (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    comment     TEXT NOT NULL DEFAULT '',
    bytes       INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    plugins     INTEGER NOT NULL
);
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    plugin           TEXT NOT NULL,
    rule             TEXT NOT NULL,
    kind             TEXT NOT NULL,
    count            INTEGER NOT NULL,
    threshold        INTEGER NOT NULL,
    window_secs      INTEGER NOT NULL,
    raised_at        INTEGER NOT NULL,
    quarantined      INTEGER NOT NULL DEFAULT 0,
    message          TEXT NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT
);
CREATE INDEX alerts_open ON alerts (plugin) WHERE acknowledged_at IS NULL;
"#,
    // Values the operator set for a plugin's declared [[settings]] (manifest::Declared);
    // the plugin's own config keys stay in plugin_config.
    r#"
CREATE TABLE plugin_settings (
    plugin      TEXT NOT NULL REFERENCES plugins(name) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (plugin, key)
);
"#,
    // What a Python plugin was pinned to at install (python_runtime::PythonPin, JSON):
    // interpreter, SDK bundle and the package's files. NULL for a native plugin.
    r#"
ALTER TABLE plugins ADD COLUMN runtime TEXT;
"#,
    // Publisher keys and who signed each installed plugin. A key row is never deleted:
    // removed and revoked keys stay, as the history a reviewer reads.
    r#"
ALTER TABLE plugins ADD COLUMN signer TEXT;
CREATE TABLE trusted_keys (
    fingerprint  TEXT PRIMARY KEY,
    publisher    TEXT NOT NULL,
    plugins      TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('proposed', 'trusted', 'removed', 'revoked')),
    comment      TEXT NOT NULL,
    proposed_by  TEXT NOT NULL,
    proposed_at  INTEGER NOT NULL,
    approved_by  TEXT,
    approved_at  INTEGER,
    ended_by     TEXT,
    ended_at     INTEGER,
    end_comment  TEXT
);
-- What review reads of the installed package: its content list, what it depends on,
-- and the version an update replaced (manifest, content list, signer).
CREATE TABLE plugin_packages (
    plugin       TEXT PRIMARY KEY REFERENCES plugins(name) ON DELETE CASCADE,
    contents     TEXT NOT NULL,
    inventory    TEXT NOT NULL,
    previous     TEXT
);
-- The offline advisory database last imported (one row: an import replaces it).
CREATE TABLE advisory_db (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    database     TEXT NOT NULL,
    source       TEXT NOT NULL,
    advisories   INTEGER NOT NULL,
    imported_at  INTEGER NOT NULL,
    imported_by  TEXT NOT NULL
);
"#,
];

/// Applies the pending migrations with foreign keys off (a table rebuild must not
/// cascade), checks every reference afterwards, and turns foreign keys back on.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    apply(conn)?;
    let broken: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    if broken != 0 {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            Some(format!(
                "{broken} rows reference missing plugins after migrating"
            )),
        ));
    }
    conn.pragma_update(None, "foreign_keys", "ON")
}

fn apply(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

pub fn latest_version() -> usize {
    MIGRATIONS.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugins_rebuild_keeps_every_row_and_reference() {
        let mut c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..3] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 3).unwrap();
        c.execute_batch(
            "INSERT INTO plugins VALUES ('p', '1.0.0', 'enabled', '', 'ab', 'm', '/x', 0, 1, 1, 0);
             INSERT INTO plugin_permissions (plugin, permission, requested_scope, justification, status)
                 VALUES ('p', 'file_read', '[]', 'why', 'granted');
             INSERT INTO plugin_config VALUES ('p', 'k', 'v', 1);",
        )
        .unwrap();
        migrate(&mut c).unwrap();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("PRAGMA user_version"), latest_version() as i64);
        assert_eq!(count("PRAGMA foreign_keys"), 1, "back on");
        assert_eq!(count("SELECT count(*) FROM plugin_permissions"), 1);
        assert_eq!(count("SELECT count(*) FROM plugin_config"), 1);
        c.execute("UPDATE plugins SET state = 'changes_requested'", [])
            .unwrap();
        assert!(c.execute("UPDATE plugins SET state = 'bogus'", []).is_err());
        // The references still cascade.
        c.execute("DELETE FROM plugins", []).unwrap();
        assert_eq!(count("SELECT count(*) FROM plugin_permissions"), 0);
        assert_eq!(count("SELECT count(*) FROM plugin_config"), 0);
    }
}
