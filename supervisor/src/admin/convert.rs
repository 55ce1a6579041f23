//! Store rows and runtime status rendered as admin-API messages.

use broker_proto::admin::v1::{
    self as api, Alert, AuditRecord, BackupInfo, HostSecurity, IntegrityCheck, PermissionRecord,
    PluginDetail, PluginSecurity, PluginSummary, Resources, RevokeResponse, RevokedGrant,
    SafeModeStatus,
};

use super::trust::KeyStates;
use crate::context::Shared;

use crate::catalog::Catalog;
use crate::clock::now_ms;
use crate::integrity::Check;
use crate::manifest::Manifest;
use crate::runtime::Status;
use crate::store::{AlertRow, AuditRow, BackupRow, PermissionRow, PluginRow, SafeMode};

pub fn summary(row: &PluginRow, status: &Status, keys: &KeyStates) -> PluginSummary {
    PluginSummary {
        name: row.name.clone(),
        version: row.version.clone(),
        state: api::PluginState::from(row.state).into(),
        runtime: api::RuntimePhase::from(status.phase).into(),
        core: row.core,
        sha256: row.sha256.clone(),
        pid: status.pid.unwrap_or(0),
        restarts: status.restarts,
        state_reason: row.state_reason.clone(),
        installed_at_ms: row.installed_at,
        signer: keys.signer(row),
    }
}

pub fn permission(catalog: &Catalog, p: &PermissionRow, now: i64) -> PermissionRecord {
    PermissionRecord {
        permission: p.permission.to_string(),
        risk: api::Risk::from(catalog.spec(p.permission).risk).into(),
        requested_scope: p.requested_scope.clone(),
        justification: p.justification.clone(),
        status: super::enums::permission_status(p, now).into(),
        granted_scope: p.granted_scope.clone(),
        approvers: p.approvers.clone(),
        comment: p.comment.clone().unwrap_or_default(),
        conditions: p.conditions.clone().unwrap_or_default(),
        granted_at_ms: p.granted_at.unwrap_or(0),
        expires_at_ms: p.expires_at.unwrap_or(0),
        revoked_at_ms: p.revoked_at.unwrap_or(0),
        revoked_by: p.revoked_by.clone().unwrap_or_default(),
        decided_by: p.decided_by.clone().unwrap_or_default(),
        required_approvals: catalog.policy_for(p.permission).approvals.into(),
    }
}

pub fn detail(
    catalog: &Catalog,
    row: &PluginRow,
    perms: &[PermissionRow],
    status: &Status,
    keys: &KeyStates,
) -> PluginDetail {
    let manifest = Manifest::parse(&row.manifest, catalog).ok();
    let now = now_ms();
    let commands = super::settings::commands(manifest.as_ref().map(|m| &m.declared));
    let (imports, imports_over_cap) = status
        .imports
        .as_ref()
        .map(|log| log.snapshot())
        .unwrap_or_default();
    let imports = imports
        .into_iter()
        .map(|i| broker_proto::admin::v1::ImportRecord {
            name: i.name,
            origin: i.origin,
            at_ms: i.at_ms,
        })
        .collect();
    PluginDetail {
        dependencies: None,
        advisories: Vec::new(),
        summary: Some(summary(row, status, keys)),
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
        commands,
        plugin_runtime: Some(plugin_runtime(row, true)),
        imports,
        imports_over_cap,
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
        outcome: super::enums::outcome(&r.outcome).into(),
        before: r.before.unwrap_or_default(),
        after: r.after.unwrap_or_default(),
        detail: r.detail.as_deref().map(detail_value),
    }
}

/// A stored detail (JSON text) as a protobuf Value; text that is not JSON (never
/// written by this version) stays readable as a string rather than being dropped.
fn detail_value(text: &str) -> broker_proto::pbjson_types::Value {
    serde_json::from_str(text).unwrap_or_else(|_| text.to_string().into())
}

pub fn host_security(shared: &Shared) -> HostSecurity {
    let safe_mode = shared.store.safe_mode().is_ok_and(|m| m.enabled);
    let host = match &shared.sandbox {
        None => HostSecurity {
            confinement: false,
            refusal: String::new(),
            ..HostSecurity::default()
        },
        Some(h) => HostSecurity {
            confinement: true,
            cgroup_version: h.cgroups.version().into(),
            landlock_abi: h.landlock_abi.into(),
            landlock_minimum: h.landlock_minimum.into(),
            seccomp_policy: h.seccomp.name.clone(),
            seccomp_syscalls: h.seccomp.allowed_syscalls as u32,
            seccomp_source: h.seccomp.source.display().to_string(),
            refusal: h.landlock_ok().err().unwrap_or_default(),
            inherited_seccomp_filters: h.inherited_seccomp_filters,
            ..HostSecurity::default()
        },
    };
    let trusted_keys = shared
        .store
        .read(crate::store::trusted_keys)
        .map(|keys| {
            keys.iter()
                .filter(|k| k.state == crate::trust::KeyState::Trusted)
                .count()
        })
        .unwrap_or_default();
    HostSecurity {
        safe_mode,
        require_signature: shared.cfg.install.require_signature,
        trusted_keys: u32::try_from(trusted_keys).unwrap_or(u32::MAX),
        ..host
    }
}

