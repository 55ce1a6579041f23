//! One run of a plugin process, from launch to exit: launch, wait for the exec and
//! the handshake within the deadline, serve and health-check it, and stop it
//! (gracefully or not) when asked. Returns how the run ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{output, Phase, Runtime, Status, StopMode, REAP_TIMEOUT};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::broker::{self, BrokerService, Session};
use crate::context::Shared;
use crate::launcher::{self, LaunchSpec, LaunchStage, Launcher, PidFd, Rlimits};
use crate::manifest::PluginName;
use crate::plugin_log::PluginLog;
use crate::store::PluginRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceEnd {
    /// Stopped on request.
    Stopped,
    /// Exited or was killed without being asked to: restart policy applies.
    Crashed(String),
    /// The binary no longer matches its pin: never restarted.
    Integrity(String),
}

fn spec_for(shared: &Shared, row: &PluginRow, entry: &str) -> LaunchSpec {
    LaunchSpec {
        plugin: row.name.clone(),
        version: row.version.clone(),
        binary: std::path::Path::new(&row.install_dir).join(entry),
        sha256: row.sha256.clone(),
        data_dir: shared.cfg.data_root().join(&row.name),
        supervisor_pid: std::process::id() as i32,
        rlimits: Rlimits::default(),
    }
}

pub async fn run(
    shared: &Arc<Shared>,
    launcher: &Launcher,
    row: &PluginRow,
    stop: &mut watch::Receiver<StopMode>,
    status: &Arc<Mutex<Status>>,
) -> InstanceEnd {
    let manifest = match crate::manifest::Manifest::parse(&row.manifest, &shared.catalog) {
        Ok(m) => m,
        Err(e) => return InstanceEnd::Integrity(format!("stored manifest no longer valid: {e}")),
    };
    let entry = manifest.entry.display().to_string();
    let log = match PluginLog::open(&shared.cfg.log_dir, &row.name) {
        Ok(l) => Arc::new(l),
        Err(e) => return InstanceEnd::Crashed(format!("cannot open plugin log: {e}")),
    };
    Runtime::set_phase(status, Phase::Starting);
    let spawned = match launcher.spawn(spec_for(shared, row, &entry)).await {
        Ok(s) => s,
        Err(f) => return InstanceEnd::Crashed(f.to_string()),
    };
    let pid = spawned.pid;
    let process = match PidFd::new(spawned.pidfd, pid) {
        Ok(p) => p,
        Err(e) => return InstanceEnd::Crashed(format!("pidfd registration: {e}")),
    };
    if let Ok(mut s) = status.lock() {
        s.pid = Some(pid);
    }
    let drains = output::drain(spawned.stdout, spawned.stderr, Arc::clone(&log));
    let name = manifest.name.clone();
    let session = broker::shared_session(name.clone(), row.version.clone());
    let server = match tokio_stream_conn(spawned.broker) {
        Ok(conn) => broker::serve_connection(
            conn,
            BrokerService {
                shared: Arc::clone(shared),
                session: Arc::clone(&session),
                log: Arc::clone(&log),
            },
        ),
        Err(e) => {
            kill_and_reap(&process).await;
            return InstanceEnd::Crashed(format!("broker socket: {e}"));
        }
    };
    shared.hub.register(Arc::clone(&session));
    let end = supervise_process(
        shared,
        &name,
        &session,
        &process,
        spawned.control,
        stop,
        status,
    )
    .await;
    shared.hub.unregister(&session);
    server.abort();
    drains.finish().await;
    end
}

