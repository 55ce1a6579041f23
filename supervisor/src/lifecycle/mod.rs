//! Operator lifecycle actions on an installed plugin: enable (gated on live
//! grants), disable (graceful or forced) and remove. Each records its state change
//! and audit entry in one transaction before touching the process.

mod admit;
mod locks;
mod verify;

pub use admit::{admit, NotAdmitted};
pub use locks::{Busy, Locks, Op, PluginGuard};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::approval::missing_grants;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::install;
use crate::integrity::Check;
use crate::runtime::{Phase, Runtime, StopMode};
use crate::store::{self, PluginState, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot enable `{plugin}`: not every requested permission is granted: {}", missing.join(", "))]
    MissingGrants {
        plugin: String,
        missing: Vec<String>,
    },
    #[error("cannot enable `{plugin}`: reviewers requested changes: {reason}")]
    ChangesRequested { plugin: String, reason: String },
    #[error("a comment for the author is required")]
    MissingComment,
    #[error("cannot enable `{plugin}`: safe mode is on ({reason}); no plugin starts until `plexichat emergency disable-safe-mode`")]
    SafeMode { plugin: String, reason: String },
    #[error("`{plugin}` failed security verification: {}", failed(checks))]
    Verification { plugin: String, checks: Vec<Check> },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Install(#[from] install::InstallError),
}

fn failed(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Records a refused enable; the state stays as it was.
fn refused(
    shared: &Shared,
    actor: &Actor,
    row: &store::PluginRow,
    detail: serde_json::Value,
) -> Result<(), StoreError> {
    shared
        .store
        .audit(vec![AuditEntry::new(
            actor,
            "plugin.enable",
            Outcome::Denied,
        )
        .plugin(&row.name)
        .change(row.state.as_str(), row.state.as_str())
        .detail(detail)])
        .map_err(StoreError::from)
}

pub fn enable(
    shared: &Shared,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    name: &str,
) -> Result<(), LifecycleError> {
    let row = shared.store.require_plugin(name)?;
    let safe_mode = shared.store.safe_mode()?;
    if safe_mode.enabled {
        refused(
            shared,
            actor,
            &row,
            serde_json::json!({ "reason": "safe mode" }),
        )?;
        return Err(LifecycleError::SafeMode {
            plugin: name.to_string(),
            reason: format!(
                "since {} by {}",
                crate::clock::rfc3339_ms(safe_mode.since_ms),
                safe_mode.by
            ),
        });
    }
    if row.state == PluginState::ChangesRequested {
        refused(
            shared,
            actor,
            &row,
            serde_json::json!({ "reason": row.state_reason }),
        )?;
        return Err(LifecycleError::ChangesRequested {
            plugin: name.to_string(),
            reason: row.state_reason,
        });
    }
    let missing = missing_grants(&shared.store, name)?;
    if !missing.is_empty() {
        refused(
            shared,
            actor,
            &row,
            serde_json::json!({ "missing": missing }),
        )?;
        return Err(LifecycleError::MissingGrants {
            plugin: name.to_string(),
            missing,
        });
    }
    set_state(
        shared,
        actor,
        name,
        PluginState::Enabled,
        "",
        "plugin.enable",
    )?;
    runtime.start(name);
    Ok(())
}

/// `enable --verify-security`: the binary pin and the host's enforcement are checked
/// before the start; once the instance runs, its enforcement is read back from the
/// kernel. Anything short stops it again (state disabled) and fails with the checks.
pub async fn enable_verified(
    shared: &Shared,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    name: &str,
) -> Result<Vec<Check>, LifecycleError> {
    let row = shared.store.require_plugin(name)?;
    let mut checks = verify::before_start(shared, &row);
    if checks.iter().all(|c| c.ok) {
        enable(shared, runtime, actor, name)?;
        let status = wait_running(shared, runtime, name).await;
        checks.extend(match &status {
            Some(status) => verify::after_start(status),
            None => vec![crate::integrity::check(
                "start",
                false,
                format!("did not reach running: {}", runtime.status(name).last_exit),
            )],
        });
    }
    let ok = checks.iter().all(|c| c.ok);
    let detail = serde_json::json!({
        "checks": checks.iter().map(|c| serde_json::json!({ "name": c.name, "ok": c.ok, "detail": c.detail })).collect::<Vec<_>>(),
    });
    let outcome = if ok { Outcome::Ok } else { Outcome::Denied };
    shared
        .store
        .audit(vec![AuditEntry::new(
            actor,
            "plugin.verify_security",
            outcome,
        )
        .plugin(name)
        .detail(detail)])
        .map_err(StoreError::from)?;
    if ok {
        return Ok(checks);
    }
    if shared.store.require_plugin(name)?.state == PluginState::Enabled {
        let reason = format!("failed security verification: {}", failed(&checks));
        set_state(
            shared,
            actor,
            name,
            PluginState::Disabled,
            &reason,
            "plugin.disable",
        )?;
        runtime.stop(name, StopMode::Force).await;
    }
    Err(LifecycleError::Verification {
        plugin: name.to_string(),
        checks,
    })
}

/// The instance's status once it runs and reported its enforcement; `None` if it
/// did not get there within the handshake timeout (plus time to launch).
async fn wait_running(
    shared: &Shared,
    runtime: &Runtime,
    name: &str,
) -> Option<crate::runtime::Status> {
    let deadline = Instant::now() + shared.cfg.runtime.handshake_timeout + Duration::from_secs(5);
    while Instant::now() < deadline {
        let status = runtime.status(name);
        match status.phase {
            Phase::Running if status.enforcement.is_some() || shared.sandbox.is_none() => {
                return Some(status)
            }
            Phase::Stopped | Phase::Backoff => return None,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

pub async fn disable(
    shared: &Shared,
    runtime: &Runtime,
    actor: &Actor,
    name: &str,
    force: bool,
) -> Result<(), LifecycleError> {
    let reason = format!("disabled by {}", actor.approver());
    let action = if force {
        "plugin.disable_force"
    } else {
        "plugin.disable"
    };
    set_state(shared, actor, name, PluginState::Disabled, &reason, action)?;
    let mode = if force {
        StopMode::Force
    } else {
        StopMode::Graceful
    };
    runtime.stop(name, mode).await;
    Ok(())
}

pub async fn remove(
    shared: &Shared,
    runtime: &Runtime,
    actor: &Actor,
    name: &str,
) -> Result<(), LifecycleError> {
    shared.store.require_plugin(name)?;
    runtime.stop(name, StopMode::Graceful).await;
    install::remove(&shared.cfg, &shared.store, actor, name)?;
    Ok(())
}

/// Sends the plugin back to its author: stopped if running, state
/// `changes_requested` with the reviewers' comment; enable and approvals are refused
/// until a new version is installed.
pub async fn request_changes(
    shared: &Shared,
    runtime: &Runtime,
    actor: &Actor,
    name: &str,
    comment: &str,
) -> Result<(), LifecycleError> {
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(LifecycleError::MissingComment);
    }
    let reason = format!("changes requested by {}: {comment}", actor.approver());
    set_state(
        shared,
        actor,
        name,
        PluginState::ChangesRequested,
        &reason,
        "plugin.request_changes",
    )?;
    runtime.stop(name, StopMode::Graceful).await;
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::ChangesRequested,
        name,
        reason,
    );
    Ok(())
}

pub(crate) fn set_state(
    shared: &Shared,
    actor: &Actor,
    name: &str,
    state: PluginState,
    reason: &str,
    action: &str,
) -> Result<(), StoreError> {
    shared.store.write(|tx| {
        let before = store::plugin_row(&tx.sql, name)?
            .ok_or_else(|| StoreError::NoSuchPlugin(name.to_string()))?
            .state;
        store::set_state(&tx.sql, name, state, reason)?;
        tx.audit(
            AuditEntry::new(actor, action, Outcome::Ok)
                .plugin(name)
                .change(before.as_str(), state.as_str()),
        );
        Ok(())
    })
}
