//! Free space on the filesystems the supervisor writes (state and logs): the watermark
//! below which installs, updates and backups are refused, and the alert that says so.

// Why a watermark (etcd's NOSPACE alarm): a full disk turns every audited call into a
// refusal. Refusing the big writers — packages, backups — while there is still room
// keeps that room for the audit trail, and the alert tells the operator before it
// runs out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::config::{Config, StorageConfig};
use crate::context::Shared;
use crate::store::{self, AlertRow, StoreError};

/// The alert rule name of a low-space alert (host-wide: no plugin).
pub const RULE: &str = "disk-space-low";

/// A filesystem the supervisor writes is below the watermark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("only {} free on the filesystem of {what} ({}), below storage.min_free = {}: installs, updates and backups are refused until space is freed", mib(*free), path.display(), mib(*min_free))]
pub struct LowSpace {
    pub what: &'static str,
    pub path: PathBuf,
    pub free: u64,
    pub min_free: u64,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
/// The supervisor runs as root and could use the reserved blocks too, but those are
/// the host's last resort, not the supervisor's.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(st.blocks_available().saturating_mul(st.fragment_size()))
}

/// The state and log directories against `storage.min_free`.
pub fn check(cfg: &Config) -> Result<(), LowSpace> {
    check_paths(
        &[("state_dir", &cfg.state_dir), ("log_dir", &cfg.log_dir)],
        &cfg.storage,
    )
}

fn check_paths(paths: &[(&'static str, &Path)], storage: &StorageConfig) -> Result<(), LowSpace> {
    for (what, path) in paths {
        // A filesystem that cannot be measured is not called full: the writes that
        // follow fail on their own if it is.
        let Ok(free) = free_bytes(path) else {
            continue;
        };
        if free < storage.min_free {
            return Err(LowSpace {
                what,
                path: path.to_path_buf(),
                free,
                min_free: storage.min_free,
            });
        }
    }
    Ok(())
}

/// Checks every `storage.check_interval`: raises the host-wide alert once when space
/// falls below the watermark (again after an admin acknowledged it, if still low) and
/// records when it recovered.
pub fn watch(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut low = false;
        let mut tick = tokio::time::interval(shared.cfg.storage.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match check(&shared.cfg) {
                Err(e) => {
                    if !low || !alert_open(&shared) {
                        low = raise(&shared, &e).is_ok() || low;
                    }
                }
                Ok(()) if low => {
                    tracing::info!("free space is above storage.min_free again");
                    shared.audit.record(AuditEntry::new(
                        &Actor::system(),
                        "storage.space_recovered",
                        Outcome::Ok,
                    ));
                    low = false;
                }
                Ok(()) => {}
            }
        }
    })
}

fn alert_open(shared: &Shared) -> bool {
    shared
        .store
        .read(|c| store::open_alert(c, "", RULE))
        .is_ok_and(|a| a.is_some())
}

fn raise(shared: &Shared, low: &LowSpace) -> Result<(), StoreError> {
    let message = low.to_string();
    tracing::warn!(free = low.free, min_free = low.min_free, path = %low.path.display(), "{message}");
    let id = shared.store.write(|tx| {
        let id = match store::open_alert(&tx.sql, "", RULE)? {
            Some(open) => open.id,
            None => store::insert_alert(
                &tx.sql,
                &AlertRow {
                    id: 0,
                    plugin: String::new(),
                    rule: RULE.into(),
                    kind: "disk_space".into(),
                    count: 1,
                    threshold: low.min_free,
                    window_secs: 0,
                    raised_at: now_ms(),
                    quarantined: false,
                    message: message.clone(),
                    acknowledged_at: None,
                    acknowledged_by: None,
                },
            )?,
        };
        tx.audit(
            AuditEntry::new(&Actor::system(), "storage.low_space", Outcome::Failed).detail(
                serde_json::json!({
                    "alert": id, "path": low.path.display().to_string(), "what": low.what,
                    "free_bytes": low.free, "min_free_bytes": low.min_free,
                }),
            ),
        );
        Ok::<_, StoreError>(id)
    })?;
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::Alert,
        "",
        format!("alert {id} ({RULE}): {message}"),
    );
    Ok(())
}

/// Default watermark and polling period of `[storage]`.
pub const DEFAULT_MIN_FREE: u64 = 256 << 20;
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filesystem_below_the_watermark_is_named_with_its_figures() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let ok = StorageConfig {
            min_free: 1,
            check_interval: DEFAULT_CHECK_INTERVAL,
        };
        assert_eq!(check_paths(&[("state_dir", dir.path())], &ok), Ok(()));
        let strict = StorageConfig {
            min_free: u64::MAX,
            ..ok
        };
        let err = check_paths(&[("state_dir", dir.path())], &strict).unwrap_err();
        assert_eq!(err.what, "state_dir");
        let text = err.to_string();
        assert!(text.contains("storage.min_free"), "{text}");
        assert!(
            text.contains("installs, updates and backups are refused"),
            "{text}"
        );
    }
}
