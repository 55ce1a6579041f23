//! Spawning plugin processes. A dedicated long-lived thread forks the supervisor's
//! own binary in launch mode (the trampoline, see `trampoline.rs`), which confines
//! itself and execs the pinned plugin binary from an fd. Nothing runs between fork
//! and exec but `dup2`, so the multi-threaded runtime is never forked mid-flight.

mod pidfd;
pub mod trampoline;

use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use pidfd::{pidfd_open, ExitStatus, PidFd};

/// The argument that puts the supervisor binary in trampoline mode.
pub const LAUNCH_ARG: &str = "__plexichat_launch";
/// fd numbers the trampoline finds: the broker socket and its control socket.
pub const BROKER_FD: RawFd = 3;
pub const CONTROL_FD: RawFd = 4;

/// Everything the trampoline needs, serialised to it over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub plugin: String,
    pub version: String,
    pub binary: PathBuf,
    pub sha256: String,
    pub data_dir: PathBuf,
    pub supervisor_pid: i32,
    pub rlimits: Rlimits,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rlimits {
    pub nofile: u64,
    pub fsize: u64,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits {
            nofile: 256,
            fsize: 1 << 30,
        }
    }
}

/// Why a launch did not reach exec, as reported by the trampoline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct LaunchFailure {
    pub stage: LaunchStage,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LaunchStage {
    /// Could not fork or set up the trampoline at all.
    Spawn,
    /// Reading the launch spec.
    Spec,
    /// The binary does not match its pinned SHA-256: never retried.
    Integrity,
    /// Applying confinement (credentials, rlimits, namespaces...).
    Confine,
    Exec,
}

impl std::fmt::Display for LaunchStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LaunchStage::Spawn => "spawn",
            LaunchStage::Spec => "launch spec",
            LaunchStage::Integrity => "binary integrity",
            LaunchStage::Confine => "confinement",
            LaunchStage::Exec => "exec",
        })
    }
}

/// A started trampoline: its pidfd, the supervisor's end of the broker socket,
/// the plugin's stdout/stderr pipes, and the control socket that reports the exec.
pub struct Spawned {
    pub pid: i32,
    /// Wrap with [`PidFd::new`] inside the runtime.
    pub pidfd: OwnedFd,
    pub broker: StdUnixStream,
    pub control: StdUnixStream,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

type Reply = oneshot::Sender<Result<Spawned, LaunchFailure>>;

/// Handle to the launcher thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Launcher {
    tx: mpsc::Sender<(LaunchSpec, Reply)>,
}

impl Launcher {
    /// Starts the launcher thread. It must live as long as the supervisor: plugins
    /// get PDEATHSIG from it, so no plugin outlives it.
    pub fn start(exe: PathBuf) -> std::io::Result<Launcher> {
        let (tx, rx) = mpsc::channel::<(LaunchSpec, Reply)>();
        std::thread::Builder::new()
            .name("plugin-launcher".into())
            .spawn(move || {
                for (spec, reply) in rx {
                    let _ = reply.send(spawn_one(&exe, &spec));
                }
            })?;
        Ok(Launcher { tx })
    }

    pub async fn spawn(&self, spec: LaunchSpec) -> Result<Spawned, LaunchFailure> {
        let (reply, rx) = oneshot::channel();
        let gone = || LaunchFailure {
            stage: LaunchStage::Spawn,
            message: "launcher thread is gone".into(),
        };
        self.tx.send((spec, reply)).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

fn spawn_failure(what: &str, e: impl std::fmt::Display) -> LaunchFailure {
    LaunchFailure {
        stage: LaunchStage::Spawn,
        message: format!("{what}: {e}"),
    }
}

/// Moves an fd to a number >= 10 (CLOEXEC), so that the dup2 onto 3 and 4 in the
/// child cannot clobber one with the other.
fn high_fd(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own, or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly duplicated, open fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn spawn_one(exe: &std::path::Path, spec: &LaunchSpec) -> Result<Spawned, LaunchFailure> {
    let (broker_parent, broker_child) =
        StdUnixStream::pair().map_err(|e| spawn_failure("broker socketpair", e))?;
    let (control_parent, control_child) =
        StdUnixStream::pair().map_err(|e| spawn_failure("control socketpair", e))?;
    let broker_child = high_fd(broker_child.into()).map_err(|e| spawn_failure("dup", e))?;
    let control_child = high_fd(control_child.into()).map_err(|e| spawn_failure("dup", e))?;
    let (b, c) = (broker_child.as_raw_fd(), control_child.as_raw_fd());

    let mut cmd = Command::new(exe);
    cmd.arg(LAUNCH_ARG)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec this only calls dup2, which is
    // async-signal-safe, on fds that stay open until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(b, BROKER_FD) < 0 || libc::dup2(c, CONTROL_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_failure("fork/exec trampoline", e))?;
    drop((broker_child, control_child));
    let pid = child.id() as i32;
    let pidfd = pidfd_open(pid).map_err(|e| spawn_failure("pidfd_open", e))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(spawn_failure("pipes", "stdout/stderr not captured"));
    };
    // The pidfd owns the process from here; std's Child is only a pid holder.
    drop(child);
    let mut control = control_parent;
    send_spec(&mut control, spec).map_err(|e| spawn_failure("sending launch spec", e))?;
    Ok(Spawned {
        pid,
        pidfd,
        broker: broker_parent,
        control,
        // SAFETY: into_raw_fd hands over sole ownership of the pipe fds.
        stdout: unsafe { OwnedFd::from_raw_fd(stdout.into_raw_fd()) },
        stderr: unsafe { OwnedFd::from_raw_fd(stderr.into_raw_fd()) },
    })
}

fn send_spec(control: &mut StdUnixStream, spec: &LaunchSpec) -> std::io::Result<()> {
    use std::io::Write;
    let json = serde_json::to_vec(spec)?;
    control.write_all(&json)?;
    control.shutdown(std::net::Shutdown::Write)
}

/// Waits for the trampoline's verdict: EOF means it exec'd the plugin (the
/// control socket is close-on-exec); anything else is its failure report.
pub async fn await_exec(control: StdUnixStream) -> Result<(), LaunchFailure> {
    use tokio::io::AsyncReadExt;
    let fail = |e: std::io::Error| spawn_failure("reading launch result", e);
    control.set_nonblocking(true).map_err(fail)?;
    let mut control = tokio::net::UnixStream::from_std(control).map_err(fail)?;
    let mut buf = Vec::new();
    (&mut control)
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .await
        .map_err(fail)?;
    if buf.is_empty() {
        return Ok(());
    }
    Err(
        serde_json::from_slice(&buf).unwrap_or_else(|_| LaunchFailure {
            stage: LaunchStage::Exec,
            message: String::from_utf8_lossy(&buf).into_owned(),
        }),
    )
}
