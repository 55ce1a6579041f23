//! Store rows and runtime status rendered as admin-API messages.

use broker_proto::admin::v1::{
    AuditRecord, PermissionRecord, PluginDetail, PluginSummary, Resources,
};

use crate::catalog::Catalog;
use crate::clock::now_ms;
use crate::manifest::Manifest;
use crate::runtime::Status;
use crate::store::{AuditRow, PermissionRow, PluginRow};

pub fn summary(row: &PluginRow, status: &Status) -> PluginSummary {
    PluginSummary {
        name: row.name.clone(),
        version: row.version.clone(),
        state: row.state.as_str().into(),
        runtime: status.phase.as_str().into(),
        core: row.core,
        sha256: row.sha256.clone(),
        pid: status.pid.unwrap_or(0),
        restarts: status.restarts,
        state_reason: row.state_reason.clone(),
        installed_at_ms: row.installed_at,
    }
}

pub fn permission(catalog: &Catalog, p: &PermissionRow, now: i64) -> PermissionRecord {
    PermissionRecord {
        permission: p.permission.to_string(),
        risk: catalog.spec(p.permission).risk.as_str().into(),
        requested_scope: p.requested_scope.clone(),
        justification: p.justification.clone(),
        status: p.display_status(now).into(),
        granted_scope: p.granted_scope.clone(),
        approvers: p.approvers.clone(),
        comment: p.comment.clone().unwrap_or_default(),
        conditions: p.conditions.clone().unwrap_or_default(),
        granted_at_ms: p.granted_at.unwrap_or(0),
        expires_at_ms: p.expires_at.unwrap_or(0),
        revoked_at_ms: p.revoked_at.unwrap_or(0),
        revoked_by: p.revoked_by.clone().unwrap_or_default(),
        decided_by: p.decided_by.clone().unwrap_or_default(),
    }
}

pub fn detail(
    catalog: &Catalog,
    row: &PluginRow,
    perms: &[PermissionRow],
    status: &Status,
) -> PluginDetail {
    let manifest = Manifest::parse(&row.manifest, catalog).ok();
    let now = now_ms();
    PluginDetail {
        summary: Some(summary(row, status)),
        description: manifest
            .as_ref()
            .map(|m| m.description.clone())
            .unwrap_or_default(),
        author: manifest
            .as_ref()
            .map(|m| m.author.clone())
            .unwrap_or_default(),
        entry: manifest
            .as_ref()
            .map(|m| m.entry.display().to_string())
            .unwrap_or_default(),
        permissions: perms.iter().map(|p| permission(catalog, p, now)).collect(),
        resources: manifest.as_ref().map(|m| Resources {
            cpu: m.resources.cpu,
            memory_bytes: m.resources.memory_bytes,
            pids: m.resources.pids,
        }),
        topics: manifest.map(|m| m.topics).unwrap_or_default(),
        last_exit: status.last_exit.clone(),
    }
}

pub fn audit_record(r: AuditRow) -> AuditRecord {
    AuditRecord {
        id: r.id,
        ts_ms: r.ts_ms,
        actor: r.actor,
        on_behalf_of: r.on_behalf_of.unwrap_or_default(),
        action: r.action,
        plugin: r.plugin.unwrap_or_default(),
        permission: r.permission.unwrap_or_default(),
        outcome: r.outcome,
        before: r.before.unwrap_or_default(),
        after: r.after.unwrap_or_default(),
        detail: r.detail.unwrap_or_default(),
    }
}
