//! One run of a plugin process, from launch to exit: create its cgroup, launch it
//! confined, collect what the trampoline enforced, wait for the handshake within the
//! deadline, serve and health-check it, watch for denials, and stop it when asked.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{output, security, Phase, Runtime, Status, StopMode, REAP_TIMEOUT};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::broker::{self, BrokerService, Session};
use crate::context::Shared;
use crate::launcher::{
    self, BinaryPin, LaunchRequest, LaunchSpec, LaunchStage, Launched, Launcher, PidFd, Rlimits,
    TreeCheck,
};
use crate::manifest::{Manifest, PluginName};
use crate::plugin_log::PluginLog;
use crate::python_runtime;
use crate::sandbox::cgroup::PluginCgroup;
use crate::sandbox::host::{Flavor, HostError, SandboxHost};
use crate::store::PluginRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceEnd {
    /// Stopped on request.
    Stopped,
    /// Exited or was killed without being asked to: restart policy applies.
    Crashed(String),
    /// Must not be retried: the binary no longer matches its pin, or this host
    /// cannot confine the plugin as policy requires.
    Refused(String),
}

/// The process and what surrounds it, torn down together.
pub(super) struct Confinement {
    pub cgroup: Option<PluginCgroup>,
    /// When the launch was requested: spawn-to-ready is measured from here.
    pub requested_at: std::time::Instant,
}

impl Confinement {
    pub(super) fn kill(&self) {
        if let Some(cg) = &self.cgroup {
            cg.kill();
        }
    }
}

/// Why a launch could not be prepared.
pub(super) enum PrepareError {
    /// Policy forbids running it here (e.g. Landlock weaker than the minimum).
    Refused(String),
    Failed(String),
}

/// What a launch runs: `binary` (checked against `pin`) with `args`, the trees that
/// must still match their pins, and what kind of root it gets.
pub(super) struct Program<'a> {
    pub binary: PathBuf,
    pub pin: BinaryPin,
    pub args: Vec<String>,
    pub trees: Vec<TreeCheck>,
    pub flavor: Flavor<'a>,
}

impl Program<'_> {
    /// A host command run for a plugin (execute_commands): sealed as found.
    pub fn host_command(binary: PathBuf, args: Vec<String>) -> Program<'static> {
        Program {
            binary,
            pin: BinaryPin::Unpinned,
            args,
            trees: Vec::new(),
            flavor: Flavor::Native,
        }
    }
}

/// The plugin itself: its pinned binary, or for a Python plugin the pinned
/// interpreter running its entry, with its package and the SDK checked first.
pub(super) fn plugin_program<'a>(row: &'a PluginRow, manifest: &Manifest) -> Program<'a> {
    let package = Path::new(&row.install_dir);
    match &row.python {
        None => Program {
            binary: package.join(&manifest.entry),
            pin: BinaryPin::Sha256(row.sha256.clone()),
            args: Vec::new(),
            trees: Vec::new(),
            flavor: Flavor::Native,
        },
        Some(pin) => Program {
            binary: pin.interpreter.clone(),
            pin: BinaryPin::Sha256(pin.sha256.clone()),
            args: python_runtime::interpreter_args(&manifest.entry),
            trees: vec![
                TreeCheck {
                    what: "package".into(),
                    dir: package.to_path_buf(),
                    digest: row.sha256.clone(),
                },
                TreeCheck {
                    what: "SDK bundle".into(),
                    dir: pin.sdk_dir.clone(),
                    digest: pin.sdk_digest.clone(),
                },
            ],
            flavor: Flavor::Python { package, pin },
        },
    }
}

