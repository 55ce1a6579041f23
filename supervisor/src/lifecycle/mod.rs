//! Operator lifecycle actions on an installed plugin: enable (gated on live
//! grants), disable (graceful or forced) and remove. Each records its state change
//! and audit entry in one transaction before touching the process.

use std::sync::Arc;

use crate::approval::missing_grants;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::install;
use crate::runtime::{Runtime, StopMode};
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Install(#[from] install::InstallError),
}

pub fn enable(
    shared: &Shared,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    name: &str,
) -> Result<(), LifecycleError> {
    let row = shared.store.require_plugin(name)?;
    if row.state == PluginState::ChangesRequested {
        shared.store.audit(vec![AuditEntry::new(
            actor,
            "plugin.enable",
            Outcome::Denied,
        )
        .plugin(name)
        .change(row.state.as_str(), row.state.as_str())
        .detail(serde_json::json!({ "reason": row.state_reason }))])?;
        return Err(LifecycleError::ChangesRequested {
            plugin: name.to_string(),
            reason: row.state_reason,
        });
    }
    let missing = missing_grants(&shared.store, name)?;
    if !missing.is_empty() {
        shared.store.audit(vec![AuditEntry::new(
            actor,
            "plugin.enable",
            Outcome::Denied,
        )
        .plugin(name)
        .change(row.state.as_str(), row.state.as_str())
        .detail(serde_json::json!({ "missing": missing }))])?;
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
    shared.hub.notify("changes_requested", name, reason);
    Ok(())
}

fn set_state(
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
