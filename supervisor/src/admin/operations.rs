//! The operator calls of the admin service: updates, verified enable, emergency
//! controls and safe mode, the security report, backups and restore, monitoring and
//! alerts. Each authorizes its caller, delegates, and maps errors to statuses.

use std::sync::Arc;

use broker_proto::admin::v1::*;
use tonic::{Request, Response, Status};

use super::convert;
use super::service::{approval_status, busy_status, lifecycle_status, store_status, AdminService};
use super::Need;
use crate::audit::{AuditEntry, Outcome};
use crate::backup::{self, BackupError, Reason};
use crate::clock::now_ms;
use crate::lifecycle;
use crate::runtime::StopMode;
use crate::store::{self, StoreError};

fn backup_status(e: BackupError) -> Status {
    match e {
        BackupError::NotFound(_) => Status::not_found(e.to_string()),
        BackupError::BadId(_) => Status::invalid_argument(e.to_string()),
        BackupError::Tampered { .. } => Status::data_loss(e.to_string()),
        BackupError::Io { .. } => Status::internal(e.to_string()),
        BackupError::Store(s) => store_status(s),
        BackupError::LowSpace(_) => Status::resource_exhausted(e.to_string()),
    }
}

fn joined(e: tokio::task::JoinError) -> Status {
    Status::internal(e.to_string())
}

/// Over the last day, from the audit counts: security events by kind and refused
/// brokered calls by plugin.
fn last_day(counts: &[store::AuditCount]) -> (Counts, Counts) {
    let mut events = Counts::new();
    let mut denials = Counts::new();
    for c in counts {
        if let Some(kind) = c.action.strip_prefix("security.") {
            *events.entry(kind.to_string()).or_insert(0) += c.count;
        } else if c.action.starts_with("broker.") && c.outcome == Outcome::Denied.as_str() {
            *denials.entry(c.plugin.clone()).or_insert(0) += c.count;
        }
    }
    (events, denials)
}

type Counts = std::collections::BTreeMap<String, u64>;

impl AdminService {
    pub(super) async fn op_enable(
        &self,
        request: Request<EnablePluginRequest>,
    ) -> Result<Response<EnablePluginResponse>, Status> {
        let actor = self.auth(&request, "enable", Need::Change)?;
        let req = request.into_inner();
        let _lock = self.lock(&req.name, lifecycle::Op::Enable).await?;
        let verified = if req.verify_security {
            lifecycle::enable_verified(&self.shared, &self.runtime, &actor, &req.name)
                .await
                .map_err(lifecycle_status)?
        } else {
            lifecycle::enable(&self.shared, &self.runtime, &actor, &req.name)
                .map_err(lifecycle_status)?;
            Vec::new()
        };
        Ok(Response::new(EnablePluginResponse {
            summary: Some(self.summary(&req.name)?),
            verified: verified.into_iter().map(convert::check).collect(),
        }))
    }

    pub(super) async fn op_update(
        &self,
        request: Request<UpdatePluginRequest>,
    ) -> Result<Response<UpdatePluginResponse>, Status> {
        self.auth(&request, "update", Need::Change)?;
        Err(super::upload::path_api_removed())
    }

    /// The old version never runs on: it stops, and the new one starts at once when
    /// nothing grew; with growth it waits for the review (state disabled).
    pub(super) async fn switch_to_new_version(&self, updated: &crate::install::Updated) {
        let name = &updated.row.name;
        let was_running = self.runtime.active().contains(name);
        if was_running {
            self.runtime.stop(name, StopMode::Graceful).await;
        }
        if updated.to_review.is_empty() {
            if was_running && updated.row.state == store::PluginState::Enabled {
                self.runtime.start(name);
            }
        } else {
            self.shared.hub.notify(
                broker_proto::admin::v1::NotificationKind::ApprovalRequired,
                name,
                format!(
                    "{name} {} asks for more: {} awaiting review",
                    updated.row.version,
                    updated.to_review.join(", ")
                ),
            );
        }
    }

    pub(super) async fn op_disable_all(
        &self,
        request: Request<DisableAllRequest>,
    ) -> Result<Response<DisableAllResponse>, Status> {
        let actor = self.auth(&request, "disable all", Need::Change)?;
        let req = request.into_inner();
        let done = crate::emergency::disable_all(
            &self.shared,
            &self.runtime,
            &actor,
            req.except_core,
            req.force,
            req.comment.trim(),
        )
        .await
        .map_err(store_status)?;
        Ok(Response::new(DisableAllResponse {
            disabled: done.disabled,
            kept: done.kept,
        }))
    }

