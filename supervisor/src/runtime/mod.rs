//! Plugin lifecycle at run time: one supervising task per enabled plugin that
//! launches it, waits for its handshake, health-checks it, restarts it with
//! exponential backoff and quarantines it after repeated crashes. Calls the
//! launcher, the broker and the store; owns the `Status` that `plugin show` reports.

pub mod commands;
pub mod expiry;
pub mod fd_budget;
mod instance;
mod output;
mod security;
mod trial;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::launcher::Launcher;
use crate::plugin_log::{LogWriter, OutputLimits, PluginLog};
use crate::store::{self, PluginState, StoreError};

pub use instance::InstanceEnd;
pub use trial::TrialError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Starting,
    Running,
    Backoff,
    Stopping,
    Stopped,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Backoff => "backoff",
            Phase::Stopping => "stopping",
            Phase::Stopped => "stopped",
        }
    }
}

/// What the supervisor knows about a plugin's process right now.
#[derive(Debug, Clone)]
pub struct Status {
    pub phase: Phase,
    pub pid: Option<i32>,
    pub restarts: u32,
    pub last_exit: String,
    /// What the trampoline reported it enforced for the running instance.
    pub enforcement: Option<crate::sandbox::Enforcement>,
    pub cgroup: Option<crate::sandbox::cgroup::PluginCgroup>,
    /// Modules the running (or last) process reported importing.
    pub imports: Option<std::sync::Arc<crate::broker::imports::ImportLog>>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            phase: Phase::Stopped,
            pid: None,
            restarts: 0,
            last_exit: String::new(),
            enforcement: None,
            cgroup: None,
            imports: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Run,
    /// Ask the plugin to shut down, kill it after the grace period.
    Graceful,
    /// Kill at once.
    Force,
}

struct Handle {
    stop: watch::Sender<StopMode>,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

pub struct Runtime {
    shared: Arc<Shared>,
    launcher: Launcher,
    plugins: Mutex<HashMap<String, Handle>>,
    fds: Arc<fd_budget::FdBudget>,
    /// Trials running now (`plexichat plugin trial`), ended by `stop_all`.
    trials: trial::Trials,
}

impl Runtime {
    /// Measures the fd budget too: call it before any plugin starts.
    pub fn new(shared: Arc<Shared>, launcher: Launcher) -> Arc<Runtime> {
        let fds = fd_budget::FdBudget::measure(
            shared.cfg.access.connections.max_total as u64,
            shared.cfg.sandbox.warm_trampolines as u64,
        );
        Arc::new(Runtime {
            shared,
            launcher,
            plugins: Mutex::new(HashMap::new()),
            fds,
            trials: trial::Trials::new(),
        })
    }

    pub fn fd_budget(&self) -> fd_budget::FdFigures {
        self.fds.figures()
    }

    /// Starts every plugin whose stored state is enabled, unless safe mode is on;
    /// returns the names started.
    pub fn boot(self: &Arc<Self>) -> Result<Vec<String>, StoreError> {
        let safe_mode = self.shared.store.safe_mode()?;
        if safe_mode.enabled {
            tracing::warn!(by = %safe_mode.by, "safe mode is on: no plugin starts");
            return Ok(Vec::new());
        }
        let enabled: Vec<String> = self
            .shared
            .store
            .plugins()?
            .into_iter()
            .filter(|p| p.state == PluginState::Enabled)
            .map(|p| p.name)
            .collect();
        for name in &enabled {
            self.start(name);
        }
        Ok(enabled)
    }

