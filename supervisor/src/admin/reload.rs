//! `ReloadConfig`: the admin API's way to the reload SIGHUP runs, answering the
//! operator with the keys applied and those that wait for a restart.

use broker_proto::admin::v1::{ReloadConfigRequest, ReloadConfigResponse};
use tonic::{Request, Response, Status};

use super::service::AdminService;
use super::Need;
use crate::audit::{AuditEntry, Outcome, Role};

impl AdminService {
    pub(super) async fn op_reload_config(
        &self,
        request: Request<ReloadConfigRequest>,
    ) -> Result<Response<ReloadConfigResponse>, Status> {
        let actor = self.auth(&request, "reload config", Need::Change)?;
        // The host's configuration is the host operator's: the server role acting for
        // a PlexiChat admin changes plugins, not this.
        if actor.role != Role::Admin {
            let reason = format!("role `{}` may not reload config", actor.role.as_str());
            self.audit(
                AuditEntry::new(&actor, "admin.refused", Outcome::Denied)
                    .detail(serde_json::json!({ "method": "reload config", "reason": reason })),
            )
            .await?;
            return Err(Status::permission_denied(reason));
        }
        let reloader = std::sync::Arc::clone(&self.reloader);
        let (done, entry) = tokio::task::spawn_blocking(move || reloader.reload(&actor))
            .await
            .map_err(|e| Status::internal(format!("the reload failed: {e}")))?;
        self.audit(entry).await?;
        let changes = done
            .config
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(ReloadConfigResponse {
            applied: changes.applied,
            needs_restart: changes.needs_restart,
            logs_reopened: done.logs.is_ok(),
            logs_error: done.logs.err().unwrap_or_default(),
        }))
    }
}