    pub(super) fn op_revoke_all(
        &self,
        request: Request<RevokeAllRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let actor = self.auth(&request, "revoke all", Need::Change)?;
        let comment = request.into_inner().comment;
        let rows = crate::emergency::revoke_all(&self.shared, &actor, comment.trim())
            .map_err(approval_status)?;
        Ok(Response::new(convert::revoked(&self.shared.catalog, &rows)))
    }

    pub(super) async fn op_set_safe_mode(
        &self,
        request: Request<SetSafeModeRequest>,
    ) -> Result<Response<SafeModeStatus>, Status> {
        let actor = self.auth(&request, "safe mode", Need::Change)?;
        let req = request.into_inner();
        let (mode, plugins) = crate::emergency::set_safe_mode(
            &self.shared,
            &self.runtime,
            &actor,
            req.enabled,
            req.comment.trim(),
        )
        .await
        .map_err(store_status)?;
        Ok(Response::new(convert::safe_mode(mode, plugins)))
    }

    pub(super) async fn op_security_report(
        &self,
        request: Request<SecurityReportRequest>,
    ) -> Result<Response<SecurityReportResponse>, Status> {
        let actor = self.auth(&request, "security report", Need::Read)?;
        self.shared.audit.flush().await;
        let shared = Arc::clone(&self.shared);
        let integrity = tokio::task::spawn_blocking(move || crate::integrity::verify(&shared))
            .await
            .map_err(joined)?;
        let store = &self.shared.store;
        let now = now_ms();
        let counts = store
            .audit_counts(now - 86_400_000, now + 1, None)
            .map_err(store_status)?;
        let (events, denials) = last_day(&counts);
        let keys = super::trust::KeyStates::read(store).map_err(store_status)?;
        let plugins: Vec<_> = store
            .plugins()
            .map_err(store_status)?
            .iter()
            .map(|r| convert::summary(r, &self.runtime.status(&r.name), &keys))
            .collect();
        let revoked_signers = plugins
            .iter()
            .filter(|p| {
                p.signer.as_ref().is_some_and(|s| {
                    s.key_state == broker_proto::admin::v1::TrustState::Revoked as i32
                })
            })
            .map(|p| p.name.clone())
            .collect();
        let (advisory_database, advisories) = store
            .read(|c| {
                Ok((
                    crate::store::advisory_db(c)?
                        .as_ref()
                        .map(super::review::database),
                    super::review::all_findings(c)?,
                ))
            })
            .map_err(store_status)?;
        let report = SecurityReportResponse {
            advisory_database,
            advisories,
            revoked_signers,
            generated_at_ms: now,
            safe_mode: Some(convert::safe_mode(
                store.safe_mode().map_err(store_status)?,
                Vec::new(),
            )),
            host: Some(convert::host_security(&self.shared)),
            plugins,
            integrity_ok: integrity.iter().all(|c| c.ok),
            integrity: integrity.into_iter().map(convert::check).collect(),
            open_alerts: store
                .alerts(false)
                .map_err(store_status)?
                .into_iter()
                .map(convert::alert)
                .collect(),
            security_events_24h: events,
            denials_24h: denials,
            recent_incidents: store
                .recent_incidents(20)
                .map_err(store_status)?
                .into_iter()
                .map(convert::audit_record)
                .collect(),
        };
        self.audit(
            AuditEntry::new(&actor, "emergency.security_report", Outcome::Ok)
                .detail(serde_json::json!({ "integrity_ok": report.integrity_ok, "open_alerts": report.open_alerts.len() })),
        ).await?;
        Ok(Response::new(report))
    }

