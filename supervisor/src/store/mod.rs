//! The supervisor's SQLite store (WAL): plugins, permission requests and grants,
//! plugin config and the audit log. Every write runs in one transaction together
//! with the audit records it produced; callers never see a half-applied change.

mod ops;
mod package;
mod schema;
mod settings;
mod trust;

pub use ops::{
    acknowledge_alert, alert, bump_alert, delete_backup, disable_enabled, insert_alert,
    insert_backup, migrate_copy, open_alert, read_safe_mode, set_safe_mode, AlertRow, BackupRow,
    SafeMode,
};
pub use package::{
    advisory_db, package, put_advisory_db, put_package, AdvisoryDbRow, PackageRecord,
    PreviousVersion,
};
pub use settings::{retain_settings, set_setting, setting_values, unset_setting, SettingValue};
pub use trust::{plugins_signed_by, put_trusted_key, trusted_key, trusted_keys};

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::audit::{AuditEntry, Committed, LogFiles};
use crate::catalog::{Catalog, Permission};
use crate::clock::now_ms;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("plugin `{0}` is not installed")]
    NoSuchPlugin(String),
    #[error("plugin `{0}` is already installed (remove it first)")]
    AlreadyInstalled(String),
    #[error("store is unusable: a previous writer panicked")]
    Poisoned,
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
}

impl StoreError {
    /// The store cannot be written for want of space or working storage (as opposed
    /// to a refused or malformed change): callers answer UNAVAILABLE.
    pub fn is_unwritable(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Sql(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                DiskFull | SystemIoFailure | ReadOnly | CannotOpen | DatabaseBusy | DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// Audit records the store could not commit, handed back with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct AuditFailure {
    #[source]
    pub error: StoreError,
    pub entries: Vec<AuditEntry>,
}

impl From<AuditFailure> for crate::audit::CommitFailure {
    fn from(f: AuditFailure) -> Self {
        crate::audit::CommitFailure {
            reason: f.error.to_string(),
            entries: f.entries,
        }
    }
}

impl From<AuditFailure> for StoreError {
    fn from(f: AuditFailure) -> StoreError {
        f.error
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginState {
    Disabled,
    Enabled,
    Quarantined,
    /// Reviewers sent it back to its author; it cannot be enabled until it changes.
    ChangesRequested,
}

impl PluginState {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginState::Disabled => "disabled",
            PluginState::Enabled => "enabled",
            PluginState::Quarantined => "quarantined",
            PluginState::ChangesRequested => "changes_requested",
        }
    }
}

impl FromStr for PluginState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "disabled" => Ok(PluginState::Disabled),
            "enabled" => Ok(PluginState::Enabled),
            "quarantined" => Ok(PluginState::Quarantined),
            "changes_requested" => Ok(PluginState::ChangesRequested),
            other => Err(format!("unknown plugin state `{other}`")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionStatus {
    Pending,
    Granted,
    Denied,
    Revoked,
}

impl PermissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionStatus::Pending => "pending",
            PermissionStatus::Granted => "granted",
            PermissionStatus::Denied => "denied",
            PermissionStatus::Revoked => "revoked",
        }
    }
}

impl FromStr for PermissionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(PermissionStatus::Pending),
            "granted" => Ok(PermissionStatus::Granted),
            "denied" => Ok(PermissionStatus::Denied),
            "revoked" => Ok(PermissionStatus::Revoked),
            other => Err(format!("unknown permission status `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PluginRow {
    pub name: String,
    pub version: String,
    pub state: PluginState,
    pub state_reason: String,
    pub sha256: String,
    pub manifest: String,
    pub install_dir: String,
    pub core: bool,
    pub installed_at: i64,
    /// The plugin's uid/gid is `sandbox.uid_base + uid_offset`.
    pub uid_offset: u32,
    /// A Python plugin's pinned runtime; `None` for a native one.
    pub python: Option<crate::python_runtime::PythonPin>,
    /// Whose key signed the installed version; `None`: installed unsigned.
    pub signer: Option<crate::trust::Signer>,
}

#[derive(Debug, Clone)]
pub struct PermissionRow {
    pub plugin: String,
    pub permission: Permission,
    pub requested_scope: Vec<String>,
    pub justification: String,
    pub status: PermissionStatus,
    pub granted_scope: Vec<String>,
    pub approvers: Vec<String>,
    pub comment: Option<String>,
    pub conditions: Option<String>,
    pub decided_by: Option<String>,
    pub granted_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<String>,
}

impl PermissionRow {
    /// Granted, and not past its expiry at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.status == PermissionStatus::Granted && self.expires_at.is_none_or(|e| e > now)
    }

    /// The status as shown to people: a granted row past its expiry reads "expired".
    pub fn display_status(&self, now: i64) -> &'static str {
        if self.status == PermissionStatus::Granted && !self.is_live(now) {
            "expired"
        } else {
            self.status.as_str()
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub plugin: Option<String>,
    pub since_ms: Option<i64>,
    /// Only records older than this id (the paging cursor).
    pub before_id: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub ts_ms: i64,
    pub actor: String,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub plugin: Option<String>,
    pub permission: Option<String>,
    pub outcome: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub detail: Option<String>,
}

/// The outcome of [`Store::verify_audit_chain`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainCheck {
    /// Records verified on the chain.
    pub chained: u64,
    /// Records from before the chain existed.
    pub unchained: u64,
    /// Where the chain breaks, if it does.
    pub broken: Option<String>,
}

