//! `plugin update`: pin a newer version of an installed plugin. Permissions the new
//! version asks for within what the old one requested keep their decision; new ones
//! and grown scopes go back to review; those it no longer asks for are dropped.

use std::fs;
use std::path::PathBuf;

use super::{BeforeChange, InstallError, Prepared};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::catalog::{Catalog, Permission, ScopeShape};
use crate::config::Config;
use crate::manifest::{PermissionRequest, Version};
use crate::store::{self, PermissionRow, PluginRow, PluginState, Store};

/// What an update did.
#[derive(Debug)]
pub struct Updated {
    pub previous: PluginRow,
    pub row: PluginRow,
    pub carried_over: Vec<String>,
    pub to_review: Vec<String>,
    pub dropped: Vec<String>,
}

/// How the new version's requests relate to the old rows.
#[derive(Debug, Default, PartialEq)]
struct Plan {
    /// Within the old request: the decision carries over.
    carry: Vec<Permission>,
    /// New, or asking for more than before: pending review.
    review: Vec<Permission>,
    /// Requested no more.
    dropped: Vec<Permission>,
}

/// Compares requests, not grants: asking for what the reviewers already saw keeps
/// their decision (a narrowed grant stays narrowed); asking for anything more, or
/// anything at all after reviewers requested changes, is reviewed again.
fn plan(
    catalog: &Catalog,
    old: &[PermissionRow],
    new: &[PermissionRequest],
    review_all: bool,
) -> Plan {
    let mut out = Plan::default();
    for req in new {
        let shape = catalog.spec(req.permission).scope;
        let within = old
            .iter()
            .find(|row| row.permission == req.permission)
            .is_some_and(|row| {
                req.scope.iter().all(|entry| {
                    row.requested_scope
                        .iter()
                        .any(|wide| shape.entry_within(entry, wide))
                })
            });
        if within && !review_all {
            out.carry.push(req.permission);
        } else {
            out.review.push(req.permission);
        }
    }
    out.dropped = old
        .iter()
        .map(|row| row.permission)
        .filter(|p| !new.iter().any(|r| r.permission == *p))
        .collect();
    out
}

/// A carried-over grant shrinks with a request that shrank: what is granted never
/// exceeds what the new version asks for. Keeps each granted entry within the new
/// request, and each requested entry within a granted one (an approver's narrowing
/// stays narrowed).
fn narrow_grant(shape: ScopeShape, granted: &[String], requested: &[String]) -> Vec<String> {
    let mut out: Vec<String> = granted
        .iter()
        .filter(|g| requested.iter().any(|n| shape.entry_within(g, n)))
        .cloned()
        .collect();
    for n in requested {
        let covered = out.iter().any(|o| shape.entry_within(n, o));
        if !covered && granted.iter().any(|g| shape.entry_within(n, g)) {
            out.push(n.clone());
        }
    }
    out
}

