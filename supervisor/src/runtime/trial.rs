//! One trial run of a plugin: launched through the same path as a real start (its
//! sandbox and uid, a cgroup of its own named `<name>.trial`) with a throwaway data
//! dir and the trial broker; fed events and invocations, stopped, measured.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker_proto::broker::v1::Event;
use tokio::sync::watch;

use super::instance::{self, Confinement, OrphanReaper, PrepareError};
use super::{output, Phase, Runtime};
use crate::broker::database::DbLimits;
use crate::broker::{self, Session};
use crate::launcher::PidFd;
use crate::manifest::Manifest;
use crate::plugin_log::{OutputLimits, PluginLog};
use crate::sandbox::cgroup::PluginCgroup;
use crate::store::PluginRow;
use crate::trial::broker::{DbFixture, TrialBroker};
use crate::trial::report::{Outcome, Peaks};
use crate::trial::{Recorder, TrialPlan};

/// How often the trial cgroup's usage is sampled (CPU rate, and peaks the kernel
/// does not keep).
const SAMPLE: Duration = Duration::from_millis(250);
const LOG_TAIL_LINES: usize = 40;
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// Why a trial could not start at all (a plugin that starts and crashes is a report).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// Policy or the host forbids running it now.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Lets [`Runtime::stop_all`] end the trials running now and wait for their cleanup.
pub(super) struct Trials {
    /// Bumped by each `end_all`: a trial started before it ends early.
    ends: watch::Sender<u64>,
    /// Held (read) by each trial while it runs.
    running: tokio::sync::RwLock<()>,
}

impl Trials {
    pub(super) fn new() -> Trials {
        Trials {
            ends: watch::channel(0).0,
            running: tokio::sync::RwLock::new(()),
        }
    }

    /// Ends every running trial (its plugin stopped, its record written, its
    /// directory removed) and waits for them, at most `wait`.
    pub(super) async fn end_all(&self, wait: Duration) {
        self.ends.send_modify(|generation| *generation += 1);
        if tokio::time::timeout(wait, self.running.write())
            .await
            .is_err()
        {
            tracing::warn!("a trial did not end within {wait:?}");
        }
    }
}

/// `state_dir/trials/<name>-<ms>`, root's, removed with everything in it when dropped.
/// The plugin sees only its `data/` subdirectory; the log and fixture beside it are
/// out of its reach.
struct TrialDir(PathBuf);

impl TrialDir {
    fn create(state_dir: &Path, plugin: &str) -> std::io::Result<TrialDir> {
        let base = state_dir.join("trials");
        std::fs::create_dir_all(&base)?;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))?;
        // Left by a supervisor that died mid-trial: the caller holds the plugin's
        // lock, so no other trial of it runs now.
        // `<plugin>-<digits>` exactly: `foo-bar-1` is plugin foo-bar's, not foo's.
        let prefix = format!("{plugin}-");
        for stale in std::fs::read_dir(&base)?.flatten() {
            let file = stale.file_name();
            let ms = file.to_string_lossy();
            let ours = ms
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()));
            if ours {
                let _ = std::fs::remove_dir_all(stale.path());
            }
        }
        let dir = base.join(format!("{plugin}-{}", crate::clock::now_ms()));
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(TrialDir(dir))
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }
}

impl Drop for TrialDir {
    fn drop(&mut self) {
        // remove_dir_all does not follow the symlinks a plugin may leave in data/.
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::error!(dir = %self.0.display(), error = %e, "could not remove a trial directory");
        }
    }
}

/// What the sampler saw of the trial cgroup.
#[derive(Debug, Default, Clone, Copy)]
struct Sampled {
    memory: u64,
    pids: u64,
    cpu_peak_millicores: u32,
}

/// What a trial launches, made before anything runs.
struct Prepared {
    dir: TrialDir,
    request: crate::launcher::LaunchRequest,
    confinement: Confinement,
    db: Option<Arc<DbFixture>>,
}

/// How the process part of a trial went.
#[derive(Default)]
struct Ran {
    exit: String,
    crashed: bool,
    confined: bool,
    invocations: Vec<(String, Result<String, String>)>,
    events_delivered: u32,
}

impl Runtime {
    /// The phase of `name`'s supervising task, if it has a live one.
    pub fn active_phase(&self, name: &str) -> Option<Phase> {
        let plugins = self.plugins.lock().ok()?;
        let h = plugins.get(name).filter(|h| !h.task.is_finished())?;
        h.status.lock().ok().map(|s| s.phase)
    }