/// How many audit records share a plugin, action, outcome and permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCount {
    pub plugin: String,
    pub action: String,
    pub outcome: String,
    pub permission: Option<String>,
    pub count: u64,
}

/// A write transaction plus the audit records it will commit with.
pub struct Tx<'a> {
    pub sql: rusqlite::Transaction<'a>,
    audit: Vec<AuditEntry>,
}

impl Tx<'_> {
    pub fn audit(&mut self, entry: AuditEntry) {
        self.audit.push(entry.bounded());
    }
}

pub struct Store {
    conn: Mutex<Connection>,
    logs: Arc<LogFiles>,
    /// Each plugin's permission rows as last read. Every broker call checks a grant, and
    /// reading them from SQLite meant queueing behind the audit writer's commits on the
    /// one connection. Filled and cleared only under the connection lock, and cleared by
    /// every state-changing transaction, so a hit is never older than the last commit.
    grants: Mutex<HashMap<String, Arc<Vec<PermissionRow>>>>,
    /// Sees every committed audit record (monitoring counters and alert rules).
    observer: std::sync::OnceLock<Observer>,
}

/// Called with each committed batch of audit records, under the connection lock: it
/// must only count and hand off, never call back into the store.
pub type Observer = Box<dyn Fn(&[Committed]) + Send + Sync>;

