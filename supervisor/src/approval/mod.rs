//! The review workflow: approve or deny a plugin's permission requests with a
//! comment and an expiry (dual approval where the catalog asks for it), and the
//! enable gate that lists what is still missing. Calls only the store and catalog.

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::catalog::{validate_scope_entry, Catalog, Permission};
use crate::clock::{now_ms, rfc3339_ms};
use crate::store::{self, PermissionRow, PermissionStatus, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("a comment is required: say why you approve or deny")]
    MissingComment,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// When an approval ends: the catalog default, or what the approver asked for
/// (capped by the catalog's maximum for the permission's risk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Default,
    At(i64),
    In(std::time::Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve(Expiry),
    Deny,
}

pub struct DecisionInput<'a> {
    pub plugin: &'a str,
    /// Empty: every pending request of the plugin.
    pub permissions: &'a [String],
    pub comment: &'a str,
    pub decision: Decision,
    /// Approve with this narrower scope instead of the requested one (one permission
    /// at a time; every entry must lie within the request).
    pub scope: Option<&'a [String]>,
}

/// Applies a decision; returns the rows as they now stand. Either every named
/// permission is decided or none is.
pub fn decide(
    store: &Store,
    catalog: &Catalog,
    actor: &Actor,
    input: &DecisionInput<'_>,
) -> Result<Vec<PermissionRow>, ApprovalError> {
    let comment = input.comment.trim();
    if comment.is_empty() {
        return Err(ApprovalError::MissingComment);
    }
    let wanted = input
        .permissions
        .iter()
        .map(|p| {
            p.parse::<Permission>()
                .map_err(|e| ApprovalError::Invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let now = now_ms();
    store.write(|tx| {
        let plugin = store::plugin_row(&tx.sql, input.plugin)?
            .ok_or_else(|| StoreError::NoSuchPlugin(input.plugin.to_string()))?;
        if plugin.state == store::PluginState::ChangesRequested {
            return Err(ApprovalError::Conflict(format!(
                "plugin `{}` was sent back to its author ({}); review the updated version",
                input.plugin, plugin.state_reason
            )));
        }
        let rows = store::permission_rows(&tx.sql, input.plugin)?;
        let targets = select_targets(&rows, &wanted, input.plugin)?;
        if input.scope.is_some() && (targets.len() != 1 || input.decision == Decision::Deny) {
            return Err(ApprovalError::Invalid(
                "--scope narrows exactly one approved permission: name it with --permission".into(),
            ));
        }
        let mut decided = Vec::with_capacity(targets.len());
        for mut row in targets {
            let before = row.status.as_str();
            let entry = match input.decision {
                Decision::Approve(expiry) => {
                    if let Some(scope) = input.scope {
                        narrow_scope(catalog, &mut row, scope)?;
                    }
                    approve_row(catalog, actor, &mut row, comment, expiry, now)?
                }
                Decision::Deny => {
                    row.status = PermissionStatus::Denied;
                    row.comment = Some(comment.to_string());
                    row.decided_by = Some(actor.approver());
                    AuditEntry::new(actor, "permission.deny", Outcome::Ok)
                }
            };
            store::update_permission(&tx.sql, &row)?;
            tx.audit(
                entry
                    .plugin(input.plugin)
                    .permission(row.permission.as_str())
                    .change(before, row.status.as_str())
                    .detail(serde_json::json!({
                        "comment": comment,
                        "approvers": row.approvers,
                        "granted_scope": row.granted_scope,
                        "expires_at": row.expires_at.map(rfc3339_ms),
                    })),
            );
            decided.push(row);
        }
        Ok(decided)
    })
}

fn select_targets(
    rows: &[PermissionRow],
    wanted: &[Permission],
    plugin: &str,
) -> Result<Vec<PermissionRow>, ApprovalError> {
    if wanted.is_empty() {
        let pending: Vec<_> = rows
            .iter()
            .filter(|r| r.status == PermissionStatus::Pending)
            .cloned()
            .collect();
        if pending.is_empty() {
            return Err(ApprovalError::Conflict(format!(
                "plugin `{plugin}` has no pending permission requests"
            )));
        }
        return Ok(pending);
    }
    wanted
        .iter()
        .map(|w| {
            let row = rows.iter().find(|r| r.permission == *w).ok_or_else(|| {
                ApprovalError::Invalid(format!("plugin `{plugin}` did not request `{w}`"))
            })?;
            if row.status != PermissionStatus::Pending {
                return Err(ApprovalError::Conflict(format!(
                    "`{w}` of plugin `{plugin}` is {}, not pending",
                    row.status.as_str()
                )));
            }
            Ok(row.clone())
        })
        .collect()
}

fn approve_row(
    catalog: &Catalog,
    actor: &Actor,
    row: &mut PermissionRow,
    comment: &str,
    expiry: Expiry,
    now: i64,
) -> Result<AuditEntry, ApprovalError> {
    let policy = catalog.policy_for(row.permission);
    if approver_keys(row).any(|k| k == actor.approver_key()) {
        return Err(ApprovalError::Conflict(format!(
            "`{}` was already approved by {}; a second approval must come from a different admin",
            row.permission,
            actor.approver_key()
        )));
    }
    row.approvers.push(actor.approver());
    row.comment = Some(comment.to_string());
    if row.approvers.len() < usize::from(policy.approvals) {
        // Stays pending until a second, different admin approves.
        return Ok(AuditEntry::new(
            actor,
            "permission.approve_partial",
            Outcome::Ok,
        ));
    }
    let max = now.saturating_add(duration_ms(policy.max_expiry));
    let expires = match expiry {
        Expiry::Default => now.saturating_add(duration_ms(policy.default_expiry)),
        Expiry::At(at) => at,
        Expiry::In(d) => now.saturating_add(duration_ms(d)),
    };
    if expires <= now {
        return Err(ApprovalError::Invalid(format!(
            "expiry {} is not in the future",
            rfc3339_ms(expires)
        )));
    }
    row.status = PermissionStatus::Granted;
    if row.granted_scope.is_empty() {
        row.granted_scope = row.requested_scope.clone();
    }
    row.granted_at = Some(now);
    row.expires_at = Some(expires.min(max));
    row.decided_by = Some(actor.approver());
    Ok(AuditEntry::new(actor, "permission.approve", Outcome::Ok))
}

/// Replaces the scope the approval will grant with `scope`, which must lie within what
/// is on the table: the request, or an earlier approver's narrowing of it.
fn narrow_scope(
    catalog: &Catalog,
    row: &mut PermissionRow,
    scope: &[String],
) -> Result<(), ApprovalError> {
    let shape = catalog.spec(row.permission).scope;
    let base = if row.granted_scope.is_empty() {
        &row.requested_scope
    } else {
        &row.granted_scope
    };
    if scope.is_empty() {
        return Err(ApprovalError::Invalid(
            "--scope needs at least one entry".into(),
        ));
    }
    for entry in scope {
        validate_scope_entry(shape, entry).map_err(ApprovalError::Invalid)?;
        if !base.iter().any(|wide| shape.entry_within(entry, wide)) {
            return Err(ApprovalError::Invalid(format!(
                "scope entry `{entry}` is not within what `{}` requested ({}): an approval can only narrow",
                row.permission,
                base.join(", ")
            )));
        }
    }
    row.granted_scope = scope.to_vec();
    Ok(())
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Which plugins a revocation applies to.
#[derive(Debug, Clone, Copy)]
pub enum RevokeFrom<'a> {
    Plugin(&'a str),
    All,
}

/// Revokes `permission` (every permission when `None`) wherever it is granted or still pending, in one
/// transaction; returns the rows as they now stand. Running plugins lose it at
/// their next broker call, since every call reads the live grant.
pub fn revoke(
    store: &Store,
    actor: &Actor,
    permission: Option<&str>,
    from: RevokeFrom<'_>,
    comment: &str,
) -> Result<Vec<PermissionRow>, ApprovalError> {
    let permission: Option<Permission> = permission
        .map(str::parse)
        .transpose()
        .map_err(|e: crate::catalog::UnknownPermission| ApprovalError::Invalid(e.to_string()))?;
    let now = now_ms();
    store.write(|tx| {
        let plugins: Vec<String> = match from {
            RevokeFrom::Plugin(name) => {
                store::plugin_row(&tx.sql, name)?
                    .ok_or_else(|| StoreError::NoSuchPlugin(name.to_string()))?;
                vec![name.to_string()]
            }
            RevokeFrom::All => store::plugin_names(&tx.sql)?,
        };
        let mut revoked = Vec::new();
        for plugin in plugins {
            for mut row in store::permission_rows(&tx.sql, &plugin)? {
                let live_or_pending = matches!(
                    row.status,
                    PermissionStatus::Granted | PermissionStatus::Pending
                );
                if permission.is_some_and(|p| p != row.permission) || !live_or_pending {
                    continue;
                }
                let before = row.display_status(now);
                row.status = PermissionStatus::Revoked;
                row.revoked_at = Some(now);
                row.revoked_by = Some(actor.approver());
                store::update_permission(&tx.sql, &row)?;
                tx.audit(
                    AuditEntry::new(actor, "permission.revoke", Outcome::Ok)
                        .plugin(&plugin)
                        .permission(row.permission.as_str())
                        .change(before, "revoked")
                        .detail(serde_json::json!({
                            "comment": comment,
                            "scope": matches!(from, RevokeFrom::All).then_some("all plugins"),
                        })),
                );
                revoked.push(row);
            }
        }
        Ok(revoked)
    })
}

/// The identities that approved a row, without the "(via ...)" suffix.
fn approver_keys(row: &PermissionRow) -> impl Iterator<Item = &str> {
    row.approvers
        .iter()
        .map(|a| a.split(" (via ").next().unwrap_or(a))
}

/// What keeps a plugin from being enabled: each requested permission that is not
/// granted and live, with its status. Empty means it may be enabled.
pub fn missing_grants(store: &Store, plugin: &str) -> Result<Vec<String>, StoreError> {
    let now = now_ms();
    Ok(store
        .permissions(plugin)?
        .iter()
        .filter(|p| !p.is_live(now))
        .map(|p| format!("{} ({})", p.permission, p.display_status(now)))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::{LogFiles, Role};
    use crate::store::{insert_plugin, insert_request, PluginRow, PluginState};

    fn setup(perms: &[(Permission, &str)]) -> (tempfile::TempDir, Store, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let logs = Arc::new(LogFiles::open(&dir.path().join("log")).unwrap());
        let s = Store::open(&dir.path().join("db"), logs).unwrap();
        let catalog = Catalog::parse(crate::config::DEFAULT_CATALOG, "t").unwrap();
        s.write(|tx| {
            insert_plugin(
                &tx.sql,
                &PluginRow {
                    name: "p".into(),
                    version: "1.0.0".into(),
                    state: PluginState::Disabled,
                    state_reason: String::new(),
                    sha256: "0".into(),
                    manifest: String::new(),
                    install_dir: "/".into(),
                    core: false,
                    installed_at: 0,
                    uid_offset: 0,
                    python: None,
                    signer: None,
                },
            )?;
            for (p, scope) in perms {
                insert_request(&tx.sql, "p", *p, &[scope.to_string()], "because")?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
        (dir, s, catalog)
    }

    fn admin(name: &str) -> Actor {
        Actor {
            identity: name.into(),
            role: Role::Admin,
            on_behalf_of: None,
        }
    }

    fn approve(
        s: &Store,
        c: &Catalog,
        who: &str,
        comment: &str,
        e: Expiry,
    ) -> Result<Vec<PermissionRow>, ApprovalError> {
        decide(
            s,
            c,
            &admin(who),
            &DecisionInput {
                plugin: "p",
                permissions: &[],
                comment,
                decision: Decision::Approve(e),
                scope: None,
            },
        )
    }

    #[test]
    fn approval_needs_a_comment_and_changes_nothing_without_one() {
        let (_d, s, c) = setup(&[(Permission::DatabaseRead, "messages")]);
        assert!(matches!(
            approve(&s, &c, "a", "  ", Expiry::Default),
            Err(ApprovalError::MissingComment)
        ));
        assert_eq!(
            s.permissions("p").unwrap()[0].status,
            PermissionStatus::Pending
        );
        assert_eq!(
            missing_grants(&s, "p").unwrap(),
            vec!["database_read (pending)"]
        );
    }

    #[test]
    fn medium_risk_grants_with_capped_expiry() {
        let (_d, s, c) = setup(&[(Permission::DatabaseRead, "messages")]);
        let year3 = std::time::Duration::from_secs(3 * 365 * 86400);
        let rows = approve(&s, &c, "a", "ok", Expiry::In(year3)).unwrap();
        let max = c
            .policy_for(Permission::DatabaseRead)
            .max_expiry
            .as_millis() as i64;
        let granted = rows[0].expires_at.unwrap() - rows[0].granted_at.unwrap();
        assert!(
            granted <= max && granted > max - 5_000,
            "{granted} vs {max}"
        );
        assert!(missing_grants(&s, "p").unwrap().is_empty());
    }

    #[test]
    fn high_risk_needs_two_different_admins() {
        let (_d, s, c) = setup(&[(Permission::FileWrite, "/srv/out")]);
        let rows = approve(&s, &c, "alice", "ok", Expiry::Default).unwrap();
        assert_eq!(rows[0].status, PermissionStatus::Pending);
        assert_eq!(rows[0].approvers.len(), 1);
        assert!(matches!(
            approve(&s, &c, "alice", "again", Expiry::Default),
            Err(ApprovalError::Conflict(_))
        ));
        let rows = approve(&s, &c, "bob", "ok", Expiry::Default).unwrap();
        assert_eq!(rows[0].status, PermissionStatus::Granted);
    }

    #[test]
    fn a_past_expiry_is_refused() {
        let (_d, s, c) = setup(&[(Permission::DatabaseRead, "messages")]);
        assert!(matches!(
            approve(&s, &c, "a", "ok", Expiry::At(1)),
            Err(ApprovalError::Invalid(_))
        ));
    }

    #[test]
    fn a_second_approver_can_narrow_further_but_not_undo_a_narrowing() {
        let (_d, s, c) = setup(&[(Permission::FileWrite, "/srv/shared")]);
        let decide_as = |who: &str, scope: Option<&[String]>| {
            decide(
                &s,
                &c,
                &admin(who),
                &DecisionInput {
                    plugin: "p",
                    permissions: &["file_write".to_string()],
                    comment: "ok",
                    decision: Decision::Approve(Expiry::Default),
                    scope,
                },
            )
        };
        let reports = ["/srv/shared/reports".to_string()];
        let first = decide_as("a", Some(&reports)).unwrap();
        assert_eq!(first[0].status, PermissionStatus::Pending, "1 of 2");
        // Back to the whole request: refused (the first admin narrowed it).
        let whole = ["/srv/shared".to_string()];
        let err = decide_as("b", Some(&whole)).unwrap_err();
        assert!(err.to_string().contains("only narrow"), "{err}");
        let second = decide_as("b", None).unwrap();
        assert_eq!(second[0].status, PermissionStatus::Granted);
        assert_eq!(second[0].granted_scope, reports);
        assert_eq!(second[0].requested_scope, whole);
    }
}