    /// Runs `row` as a trial for `plan.duration` (the caller holds its lifecycle lock
    /// and has checked it is not running). Returns what it saw and whether the trial
    /// directory is gone.
    pub async fn trial(
        &self,
        row: &PluginRow,
        manifest: &Manifest,
        plan: TrialPlan,
    ) -> Result<(Outcome, bool), TrialError> {
        let _running = self.trials.running.read().await;
        let ends = self.trials.ends.subscribe();
        let _lease = self
            .fds
            .lease(&row.name)
            .map_err(|s| TrialError::Refused(s.to_string()))?;
        let prepared = self.prepare(row, manifest, &plan)?;
        let Prepared {
            dir,
            request,
            confinement,
            db,
        } = prepared;
        let (log, writer) = PluginLog::start(
            &dir.0.join("log"),
            &row.name,
            OutputLimits::from(&self.shared.cfg.logs),
            Box::new(|_| {}),
        );
        let recorder = Arc::new(Recorder::default());
        let sampled = Arc::new(Mutex::new(Sampled::default()));
        let sampler = confinement
            .cgroup
            .clone()
            .map(|cg| tokio::spawn(sample(cg, Arc::clone(&sampled))));
        let started = Instant::now();
        let broker = TrialBroker {
            session: broker::shared_session(
                manifest.name.clone(),
                row.version.clone(),
                manifest.declared.clone(),
            ),
            recorder: Arc::clone(&recorder),
            log: Arc::clone(&log),
            catalog: self.shared.catalog.clone(),
            db,
            http: plan.fixture_http.clone(),
        };
        let ran = self
            .run_process(request, &confinement, (plan, ends), &log, broker)
            .await;
        let ran_for = started.elapsed();
        if let Some(s) = sampler {
            s.abort();
        }
        let sampled = *sampled.lock().unwrap_or_else(|e| e.into_inner());
        let peaks = confinement
            .cgroup
            .as_ref()
            .map(|cg| {
                cg.kill();
                let peaks = peaks_of(cg, sampled);
                cg.remove();
                peaks
            })
            .unwrap_or_default();
        writer.close().await;
        let log_tail = tail(&dir.0.join("log/plugins").join(format!("{}.log", row.name)));
        let path = dir.0.clone();
        drop(dir);
        let outcome = Outcome {
            version: row.version.clone(),
            ran: ran_for,
            exit: ran.exit,
            crashed: ran.crashed,
            confined: ran.confined,
            peaks,
            recorded: recorder.snapshot(),
            invocations: ran.invocations,
            events_delivered: ran.events_delivered,
            log_tail,
        };
        Ok((outcome, !path.exists()))
    }

    /// The trial directory, the fixture copy and the launch request: a real start's,
    /// with the throwaway data dir and the `<name>.trial` cgroup.
    fn prepare(
        &self,
        row: &PluginRow,
        manifest: &Manifest,
        plan: &TrialPlan,
    ) -> Result<Prepared, TrialError> {
        let dir = TrialDir::create(&self.shared.cfg.state_dir, &row.name)
            .map_err(|e| TrialError::Failed(format!("creating the trial directory: {e}")))?;
        let db = match &plan.fixture_db {
            None => None,
            Some(bytes) => Some(Arc::new(self.fixture(&dir, bytes)?)),
        };
        let program = instance::plugin_program(row, manifest);
        let cgroup_name = format!("{}.trial", row.name);
        let request = instance::launch_request_in(
            &self.shared,
            row,
            manifest,
            program,
            &cgroup_name,
            dir.data(),
        )
        .map_err(|e| match e {
            PrepareError::Refused(why) => TrialError::Refused(why),
            PrepareError::Failed(why) => TrialError::Failed(why),
        })?;
        let confinement = Confinement {
            cgroup: request.cgroup.as_ref().map(|p| p.cgroup().clone()),
            requested_at: Instant::now(),
        };
        Ok(Prepared {
            dir,
            request,
            confinement,
            db,
        })
    }