impl Store {
    pub fn open(path: &Path, logs: Arc<LogFiles>) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an audit record the supervisor answered for survives power loss too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Turns foreign keys on once the schema is current.
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            logs,
            grants: Mutex::default(),
            observer: std::sync::OnceLock::new(),
        })
    }

    /// Installs the one observer of committed audit records; a second is refused.
    pub fn observe(&self, observer: Observer) -> Result<(), Observer> {
        self.observer.set(observer)
    }

    fn committed(&self, written: &[Committed]) {
        self.logs.append(written);
        if let Some(observe) = self.observer.get() {
            observe(written);
        }
    }

    pub fn schema_version() -> usize {
        schema::latest_version()
    }

    /// Runs `f` in an immediate transaction; its audit entries are inserted in the
    /// same transaction and mirrored to the log files after commit. On error
    /// nothing is written, the audit entries included.
    pub fn write<T, E>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let sql = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let mut tx = Tx {
            sql,
            audit: Vec::new(),
        };
        let value = f(&mut tx)?;
        let Tx { sql, audit } = tx;
        let mut prev = last_hash(&sql).map_err(StoreError::from)?;
        let mut rows = Vec::with_capacity(audit.len());
        for entry in &audit {
            rows.push(insert_audit(&sql, entry, &mut prev).map_err(StoreError::from)?);
        }
        sql.commit().map_err(StoreError::from)?;
        let written: Vec<Committed> = audit
            .into_iter()
            .zip(rows)
            .map(|(entry, (id, detail))| Committed { id, entry, detail })
            .collect();
        // Still under the connection lock, so the files keep the store's order and no
        // reader can refill the grant cache from before this commit.
        self.committed(&written);
        if let Ok(mut grants) = self.grants.lock() {
            grants.clear();
        }
        Ok(value)
    }

    /// Records audit entries that change nothing else (refusals, runtime events, the
    /// broker's batches); unlike `write`, leaves the grant cache alone. On failure the
    /// entries come back with the error, so the caller can keep and retry them.
    pub fn audit(&self, entries: Vec<AuditEntry>) -> Result<(), AuditFailure> {
        let mut conn = match self.conn.lock() {
            Ok(conn) => conn,
            Err(_) => {
                return Err(AuditFailure {
                    error: StoreError::Poisoned,
                    entries,
                })
            }
        };
        match insert_audit_batch(&mut conn, &entries) {
            Ok(rows) => {
                let written: Vec<Committed> = entries
                    .into_iter()
                    .zip(rows)
                    .map(|(entry, (id, detail))| Committed { id, entry, detail })
                    .collect();
                self.committed(&written);
                Ok(())
            }
            Err(e) => Err(AuditFailure {
                error: e.into(),
                entries,
            }),
        }
    }

    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn)
    }

    pub fn plugin(&self, name: &str) -> Result<Option<PluginRow>, StoreError> {
        self.read(|c| plugin_row(c, name))
    }

    pub fn require_plugin(&self, name: &str) -> Result<PluginRow, StoreError> {
        self.plugin(name)?
            .ok_or_else(|| StoreError::NoSuchPlugin(name.to_string()))
    }

    pub fn plugins(&self) -> Result<Vec<PluginRow>, StoreError> {
        self.read(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {PLUGIN_COLS} FROM plugins ORDER BY name"))?;
            let rows = stmt.query_map([], map_plugin)?;
            collect(rows)
        })
    }

    pub fn permissions(&self, plugin: &str) -> Result<Vec<PermissionRow>, StoreError> {
        Ok(self.cached_permissions(plugin)?.as_ref().clone())
    }

    fn cached_permissions(&self, plugin: &str) -> Result<Arc<Vec<PermissionRow>>, StoreError> {
        if let Some(hit) = self.grants.lock().ok().and_then(|g| g.get(plugin).cloned()) {
            return Ok(hit);
        }
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let rows = Arc::new(permission_rows(&conn, plugin)?);
        if let Ok(mut grants) = self.grants.lock() {
            grants.insert(plugin.to_string(), Arc::clone(&rows));
        }
        Ok(rows)
    }

    pub fn pending(&self) -> Result<Vec<(PluginRow, PermissionRow)>, StoreError> {
        self.permissions_where(|p| p.status == PermissionStatus::Pending)
    }

    /// Every plugin's permission rows that `keep` selects, plugins in name order.
    pub fn permissions_where(
        &self,
        keep: impl Fn(&PermissionRow) -> bool,
    ) -> Result<Vec<(PluginRow, PermissionRow)>, StoreError> {
        let mut out = Vec::new();
        for p in self.plugins()? {
            for perm in self.cached_permissions(&p.name)?.iter().filter(|r| keep(r)) {
                out.push((p.clone(), perm.clone()));
            }
        }
        Ok(out)
    }

    /// Audit records about plugins in `[from_ms, until_ms)`, counted by plugin, action,
    /// outcome and permission.
    pub fn audit_counts(
        &self,
        from_ms: i64,
        until_ms: i64,
        plugin: Option<&str>,
    ) -> Result<Vec<AuditCount>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT plugin, action, outcome, permission, count(*) FROM audit_log
                 WHERE plugin IS NOT NULL AND ts >= ?1 AND ts < ?2 AND (?3 IS NULL OR plugin = ?3)
                 GROUP BY plugin, action, outcome, permission ORDER BY plugin",
            )?;
            let rows = stmt.query_map(params![from_ms, until_ms, plugin], |r| {
                Ok(AuditCount {
                    plugin: r.get(0)?,
                    action: r.get(1)?,
                    outcome: r.get(2)?,
                    permission: r.get(3)?,
                    count: r.get::<_, i64>(4)?.try_into().unwrap_or(0),
                })
            })?;
            collect(rows)
        })
    }

    /// Walks the audit log in id order, recomputing the hash chain. Records written
    /// before the chain existed (no hash) count as unchained; after the first chained
    /// record every one must carry its predecessor's hash and its own correct hash.
    pub fn verify_audit_chain(&self) -> Result<ChainCheck, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT id, ts, actor, role, on_behalf_of, action, plugin, permission, outcome,
                        before, after, detail, prev_hash, hash
                 FROM audit_log ORDER BY id",
            )?;
            let mut rows = stmt.query([])?;
            let mut check = ChainCheck::default();
            let mut expected: Option<String> = None;
            while let Some(r) = rows.next()? {
                let id: i64 = r.get(0)?;
                let text = |i: usize| r.get::<_, Option<String>>(i);
                let (prev_hash, hash) = (text(12)?, text(13)?);
                let Some(hash) = hash else {
                    if expected.is_some() {
                        check.broken = Some(format!("record {id} carries no hash"));
                        return Ok(check);
                    }
                    check.unchained += 1;
                    continue;
                };
                let want_prev = expected.clone().unwrap_or_default();
                if prev_hash.as_deref() != Some(want_prev.as_str()) {
                    check.broken = Some(format!(
                        "record {id} does not follow the record before it: a record was removed, inserted or changed there"
                    ));
                    return Ok(check);
                }
                let (actor, role, action, outcome) = (
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(8)?,
                );
                let (obo, plugin, permission, before, after, detail) =
                    (text(4)?, text(6)?, text(7)?, text(9)?, text(10)?, text(11)?);
                let fields = crate::audit::chain::Fields {
                    ts: r.get(1)?,
                    actor: &actor,
                    role: &role,
                    on_behalf_of: obo.as_deref(),
                    action: &action,
                    plugin: plugin.as_deref(),
                    permission: permission.as_deref(),
                    outcome: &outcome,
                    before: before.as_deref(),
                    after: after.as_deref(),
                    detail: detail.as_deref(),
                };
                if crate::audit::chain::hash(&want_prev, &fields) != hash {
                    check.broken = Some(format!("record {id} was changed after it was written"));
                    return Ok(check);
                }
                check.chained += 1;
                expected = Some(hash);
            }
            Ok(check)
        })
    }

    /// SQLite's own `PRAGMA integrity_check`: "ok", or what it found.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        self.read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?))
    }

    /// Live grants expiring before `before_ms`, soonest first.
    pub fn expiring(&self, before_ms: i64) -> Result<Vec<(PluginRow, PermissionRow)>, StoreError> {
        let now = now_ms();
        let mut out = self.permissions_where(|p| {
            p.is_live(now) && p.expires_at.is_some_and(|at| at <= before_ms)
        })?;
        out.sort_by_key(|(_, perm)| perm.expires_at);
        Ok(out)
    }

    /// The live grant of `permission` for `plugin`, if any.
    pub fn live_grant(
        &self,
        plugin: &str,
        permission: Permission,
    ) -> Result<Option<PermissionRow>, StoreError> {
        let now = now_ms();
        Ok(self
            .cached_permissions(plugin)?
            .iter()
            .find(|p| p.permission == permission && p.is_live(now))
            .cloned())
    }

    /// Whether the plugin holds `permission` now, covering `target` if given.
    pub fn check_grant(
        &self,
        catalog: &Catalog,
        plugin: &str,
        permission: Permission,
        target: Option<&str>,
    ) -> Result<Option<PermissionRow>, StoreError> {
        let Some(grant) = self.live_grant(plugin, permission)? else {
            return Ok(None);
        };
        let shape = catalog.spec(permission).scope;
        let covered = match target {
            None => true,
            Some(t) => grant.granted_scope.iter().any(|e| shape.covers(e, t)),
        };
        Ok(covered.then_some(grant))
    }

    pub fn config_get(&self, plugin: &str, key: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT value FROM plugin_config WHERE plugin = ?1 AND key = ?2",
                params![plugin, key],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    pub fn config_count(&self, plugin: &str) -> Result<u32, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM plugin_config WHERE plugin = ?1",
                params![plugin],
                |r| r.get(0),
            )?)
        })
    }

    pub fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {AUDIT_ROW_COLS}
                 FROM audit_log
                 WHERE (?1 IS NULL OR plugin = ?1) AND (?2 IS NULL OR ts >= ?2)
                   AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.plugin,
                    filter.since_ms,
                    filter.limit,
                    filter.before_id
                ],
                map_audit_row,
            )?;
            // Newest N, shown oldest first.
            let mut out = collect(rows)?;
            out.reverse();
            Ok(out)
        })
    }
}

