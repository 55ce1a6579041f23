//! `grpc.health.v1.Health` on the admin socket: NOT_SERVING while safe mode is on or
//! the audit trail refuses calls (fail-closed), SERVING otherwise, kept current.

// What is reported: the overall status ("") and `plexichat.admin.v1.Admin` follow the
// supervisor's state; the reflection services answer in every state, so they are
// SERVING always. Safe mode lives in the store: it is read again on every hub
// notification (safe mode on/off and a restore each send one) and every
// `RECHECK`, off the async threads (a read queues behind the audit writer's commits
// on the one store connection). The audit writer's state comes from its watch channel.

use std::sync::Arc;
use std::time::Duration;

use broker_proto::admin::v1::admin_server::AdminServer;
use tokio::sync::{broadcast, watch};
use tonic::server::NamedService;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use super::service::AdminService;
use crate::context::Shared;

/// Safe mode is read again at least this often, in case a change sent no notification.
const RECHECK: Duration = Duration::from_secs(2);

/// Services whose status follows the supervisor's state.
const FOLLOWING: [&str; 2] = ["", <AdminServer<AdminService> as NamedService>::NAME];

/// Services that answer in every state.
const ALWAYS: [&str; 2] = [
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// What makes the admin API not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Holds {
    pub safe_mode: bool,
    pub audit_failing: bool,
}

impl Holds {
    pub fn status(self) -> ServingStatus {
        if self.safe_mode || self.audit_failing {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        }
    }
}

/// The health service and the task keeping it current (aborted when dropped).
pub struct Health {
    pub reporter: HealthReporter,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for Health {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// Starts reporting; the first status is set before this returns.
pub async fn start(shared: Arc<Shared>) -> Health {
    let reporter = HealthReporter::new();
    for name in ALWAYS {
        reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    let safe_mode = watch_safe_mode(Arc::clone(&shared)).await;
    let audit = shared.audit.watch_failing();
    let mut last = None;
    publish(&reporter, current(&safe_mode, &audit), &mut last).await;
    let keeper = tokio::spawn(keep_current(reporter.clone(), safe_mode, audit, last));
    Health { reporter, keeper }
}

fn current(safe_mode: &watch::Receiver<bool>, audit: &watch::Receiver<bool>) -> Holds {
    Holds {
        safe_mode: *safe_mode.borrow(),
        audit_failing: *audit.borrow(),
    }
}

async fn publish(reporter: &HealthReporter, holds: Holds, last: &mut Option<Holds>) {
    if *last == Some(holds) {
        return;
    }
    let status = holds.status();
    tracing::info!(%status, safe_mode = holds.safe_mode, audit_failing = holds.audit_failing, "admin API health");
    for name in FOLLOWING {
        reporter.set_service_status(name, status).await;
    }
    *last = Some(holds);
}

async fn keep_current(
    reporter: HealthReporter,
    mut safe_mode: watch::Receiver<bool>,
    mut audit: watch::Receiver<bool>,
    mut last: Option<Holds>,
) {
    loop {
        tokio::select! {
            changed = safe_mode.changed() => if changed.is_err() { return },
            changed = audit.changed() => if changed.is_err() { return },
        }
        publish(&reporter, current(&safe_mode, &audit), &mut last).await;
    }
}

/// Safe mode as a watch channel, fed by a task that reads the store (see above).
async fn watch_safe_mode(shared: Arc<Shared>) -> watch::Receiver<bool> {
    let first = read_safe_mode(&shared).await.unwrap_or(false);
    let (tx, rx) = watch::channel(first);
    let mut notes = shared.hub.watch_notifications();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RECHECK);
        loop {
            tokio::select! {
                note = notes.recv() => if let Err(broadcast::error::RecvError::Closed) = note { return },
                _ = tick.tick() => {}
                () = tx.closed() => return,
            }
            if let Some(on) = read_safe_mode(&shared).await {
                tx.send_if_modified(|v| std::mem::replace(v, on) != on);
            }
        }
    });
    rx
}

/// Safe mode as stored; `None` (the last value stands) if the store cannot be read.
async fn read_safe_mode(shared: &Arc<Shared>) -> Option<bool> {
    let shared = Arc::clone(shared);
    let read = tokio::task::spawn_blocking(move || shared.store.safe_mode()).await;
    match read {
        Ok(Ok(mode)) => Some(mode.enabled),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: cannot read safe mode; keeping the last status");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_hold_means_not_serving() {
        let h = |safe_mode, audit_failing| {
            Holds {
                safe_mode,
                audit_failing,
            }
            .status()
        };
        assert_eq!(h(false, false), ServingStatus::Serving);
        assert_eq!(h(true, false), ServingStatus::NotServing);
        assert_eq!(h(false, true), ServingStatus::NotServing);
        assert_eq!(h(true, true), ServingStatus::NotServing);
    }

    #[test]
    fn the_admin_service_is_reported_by_its_grpc_name() {
        assert_eq!(FOLLOWING[1], "plexichat.admin.v1.Admin");
    }
}
