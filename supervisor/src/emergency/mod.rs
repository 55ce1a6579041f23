//! Emergency controls: disable every (non-core) plugin at once, revoke every
//! permission, and safe mode, which persists in the store and keeps every plugin from
//! starting until it is turned off.

use std::sync::Arc;

use crate::approval::{self, ApprovalError, RevokeFrom};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::context::Shared;
use crate::runtime::{Runtime, StopMode};
use crate::store::{self, PermissionRow, PluginState, SafeMode, StoreError};

/// What `disable_all` changed.
#[derive(Debug, Default)]
pub struct DisabledAll {
    pub disabled: Vec<String>,
    /// Core plugins left alone (`except_core`).
    pub kept: Vec<String>,
}

/// Disables every enabled plugin (every non-core one with `except_core`) in one
/// transaction, then stops them all concurrently: killed at once with `force`.
pub async fn disable_all(
    shared: &Shared,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    except_core: bool,
    force: bool,
    comment: &str,
) -> Result<DisabledAll, StoreError> {
    let reason = format!(
        "disabled by {} in an emergency: {comment}",
        actor.approver()
    );
    let result = shared.store.write(|tx| {
        let mut out = DisabledAll::default();
        for name in store::plugin_names(&tx.sql)? {
            let Some(row) = store::plugin_row(&tx.sql, &name)? else {
                continue;
            };
            if except_core && row.core {
                out.kept.push(name);
                continue;
            }
            if row.state != PluginState::Enabled {
                continue;
            }
            store::set_state(&tx.sql, &name, PluginState::Disabled, &reason)?;
            tx.audit(
                AuditEntry::new(actor, "plugin.disable", Outcome::Ok)
                    .plugin(&name)
                    .change(row.state.as_str(), "disabled")
                    .detail(serde_json::json!({ "emergency": true, "comment": comment })),
            );
            out.disabled.push(name);
        }
        tx.audit(
            AuditEntry::new(actor, "emergency.disable_all", Outcome::Ok).detail(
                serde_json::json!({
                    "except_core": except_core, "force": force, "comment": comment,
                    "disabled": out.disabled, "kept": out.kept,
                }),
            ),
        );
        Ok::<_, StoreError>(out)
    })?;
    let mode = if force {
        StopMode::Force
    } else {
        StopMode::Graceful
    };
    // Also whatever runs without being enabled any more (backing off, say).
    let stopping: Vec<String> = runtime
        .active()
        .into_iter()
        .filter(|n| !result.kept.contains(n))
        .collect();
    stop_concurrently(runtime, &stopping, mode).await;
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::Emergency,
        "",
        format!(
            "{} plugin(s) disabled by {}",
            result.disabled.len(),
            actor.approver()
        ),
    );
    Ok(result)
}

async fn stop_concurrently(runtime: &Arc<Runtime>, names: &[String], mode: StopMode) {
    let mut stops = tokio::task::JoinSet::new();
    for name in names {
        let runtime = Arc::clone(runtime);
        let name = name.clone();
        stops.spawn(async move { runtime.stop(&name, mode).await });
    }
    while stops.join_next().await.is_some() {}
}

/// Revokes every granted or pending permission of every plugin; running plugins
/// are refused from their next call on.
pub fn revoke_all(
    shared: &Shared,
    actor: &Actor,
    comment: &str,
) -> Result<Vec<PermissionRow>, ApprovalError> {
    let revoked = approval::revoke(&shared.store, actor, None, RevokeFrom::All, comment)?;
    shared
        .store
        .audit(vec![AuditEntry::new(
            actor,
            "emergency.revoke_all",
            Outcome::Ok,
        )
        .detail(
            serde_json::json!({ "revoked": revoked.len(), "comment": comment }),
        )])
        .map_err(StoreError::from)?;
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::Emergency,
        "",
        format!(
            "{} permission(s) revoked by {}",
            revoked.len(),
            actor.approver()
        ),
    );
    Ok(revoked)
}

/// Turns safe mode on (every plugin is killed and none starts, across restarts)
/// or off (the enabled plugins start again). Returns the new mode and the plugins
/// stopped or started.
pub async fn set_safe_mode(
    shared: &Shared,
    runtime: &Arc<Runtime>,
    actor: &Actor,
    enabled: bool,
    comment: &str,
) -> Result<(SafeMode, Vec<String>), StoreError> {
    let mode = SafeMode {
        enabled,
        since_ms: now_ms(),
        by: actor.approver(),
        comment: comment.to_string(),
    };
    let before = shared.store.write(|tx| {
        let before = store::read_safe_mode(&tx.sql)?;
        store::set_safe_mode(&tx.sql, &mode)?;
        let action = if enabled {
            "emergency.safe_mode_on"
        } else {
            "emergency.safe_mode_off"
        };
        tx.audit(
            AuditEntry::new(actor, action, Outcome::Ok)
                .change(on_off(before.enabled), on_off(enabled))
                .detail(serde_json::json!({ "comment": comment })),
        );
        Ok::<_, StoreError>(before)
    })?;
    let plugins = if enabled {
        let running = runtime.active();
        stop_concurrently(runtime, &running, StopMode::Force).await;
        running
    } else if before.enabled {
        runtime.boot()?
    } else {
        Vec::new()
    };
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::SafeMode,
        "",
        format!("safe mode {} by {}", on_off(enabled), actor.approver()),
    );
    Ok((mode, plugins))
}

fn on_off(enabled: bool) -> &'static str {
    if enabled {
        "on"
    } else {
        "off"
    }
}