/// Maps `AUDIT_ROW_COLS` in that order.
const AUDIT_ROW_COLS: &str =
    "id, ts, actor, on_behalf_of, action, plugin, permission, outcome, before, after, detail";

fn map_audit_row(r: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        ts_ms: r.get(1)?,
        actor: r.get(2)?,
        on_behalf_of: r.get(3)?,
        action: r.get(4)?,
        plugin: r.get(5)?,
        permission: r.get(6)?,
        outcome: r.get(7)?,
        before: r.get(8)?,
        after: r.get(9)?,
        detail: r.get(10)?,
    })
}

const PLUGIN_COLS: &str =
    "name, version, state, state_reason, sha256, manifest, install_dir, core, installed_at, uid_offset, runtime, signer";

fn map_plugin(r: &Row<'_>) -> rusqlite::Result<PluginRow> {
    let state: String = r.get(2)?;
    Ok(PluginRow {
        name: r.get(0)?,
        version: r.get(1)?,
        state: state.parse().map_err(|e: String| corrupt(2, e))?,
        state_reason: r.get(3)?,
        sha256: r.get(4)?,
        manifest: r.get(5)?,
        install_dir: r.get(6)?,
        core: r.get(7)?,
        installed_at: r.get(8)?,
        uid_offset: r.get(9)?,
        python: r
            .get::<_, Option<String>>(10)?
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt(10, e.to_string())))
            .transpose()?,
        signer: r
            .get::<_, Option<String>>(11)?
            .map(|text| serde_json::from_str(&text).map_err(|e| corrupt(11, e.to_string())))
            .transpose()?,
    })
}

pub fn plugin_names(c: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare("SELECT name FROM plugins ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    collect(rows)
}

pub fn plugin_row(c: &Connection, name: &str) -> Result<Option<PluginRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {PLUGIN_COLS} FROM plugins WHERE name = ?1"),
        params![name],
        map_plugin,
    )
    .optional()?)
}

const PERMISSION_COLS: &str = "plugin, permission, requested_scope, justification, status, granted_scope, approvers, comment, conditions, decided_by, granted_at, expires_at, revoked_at, revoked_by";

fn corrupt(col: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        Box::new(std::io::Error::other(message)),
    )
}

fn json_list(r: &Row<'_>, col: usize) -> rusqlite::Result<Vec<String>> {
    let text: Option<String> = r.get(col)?;
    match text {
        None => Ok(Vec::new()),
        Some(t) => serde_json::from_str(&t).map_err(|e| corrupt(col, e.to_string())),
    }
}

fn map_permission(r: &Row<'_>) -> rusqlite::Result<PermissionRow> {
    let permission: String = r.get(1)?;
    let status: String = r.get(4)?;
    Ok(PermissionRow {
        plugin: r.get(0)?,
        permission: permission
            .parse()
            .map_err(|e: crate::catalog::UnknownPermission| corrupt(1, e.to_string()))?,
        requested_scope: json_list(r, 2)?,
        justification: r.get(3)?,
        status: status.parse().map_err(|e: String| corrupt(4, e))?,
        granted_scope: json_list(r, 5)?,
        approvers: json_list(r, 6)?,
        comment: r.get(7)?,
        conditions: r.get(8)?,
        decided_by: r.get(9)?,
        granted_at: r.get(10)?,
        expires_at: r.get(11)?,
        revoked_at: r.get(12)?,
        revoked_by: r.get(13)?,
    })
}

