//! Store backups: SQLite online backups under `<state>/backups/`, recorded with their
//! SHA-256, taken before every install, update and restore and on demand; and the
//! restore itself, with the daemon running (plugins stopped, history kept, audited).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::context::Shared;
use crate::runtime::{Runtime, StopMode};
use crate::store::{self, BackupRow, PluginState, StoreError};

/// Why a backup was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Manual,
    Install,
    Update,
    Restore,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::Install => "install",
            Reason::Update => "update",
            Reason::Restore => "restore",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup `{0}` (see `plexichat backup list`)")]
    NotFound(String),
    #[error("`{0}` is not a backup id (digits and dashes, as `plexichat backup list` shows)")]
    BadId(String),
    #[error("backup `{id}` was modified since it was taken (SHA-256 {found}, recorded {recorded}); refusing to restore it")]
    Tampered {
        id: String,
        found: String,
        recorded: String,
    },
    #[error("backup file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    LowSpace(#[from] crate::diskspace::LowSpace),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Takes a backup of the whole store now and records it; prunes the oldest beyond
/// `backup.keep`.
pub fn create(
    shared: &Shared,
    actor: &Actor,
    reason: Reason,
    comment: &str,
) -> Result<BackupRow, BackupError> {
    crate::diskspace::check(&shared.cfg)?;
    let dir = shared.cfg.backup_dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io(&dir))?;
    let (id, partial) = reserve_id(shared, &dir)?;
    let file = file_of(&dir, &id);
    let made = shared
        .store
        .backup_to(&partial)
        .and_then(|()| standalone(&partial))
        .map_err(BackupError::from)
        .and_then(|()| seal(&partial, &file));
    if let Err(e) = made {
        remove_db_files(&partial);
        return Err(e);
    }
    let row = BackupRow {
        id: id.clone(),
        created_at: now_ms(),
        reason: reason.as_str().into(),
        created_by: actor.approver(),
        comment: comment.to_string(),
        bytes: fs::metadata(&file).map_err(io(&file))?.len(),
        sha256: crate::install::sha256_file(&file).map_err(io(&file))?,
        plugins: count_plugins(&file)?,
    };
    let pruned = shared.store.write(|tx| {
        store::insert_backup(&tx.sql, &row)?;
        tx.audit(
            AuditEntry::new(actor, "backup.create", Outcome::Ok).detail(serde_json::json!({
                "id": row.id, "reason": row.reason, "sha256": row.sha256, "bytes": row.bytes,
                "plugins": row.plugins, "comment": comment,
            })),
        );
        prune(tx, shared.cfg.backup.keep, &row.id)
    })?;
    for id in pruned {
        remove_db_files(&file_of(&dir, &id));
        remove_db_files(&partial_of(&dir, &id));
    }
    tracing::info!(id = %row.id, reason = reason.as_str(), bytes = row.bytes, "store backup taken");
    Ok(row)
}