/// The launch request for something run as `row`'s plugin — the plugin itself or a
/// command run for it — with the plugin's data dir and, when confinement is on, its
/// uid, root, limits and a cgroup named `cgroup_name`. Both paths go through here so
/// they are confined alike.
pub(super) fn launch_request_for(
    shared: &Shared,
    row: &PluginRow,
    manifest: &Manifest,
    program: Program<'_>,
    cgroup_name: &str,
) -> Result<LaunchRequest, PrepareError> {
    let data_dir = shared.cfg.data_root().join(&row.name);
    launch_request_in(shared, row, manifest, program, cgroup_name, data_dir)
}

/// [`launch_request_for`] with another data dir: a trial's throwaway one.
pub(super) fn launch_request_in(
    shared: &Shared,
    row: &PluginRow,
    manifest: &Manifest,
    program: Program<'_>,
    cgroup_name: &str,
    data_dir: PathBuf,
) -> Result<LaunchRequest, PrepareError> {
    let mut spec = LaunchSpec {
        plugin: row.name.clone(),
        version: row.version.clone(),
        binary: program.binary,
        pin: program.pin,
        args: program.args,
        trees: program.trees,
        data_dir: data_dir.clone(),
        rlimits: Rlimits::default(),
        confine: None,
    };
    let Some(host) = &shared.sandbox else {
        return Ok(LaunchRequest { spec, cgroup: None });
    };
    host.landlock_ok().map_err(PrepareError::Refused)?;
    let uid = shared.cfg.sandbox.uid_base + row.uid_offset;
    let limits = SandboxHost::limits(&shared.cfg, manifest);
    spec.rlimits.nproc = u64::from(limits.pids);
    let confine = host
        .confine_spec(&shared.cfg, &row.name, uid, &data_dir, &program.flavor)
        .map_err(|e| match e {
            HostError::Refused(why) => PrepareError::Refused(why),
            other => PrepareError::Failed(format!("preparing confinement: {other}")),
        })?;
    spec.confine = Some(confine);
    Ok(LaunchRequest {
        spec,
        cgroup: Some(host.plan_cgroup(cgroup_name, limits)),
    })
}

fn launch_request(
    shared: &Shared,
    row: &PluginRow,
    manifest: &Manifest,
) -> Result<(LaunchRequest, Confinement), InstanceEnd> {
    let requested_at = std::time::Instant::now();
    let program = plugin_program(row, manifest);
    let request =
        launch_request_for(shared, row, manifest, program, &row.name).map_err(|e| match e {
            PrepareError::Refused(why) => InstanceEnd::Refused(why),
            PrepareError::Failed(why) => InstanceEnd::Crashed(why),
        })?;
    let cgroup = request.cgroup.as_ref().map(|p| p.cgroup().clone());
    Ok((
        request,
        Confinement {
            cgroup,
            requested_at,
        },
    ))
}

pub async fn run(
    shared: &Arc<Shared>,
    launcher: &Launcher,
    row: &PluginRow,
    log: &Arc<PluginLog>,
    stop: &mut watch::Receiver<StopMode>,
    status: &Arc<Mutex<Status>>,
) -> InstanceEnd {
    let manifest = match Manifest::parse(&row.manifest, &shared.catalog) {
        Ok(m) => m,
        Err(e) => return InstanceEnd::Refused(format!("stored manifest no longer valid: {e}")),
    };
    Runtime::set_phase(status, Phase::Starting);
    let (request, confinement) = match launch_request(shared, row, &manifest) {
        Ok(r) => r,
        Err(end) => return end,
    };
    let end = launch_and_supervise(
        shared,
        launcher,
        row,
        &manifest,
        request,
        &confinement,
        Arc::clone(log),
        stop,
        status,
    )
    .await;
    if let Some(cg) = &confinement.cgroup {
        cg.kill();
        cg.remove();
    }
    if let Ok(mut s) = status.lock() {
        s.cgroup = None;
    }
    end
}