pub fn permission_rows(c: &Connection, plugin: &str) -> Result<Vec<PermissionRow>, StoreError> {
    let mut stmt = c.prepare(&format!(
        "SELECT {PERMISSION_COLS} FROM plugin_permissions WHERE plugin = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![plugin], map_permission)?;
    collect(rows)
}

/// Writes the decision fields of a permission row back.
pub fn update_permission(c: &Connection, p: &PermissionRow) -> Result<(), StoreError> {
    let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    c.execute(
        "UPDATE plugin_permissions SET status = ?3, granted_scope = ?4, approvers = ?5,
             comment = ?6, conditions = ?7, decided_by = ?8, granted_at = ?9, expires_at = ?10,
             revoked_at = ?11, revoked_by = ?12
         WHERE plugin = ?1 AND permission = ?2",
        params![
            p.plugin,
            p.permission.as_str(),
            p.status.as_str(),
            json(&p.granted_scope),
            json(&p.approvers),
            p.comment,
            p.conditions,
            p.decided_by,
            p.granted_at,
            p.expires_at,
            p.revoked_at,
            p.revoked_by
        ],
    )?;
    Ok(())
}

/// The lowest uid offset no installed plugin holds, below `count`.
pub fn free_uid_offset(c: &Connection, count: u32) -> Result<u32, StoreError> {
    let mut stmt = c.prepare("SELECT uid_offset FROM plugins ORDER BY uid_offset")?;
    let taken = collect(stmt.query_map([], |r| r.get::<_, u32>(0))?)?;
    let mut candidate = 0u32;
    for t in taken {
        if t == candidate {
            candidate += 1;
        } else if t > candidate {
            break;
        }
    }
    if candidate >= count {
        return Err(StoreError::Corrupt {
            table: "plugins",
            message: format!("all {count} plugin uids are in use (raise sandbox.uid_count)"),
        });
    }
    Ok(candidate)
}

fn pin_json(pin: &crate::python_runtime::PythonPin) -> Result<String, StoreError> {
    serde_json::to_string(pin).map_err(|e| StoreError::Corrupt {
        table: "plugins",
        message: format!("encoding the runtime pin: {e}"),
    })
}

fn python_json(p: &PluginRow) -> Result<Option<String>, StoreError> {
    p.python.as_ref().map(pin_json).transpose()
}

fn signer_json(p: &PluginRow) -> Option<String> {
    // Two strings: encoding cannot fail.
    p.signer
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok())
}

/// Records a Python plugin's new runtime pin (see `install::repin_runtime`).
pub fn set_python_pin(
    c: &Connection,
    name: &str,
    pin: &crate::python_runtime::PythonPin,
) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE plugins SET runtime = ?2, updated_at = ?3 WHERE name = ?1",
        params![name, pin_json(pin)?, now_ms()],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchPlugin(name.to_string()));
    }
    Ok(())
}

pub fn insert_plugin(c: &Connection, p: &PluginRow) -> Result<(), StoreError> {
    let now = now_ms();
    let inserted = c.execute(
        "INSERT INTO plugins (name, version, state, state_reason, sha256, manifest, install_dir, core, installed_at, updated_at, uid_offset, runtime, signer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12)
         ON CONFLICT (name) DO NOTHING",
        params![
            p.name,
            p.version,
            p.state.as_str(),
            p.state_reason,
            p.sha256,
            p.manifest,
            p.install_dir,
            p.core,
            now,
            p.uid_offset,
            python_json(p)?,
            signer_json(p)
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::AlreadyInstalled(p.name.clone()));
    }
    Ok(())
}

pub fn insert_request(
    c: &Connection,
    plugin: &str,
    permission: Permission,
    scope: &[String],
    justification: &str,
) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO plugin_permissions (plugin, permission, requested_scope, justification, status)
         VALUES (?1, ?2, ?3, ?4, 'pending')",
        params![
            plugin,
            permission.as_str(),
            serde_json::to_string(scope).unwrap_or_else(|_| "[]".into()),
            justification
        ],
    )?;
    Ok(())
}

/// Points the plugin at a new installed version (the update's pin).
pub fn set_version(c: &Connection, p: &PluginRow) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE plugins SET version = ?2, sha256 = ?3, manifest = ?4, install_dir = ?5, core = ?6,
             state = ?7, state_reason = ?8, updated_at = ?9, runtime = ?10, signer = ?11
         WHERE name = ?1",
        params![
            p.name,
            p.version,
            p.sha256,
            p.manifest,
            p.install_dir,
            p.core,
            p.state.as_str(),
            p.state_reason,
            now_ms(),
            python_json(p)?,
            signer_json(p)
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchPlugin(p.name.clone()));
    }
    Ok(())
}

/// A new version asks for `permission` with this scope and justification: the
/// decision on the row is kept (`keep_decision`) or it goes back to pending review.
pub fn rerequest(
    c: &Connection,
    plugin: &str,
    permission: Permission,
    scope: &[String],
    justification: &str,
    keep_decision: bool,
) -> Result<(), StoreError> {
    let scope = serde_json::to_string(scope).unwrap_or_else(|_| "[]".into());
    let sql = if keep_decision {
        "UPDATE plugin_permissions SET requested_scope = ?3, justification = ?4
         WHERE plugin = ?1 AND permission = ?2"
    } else {
        "UPDATE plugin_permissions SET requested_scope = ?3, justification = ?4, status = 'pending',
             granted_scope = NULL, approvers = '[]', comment = NULL, conditions = NULL,
             decided_by = NULL, granted_at = NULL, expires_at = NULL, revoked_at = NULL,
             revoked_by = NULL
         WHERE plugin = ?1 AND permission = ?2"
    };
    c.execute(
        sql,
        params![plugin, permission.as_str(), scope, justification],
    )?;
    Ok(())
}

/// The plugin no longer requests `permission`.
pub fn delete_request(
    c: &Connection,
    plugin: &str,
    permission: Permission,
) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM plugin_permissions WHERE plugin = ?1 AND permission = ?2",
        params![plugin, permission.as_str()],
    )?;
    Ok(())
}