/// The oldest backups beyond `keep` (never `newest`), dropped from the record.
fn prune(tx: &mut store::Tx<'_>, keep: usize, newest: &str) -> Result<Vec<String>, StoreError> {
    let mut ids: Vec<String> = {
        let mut stmt = tx
            .sql
            .prepare("SELECT id FROM backups ORDER BY created_at, id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    ids.retain(|id| id != newest);
    let excess = (ids.len() + 1).saturating_sub(keep.max(1));
    let pruned: Vec<String> = ids.into_iter().take(excess).collect();
    for id in &pruned {
        store::delete_backup(&tx.sql, id)?;
        tx.audit(
            AuditEntry::new(&Actor::system(), "backup.prune", Outcome::Ok)
                .detail(serde_json::json!({ "id": id, "keep": keep })),
        );
    }
    Ok(pruned)
}

/// The copy keeps the store's WAL mode, and opening it would leave `-wal` and
/// `-shm` files beside it: a backup is one self-contained file instead.
fn standalone(partial: &Path) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(partial)?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// Makes the finished copy durable and gives it its final name.
fn seal(partial: &Path, file: &Path) -> Result<(), BackupError> {
    fs::set_permissions(partial, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(io(partial))?;
    fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(io(partial))?;
    fs::rename(partial, file).map_err(io(file))?;
    if let Some(dir) = file.parent() {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// The install directories of `plugin` that kept backups point at: an update
/// keeps them, so restoring a backup from before it still finds its files. A
/// backup that cannot be read keeps nothing (it could not be restored either).
pub fn install_dirs_in_backups(shared: &Shared, plugin: &str) -> Result<Vec<PathBuf>, BackupError> {
    let dir = shared.cfg.backup_dir();
    let mut dirs = Vec::new();
    for row in shared.store.backups()? {
        let file = file_of(&dir, &row.id);
        let found = rusqlite::Connection::open_with_flags(
            &file,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|conn| {
            conn.query_row(
                "SELECT install_dir FROM plugins WHERE name = ?1",
                [plugin],
                |r| r.get::<_, String>(0),
            )
        });
        match found {
            Ok(d) => dirs.push(PathBuf::from(d)),
            Err(rusqlite::Error::QueryReturnedNoRows) => {}
            Err(e) => {
                tracing::warn!(plugin, backup = %row.id, error = %e, "cannot read a backup's plugin rows")
            }
        }
    }
    Ok(dirs)
}

fn count_plugins(file: &Path) -> Result<u32, BackupError> {
    let conn =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(StoreError::from)?;
    Ok(conn
        .query_row("SELECT count(*) FROM plugins", [], |r| r.get(0))
        .map_err(StoreError::from)?)
}

/// Reserves a fresh id, `YYYYMMDD-HHMMSS-mmm` of now (UTC) with a counter if
/// that is taken, by creating its partial file (O_EXCL, 0600): two concurrent
/// backups never get the same id. An id whose backup file or record exists is
/// skipped.
fn reserve_id(shared: &Shared, dir: &Path) -> Result<(String, PathBuf), BackupError> {
    let base = crate::clock::compact_utc_ms(now_ms());
    for n in 0..10_000u32 {
        let id = match n {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        };
        let partial = partial_of(dir, &id);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io(&partial)(e)),
        }
        // Checked after the reservation: a backup that finished meanwhile has
        // renamed its partial file to this.
        if file_of(dir, &id).exists() || shared.store.backup(&id)?.is_some() {
            let _ = fs::remove_file(&partial);
            continue;
        }
        return Ok((id, partial));
    }
    Err(BackupError::Io {
        path: dir.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "no free backup id in this millisecond",
        ),
    })
}

fn partial_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!(".{id}.partial"))
}

/// A SQLite file and what SQLite may have put beside it.
fn remove_db_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        if let Err(e) = fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %Path::new(&p).display(), error = %e, "could not delete a backup file");
            }
        }
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id.starts_with(|c: char| c.is_ascii_digit())
        && id.chars().all(|c| c.is_ascii_digit() || c == '-')
}

fn file_of(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.sqlite"))
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub backup: BackupRow,
    pub safety: BackupRow,
    pub plugins: Vec<String>,
    pub started: Vec<String>,
}

