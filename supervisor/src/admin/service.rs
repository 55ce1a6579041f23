//! The `plexichat.admin.v1.Admin` service: each call authorizes its caller, then
//! delegates to install, approval, lifecycle, the store or the event hub, and maps
//! their errors to gRPC statuses.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker_proto::admin::v1::admin_server::Admin;
use broker_proto::admin::v1::*;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::auth::{authorize, Need};
use super::trust::KeyStates;
use super::{audit_page, convert};
use crate::approval::{self, ApprovalError, Decision, DecisionInput, Expiry};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::broker::InvokeError;
use crate::clock::now_ms;
use crate::context::Shared;
use crate::install::{self, InstallError};
use crate::lifecycle::{self, LifecycleError};
use crate::manifest::validate_topic_pattern;
use crate::runtime::Runtime;
use crate::store::StoreError;

const MAX_COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

pub struct AdminService {
    pub shared: Arc<Shared>,
    pub runtime: Arc<Runtime>,
    /// `ReloadConfig`: the same reload SIGHUP runs.
    pub reloader: Arc<crate::reload::Reloader>,
}

pub(super) fn store_status(e: StoreError) -> Status {
    match e {
        e if e.is_unwritable() => Status::unavailable(format!(
            "refused: the store cannot be written ({e}); nothing was changed"
        )),
        StoreError::NoSuchPlugin(_) => Status::not_found(e.to_string()),
        StoreError::AlreadyInstalled(_) => Status::already_exists(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

pub(super) fn approval_status(e: ApprovalError) -> Status {
    match e {
        ApprovalError::MissingComment | ApprovalError::Invalid(_) => {
            Status::invalid_argument(e.to_string())
        }
        ApprovalError::Conflict(_) => Status::failed_precondition(e.to_string()),
        ApprovalError::Store(s) => store_status(s),
    }
}

pub(super) fn install_status(e: InstallError) -> Status {
    match e {
        InstallError::Manifest(_) | InstallError::Package { .. } => {
            Status::invalid_argument(e.to_string())
        }
        InstallError::Refused(_) => Status::failed_precondition(e.to_string()),
        InstallError::Store(s) => store_status(s),
        InstallError::Io { .. } => Status::internal(e.to_string()),
    }
}

pub(super) fn busy_status(e: lifecycle::Busy) -> Status {
    Status::aborted(e.to_string())
}

pub(super) fn lifecycle_status(e: LifecycleError) -> Status {
    match e {
        LifecycleError::MissingGrants { .. } | LifecycleError::ChangesRequested { .. } => {
            Status::failed_precondition(e.to_string())
        }
        LifecycleError::SafeMode { .. } | LifecycleError::Verification { .. } => {
            Status::failed_precondition(e.to_string())
        }
        LifecycleError::MissingComment => Status::invalid_argument(e.to_string()),
        LifecycleError::Store(s) => store_status(s),
        LifecycleError::Install(i) => install_status(i),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl AdminService {
    /// What ShowPlugin answers for `name`.
    pub(super) fn detail(&self, name: &str) -> Result<Response<PluginDetail>, Status> {
        let row = self
            .shared
            .store
            .require_plugin(name)
            .map_err(store_status)?;
        let perms = self.shared.store.permissions(name).map_err(store_status)?;
        let status = self.runtime.status(name);
        let keys = KeyStates::read(&self.shared.store).map_err(store_status)?;
        let mut detail = convert::detail(&self.shared.catalog, &row, &perms, &status, &keys);
        self.add_package_fields(&mut detail, name)?;
        Ok(Response::new(detail))
    }

    pub(super) fn auth<T>(
        &self,
        req: &Request<T>,
        method: &str,
        need: Need,
    ) -> Result<Actor, Status> {
        let actor = authorize(
            &self.shared.live.load().access,
            &self.shared.store,
            &self.shared.audit,
            req,
            method,
            need,
        )?;
        // A change is recorded: refused up front while records cannot be written,
        // before anything happens.
        if need == Need::Change {
            self.shared.audit.admit(&actor.identity, method)?;
        }
        Ok(actor)
    }

    /// [`AdminService::auth`] for a served call that will be recorded (publish,
    /// invoke, host actions): closed, like changes, while records cannot be written.
    pub(super) fn auth_recorded<T>(
        &self,
        req: &Request<T>,
        method: &str,
        need: Need,
    ) -> Result<Actor, Status> {
        let actor = self.auth(req, method, need)?;
        self.shared.audit.admit(&actor.identity, method)?;
        Ok(actor)
    }

    pub(super) fn summary(&self, name: &str) -> Result<PluginSummary, Status> {
        let row = self
            .shared
            .store
            .require_plugin(name)
            .map_err(store_status)?;
        let keys = KeyStates::read(&self.shared.store).map_err(store_status)?;
        Ok(convert::summary(&row, &self.runtime.status(name), &keys))
    }

    /// The plugin's lifecycle lock (see `lifecycle::Locks`).
    pub(super) async fn lock(
        &self,
        name: &str,
        op: lifecycle::Op,
    ) -> Result<lifecycle::PluginGuard<'_>, Status> {
        self.shared
            .locks
            .plugin(name, op)
            .await
            .map_err(busy_status)
    }

    /// Records `entry` and returns once it is committed: nothing is answered without
    /// its record (UNAVAILABLE, naming why, when the audit trail cannot be written).
    pub(super) async fn audit(&self, entry: AuditEntry) -> Result<(), Status> {
        Ok(self.shared.audit.record_durable(entry).await?)
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn who_am_i(
        &self,
        request: Request<WhoAmIRequest>,
    ) -> Result<Response<WhoAmIResponse>, Status> {
        let actor = self.auth(&request, "whoami", Need::Read)?;
        let cred = request
            .extensions()
            .get::<tonic::transport::server::UdsConnectInfo>()
            .and_then(|i| i.peer_cred);
        Ok(Response::new(WhoAmIResponse {
            uid: cred.map(|c| c.uid()),
            gid: cred.map(|c| c.gid()),
            pid: cred.and_then(|c| c.pid()).unwrap_or_default(),
            role: broker_proto::admin::v1::Role::from(actor.role).into(),
            identity: actor.identity,
            on_behalf_of: actor.on_behalf_of.unwrap_or_default(),
        }))
    }

    async fn install_plugin(
        &self,
        request: Request<InstallPluginRequest>,
    ) -> Result<Response<PluginSummary>, Status> {
        self.auth(&request, "install", Need::Change)?;
        Err(super::upload::path_api_removed())
    }

    async fn list_plugins(
        &self,
        request: Request<ListPluginsRequest>,
    ) -> Result<Response<ListPluginsResponse>, Status> {
        self.auth(&request, "list", Need::Read)?;
        let rows = self.shared.store.plugins().map_err(store_status)?;
        let keys = KeyStates::read(&self.shared.store).map_err(store_status)?;
        let plugins = rows
            .iter()
            .map(|r| convert::summary(r, &self.runtime.status(&r.name), &keys))
            .collect();
        Ok(Response::new(ListPluginsResponse { plugins }))
    }

    async fn show_plugin(
        &self,
        request: Request<PluginRef>,
    ) -> Result<Response<PluginDetail>, Status> {
        self.auth(&request, "show", Need::Read)?;
        self.detail(&request.into_inner().name)
    }

    async fn list_pending(
        &self,
        request: Request<ListPendingRequest>,
    ) -> Result<Response<ListPendingResponse>, Status> {
        self.auth(&request, "pending", Need::Read)?;
        let now = now_ms();
        let within = request.get_ref().expiring_within_secs;
        let rows = if within == 0 {
            self.shared.store.pending()
        } else {
            let window = i64::try_from(within.saturating_mul(1000)).unwrap_or(i64::MAX);
            self.shared.store.expiring(now.saturating_add(window))
        };
        let keys = KeyStates::read(&self.shared.store).map_err(store_status)?;
        let pending = rows
            .map_err(store_status)?
            .into_iter()
            .map(|(p, perm)| PendingRequest {
                signer: keys.signer(&p),
                plugin: p.name,
                plugin_version: p.version,
                permission: Some(convert::permission(&self.shared.catalog, &perm, now)),
            })
            .collect();
        Ok(Response::new(ListPendingResponse { pending }))
    }

    async fn approve(
        &self,
        request: Request<DecisionRequest>,
    ) -> Result<Response<DecisionResponse>, Status> {
        let actor = self.auth(&request, "approve", Need::Change)?;
        let req = request.into_inner();
        let expiry = if req.expires_at_ms != 0 {
            Expiry::At(req.expires_at_ms)
        } else if req.expires_in_secs != 0 {
            Expiry::In(Duration::from_secs(req.expires_in_secs))
        } else {
            Expiry::Default
        };
        self.decide(
            &actor,
            &req,
            Decision::Approve(expiry),
            "permission.approve",
        )
        .await
    }

    async fn deny(
        &self,
        request: Request<DecisionRequest>,
    ) -> Result<Response<DecisionResponse>, Status> {
        let actor = self.auth(&request, "deny", Need::Change)?;
        let req = request.into_inner();
        self.decide(&actor, &req, Decision::Deny, "permission.deny")
            .await
    }

    async fn request_changes(
        &self,
        request: Request<DecisionRequest>,
    ) -> Result<Response<PluginSummary>, Status> {
        let actor = self.auth(&request, "request changes", Need::Change)?;
        let req = request.into_inner();
        let _lock = self.lock(&req.name, lifecycle::Op::RequestChanges).await?;
        lifecycle::request_changes(&self.shared, &self.runtime, &actor, &req.name, &req.comment)
            .await
            .map_err(lifecycle_status)?;
        Ok(Response::new(self.summary(&req.name)?))
    }

    async fn repin_runtime(
        &self,
        request: Request<RepinRuntimeRequest>,
    ) -> Result<Response<PluginDetail>, Status> {
        let actor = self.auth(&request, "repin runtime", Need::Change)?;
        let req = request.into_inner();
        if req.comment.trim().is_empty() {
            return Err(Status::invalid_argument(
                "a repin needs a comment saying why the runtime changed",
            ));
        }
        let _lock = self.lock(&req.name, lifecycle::Op::Repin).await?;
        let shared = Arc::clone(&self.shared);
        let (name, comment) = (req.name.clone(), req.comment.clone());
        tokio::task::spawn_blocking(move || {
            install::repin_runtime(&shared.cfg.python, &shared.store, &actor, &name, &comment)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(install_status)?;
        self.detail(&req.name)
    }

    async fn revoke_permission(
        &self,
        request: Request<RevokeRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        let actor = self.auth(&request, "revoke", Need::Change)?;
        let req = request.into_inner();
        let from = match (req.all, req.plugin.is_empty()) {
            (true, true) => approval::RevokeFrom::All,
            (false, false) => approval::RevokeFrom::Plugin(&req.plugin),
            _ => {
                return Err(Status::invalid_argument(
                    "name one plugin or ask for all, not both or neither",
                ))
            }
        };
        let rows = approval::revoke(
            &self.shared.store,
            &actor,
            Some(&req.permission),
            from,
            req.comment.trim(),
        )
        .map_err(approval_status)?;
        Ok(Response::new(convert::revoked(&self.shared.catalog, &rows)))
    }

    async fn enable_plugin(
        &self,
        request: Request<EnablePluginRequest>,
    ) -> Result<Response<EnablePluginResponse>, Status> {
        self.op_enable(request).await
    }

    async fn update_plugin(
        &self,
        request: Request<UpdatePluginRequest>,
    ) -> Result<Response<UpdatePluginResponse>, Status> {
        self.op_update(request).await
    }

    async fn disable_all(
        &self,
        request: Request<DisableAllRequest>,
    ) -> Result<Response<DisableAllResponse>, Status> {
        self.op_disable_all(request).await
    }

    async fn revoke_all(
        &self,
        request: Request<RevokeAllRequest>,
    ) -> Result<Response<RevokeResponse>, Status> {
        self.op_revoke_all(request)
    }

    async fn set_safe_mode(
        &self,
        request: Request<SetSafeModeRequest>,
    ) -> Result<Response<SafeModeStatus>, Status> {
        self.op_set_safe_mode(request).await
    }

    async fn security_report(
        &self,
        request: Request<SecurityReportRequest>,
    ) -> Result<Response<SecurityReportResponse>, Status> {
        self.op_security_report(request).await
    }

    async fn create_backup(
        &self,
        request: Request<CreateBackupRequest>,
    ) -> Result<Response<BackupInfo>, Status> {
        self.op_create_backup(request).await
    }

    async fn list_backups(
        &self,
        request: Request<ListBackupsRequest>,
    ) -> Result<Response<ListBackupsResponse>, Status> {
        self.op_list_backups(request)
    }

    async fn restore_backup(
        &self,
        request: Request<RestoreBackupRequest>,
    ) -> Result<Response<RestoreBackupResponse>, Status> {
        self.op_restore_backup(request).await
    }

    async fn monitor(
        &self,
        request: Request<MonitorRequest>,
    ) -> Result<Response<MonitorResponse>, Status> {
        self.op_monitor(request).await
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        self.op_list_alerts(request)
    }

    async fn acknowledge_alert(
        &self,
        request: Request<AcknowledgeAlertRequest>,
    ) -> Result<Response<Alert>, Status> {
        self.op_acknowledge_alert(request)
    }

    async fn get_plugin_settings(
        &self,
        request: Request<GetPluginSettingsRequest>,
    ) -> Result<Response<PluginSettings>, Status> {
        self.op_get_settings(request).await
    }

    async fn set_plugin_setting(
        &self,
        request: Request<SetPluginSettingRequest>,
    ) -> Result<Response<PluginSetting>, Status> {
        self.op_set_setting(request).await
    }

    async fn unset_plugin_setting(
        &self,
        request: Request<UnsetPluginSettingRequest>,
    ) -> Result<Response<PluginSetting>, Status> {
        self.op_unset_setting(request).await
    }

    async fn disable_plugin(
        &self,
        request: Request<DisablePluginRequest>,
    ) -> Result<Response<PluginSummary>, Status> {
        let actor = self.auth(&request, "disable", Need::Change)?;
        let req = request.into_inner();
        let _lock = self.lock(&req.name, lifecycle::Op::Disable).await?;
        lifecycle::disable(&self.shared, &self.runtime, &actor, &req.name, req.force)
            .await
            .map_err(lifecycle_status)?;
        Ok(Response::new(self.summary(&req.name)?))
    }

    async fn remove_plugin(
        &self,
        request: Request<PluginRef>,
    ) -> Result<Response<RemovePluginResponse>, Status> {
        let actor = self.auth(&request, "remove", Need::Change)?;
        let name = request.into_inner().name;
        let _lock = self.lock(&name, lifecycle::Op::Remove).await?;
        lifecycle::remove(&self.shared, &self.runtime, &actor, &name)
            .await
            .map_err(lifecycle_status)?;
        Ok(Response::new(RemovePluginResponse { name }))
    }

    async fn query_audit(
        &self,
        request: Request<AuditQuery>,
    ) -> Result<Response<AuditResponse>, Status> {
        self.auth(&request, "audit", Need::Read)?;
        // Records of brokered calls are committed in batches: a query sees every call
        // answered before it.
        self.shared.audit.flush().await;
        let page = audit_page::answer(&self.shared.store, request.into_inner())?;
        Ok(Response::new(page))
    }

    async fn security_status(
        &self,
        request: Request<SecurityStatusRequest>,
    ) -> Result<Response<SecurityStatusResponse>, Status> {
        self.auth(&request, "security status", Need::Read)?;
        let want = request.into_inner().plugin;
        let rows = self.shared.store.plugins().map_err(store_status)?;
        if !want.is_empty() && !rows.iter().any(|r| r.name == want) {
            return Err(store_status(StoreError::NoSuchPlugin(want)));
        }
        let keys = KeyStates::read(&self.shared.store).map_err(store_status)?;
        let plugins = rows
            .iter()
            .filter(|r| want.is_empty() || r.name == want)
            .map(|r| convert::security(&self.shared, r, &self.runtime.status(&r.name), &keys))
            .collect();
        let open_alerts = self
            .shared
            .store
            .alerts(false)
            .map_err(store_status)?
            .into_iter()
            .filter(|a| want.is_empty() || a.plugin == want)
            .map(convert::alert)
            .collect();
        Ok(Response::new(SecurityStatusResponse {
            host: Some(convert::host_security(&self.shared)),
            plugins,
            open_alerts,
            fd_budget: Some(convert::fd_budget(self.runtime.fd_budget())),
        }))
    }

    async fn publish_event(
        &self,
        request: Request<PublishEventRequest>,
    ) -> Result<Response<PublishEventResponse>, Status> {
        let actor = self.auth_recorded(&request, "publish", Need::Serve)?;
        let req = request.into_inner();
        validate_topic_pattern(&req.topic).map_err(Status::invalid_argument)?;
        if req.topic.ends_with(".*") || req.topic.starts_with("plugin.") {
            return Err(Status::invalid_argument(
                "the server publishes concrete topics outside the plugin.* namespace",
            ));
        }
        let max = self.shared.hub.limits().max_payload;
        if req.payload.len() > max {
            return Err(Status::invalid_argument(format!(
                "event payloads are at most {max} bytes (broker.event_max_payload); this one has {}",
                req.payload.len()
            )));
        }
        let id = self.shared.hub.event_id();
        let event = broker_proto::broker::v1::Event {
            id: id.clone(),
            topic: req.topic.clone(),
            payload: req.payload,
            source: "server".into(),
            timestamp_ms: now_ms(),
        };
        let audience = crate::broker::event_audience(&self.shared, &req.topic);
        let delivered_to = self
            .shared
            .hub
            .publish(crate::broker::Emitter::Server, event, &audience)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        self.audit(
            AuditEntry::new(&actor, "event.publish", Outcome::Ok).detail(
                serde_json::json!({ "id": id, "topic": req.topic, "delivered_to": delivered_to }),
            ),
        )
        .await?;
        Ok(Response::new(PublishEventResponse { id, delivered_to }))
    }

    async fn invoke_command(
        &self,
        request: Request<InvokeCommandRequest>,
    ) -> Result<Response<InvokeCommandResponse>, Status> {
        let actor = self.auth_recorded(&request, "invoke", Need::Serve)?;
        let req = request.into_inner();
        if req.command.is_empty() || req.command.len() > 128 {
            return Err(Status::invalid_argument("command must be 1-128 bytes"));
        }
        let timeout = match req.timeout_ms {
            0 => self.shared.cfg.runtime.command_timeout,
            ms => Duration::from_millis(ms).min(MAX_COMMAND_TIMEOUT),
        };
        let session = self
            .shared
            .hub
            .session(&req.plugin)
            .filter(|s| s.is_ready())
            .ok_or_else(|| {
                Status::unavailable(format!("plugin `{}` is not running", req.plugin))
            })?;
        self.check_declared(&actor, &session, &req.command, &req.args)
            .await?;
        let started = Instant::now();
        let result = session.invoke(&req.command, req.args, timeout).await;
        let elapsed_us = started.elapsed().as_micros() as u64;
        let (outcome, error) = match &result {
            Ok(_) => (Outcome::Ok, None),
            Err(e) => (Outcome::Failed, Some(format!("{e:?}"))),
        };
        self.audit(
            AuditEntry::new(&actor, "command.invoke", outcome)
                .plugin(&req.plugin)
                .detail(serde_json::json!({ "command": req.command, "elapsed_us": elapsed_us, "error": error })),
        ).await?;
        match result {
            Ok(output) => Ok(Response::new(InvokeCommandResponse { output, elapsed_us })),
            Err(InvokeError::Timeout) => Err(Status::deadline_exceeded(format!(
                "plugin `{}` did not answer `{}` within {}",
                req.plugin,
                req.command,
                humantime::format_duration(timeout)
            ))),
            Err(InvokeError::QueueFull) => Err(Status::resource_exhausted(format!(
                "plugin `{}` has too many messages queued",
                req.plugin
            ))),
            Err(InvokeError::NotReady | InvokeError::Gone) => Err(Status::unavailable(format!(
                "plugin `{}` went away",
                req.plugin
            ))),
            Err(InvokeError::Plugin(msg)) => Err(Status::aborted(format!(
                "plugin `{}` failed `{}`: {msg}",
                req.plugin, req.command
            ))),
        }
    }

    type WatchEventsStream = BoxStream<PluginEvent>;

    async fn watch_events(
        &self,
        request: Request<WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        self.auth(&request, "watch events", Need::Serve)?;
        let topics = request.into_inner().topics;
        for t in &topics {
            validate_topic_pattern(t).map_err(Status::invalid_argument)?;
        }
        // The hub filters by topic and bounds the queue in bytes: a slow watcher
        // loses events (counted) rather than holding the supervisor's memory.
        let rx = self.shared.hub.watch_plugin_events(&topics);
        let stream =
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).map(|w| Ok(w.into_event()));
        Ok(Response::new(Box::pin(stream)))
    }

    type WatchNotificationsStream = BoxStream<Notification>;

    async fn watch_notifications(
        &self,
        request: Request<WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        self.auth(&request, "watch notifications", Need::Read)?;
        let stream = BroadcastStream::new(self.shared.hub.watch_notifications())
            .filter_map(|item| item.ok().map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn audit_report(
        &self,
        request: Request<AuditReportRequest>,
    ) -> Result<Response<AuditReportResponse>, Status> {
        self.auth(&request, "audit report", Need::Read)?;
        self.shared.audit.flush().await;
        let req = request.into_inner();
        let (month, from_ms, until_ms) =
            crate::clock::month_bounds(req.month.trim()).map_err(Status::invalid_argument)?;
        let plugin = (!req.plugin.is_empty()).then_some(req.plugin.as_str());
        let counts = self
            .shared
            .store
            .audit_counts(from_ms, until_ms, plugin)
            .map_err(store_status)?;
        Ok(Response::new(AuditReportResponse {
            month,
            from_ms,
            until_ms,
            plugins: crate::audit::report::summarize(&counts),
        }))
    }

    async fn verify_integrity(
        &self,
        request: Request<VerifyIntegrityRequest>,
    ) -> Result<Response<VerifyIntegrityResponse>, Status> {
        let actor = self.auth(&request, "verify integrity", Need::Read)?;
        self.shared.audit.flush().await;
        let shared = Arc::clone(&self.shared);
        let checks = tokio::task::spawn_blocking(move || crate::integrity::verify(&shared))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let ok = checks.iter().all(|c| c.ok);
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        self.audit(
            AuditEntry::new(
                &actor,
                "integrity.verify",
                if ok { Outcome::Ok } else { Outcome::Failed },
            )
            .detail(serde_json::json!({ "failed": failed })),
        )
        .await?;
        Ok(Response::new(VerifyIntegrityResponse {
            ok,
            checks: checks.into_iter().map(convert::check).collect(),
        }))
    }

    async fn reload_config(
        &self,
        request: Request<ReloadConfigRequest>,
    ) -> Result<Response<ReloadConfigResponse>, Status> {
        self.op_reload_config(request).await
    }

    async fn upload_plugin(
        &self,
        request: Request<tonic::Streaming<PackageChunk>>,
    ) -> Result<Response<UploadPluginResponse>, Status> {
        self.op_upload(request).await
    }

    async fn add_trusted_key(
        &self,
        request: Request<AddTrustedKeyRequest>,
    ) -> Result<Response<TrustedKey>, Status> {
        self.op_add_trusted_key(request).await
    }

    async fn list_trusted_keys(
        &self,
        request: Request<ListTrustedKeysRequest>,
    ) -> Result<Response<ListTrustedKeysResponse>, Status> {
        self.op_list_trusted_keys(request).await
    }

    async fn remove_trusted_key(
        &self,
        request: Request<TrustKeyChange>,
    ) -> Result<Response<TrustedKey>, Status> {
        self.op_end_trusted_key(request, crate::trust::Ending::Remove)
            .await
    }

    async fn revoke_trusted_key(
        &self,
        request: Request<TrustKeyChange>,
    ) -> Result<Response<TrustedKey>, Status> {
        self.op_end_trusted_key(request, crate::trust::Ending::Revoke)
            .await
    }

    async fn import_advisories(
        &self,
        request: Request<tonic::Streaming<AdvisoryChunk>>,
    ) -> Result<Response<ImportAdvisoriesResponse>, Status> {
        self.op_import_advisories(request).await
    }

    async fn review_plugin(
        &self,
        request: Request<PluginRef>,
    ) -> Result<Response<PluginReview>, Status> {
        self.op_review(request).await
    }

    async fn trial_plugin(
        &self,
        request: Request<TrialRequest>,
    ) -> Result<Response<TrialReport>, Status> {
        self.op_trial(request).await
    }

    type ServeHostActionsStream = BoxStream<HostActionCall>;

    async fn serve_host_actions(
        &self,
        request: Request<tonic::Streaming<HostActionResult>>,
    ) -> Result<Response<Self::ServeHostActionsStream>, Status> {
        let actor = self.auth_recorded(&request, "serve host actions", Need::Serve)?;
        let mut results = request.into_inner();
        let (id, calls) = self.shared.host_actions.connect();
        self.audit(
            AuditEntry::new(&actor, "host_actions.connect", Outcome::Ok)
                .detail(serde_json::json!({ "connection": id })),
        )
        .await?;
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            while let Ok(Some(result)) = results.message().await {
                if !shared.host_actions.complete(result) {
                    tracing::debug!(connection = id, "a host action result nobody waits for");
                }
            }
            shared.host_actions.disconnect(id);
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(calls).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}

impl AdminService {
    async fn decide(
        &self,
        actor: &Actor,
        req: &DecisionRequest,
        decision: Decision,
        action: &str,
    ) -> Result<Response<DecisionResponse>, Status> {
        let input = DecisionInput {
            plugin: &req.name,
            permissions: &req.permissions,
            comment: &req.comment,
            decision,
            scope: (!req.scope.is_empty()).then_some(req.scope.as_slice()),
        };
        match approval::decide(&self.shared.store, &self.shared.catalog, actor, &input) {
            Ok(rows) => {
                let now = now_ms();
                Ok(Response::new(DecisionResponse {
                    decided: rows
                        .iter()
                        .map(|r| convert::permission(&self.shared.catalog, r, now))
                        .collect(),
                }))
            }
            Err(e) => {
                self.audit(
                    AuditEntry::new(actor, action, Outcome::Denied)
                        .plugin(&req.name)
                        .detail(serde_json::json!({ "permissions": req.permissions, "reason": e.to_string() })),
                ).await?;
                Err(approval_status(e))
            }
        }
    }
}