/// Installs a prepared package as the new version of `name` into a fresh
/// directory; the store row moves to it in one transaction, and the previous
/// version's directory stays until [`retire`]. The version must be newer; the same
/// version with a different binary is refused. Nothing changes on any refusal. The
/// caller holds the plugin's lifecycle lock.
pub fn update(
    cfg: &Config,
    catalog: &Catalog,
    store: &Store,
    actor: &Actor,
    name: &str,
    prepared: Prepared,
    before_change: BeforeChange<'_>,
) -> Result<Updated, InstallError> {
    if prepared.name() != name {
        return Err(InstallError::Package {
            path: prepared.origin.clone(),
            message: format!("holds plugin `{}`, not `{name}`", prepared.name()),
        });
    }
    let previous = store.require_plugin(name)?;
    newer(&previous, &prepared)?;
    crate::trust::check_continuity(name, previous.signer.as_ref(), prepared.signer.as_ref())
        .map_err(InstallError::Refused)?;
    before_change()?;
    let source = prepared.origin.clone();
    let (
        placed,
        super::Placing {
            manifest,
            manifest_text,
            sha256,
            python,
            signer,
            contents,
            inventory,
        },
    ) = prepared.place(cfg)?;
    let dest = placed.dir.clone();
    let updated = store.write(|tx| {
        let old = store::permission_rows(&tx.sql, name)?;
        let changes_requested = previous.state == PluginState::ChangesRequested;
        let plan = plan(catalog, &old, &manifest.permissions, changes_requested);
        for req in &manifest.permissions {
            let existing = old.iter().find(|r| r.permission == req.permission);
            let carry = plan.carry.contains(&req.permission);
            if let Some(row) = existing {
                store::rerequest(
                    &tx.sql,
                    name,
                    req.permission,
                    &req.scope,
                    &req.justification,
                    carry,
                )?;
                let shape = catalog.spec(req.permission).scope;
                let narrowed = narrow_grant(shape, &row.granted_scope, &req.scope);
                if carry && narrowed != row.granted_scope {
                    store::update_permission(
                        &tx.sql,
                        &PermissionRow {
                            granted_scope: narrowed,
                            ..row.clone()
                        },
                    )?;
                }
            } else {
                store::insert_request(
                    &tx.sql,
                    name,
                    req.permission,
                    &req.scope,
                    &req.justification,
                )?;
            }
        }
        for p in &plan.dropped {
            store::delete_request(&tx.sql, name, *p)?;
        }
        let names = |ps: &[Permission]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let (carried_over, to_review, dropped) = (
            names(&plan.carry),
            names(&plan.review),
            names(&plan.dropped),
        );
        let (state, state_reason) = next_state(&previous, manifest.version.as_str(), &to_review);
        let row = PluginRow {
            version: manifest.version.to_string(),
            sha256: sha256.clone(),
            manifest: manifest_text.clone(),
            install_dir: dest.display().to_string(),
            core: manifest.core,
            state,
            state_reason,
            python: python.clone(),
            signer: signer.clone(),
            ..previous.clone()
        };
        store::set_version(&tx.sql, &row)?;
        let replaced = store::package(&tx.sql, name)?;
        let findings = inventory.findings(crate::advisory_watch::current(&tx.sql)?.as_ref());
        store::put_package(
            &tx.sql,
            name,
            &store::PackageRecord {
                contents: contents.clone(),
                inventory: inventory.clone(),
                previous: Some(store::PreviousVersion {
                    version: previous.version.clone(),
                    manifest: previous.manifest.clone(),
                    // A version installed before content lists were kept has none.
                    contents: replaced.map(|p| p.contents).unwrap_or_default(),
                    signer: previous.signer.clone(),
                }),
            },
        )?;
        crate::advisory_watch::raise(tx, name, &findings)?;
        let settings_reset = store::retain_settings(&tx.sql, name, &manifest.declared.settings)?;
        tx.audit(
            AuditEntry::new(actor, "plugin.update", Outcome::Ok)
                .plugin(name)
                .change(previous.version.as_str(), row.version.as_str())
                .detail(serde_json::json!({
                    "sha256": sha256, "previous_sha256": previous.sha256,
                    "source": source, "uploaded": true,
                    "carried_over": carried_over, "to_review": to_review, "dropped": dropped,
                    "state": row.state.as_str(),
                    "settings_reset": settings_reset,
                    "signer": crate::trust::Signer::audit_detail(row.signer.as_ref()),
                    "previous_signer": crate::trust::Signer::audit_detail(previous.signer.as_ref()),
                    "dependencies": inventory.note,
                    "advisories": findings.iter().map(|f| f.advisory_id.as_str()).collect::<Vec<_>>(),
                })),
        );
        Ok::<_, InstallError>(Updated {
            previous: previous.clone(),
            row,
            carried_over,
            to_review,
            dropped,
        })
    })?;
    placed.commit();
    Ok(updated)
}

/// After an update committed and the old version stopped: deletes the version
/// directories of `name` that neither the store (re-read now) nor `keep` (what
/// kept backups point at) refers to. Only directories inside
/// `<plugins>/<name>/` are considered; the caller holds the plugin's lock.
pub fn retire(cfg: &Config, store: &Store, name: &str, keep: &[PathBuf]) {
    let parent = cfg.plugin_store_dir().join(name);
    let current = match store.plugin(name) {
        Ok(Some(row)) => PathBuf::from(row.install_dir),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(plugin = name, error = %e, "cannot read the store: old versions stay");
            return;
        }
    };
    let Ok(entries) = fs::read_dir(&parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir == current || keep.contains(&dir) {
            continue;
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(plugin = name, dir = %dir.display(), "deleted a version no store row or backup refers to")
            }
            Err(e) => {
                tracing::warn!(plugin = name, dir = %dir.display(), error = %e, "could not delete an old version")
            }
        }
    }
}