    /// The admin's sample database, copied into the trial directory.
    fn fixture(&self, dir: &TrialDir, bytes: &[u8]) -> Result<DbFixture, TrialError> {
        let path = dir.0.join("fixture.db");
        std::fs::write(&path, bytes)
            .map_err(|e| TrialError::Failed(format!("writing the fixture database: {e}")))?;
        let limits = self.shared.live.with(|s| DbLimits {
            statement_time: s.broker.db_statement_time,
            max_rows: s.broker.db_max_rows,
            max_bytes: usize::try_from(s.broker.db_max_bytes).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(s.broker.db_max_value_bytes).unwrap_or(usize::MAX),
        });
        DbFixture::open(path, limits).map_err(TrialError::Failed)
    }

    /// Launches the plugin, serves the trial broker on its connection and drives it.
    async fn run_process(
        &self,
        request: crate::launcher::LaunchRequest,
        confinement: &Confinement,
        plan: (TrialPlan, watch::Receiver<u64>),
        log: &Arc<PluginLog>,
        broker: TrialBroker,
    ) -> Ran {
        let failed = |exit: String| Ran {
            exit,
            crashed: true,
            ..Ran::default()
        };
        let spawned = match self.launcher.spawn(request).await {
            Ok(s) => s,
            Err(f) => return failed(format!("launch failed at {f}")),
        };
        let process = match PidFd::new(spawned.pidfd, spawned.pid) {
            Ok(p) => p,
            Err(e) => return failed(format!("pidfd registration: {e}")),
        };
        let drains = output::drain(spawned.stdout, spawned.stderr, Arc::clone(log));
        let session = Arc::clone(&broker.session);
        let recorder = Arc::clone(&broker.recorder);
        let server = match instance::tokio_stream_conn(spawned.broker) {
            Ok(conn) => crate::trial::broker::serve(conn, broker),
            Err(e) => {
                instance::kill_and_reap(&process, confinement).await;
                return failed(format!("broker socket: {e}"));
            }
        };
        let ran = self
            .drive(
                &session,
                &process,
                spawned.control,
                confinement,
                plan,
                &recorder,
            )
            .await;
        session.close();
        server.abort();
        drains.finish().await;
        ran
    }

    /// From the launch reports to the stop: the seccomp denials go to the recorder
    /// (not the audit trail and alerts: a trial must not quarantine the plugin).
    async fn drive(
        &self,
        session: &Session,
        process: &PidFd,
        control: std::os::fd::OwnedFd,
        confinement: &Confinement,
        plan: (TrialPlan, watch::Receiver<u64>),
        recorder: &Arc<Recorder>,
    ) -> Ran {
        let rt = &self.shared.cfg.runtime;
        let launched = match instance::collect(control, rt.handshake_timeout).await {
            Ok(l) => l,
            Err(f) => {
                instance::kill_and_reap(process, confinement).await;
                return Ran {
                    exit: format!("launch failed at {f}"),
                    crashed: true,
                    ..Ran::default()
                };
            }
        };
        let _orphan = launched.plugin_pid.and_then(OrphanReaper::track);
        let denials = launched.seccomp_listener.map(|listener| {
            let recorder = Arc::clone(recorder);
            tokio::spawn(async move {
                let served = crate::sandbox::seccomp::serve_notifications(listener, move |d| {
                    recorder.syscall(&d.name)
                });
                if let Err(e) = served.await {
                    tracing::error!(error = %e, "trial seccomp listener failed");
                }
            })
        });
        let mut ran = self.drive_ready(session, process, confinement, plan).await;
        ran.confined = launched.enforcement.is_some();
        if let Some(t) = denials {
            t.abort();
        }
        ran
    }