#[allow(clippy::too_many_arguments)]
async fn launch_and_supervise(
    shared: &Arc<Shared>,
    launcher: &Launcher,
    row: &PluginRow,
    manifest: &Manifest,
    request: LaunchRequest,
    confinement: &Confinement,
    log: Arc<PluginLog>,
    stop: &mut watch::Receiver<StopMode>,
    status: &Arc<Mutex<Status>>,
) -> InstanceEnd {
    let spawned = match launcher.spawn(request).await {
        Ok(s) => s,
        Err(f) if f.stage == LaunchStage::Integrity => {
            return InstanceEnd::Refused(format!("integrity check failed: {}", f.message))
        }
        Err(f) => return InstanceEnd::Crashed(f.to_string()),
    };
    let pid = spawned.pid;
    let process = match PidFd::new(spawned.pidfd, pid) {
        Ok(p) => p,
        Err(e) => return InstanceEnd::Crashed(format!("pidfd registration: {e}")),
    };
    if let Ok(mut s) = status.lock() {
        s.pid = Some(pid);
        s.cgroup = confinement.cgroup.clone();
    }
    let drains = output::drain(spawned.stdout, spawned.stderr, Arc::clone(&log));
    let name = manifest.name.clone();
    let session =
        broker::shared_session(name.clone(), row.version.clone(), manifest.declared.clone());
    if let Ok(mut s) = status.lock() {
        s.imports = Some(Arc::clone(&session.imports));
    }
    let server = match tokio_stream_conn(spawned.broker) {
        Ok(conn) => broker::serve_connection(
            conn,
            BrokerService {
                data_writes: Default::default(),
                shared: Arc::clone(shared),
                launcher: launcher.clone(),
                session: Arc::clone(&session),
                log: Arc::clone(&log),
                limits: broker::RateLimiter::default(),
                costs: broker::Costs::new(
                    name.as_str(),
                    Arc::clone(&shared.live),
                    Arc::clone(&shared.counters),
                ),
            },
        ),
        Err(e) => {
            kill_and_reap(&process, confinement).await;
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
        confinement,
        stop,
        status,
    )
    .await;
    shared.hub.unregister(&session);
    session.close();
    server.abort();
    drains.finish().await;
    end
}

pub(super) fn tokio_stream_conn(
    s: std::os::unix::net::UnixStream,
) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Reads the trampoline's reports off the runtime; `Launched` once it exec'd.
pub(super) async fn collect(
    control: std::os::fd::OwnedFd,
    timeout: Duration,
) -> Result<Launched, launcher::LaunchFailure> {
    tokio::task::spawn_blocking(move || launcher::collect_launch(control, timeout))
        .await
        .unwrap_or_else(|e| {
            Err(launcher::LaunchFailure {
                stage: LaunchStage::Exec,
                message: format!("launch report reader failed: {e}"),
            })
        })
}

#[allow(clippy::too_many_arguments)]
async fn supervise_process(
    shared: &Arc<Shared>,
    name: &PluginName,
    session: &Session,
    process: &PidFd,
    control: std::os::fd::OwnedFd,
    confinement: &Confinement,
    stop: &mut watch::Receiver<StopMode>,
    status: &Mutex<Status>,
) -> InstanceEnd {
    let rt = &shared.cfg.runtime;
    let pid = process.pid();
    // The handshake deadline covers the exec too: a trampoline stuck before exec
    // is as dead as a plugin that never speaks.
    let deadline = tokio::time::sleep(rt.handshake_timeout);
    tokio::pin!(deadline);
    let launched = match collect(control, rt.handshake_timeout).await {
        Ok(l) => l,
        Err(f) => {
            kill_and_reap(process, confinement).await;
            return match f.stage {
                LaunchStage::Integrity => {
                    InstanceEnd::Refused(format!("binary integrity check failed: {}", f.message))
                }
                _ => InstanceEnd::Crashed(format!("launch failed at {f}")),
            };
        }
    };
    if let Ok(mut s) = status.lock() {
        s.enforcement = launched.enforcement.clone();
    }
    let _orphan = launched.plugin_pid.and_then(OrphanReaper::track);
    let _watchers = security::Watchers::start(
        Arc::clone(shared),
        name.as_str(),
        launched.seccomp_listener,
        confinement.cgroup.clone(),
    );
    let ready = tokio::select! {
        _ = session.wait_ready() => Ok(()),
        exit = process.wait() => Err(InstanceEnd::Crashed(format!("{} before completing the handshake", describe(exit)))),
        _ = &mut deadline => {
            audit(shared, name, "plugin.handshake_timeout", Outcome::Failed, serde_json::json!({ "pid": pid, "deadline_ms": rt.handshake_timeout.as_millis() as u64 }));
            kill_and_reap(process, confinement).await;
            Err(InstanceEnd::Crashed(format!("no handshake within {}; killed", humantime::format_duration(rt.handshake_timeout))))
        }
        _ = stop.changed() => {
            kill_and_reap(process, confinement).await;
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
        serde_json::json!({
            "pid": pid,
            "plugin_pid": launched.plugin_pid,
            "version": session.version,
            "confined": launched.enforcement.is_some(),
            "spawn_to_ready_us": confinement.requested_at.elapsed().as_micros() as u64,
        }),
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
                let exit = shut_down(session, process, confinement, mode, rt.stop_grace).await;
                audit(shared, name, "plugin.stop", Outcome::Ok, serde_json::json!({ "pid": pid, "mode": format!("{mode:?}").to_lowercase(), "exit": exit }));
                return InstanceEnd::Stopped;
            }
            _ = health.tick() => {
                if !session.ping(rt.health_timeout).await {
                    audit(shared, name, "plugin.health_failed", Outcome::Failed, serde_json::json!({ "pid": pid }));
                    kill_and_reap(process, confinement).await;
                    return InstanceEnd::Crashed(format!("health check: no pong within {}; killed", humantime::format_duration(rt.health_timeout)));
                }
            }
        }
    }
}