pub fn set_state(
    c: &Connection,
    name: &str,
    state: PluginState,
    reason: &str,
) -> Result<(), StoreError> {
    let n = c.execute(
        "UPDATE plugins SET state = ?2, state_reason = ?3, updated_at = ?4 WHERE name = ?1",
        params![name, state.as_str(), reason, now_ms()],
    )?;
    if n == 0 {
        return Err(StoreError::NoSuchPlugin(name.to_string()));
    }
    Ok(())
}

pub fn delete_plugin(c: &Connection, name: &str) -> Result<(), StoreError> {
    let n = c.execute("DELETE FROM plugins WHERE name = ?1", params![name])?;
    if n == 0 {
        return Err(StoreError::NoSuchPlugin(name.to_string()));
    }
    Ok(())
}

pub fn config_set(c: &Connection, plugin: &str, key: &str, value: &str) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO plugin_config (plugin, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![plugin, key, value, now_ms()],
    )?;
    Ok(())
}

/// Rows per multi-row INSERT of an audit batch (11 parameters each, well within
/// SQLite's 32766-parameter limit).
const AUDIT_ROWS_PER_INSERT: usize = 32;

const AUDIT_COLUMNS: &str =
    "INSERT INTO audit_log (ts, actor, role, on_behalf_of, action, plugin, permission, outcome, before, after, detail, prev_hash, hash) VALUES ";

/// The hash of the newest record: where the next one chains on ("" before any).
fn last_hash(c: &Connection) -> rusqlite::Result<String> {
    Ok(c.query_row(
        "SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1",
        [],
        |r| r.get::<_, Option<String>>(0),
    )
    .optional()?
    .flatten()
    .unwrap_or_default())
}

fn chain_hash(prev: &str, e: &AuditEntry, outcome: &str, detail: Option<&str>) -> String {
    crate::audit::chain::hash(
        prev,
        &crate::audit::chain::Fields {
            ts: e.ts_ms,
            actor: &e.actor,
            role: e.role,
            on_behalf_of: e.on_behalf_of.as_deref(),
            action: &e.action,
            plugin: e.plugin.as_deref(),
            permission: e.permission.as_deref(),
            outcome,
            before: e.before.as_deref(),
            after: e.after.as_deref(),
            detail,
        },
    )
}

/// Inserts `entries` in one immediate transaction, chained on the last record; the id
/// and detail text of each, in order.
fn insert_audit_batch(
    conn: &mut Connection,
    entries: &[AuditEntry],
) -> rusqlite::Result<Vec<(i64, Option<String>)>> {
    let sql = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut rows = Vec::with_capacity(entries.len());
    let mut prev = last_hash(&sql)?;
    for chunk in entries.chunks(AUDIT_ROWS_PER_INSERT) {
        if chunk.len() == AUDIT_ROWS_PER_INSERT {
            rows.extend(insert_audit_rows(&sql, chunk, &mut prev)?);
        } else {
            for entry in chunk {
                rows.push(insert_audit(&sql, entry, &mut prev)?);
            }
        }
    }
    sql.commit()?;
    Ok(rows)
}

/// Inserts exactly `AUDIT_ROWS_PER_INSERT` records with one statement: one pass
/// through SQLite's VM and one `sqlite_sequence` update instead of one per row. The
/// rows of one INSERT get consecutive rowids (AUTOINCREMENT, one writer), ending at
/// `last_insert_rowid`.
fn insert_audit_rows(
    c: &Connection,
    entries: &[AuditEntry],
    prev: &mut String,
) -> rusqlite::Result<Vec<(i64, Option<String>)>> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        format!(
            "{AUDIT_COLUMNS}{}",
            vec![row; AUDIT_ROWS_PER_INSERT].join(", ")
        )
    });
    let details: Vec<Option<String>> = entries.iter().map(Committed::detail_text).collect();
    let outcomes: Vec<&str> = entries.iter().map(|e| e.outcome.as_str()).collect();
    // Each row chains on the one before it, in insertion (id) order.
    let mut links: Vec<(String, String)> = Vec::with_capacity(entries.len());
    for ((e, detail), outcome) in entries.iter().zip(&details).zip(&outcomes) {
        let hash = chain_hash(prev, e, outcome, detail.as_deref());
        links.push((std::mem::replace(prev, hash.clone()), hash));
    }
    let mut stmt = c.prepare_cached(sql)?;
    let mut params: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(entries.len() * 13);
    for (((e, detail), outcome), (prev_hash, hash)) in
        entries.iter().zip(&details).zip(&outcomes).zip(&links)
    {
        params.extend_from_slice(&[
            &e.ts_ms,
            &e.actor,
            &e.role,
            &e.on_behalf_of,
            &e.action,
            &e.plugin,
            &e.permission,
            outcome,
            &e.before,
            &e.after,
            detail,
            prev_hash,
            hash,
        ]);
    }
    stmt.execute(params.as_slice())?;
    drop(params);
    let first = c.last_insert_rowid() - entries.len() as i64 + 1;
    Ok(details
        .into_iter()
        .enumerate()
        .map(|(i, detail)| (first + i as i64, detail))
        .collect())
}