    /// Plugins with a supervising task (running, starting or backing off).
    pub fn active(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plugins
            .lock()
            .map(|p| {
                p.iter()
                    .filter(|(_, h)| !h.task.is_finished())
                    .map(|(n, _)| n.clone())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Kills the plugin at once and quarantines it (an alert rule's verdict).
    pub async fn quarantine_now(&self, name: &str, reason: &str) {
        self.stop(name, StopMode::Force).await;
        self.quarantine(name, reason);
    }

    /// Starts supervising `name` unless it already is.
    pub fn start(self: &Arc<Self>, name: &str) {
        let Ok(mut plugins) = self.plugins.lock() else {
            return;
        };
        if plugins.get(name).is_some_and(|h| !h.task.is_finished()) {
            return;
        }
        let (stop, stop_rx) = watch::channel(StopMode::Run);
        let status = Arc::new(Mutex::new(Status {
            phase: Phase::Starting,
            ..Status::default()
        }));
        // Error level: a span's level only decides when it exists, and this one must
        // at any `--log` level, so every line about the plugin carries its name.
        let span = tracing::error_span!("plugin", plugin = %name);
        let task = tokio::spawn(
            Arc::clone(self)
                .supervise(name.to_string(), stop_rx, Arc::clone(&status))
                .instrument(span),
        );
        plugins.insert(name.to_string(), Handle { stop, status, task });
    }

    /// Stops `name` and waits until its process is gone.
    pub async fn stop(&self, name: &str, mode: StopMode) {
        let handle = self.plugins.lock().ok().and_then(|mut p| p.remove(name));
        if let Some(h) = handle {
            let _ = h.stop.send(mode);
            let _ = h.task.await;
        }
    }

    pub async fn stop_all(&self, mode: StopMode) {
        let rt = &self.shared.cfg.runtime;
        self.trials.end_all(rt.stop_grace + REAP_TIMEOUT).await;
        let handles: Vec<Handle> = match self.plugins.lock() {
            Ok(mut p) => p.drain().map(|(_, h)| h).collect(),
            Err(_) => return,
        };
        for h in &handles {
            let _ = h.stop.send(mode);
        }
        for h in handles {
            let _ = h.task.await;
        }
    }

    pub fn status(&self, name: &str) -> Status {
        self.plugins
            .lock()
            .ok()
            .and_then(|p| {
                p.get(name)
                    .and_then(|h| h.status.lock().ok().map(|s| s.clone()))
            })
            .unwrap_or_default()
    }

    fn set_phase(status: &Mutex<Status>, phase: Phase) {
        if let Ok(mut s) = status.lock() {
            s.phase = phase;
            if phase != Phase::Running && phase != Phase::Starting {
                s.pid = None;
            }
        }
    }

    async fn supervise(
        self: Arc<Self>,
        name: String,
        mut stop: watch::Receiver<StopMode>,
        status: Arc<Mutex<Status>>,
    ) {
        let rt = &self.shared.cfg.runtime;
        // One log per supervising task: its rate and drop count span restarts.
        let (log, log_writer) = self.open_log(&name);
        let mut crashes: VecDeque<Instant> = VecDeque::new();
        let mut backoff = rt.restart_backoff_initial;
        loop {
            if *stop.borrow() != StopMode::Run {
                break;
            }
            if self.shared.store.safe_mode().is_ok_and(|m| m.enabled) {
                tracing::warn!("safe mode is on: not starting");
                break;
            }
            let row = match self.shared.store.plugin(&name) {
                Ok(Some(r)) if r.state == PluginState::Enabled => r,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read plugin from store");
                    break;
                }
            };
            // Never an EMFILE spiral: a plugin the fds cannot afford is not started
            // (nor retried) and the operator is told why.
            let lease = match self.fds.lease(&name) {
                Ok(lease) => lease,
                Err(shortage) => {
                    self.refuse_start(&name, &status, &shortage);
                    break;
                }
            };
            let started = Instant::now();
            let end =
                instance::run(&self.shared, &self.launcher, &row, &log, &mut stop, &status).await;
            drop(lease);
            match end {
                InstanceEnd::Stopped => break,
                InstanceEnd::Refused(reason) => {
                    if let Ok(mut s) = status.lock() {
                        s.last_exit = reason.clone();
                    }
                    self.quarantine(&name, &reason);
                    break;
                }
                InstanceEnd::Crashed(reason) => {
                    if let Ok(mut s) = status.lock() {
                        s.last_exit = reason.clone();
                    }
                    if started.elapsed() >= rt.quarantine_window {
                        // A long healthy run earns a fresh start.
                        crashes.clear();
                        backoff = rt.restart_backoff_initial;
                    }
                    let now = Instant::now();
                    crashes.push_back(now);
                    while crashes
                        .front()
                        .is_some_and(|t| now.duration_since(*t) > rt.quarantine_window)
                    {
                        crashes.pop_front();
                    }
                    self.record_crash(&name, &reason, crashes.len());
                    if crashes.len() >= rt.quarantine_after as usize {
                        self.quarantine(
                            &name,
                            &format!(
                                "crashed {} times within {}; last: {reason}",
                                crashes.len(),
                                humantime::format_duration(rt.quarantine_window)
                            ),
                        );
                        break;
                    }
                    Self::set_phase(&status, Phase::Backoff);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(rt.restart_backoff_max);
                    if let Ok(mut s) = status.lock() {
                        s.restarts += 1;
                    }
                }
            }
        }
        log_writer.close().await;
        Self::set_phase(&status, Phase::Stopped);
    }

    fn open_log(&self, name: &str) -> (Arc<PluginLog>, LogWriter) {
        let shared = Arc::clone(&self.shared);
        PluginLog::start(
            &self.shared.cfg.log_dir,
            name,
            OutputLimits::from(&self.shared.cfg.logs),
            Box::new(move |report| output::record_dropped(&shared, report)),
        )
    }

    fn refuse_start(&self, name: &str, status: &Mutex<Status>, shortage: &fd_budget::FdShortage) {
        let reason = shortage.to_string();
        tracing::error!(%reason, "plugin not started");
        if let Ok(mut s) = status.lock() {
            s.last_exit = reason.clone();
        }
        let entry = AuditEntry::new(&Actor::system(), "plugin.start_refused", Outcome::Failed)
            .plugin(name)
            .detail(serde_json::json!({
                "reason": reason,
                "fd_limit": shortage.limit,
                "fds_in_use": shortage.in_use,
                "fds_per_plugin": shortage.per_plugin,
                "fds_reserved": shortage.reserved,
            }));
        // Queued: kept and retried by the writer if the store cannot take it now.
        self.shared.audit.record(entry);
        self.shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::PluginStartRefused,
            name,
            &reason,
        );
    }

    fn record_crash(&self, name: &str, reason: &str, recent: usize) {
        tracing::warn!(
            action = "plugin.crash",
            outcome = "failed",
            reason,
            recent,
            "plugin crashed"
        );
        let entry = AuditEntry::new(&Actor::system(), "plugin.crash", Outcome::Failed)
            .plugin(name)
            .detail(serde_json::json!({ "reason": reason, "recent_crashes": recent }));
        self.shared.audit.record(entry);
        self.shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::PluginCrashed,
            name,
            reason,
        );
    }

    fn quarantine(&self, name: &str, reason: &str) {
        tracing::error!(
            action = "plugin.quarantine",
            outcome = "ok",
            reason,
            "plugin quarantined"
        );
        let result = self.shared.store.write(|tx| {
            let before = store::plugin_row(&tx.sql, name)?
                .map(|r| r.state.as_str())
                .unwrap_or("absent");
            store::set_state(&tx.sql, name, PluginState::Quarantined, reason)?;
            tx.audit(
                AuditEntry::new(&Actor::system(), "plugin.quarantine", Outcome::Ok)
                    .plugin(name)
                    .change(before, "quarantined")
                    .detail(serde_json::json!({ "reason": reason })),
            );
            Ok::<_, StoreError>(())
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record quarantine");
        }
        self.shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::PluginQuarantined,
            name,
            reason,
        );
    }
}

/// How long after the stop request the supervisor waits for a process that
/// ignores SIGKILL (it cannot, but a stuck reap must not hang `disable`).
pub const REAP_TIMEOUT: Duration = Duration::from_secs(10);