/// The plugin process (pid 1 of its namespace), tracked in case the trampoline
/// above it dies first: the supervisor is a child subreaper, so the plugin is then
/// reparented to it and must be reaped here, or it would linger as a zombie.
pub(super) struct OrphanReaper(Option<PidFd>);

impl OrphanReaper {
    pub(super) fn track(pid: i32) -> Option<OrphanReaper> {
        let fd = launcher::pidfd_open(pid).ok()?;
        PidFd::new(fd, pid).ok().map(|p| OrphanReaper(Some(p)))
    }
}

impl Drop for OrphanReaper {
    fn drop(&mut self) {
        let Some(plugin) = self.0.take() else { return };
        // By now the plugin has been killed; if it is our child, collect it. If the
        // trampoline already reaped it, wait() fails at once with ECHILD.
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REAP_TIMEOUT, plugin.wait()).await;
        });
    }
}

pub(super) fn describe(exit: std::io::Result<launcher::ExitStatus>) -> String {
    match exit {
        Ok(s) => s.to_string(),
        Err(e) => format!("lost track of the process: {e}"),
    }
}

/// Graceful: a Shutdown message, then SIGKILL after `grace`. Force: SIGKILL now.
async fn shut_down(
    session: &Session,
    process: &PidFd,
    confinement: &Confinement,
    mode: StopMode,
    grace: Duration,
) -> String {
    if mode == StopMode::Graceful && session.request_shutdown(grace, "disabled by the supervisor") {
        if let Ok(exit) = tokio::time::timeout(grace, process.wait()).await {
            confinement.kill();
            return describe(exit);
        }
    }
    kill_and_reap(process, confinement).await
}

/// Kills the whole cgroup (everything the plugin forked) and the tracked process.
pub(super) async fn kill_and_reap(process: &PidFd, confinement: &Confinement) -> String {
    confinement.kill();
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
    // Queued: kept and retried by the writer if the store cannot take it now.
    shared.audit.record(entry);
}