/// Restores the plugins, their permissions and config from backup `id`: every
/// plugin is stopped first and the current state backed up; the audit log, safe
/// mode, alerts and the backup records are kept. With `exclude_plugins` no plugin
/// is started afterwards (each is left disabled); without it the enabled ones start
/// again unless safe mode is on.
pub async fn restore(
    shared: &Arc<Shared>,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    id: &str,
    exclude_plugins: bool,
    comment: &str,
) -> Result<Restored, BackupError> {
    if !valid_id(id) {
        return Err(BackupError::BadId(id.chars().take(60).collect()));
    }
    let backup = shared
        .store
        .backup(id)?
        .ok_or_else(|| BackupError::NotFound(id.to_string()))?;
    let dir = shared.cfg.backup_dir();
    let file = file_of(&dir, id);
    let found = crate::install::sha256_file(&file).map_err(io(&file))?;
    if found != backup.sha256 {
        return Err(BackupError::Tampered {
            id: id.to_string(),
            found,
            recorded: backup.sha256,
        });
    }
    // Migrations run on a copy: the backup itself stays as it was taken.
    let copy = dir.join(format!(".restore-{id}.sqlite"));
    copy_file(&file, &copy)?;
    let result = async {
        store::migrate_copy(&copy)?;
        let before: Vec<String> = shared
            .store
            .plugins()?
            .into_iter()
            .map(|p| p.name)
            .collect();
        runtime.stop_all(StopMode::Graceful).await;
        // The backup and the restore are blocking SQLite and file work.
        tokio::task::block_in_place(|| {
            let safety = create(
                shared,
                actor,
                Reason::Restore,
                &format!("before restoring {id}"),
            )?;
            let plugins = shared.store.restore_from(&copy, |tx| {
                let names = store::plugin_names(&tx.sql)?;
                for name in &names {
                    keep_runnable(&tx.sql, name, id, exclude_plugins)?;
                }
                tx.audit(
                    AuditEntry::new(actor, "backup.restore", Outcome::Ok).detail(serde_json::json!({
                        "id": id, "exclude_plugins": exclude_plugins, "safety_backup": safety.id,
                        "plugins": names, "comment": comment,
                    })),
                );
                Ok::<_, BackupError>(names)
            })?;
            tidy_files(shared, &before, &plugins);
            Ok::<_, BackupError>((safety, plugins))
        })
    }
    .await;
    remove_db_files(&copy);
    let (safety, plugins) = match result {
        Ok(done) => done,
        Err(e) => {
            // Nothing was restored: what ran before runs again.
            if let Err(boot) = runtime.boot() {
                tracing::error!(error = %boot, "cannot restart plugins after a failed restore");
            }
            return Err(e);
        }
    };
    let started = if exclude_plugins || shared.store.safe_mode()?.enabled {
        Vec::new()
    } else {
        runtime.boot()?
    };
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::BackupRestored,
        "",
        format!("store restored from backup {id} by {}", actor.approver()),
    );
    Ok(Restored {
        backup,
        safety,
        plugins,
        started,
    })
}

/// A restored plugin whose installed files are gone cannot run; with
/// `exclude_plugins` none is left enabled.
fn keep_runnable(
    c: &rusqlite::Connection,
    name: &str,
    id: &str,
    exclude_plugins: bool,
) -> Result<(), StoreError> {
    let Some(row) = store::plugin_row(c, name)? else {
        return Ok(());
    };
    if !Path::new(&row.install_dir).is_dir() {
        let reason = format!(
            "restored from backup {id}, but its files ({}) are gone: install it again",
            row.install_dir
        );
        return store::set_state(c, name, PluginState::Disabled, &reason);
    }
    if exclude_plugins && row.state == PluginState::Enabled {
        let reason = format!(
            "restored from backup {id} with --exclude-plugins: enable it with --verify-security"
        );
        return store::set_state(c, name, PluginState::Disabled, &reason);
    }
    Ok(())
}

/// Plugins the restore removed lose their files (as `plugin remove` would, so a
/// later plugin of that name inherits nothing); restored ones get a data directory.
fn tidy_files(shared: &Shared, before: &[String], after: &[String]) {
    let cfg = &shared.cfg;
    for gone in before.iter().filter(|n| !after.contains(n)) {
        tracing::warn!(plugin = %gone, "not in the restored backup: deleting its files");
        for dir in [
            cfg.plugin_store_dir().join(gone),
            cfg.data_root().join(gone),
        ] {
            let _ = fs::remove_dir_all(dir);
        }
    }
    for name in after {
        if let Err(e) = fs::create_dir_all(cfg.data_root().join(name)) {
            tracing::error!(plugin = %name, error = %e, "cannot create the data directory");
        }
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), BackupError> {
    let bytes = fs::read(from).map_err(io(from))?;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(to)
        .map_err(io(to))?;
    out.write_all(&bytes).map_err(io(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_name_a_backup_file() {
        assert!(valid_id("20261129-223141-123"));
        assert!(valid_id("20261129-223141-123-2"));
        for bad in ["", "../store", "/etc/passwd", "x", "-1", "1/../../x", "1 2"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert!(!valid_id(&"1".repeat(41)));
    }
}