    async fn drive_ready(
        &self,
        session: &Session,
        process: &PidFd,
        confinement: &Confinement,
        (plan, mut ends): (TrialPlan, watch::Receiver<u64>),
    ) -> Ran {
        let rt = &self.shared.cfg.runtime;
        let not_ready = tokio::select! {
            _ = session.wait_ready() => None,
            exit = process.wait() => Some(format!("{} before completing the handshake", instance::describe(exit))),
            _ = tokio::time::sleep(rt.handshake_timeout) => Some(format!("no handshake within {}; killed", humantime::format_duration(rt.handshake_timeout))),
        };
        if let Some(exit) = not_ready {
            instance::kill_and_reap(process, confinement).await;
            return Ran {
                exit,
                crashed: true,
                ..Ran::default()
            };
        }
        let until = tokio::time::Instant::now() + plan.duration;
        let results = Mutex::new(Vec::new());
        let delivered = std::sync::atomic::AtomicU32::new(0);
        let work = async {
            for (i, (topic, payload)) in plan.events.into_iter().enumerate() {
                let event = Event {
                    id: format!("trial-{i}"),
                    topic,
                    payload: payload.into(),
                    source: "trial".into(),
                    timestamp_ms: crate::clock::now_ms(),
                };
                if session.push_trial_event(event).is_ok() {
                    delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            for (command, args) in plan.invocations {
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                let result = if left.is_zero() {
                    Err("not invoked: the trial's time was up".to_string())
                } else {
                    session
                        .invoke(&command, args, left.min(rt.command_timeout))
                        .await
                        .map(|out| String::from_utf8_lossy(&out).into_owned())
                        .map_err(|e| format!("{e:?}"))
                };
                if let Ok(mut r) = results.lock() {
                    r.push((command, result));
                }
            }
            tokio::time::sleep_until(until).await;
        };
        let (exit, crashed) = tokio::select! {
            () = work => (self.stop_trial(session, process, confinement).await, false),
            exit = process.wait() => (instance::describe(exit), true),
            _ = ends.changed() => {
                let stop = self.stop_trial(session, process, confinement).await;
                (format!("ended early, the supervisor is stopping; {stop}"), false)
            }
        };
        Ran {
            exit,
            crashed,
            confined: false,
            invocations: results.into_inner().unwrap_or_else(|e| e.into_inner()),
            events_delivered: delivered.into_inner(),
        }
    }

    /// A Shutdown message, SIGKILL after the grace period, as a graceful disable.
    async fn stop_trial(
        &self,
        session: &Session,
        process: &PidFd,
        confinement: &Confinement,
    ) -> String {
        let grace = self.shared.cfg.runtime.stop_grace;
        if session.request_shutdown(grace, "the trial is over") {
            if let Ok(exit) = tokio::time::timeout(grace, process.wait()).await {
                confinement.kill();
                return format!("stopped after the trial: {}", instance::describe(exit));
            }
        }
        format!(
            "killed after the trial: {}",
            instance::kill_and_reap(process, confinement).await
        )
    }
}

/// Samples the cgroup until aborted: the highest memory and pids seen (for where the
/// kernel keeps no peak) and the highest CPU rate over one interval.
async fn sample(cg: PluginCgroup, into: Arc<Mutex<Sampled>>) {
    let mut tick = tokio::time::interval(SAMPLE);
    let mut last: Option<(u64, Instant)> = None;
    loop {
        tick.tick().await;
        let usage = cg.usage();
        let now = Instant::now();
        let rate = last.map_or(0, |(cpu, at)| {
            let wall = now.duration_since(at).as_micros().max(1) as u64;
            u32::try_from(usage.cpu_usec.saturating_sub(cpu) * 1000 / wall).unwrap_or(u32::MAX)
        });
        last = Some((usage.cpu_usec, now));
        if let Ok(mut s) = into.lock() {
            s.memory = s.memory.max(usage.memory_bytes);
            s.pids = s.pids.max(usage.pids);
            s.cpu_peak_millicores = s.cpu_peak_millicores.max(rate);
        }
    }
}

/// The kernel's peaks where it keeps them, else the sampled ones; says which.
fn peaks_of(cg: &PluginCgroup, sampled: Sampled) -> Peaks {
    let kernel = cg.peaks();
    let every = humantime::format_duration(SAMPLE);
    let (memory_bytes, memory_from) = match kernel.memory {
        Some((v, file)) => (v.max(sampled.memory), format!("{} {file}", cg.version())),
        None => (sampled.memory, format!("memory sampled every {every}")),
    };
    let (pids, pids_from) = match kernel.pids {
        Some((v, file)) => (v.max(sampled.pids), format!("{} {file}", cg.version())),
        None => (sampled.pids, format!("pids sampled every {every}")),
    };
    Peaks {
        cpu_usec: cg.usage().cpu_usec,
        cpu_peak_millicores: sampled.cpu_peak_millicores,
        memory_bytes,
        pids,
        source: format!("{memory_from}; {pids_from}"),
    }
}

/// The last lines of the trial's log file, control characters escaped.
fn tail(path: &Path) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A cut first line is partial.
    if start > 0 && !lines.is_empty() {
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[skip..]
        .iter()
        .map(|l| crate::plugin_log::escape_controls(l).into_owned())
        .collect()
}