    pub(super) async fn op_create_backup(
        &self,
        request: Request<CreateBackupRequest>,
    ) -> Result<Response<BackupInfo>, Status> {
        let actor = self.auth(&request, "backup", Need::Change)?;
        let comment = request.into_inner().comment;
        if let Err(refused) = lifecycle::admit(&self.shared, lifecycle::Op::Backup) {
            self.audit(
                AuditEntry::new(&actor, "backup.create", Outcome::Denied)
                    .detail(serde_json::json!({ "reason": refused.to_string() })),
            )
            .await?;
            return Err(Status::resource_exhausted(refused.to_string()));
        }
        let _lock = self.shared.locks.shared().await.map_err(busy_status)?;
        let shared = Arc::clone(&self.shared);
        let row = tokio::task::spawn_blocking(move || {
            backup::create(&shared, &actor, Reason::Manual, comment.trim())
        })
        .await
        .map_err(joined)?
        .map_err(backup_status)?;
        Ok(Response::new(convert::backup(row)))
    }

    pub(super) fn op_list_backups(
        &self,
        request: Request<ListBackupsRequest>,
    ) -> Result<Response<ListBackupsResponse>, Status> {
        self.auth(&request, "list backups", Need::Read)?;
        let backups = self
            .shared
            .store
            .backups()
            .map_err(store_status)?
            .into_iter()
            .map(convert::backup)
            .collect();
        Ok(Response::new(ListBackupsResponse { backups }))
    }

    pub(super) async fn op_restore_backup(
        &self,
        request: Request<RestoreBackupRequest>,
    ) -> Result<Response<RestoreBackupResponse>, Status> {
        let actor = self.auth(&request, "restore", Need::Change)?;
        let req = request.into_inner();
        let _lock = self
            .shared
            .locks
            .store(lifecycle::Op::Restore)
            .await
            .map_err(busy_status)?;
        let restored = backup::restore(
            &self.shared,
            &self.runtime,
            &actor,
            req.backup_id.trim(),
            req.exclude_plugins,
            req.comment.trim(),
        )
        .await;
        match restored {
            Ok(r) => Ok(Response::new(RestoreBackupResponse {
                restored: Some(convert::backup(r.backup)),
                safety_backup_id: r.safety.id,
                plugins: r.plugins,
                started: r.started,
            })),
            Err(e) => {
                self.audit(
                    AuditEntry::new(&actor, "backup.restore", Outcome::Failed).detail(
                        serde_json::json!({ "id": req.backup_id.chars().take(60).collect::<String>(), "error": e.to_string() }),
                    ),
                ).await?;
                Err(backup_status(e))
            }
        }
    }

    pub(super) async fn op_monitor(
        &self,
        request: Request<MonitorRequest>,
    ) -> Result<Response<MonitorResponse>, Status> {
        self.auth(&request, "monitor", Need::Read)?;
        // Counters follow committed records; flush so they include every answered call.
        self.shared.audit.flush().await;
        let plugin = request.into_inner().plugin;
        let only = (!plugin.is_empty()).then_some(plugin.as_str());
        crate::monitor::usage(&self.shared, &self.runtime, only)
            .map(Response::new)
            .map_err(store_status)
    }

    pub(super) fn op_list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        self.auth(&request, "alerts", Need::Read)?;
        let all = request.into_inner().all;
        let alerts = self
            .shared
            .store
            .alerts(all)
            .map_err(store_status)?
            .into_iter()
            .map(convert::alert)
            .collect();
        Ok(Response::new(ListAlertsResponse { alerts }))
    }

    pub(super) fn op_acknowledge_alert(
        &self,
        request: Request<AcknowledgeAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        let actor = self.auth(&request, "acknowledge alert", Need::Change)?;
        let req = request.into_inner();
        let row = self.shared.store.write(|tx| {
            let Some(row) = store::alert(&tx.sql, req.id)? else {
                return Err(Status::not_found(format!("no alert {}", req.id)));
            };
            if !store::acknowledge_alert(&tx.sql, req.id, &actor.approver())? {
                return Err(Status::failed_precondition(format!(
                    "alert {} was already acknowledged by {}",
                    req.id,
                    row.acknowledged_by.unwrap_or_default()
                )));
            }
            tx.audit(
                AuditEntry::new(&actor, "alert.acknowledge", Outcome::Ok)
                    .plugin(&row.plugin)
                    .detail(serde_json::json!({ "alert": req.id, "rule": row.rule, "comment": req.comment.trim() })),
            );
            Ok(store::alert(&tx.sql, req.id)?.unwrap_or(row))
        });
        row.map(|r| Response::new(convert::alert(r)))
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Status {
        store_status(e)
    }
}