/// Refuses anything but a newer version; the same version must be the same binary.
fn newer(previous: &PluginRow, staged: &Prepared) -> Result<(), InstallError> {
    let refused = |message: String| Err(InstallError::Refused(message));
    let name = &previous.name;
    let old = Version::new(&previous.version).map_err(|e| InstallError::Refused(e.to_string()))?;
    let new = &staged.manifest.version;
    match new.precedence(&old) {
        std::cmp::Ordering::Greater => Ok(()),
        std::cmp::Ordering::Equal if staged.sha256 == previous.sha256 => {
            refused(format!("`{name}` {new} is already installed (same binary)"))
        }
        std::cmp::Ordering::Equal => refused(format!(
            "`{name}` {new} is installed with a different binary (sha256 {}); a changed binary needs a new version number",
            previous.sha256
        )),
        std::cmp::Ordering::Less => refused(format!(
            "`{name}` {new} is older than the installed {old}; remove and install it to go back"
        )),
    }
}

/// Growth stops an enabled plugin until the review; a plugin sent back for changes
/// returns to review with its new version. Otherwise the state carries over.
fn next_state(previous: &PluginRow, version: &str, to_review: &[String]) -> (PluginState, String) {
    match previous.state {
        PluginState::ChangesRequested => (
            PluginState::Disabled,
            format!("version {version} installed after changes were requested; awaiting review"),
        ),
        PluginState::Enabled if !to_review.is_empty() => (
            PluginState::Disabled,
            format!(
                "updated to {version}; awaiting review of {}; enable it once approved",
                to_review.join(", ")
            ),
        ),
        state => (state, previous.state_reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PermissionStatus;

    fn row(permission: Permission, scope: &[&str]) -> PermissionRow {
        PermissionRow {
            plugin: "p".into(),
            permission,
            requested_scope: scope.iter().map(|s| s.to_string()).collect(),
            justification: String::new(),
            status: PermissionStatus::Granted,
            granted_scope: Vec::new(),
            approvers: Vec::new(),
            comment: None,
            conditions: None,
            decided_by: None,
            granted_at: None,
            expires_at: None,
            revoked_at: None,
            revoked_by: None,
        }
    }

    fn req(permission: Permission, scope: &[&str]) -> PermissionRequest {
        PermissionRequest {
            permission,
            justification: String::new(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_carried_grant_never_exceeds_the_new_request() {
        let paths = ScopeShape::Paths;
        let v = |s: &[&str]| s.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(
            narrow_grant(paths, &v(&["/srv"]), &v(&["/srv/a"])),
            v(&["/srv/a"])
        );
        assert_eq!(
            narrow_grant(paths, &v(&["/srv/a"]), &v(&["/srv"])),
            v(&["/srv/a"]),
            "an approver's narrowing stays"
        );
        assert_eq!(
            narrow_grant(paths, &v(&["/srv/a", "/srv/b"]), &v(&["/srv/a"])),
            v(&["/srv/a"])
        );
        assert_eq!(
            narrow_grant(paths, &v(&["/srv"]), &v(&["/srv"])),
            v(&["/srv"])
        );
    }

    #[test]
    fn requests_within_the_old_ones_carry_over_and_growth_is_reviewed() {
        let catalog = Catalog::parse(crate::config::DEFAULT_CATALOG, "t").unwrap();
        let old = [
            row(Permission::FileRead, &["/srv/data"]),
            row(Permission::NetworkOutbound, &["api.example.com:443"]),
            row(Permission::DatabaseRead, &["messages"]),
        ];
        let new = [
            req(Permission::FileRead, &["/srv/data/sub"]),
            req(
                Permission::NetworkOutbound,
                &["api.example.com:443", "evil.example.net:443"],
            ),
            req(Permission::SystemConfig, &["chat.motd"]),
        ];
        let p = plan(&catalog, &old, &new, false);
        assert_eq!(p.carry, [Permission::FileRead]);
        assert_eq!(
            p.review,
            [Permission::NetworkOutbound, Permission::SystemConfig]
        );
        assert_eq!(p.dropped, [Permission::DatabaseRead]);
        let all = plan(&catalog, &old, &new, true);
        assert!(all.carry.is_empty() && all.review.len() == 3);
    }
}