pub fn fd_budget(f: crate::runtime::fd_budget::FdFigures) -> broker_proto::admin::v1::FdBudget {
    broker_proto::admin::v1::FdBudget {
        limit: f.limit,
        in_use: f.in_use,
        at_start: f.at_start,
        reserved: f.reserved,
        per_plugin: f.per_plugin,
        plugins: f.plugins,
        affordable: f.affordable,
    }
}

pub fn revoked(catalog: &Catalog, rows: &[PermissionRow]) -> RevokeResponse {
    let now = now_ms();
    RevokeResponse {
        revoked: rows
            .iter()
            .map(|r| RevokedGrant {
                plugin: r.plugin.clone(),
                permission: Some(permission(catalog, r, now)),
            })
            .collect(),
    }
}

pub fn alert(a: AlertRow) -> Alert {
    Alert {
        id: a.id,
        plugin: a.plugin,
        rule: a.rule,
        kind: a.kind,
        count: a.count,
        threshold: a.threshold,
        window_secs: a.window_secs,
        raised_at_ms: a.raised_at,
        quarantined: a.quarantined,
        message: a.message,
        acknowledged_at_ms: a.acknowledged_at.unwrap_or_default(),
        acknowledged_by: a.acknowledged_by.unwrap_or_default(),
    }
}

pub fn backup(b: BackupRow) -> BackupInfo {
    BackupInfo {
        id: b.id,
        created_at_ms: b.created_at,
        reason: b.reason,
        created_by: b.created_by,
        bytes: b.bytes,
        sha256: b.sha256,
        plugins: b.plugins,
        comment: b.comment,
    }
}

pub fn safe_mode(m: SafeMode, plugins: Vec<String>) -> SafeModeStatus {
    SafeModeStatus {
        enabled: m.enabled,
        since_ms: m.since_ms,
        by: m.by,
        comment: m.comment,
        plugins,
    }
}

pub fn check(c: Check) -> IntegrityCheck {
    IntegrityCheck {
        name: c.name,
        ok: c.ok,
        detail: c.detail,
    }
}

/// What is enforced for one plugin now: the running instance's own report, its
/// cgroup's limits as the kernel reads them back, and current usage.
/// What runs the plugin, as pinned; `with_files` adds the package's file list (for
/// the reviewer's `plugin show`).
pub fn plugin_runtime(row: &PluginRow, with_files: bool) -> api::PluginRuntime {
    let Some(pin) = &row.python else {
        return api::PluginRuntime {
            kind: api::RuntimeKind::Native.into(),
            package_digest: row.sha256.clone(),
            ..api::PluginRuntime::default()
        };
    };
    let files = if with_files {
        pin.files
            .iter()
            .map(|f| api::PackageFile {
                path: f.path.clone(),
                mode: f.mode,
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect()
    } else {
        Vec::new()
    };
    api::PluginRuntime {
        kind: api::RuntimeKind::Python3.into(),
        package_digest: row.sha256.clone(),
        interpreter: pin.interpreter.display().to_string(),
        interpreter_version: pin.version.clone(),
        interpreter_sha256: pin.sha256.clone(),
        sdk_digest: pin.sdk_digest.clone(),
        files,
    }
}

pub fn security(
    shared: &Shared,
    row: &PluginRow,
    status: &Status,
    keys: &KeyStates,
) -> PluginSecurity {
    let uid = shared.cfg.sandbox.uid_base + row.uid_offset;
    let mut out = PluginSecurity {
        name: row.name.clone(),
        runtime: api::RuntimePhase::from(status.phase).into(),
        uid,
        gid: uid,
        plugin_runtime: Some(plugin_runtime(row, false)),
        signer: keys.signer(row),
        ..PluginSecurity::default()
    };
    if let Some(e) = &status.enforcement {
        out.confined = true;
        out.namespaces = e.namespaces.clone();
        out.uid = e.uid;
        out.gid = e.gid;
        out.rootfs = e.rootfs.clone();
        out.capabilities = e.capabilities.clone();
        out.no_new_privs = e.no_new_privs;
        out.seccomp_policy = e.seccomp_policy.clone();
        out.seccomp_syscalls = e.seccomp_syscalls as u32;
        out.plugin_pid = e.plugin_pid;
        if let Some(l) = &e.landlock {
            out.landlock_abi = l.abi.into();
            out.landlock_status = l.status.clone();
            out.landlock_net_denied = l.net_denied;
            out.landlock_scoped = l.scoped;
        }
    }
    if let Some(cg) = &status.cgroup {
        let limits = cg.enforced();
        let usage = cg.usage();
        out.cgroup_version = cg.version().into();
        out.cgroup_path = cg.path();
        out.cpu_limit = limits.cpu;
        out.memory_limit = limits.memory_bytes;
        out.pids_limit = limits.pids;
        out.cpu_usec = usage.cpu_usec;
        out.memory_bytes = usage.memory_bytes;
        out.pids = usage.pids;
    }
    out
}