fn tokio_stream_conn(s: std::os::unix::net::UnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

async fn supervise_process(
    shared: &Shared,
    name: &PluginName,
    session: &Session,
    process: &PidFd,
    control: std::os::unix::net::UnixStream,
    stop: &mut watch::Receiver<StopMode>,
    status: &Mutex<Status>,
) -> InstanceEnd {
    let rt = &shared.cfg.runtime;
    let pid = process.pid();
    // The handshake deadline covers the exec too: a trampoline stuck before exec
    // is as dead as a plugin that never speaks.
    let deadline = tokio::time::sleep(rt.handshake_timeout);
    tokio::pin!(deadline);
    let launched = tokio::select! {
        r = launcher::await_exec(control) => r,
        _ = &mut deadline => Err(launcher::LaunchFailure { stage: LaunchStage::Exec, message: "trampoline did not exec in time".into() }),
    };
    if let Err(f) = launched {
        kill_and_reap(process).await;
        return match f.stage {
            LaunchStage::Integrity => InstanceEnd::Integrity(f.message),
            _ => InstanceEnd::Crashed(format!("launch failed at {f}")),
        };
    }
    let ready = tokio::select! {
        _ = session.wait_ready() => Ok(()),
        exit = process.wait() => Err(InstanceEnd::Crashed(format!("{} before completing the handshake", describe(exit)))),
        _ = &mut deadline => {
            audit(shared, name, "plugin.handshake_timeout", Outcome::Failed, serde_json::json!({ "pid": pid, "deadline_ms": rt.handshake_timeout.as_millis() as u64 }));
            kill_and_reap(process).await;
            Err(InstanceEnd::Crashed(format!("no handshake within {}; killed", humantime::format_duration(rt.handshake_timeout))))
        }
        _ = stop.changed() => {
            kill_and_reap(process).await;
            Err(InstanceEnd::Stopped)
        }
    };
    if let Err(end) = ready {
        return end;
    }
    Runtime::set_phase(status, Phase::Running);
    audit(
        shared,
        name,
        "plugin.start",
        Outcome::Ok,
        serde_json::json!({ "pid": pid, "version": session.version }),
    );
    tracing::info!(pid, "plugin running");
    let mut health = tokio::time::interval(rt.health_interval);
    health.tick().await;
    loop {
        tokio::select! {
            exit = process.wait() => {
                return InstanceEnd::Crashed(describe(exit));
            }
            changed = stop.changed() => {
                let mode = if changed.is_ok() { *stop.borrow() } else { StopMode::Force };
                Runtime::set_phase(status, Phase::Stopping);
                let exit = shut_down(session, process, mode, rt.stop_grace).await;
                audit(shared, name, "plugin.stop", Outcome::Ok, serde_json::json!({ "pid": pid, "mode": format!("{mode:?}").to_lowercase(), "exit": exit }));
                return InstanceEnd::Stopped;
            }
            _ = health.tick() => {
                if !session.ping(rt.health_timeout).await {
                    audit(shared, name, "plugin.health_failed", Outcome::Failed, serde_json::json!({ "pid": pid }));
                    kill_and_reap(process).await;
                    return InstanceEnd::Crashed(format!("health check: no pong within {}; killed", humantime::format_duration(rt.health_timeout)));
                }
            }
        }
    }
}

fn describe(exit: std::io::Result<launcher::ExitStatus>) -> String {
    match exit {
        Ok(s) => s.to_string(),
        Err(e) => format!("lost track of the process: {e}"),
    }
}

/// Graceful: a Shutdown message, then SIGKILL after `grace`. Force: SIGKILL now.
async fn shut_down(session: &Session, process: &PidFd, mode: StopMode, grace: Duration) -> String {
    if mode == StopMode::Graceful && session.request_shutdown(grace, "disabled by the supervisor") {
        if let Ok(exit) = tokio::time::timeout(grace, process.wait()).await {
            return describe(exit);
        }
    }
    kill_and_reap(process).await
}

async fn kill_and_reap(process: &PidFd) -> String {
    if let Err(e) = process.kill() {
        tracing::error!(pid = process.pid(), error = %e, "SIGKILL failed");
    }
    match tokio::time::timeout(REAP_TIMEOUT, process.wait()).await {
        Ok(exit) => describe(exit),
        Err(_) => "did not exit after SIGKILL".into(),
    }
}

fn audit(
    shared: &Shared,
    name: &PluginName,
    action: &str,
    outcome: Outcome,
    detail: serde_json::Value,
) {
    let entry = AuditEntry::new(&Actor::system(), action, outcome)
        .plugin(name.as_str())
        .detail(detail);
    if let Err(e) = shared.store.audit(vec![entry]) {
        tracing::error!(error = %e, "audit write failed");
    }
}