fn insert_audit(
    c: &Connection,
    e: &AuditEntry,
    prev: &mut String,
) -> rusqlite::Result<(i64, Option<String>)> {
    let detail = Committed::detail_text(e);
    let hash = chain_hash(prev, e, e.outcome.as_str(), detail.as_deref());
    // Cached: the broker's batches insert thousands of rows per transaction.
    let mut stmt = c.prepare_cached(&format!(
        "{AUDIT_COLUMNS}(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
    ))?;
    stmt.execute(params![
        e.ts_ms,
        e.actor,
        e.role,
        e.on_behalf_of,
        e.action,
        e.plugin,
        e.permission,
        e.outcome.as_str(),
        e.before,
        e.after,
        detail,
        prev.as_str(),
        hash
    ])?;
    *prev = hash;
    Ok((c.last_insert_rowid(), detail))
}

fn collect<T>(rows: impl Iterator<Item = rusqlite::Result<T>>) -> Result<Vec<T>, StoreError> {
    rows.collect::<rusqlite::Result<Vec<T>>>()
        .map_err(StoreError::from)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::audit::{Actor, Outcome};

    /// A fresh store in a temporary directory (the store's own tests and its
    /// submodules' share it).
    pub(crate) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogFiles::open(&dir.path().join("log")).unwrap());
        let s = Store::open(&dir.path().join("store.db"), logs).unwrap();
        (dir, s)
    }

    /// A disabled native plugin row named `name`.
    pub(crate) fn row(name: &str) -> PluginRow {
        PluginRow {
            name: name.into(),
            version: "1.0.0".into(),
            state: PluginState::Disabled,
            state_reason: String::new(),
            sha256: "00".into(),
            manifest: String::new(),
            install_dir: "/x".into(),
            core: false,
            installed_at: 0,
            uid_offset: 0,
            python: None,
            signer: None,
        }
    }

    #[test]
    fn a_full_store_hands_the_batch_back_and_takes_it_once_there_is_room() {
        let (_dir, s) = store();
        let entry = |i: u64| {
            AuditEntry::new(&Actor::plugin("p"), "broker.test", Outcome::Ok)
                .plugin("p")
                .detail(serde_json::json!({ "i": i, "pad": "x".repeat(500) }))
        };
        s.audit((0..10).map(entry).collect()).unwrap();
        // SQLite's own limit stands in for a full disk: SQLITE_FULL on the next page.
        let pages: i64 = s
            .read(|c| Ok(c.query_row("PRAGMA page_count", [], |r| r.get(0))?))
            .unwrap();
        s.read(|c| Ok(c.pragma_update(None, "max_page_count", pages)?))
            .unwrap();
        let failure = s
            .audit((10..110).map(entry).collect())
            .expect_err("no room for 100 records");
        assert!(failure.error.is_unwritable(), "{}", failure.error);
        assert_eq!(failure.entries.len(), 100, "the whole batch comes back");
        s.read(|c| Ok(c.pragma_update(None, "max_page_count", 1_000_000)?))
            .unwrap();
        s.audit(failure.entries).unwrap();
        let chain = s.verify_audit_chain().unwrap();
        assert_eq!(chain.broken, None);
        assert_eq!(chain.chained, 110);
    }

    #[test]
    fn a_failed_transaction_leaves_no_trace_not_even_its_audit() {
        let (_d, s) = store();
        let r: Result<(), StoreError> = s.write(|tx| {
            insert_plugin(&tx.sql, &row("a"))?;
            tx.audit(AuditEntry::new(
                &Actor::system(),
                "plugin.install",
                Outcome::Ok,
            ));
            Err(StoreError::NoSuchPlugin("boom".into()))
        });
        assert!(r.is_err());
        assert!(s.plugin("a").unwrap().is_none());
        assert!(s
            .query_audit(&AuditFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .is_empty());
    }

    #[test]
    fn audit_pages_walk_back_from_a_cursor() {
        let (_d, s) = store();
        for i in 0..25 {
            s.audit(vec![AuditEntry::new(
                &Actor::system(),
                &format!("t.{i}"),
                Outcome::Ok,
            )])
            .unwrap();
        }
        let page = |before_id, limit| {
            s.query_audit(&AuditFilter {
                before_id,
                limit,
                ..Default::default()
            })
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
        };
        let newest = page(None, 10);
        assert_eq!(
            newest,
            (16..=25).collect::<Vec<_>>(),
            "newest, oldest first"
        );
        assert_eq!(page(Some(16), 10), (6..=15).collect::<Vec<_>>());
        assert_eq!(page(Some(6), 10), (1..=5).collect::<Vec<_>>());
        assert!(page(Some(1), 10).is_empty());
    }

    #[test]
    fn install_twice_is_refused_and_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogFiles::open(&dir.path().join("log")).unwrap());
        {
            let s = Store::open(&dir.path().join("store.db"), logs.clone()).unwrap();
            s.write(|tx| {
                insert_plugin(&tx.sql, &row("a"))?;
                insert_request(&tx.sql, "a", Permission::FileRead, &["/srv".into()], "why")?;
                tx.audit(
                    AuditEntry::new(&Actor::system(), "plugin.install", Outcome::Ok).plugin("a"),
                );
                Ok::<_, StoreError>(())
            })
            .unwrap();
            let again = s.write(|tx| insert_plugin(&tx.sql, &row("a")));
            assert!(matches!(again, Err(StoreError::AlreadyInstalled(_))));
        }
        let s = Store::open(&dir.path().join("store.db"), logs).unwrap();
        let perms = s.permissions("a").unwrap();
        assert_eq!(perms[0].requested_scope, vec!["/srv".to_string()]);
        assert_eq!(perms[0].status, PermissionStatus::Pending);
        let audit = s
            .query_audit(&AuditFilter {
                plugin: Some("a".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(audit.len(), 1);
        // Hostile text is data, never SQL.
        assert!(s.plugin("a' OR '1'='1").unwrap().is_none());
    }

    #[test]
    fn expiry_is_judged_against_now() {
        let (_d, s) = store();
        s.write(|tx| {
            insert_plugin(&tx.sql, &row("a"))?;
            insert_request(&tx.sql, "a", Permission::DatabaseRead, &["t".into()], "why")
        })
        .unwrap();
        let mut p = s.permissions("a").unwrap().remove(0);
        p.status = PermissionStatus::Granted;
        p.granted_scope = vec!["t".into()];
        p.expires_at = Some(now_ms() - 1);
        s.write(|tx| update_permission(&tx.sql, &p)).unwrap();
        assert!(s
            .live_grant("a", Permission::DatabaseRead)
            .unwrap()
            .is_none());
        assert_eq!(
            s.permissions("a").unwrap()[0].display_status(now_ms()),
            "expired"
        );
    }

    #[test]
    fn cached_grants_follow_every_state_change_but_not_audit_batches() {
        let (_d, s) = store();
        s.write(|tx| {
            insert_plugin(&tx.sql, &row("a"))?;
            insert_request(&tx.sql, "a", Permission::DatabaseRead, &["t".into()], "why")
        })
        .unwrap();
        assert!(s
            .live_grant("a", Permission::DatabaseRead)
            .unwrap()
            .is_none());
        let mut p = s.permissions("a").unwrap().remove(0);
        p.status = PermissionStatus::Granted;
        p.granted_scope = vec!["t".into()];
        s.write(|tx| update_permission(&tx.sql, &p)).unwrap();
        assert!(
            s.live_grant("a", Permission::DatabaseRead)
                .unwrap()
                .is_some(),
            "granted"
        );
        // An audit batch commits without touching grants; the cache stays valid.
        s.audit(vec![AuditEntry::new(
            &crate::audit::Actor::plugin("a"),
            "broker.test",
            crate::audit::Outcome::Ok,
        )])
        .unwrap();
        assert!(s.grants.lock().unwrap().contains_key("a"));
        p.status = PermissionStatus::Revoked;
        s.write(|tx| update_permission(&tx.sql, &p)).unwrap();
        assert!(
            s.live_grant("a", Permission::DatabaseRead)
                .unwrap()
                .is_none(),
            "revoked at once"
        );
    }

    #[test]
    fn a_large_audit_batch_keeps_ids_the_store_and_the_log_files_agree_on() {
        let (d, s) = store();
        let entries: Vec<AuditEntry> = (0..100)
            .map(|n| {
                AuditEntry::new(
                    &crate::audit::Actor::plugin("a"),
                    "broker.test",
                    crate::audit::Outcome::Ok,
                )
                .detail(serde_json::json!({ "n": n }))
            })
            .collect();
        s.audit(entries).unwrap();
        let log = std::fs::read_to_string(d.path().join("log/plugins/activity.log")).unwrap();
        let lines: Vec<serde_json::Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 100);
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(line["detail"]["n"], i, "in order");
            let id = line["id"].as_i64().unwrap();
            let stored: String = s
                .read(|c| {
                    Ok(
                        c.query_row("SELECT detail FROM audit_log WHERE id = ?1", [id], |r| {
                            r.get(0)
                        })?,
                    )
                })
                .unwrap();
            assert_eq!(stored, format!("{{\"n\":{i}}}"), "row {id}");
        }
    }

    #[test]
    fn the_audit_chain_verifies_and_names_the_first_tampered_record() {
        let (_d, s) = store();
        let entry = |n: i64| {
            AuditEntry::new(
                &crate::audit::Actor::plugin("a"),
                "broker.test",
                crate::audit::Outcome::Ok,
            )
            .plugin("a")
            .detail(serde_json::json!({ "n": n }))
        };
        s.audit((0..40).map(entry).collect()).unwrap();
        s.write(|tx| {
            tx.audit(entry(40));
            Ok::<_, StoreError>(())
        })
        .unwrap();
        let ok = s.verify_audit_chain().unwrap();
        assert_eq!((ok.chained, ok.broken.clone()), (41, None), "{ok:?}");
        let tamper = |sql: &str| s.read(|c| Ok(c.execute(sql, [])?)).unwrap();
        tamper("UPDATE audit_log SET detail = '{\"n\":999}' WHERE id = 20");
        let broken = s.verify_audit_chain().unwrap().broken.unwrap();
        assert!(broken.contains("record 20 was changed"), "{broken}");
        tamper("UPDATE audit_log SET detail = '{\"n\":19}' WHERE id = 20");
        assert_eq!(s.verify_audit_chain().unwrap().broken, None, "restored");
        tamper("DELETE FROM audit_log WHERE id = 30");
        let broken = s.verify_audit_chain().unwrap().broken.unwrap();
        assert!(broken.contains("record 31 does not follow"), "{broken}");
    }
}
