//! The `TrialPlugin` call: checks the request and the plugin (installed, not
//! running, not held), runs the trial under its lifecycle lock, audits the summary.

// One audit record per trial (`plugin.trial`, with the counts, the NOT requested lines
// and the refused syscalls); the attempts themselves are in the report only: a plugin
// looping on refused calls must not be able to fill the audit trail.

use std::sync::Arc;

use broker_proto::admin::v1::{TrialReport, TrialRequest};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::service::{busy_status, store_status, AdminService};
use super::Need;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::lifecycle::Op;
use crate::manifest::Manifest;
use crate::runtime::{Runtime, TrialError};
use crate::trial::{report, TrialPlan};

impl AdminService {
    pub(super) async fn op_trial(
        &self,
        request: Request<TrialRequest>,
    ) -> Result<Response<TrialReport>, Status> {
        let actor = self.auth_recorded(&request, "trial", Need::Change)?;
        let req = request.into_inner();
        let name = req.plugin.clone();
        let plan = TrialPlan::from_request(req).map_err(|e| Status::invalid_argument(e.0))?;
        // Spawned: a client that hangs up must not cancel a trial half way (its plugin
        // would be left running unsupervised); it runs out its time, is stopped and
        // audited whoever waits. Error level, as the runtime's plugin spans.
        let span = tracing::error_span!("trial", plugin = %name);
        let (shared, runtime) = (Arc::clone(&self.shared), Arc::clone(&self.runtime));
        let task = tokio::spawn(
            async move { run(&shared, &runtime, actor, &name, plan).await }.instrument(span),
        );
        let report = task
            .await
            .map_err(|e| Status::internal(format!("the trial task failed: {e}")))??;
        Ok(Response::new(report))
    }
}

/// Takes the plugin's lock (at once or not at all), checks it may run, runs the
/// trial and records it.
async fn run(
    shared: &Shared,
    runtime: &Runtime,
    actor: Actor,
    name: &str,
    plan: TrialPlan,
) -> Result<TrialReport, Status> {
    let row = shared.store.require_plugin(name).map_err(store_status)?;
    // Held for the whole trial: no enable, update or second trial meanwhile.
    let _guard = shared
        .locks
        .try_plugin(name, Op::Trial)
        .await
        .map_err(busy_status)?;
    if let Some(phase) = runtime.active_phase(name) {
        return Err(Status::failed_precondition(format!(
            "plugin `{name}` is {} now; a trial runs only a plugin that is not running (stop it first: plexichat plugin disable {name})",
            phase.as_str()
        )));
    }
    if shared.store.safe_mode().map_err(store_status)?.enabled {
        return Err(Status::failed_precondition(
            "safe mode is on: no plugin runs, trials included",
        ));
    }
    let manifest = Manifest::parse(&row.manifest, &shared.catalog).map_err(|e| {
        Status::failed_precondition(format!("stored manifest no longer valid: {e}"))
    })?;
    let duration_ms = plan.duration.as_millis() as u64;
    tracing::info!(duration_ms, "trial starting");
    let (outcome, dir_removed) = match runtime.trial(&row, &manifest, plan).await {
        Ok(r) => r,
        Err(e) => {
            let entry = AuditEntry::new(&actor, "plugin.trial", Outcome::Failed)
                .plugin(name)
                .detail(serde_json::json!({ "error": e.to_string(), "duration_ms": duration_ms }));
            shared.audit.record_durable(entry).await?;
            return Err(match e {
                TrialError::Refused(m) => Status::failed_precondition(m),
                TrialError::Failed(m) => Status::internal(m),
            });
        }
    };
    let report = report::build(&manifest, &shared.catalog, outcome);
    shared
        .audit
        .record_durable(summary(&actor, &report, duration_ms, dir_removed))
        .await?;
    tracing::info!(exit = %report.exit, "trial done");
    Ok(report)
}

/// The `plugin.trial` record: what ran, how it ended, what it tried beyond its
/// manifest and which syscalls were refused.
fn summary(actor: &Actor, r: &TrialReport, duration_ms: u64, dir_removed: bool) -> AuditEntry {
    let not_requested: Vec<&str> = r
        .lines
        .iter()
        .filter(|l| l.verdict == "not_requested")
        .map(|l| l.text.as_str())
        .take(32)
        .collect();
    let peaks = r.peaks.clone().unwrap_or_default();
    AuditEntry::new(actor, "plugin.trial", Outcome::Ok)
        .plugin(&r.plugin)
        .detail(serde_json::json!({
            "version": r.version,
            "duration_ms": duration_ms,
            "ran_ms": r.ran_ms,
            "exit": r.exit,
            "crashed": r.crashed,
            "confined": r.confined,
            "attempts": r.attempts.iter().map(|a| a.count).sum::<u64>() + r.attempts_dropped,
            "not_requested": not_requested,
            "never_tried": r.lines.iter().filter(|l| l.verdict == "never_tried").count(),
            "syscalls_denied": r.syscalls.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "peak_memory_bytes": peaks.memory_bytes,
            "peak_pids": peaks.pids,
            "cpu_usec": peaks.cpu_usec,
            "data_dir_removed": dir_removed,
        }))
}
