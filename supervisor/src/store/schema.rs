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
];

pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
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
