//! Spawning plugin processes. Long-lived threads fork the supervisor's own binary in
//! launch mode (the trampoline, see `trampoline.rs`), mostly ahead of time (`warm.rs`);
//! a launch sends one its spec and the sealed plugin binary, and it confines itself
//! and execs the binary from that fd. Nothing runs between fork and exec but `dup2`,
//! so the multi-threaded runtime is never forked mid-flight.

mod clone_into;
mod pidfd;
mod sealed;
pub mod trampoline;
mod trees;
mod warm;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::sd_watchdog::{Heartbeat, Watched};
use warm::{Warm, WarmKind, WarmPool};

pub use pidfd::{pidfd_open, ExitStatus, PidFd};
pub use sealed::check_sealed;
pub use trees::TreeCheck;

/// The argument that puts the supervisor binary in trampoline mode; it is followed
/// by the mode (`confined` or `plain`) and the supervisor's pid.
pub const LAUNCH_ARG: &str = "__plexichat_launch";
/// fd numbers the trampoline finds: the broker socket and its control socket.
pub const BROKER_FD: RawFd = 3;
pub const CONTROL_FD: RawFd = 4;
/// The first datagram a trampoline receives: it is in its cgroup and may go on.
pub const GO: &[u8] = b"go";
/// The fd the confined plugin binary is exec'd from. It equals the plugin's
/// RLIMIT_NOFILE, so after that one exec the plugin can never create an fd with
/// this number again, and the seccomp policy allows `execveat` only on it: a
/// confined plugin can exec exactly once, itself.
pub const EXEC_FD: RawFd = 256;

/// Everything the trampoline needs, serialised to it over the control socket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub plugin: String,
    pub version: String,
    pub binary: PathBuf,
    pub pin: BinaryPin,
    /// Arguments after argv[0] (the binary's file name); empty for native plugins.
    #[serde(default)]
    pub args: Vec<String>,
    /// Trees that must still match their install-time digest (a Python plugin's
    /// package and SDK bundle): checked by the launcher before the trampoline gets
    /// anything, so a changed tree never starts.
    #[serde(default)]
    pub trees: Vec<TreeCheck>,
    pub data_dir: PathBuf,
    pub rlimits: Rlimits,
    /// `None` only when confinement is switched off (benchmarks).
    pub confine: Option<ConfineSpec>,
}

/// What the binary must be before it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryPin {
    /// A plugin: the SHA-256 taken at install; anything else never starts.
    Sha256(String),
    /// A host command run for `execute_commands`: sealed as found, so the file run is
    /// still the file that was read, but there is no install-time pin to compare.
    Unpinned,
}

/// The confinement the trampoline applies before exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfineSpec {
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub root: crate::sandbox::rootfs::RootPlan,
    /// Landlock ABI detected (and accepted) by the supervisor.
    pub landlock_abi: u8,
    pub seccomp_policy: String,
    pub seccomp_main: Vec<crate::sandbox::seccomp::BpfInsn>,
    pub seccomp_clone3: Vec<crate::sandbox::seccomp::BpfInsn>,
    pub seccomp_syscalls: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rlimits {
    pub nofile: u64,
    pub fsize: u64,
    /// Per-uid process cap; each plugin has its own uid, so this is per plugin.
    pub nproc: u64,
}

impl Default for Rlimits {
    fn default() -> Self {
        Rlimits {
            nofile: EXEC_FD as u64,
            fsize: 1 << 30,
            nproc: 4096,
        }
    }
}

/// Messages on the control socket (SOCK_SEQPACKET, one JSON document each).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ControlMsg {
    /// From the trampoline, which stays as the plugin's parent: the plugin's host pid.
    Started {
        plugin_pid: i32,
    },
    /// From the plugin just before exec, with the seccomp listener fd attached.
    Confined {
        enforcement: crate::sandbox::Enforcement,
    },
    Failed {
        failure: LaunchFailure,
    },
}

/// What the supervisor learns from a launch that reached exec.
#[derive(Debug, Default)]
pub struct Launched {
    pub plugin_pid: Option<i32>,
    pub enforcement: Option<crate::sandbox::Enforcement>,
    /// The seccomp user-notification listener for denied syscalls.
    pub seccomp_listener: Option<OwnedFd>,
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
    pub control: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// One launch: the spec, and the cgroup to make and place the process in before it runs.
pub struct LaunchRequest {
    pub spec: LaunchSpec,
    pub cgroup: Option<crate::sandbox::cgroup::PendingCgroup>,
}

type Reply = oneshot::Sender<Result<Spawned, LaunchFailure>>;

enum Job {
    Launch(Box<LaunchRequest>, Reply),
    /// The systemd watchdog asks the thread to show it goes round its loop.
    Probe,
}

/// Handle to the launcher thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Launcher {
    tx: mpsc::Sender<Job>,
    pool: WarmPool,
    beat: Heartbeat,
}

impl Launcher {
    /// Starts the launcher thread and the pool of `warm` ready trampolines. Both must live
    /// as long as the supervisor: trampolines get PDEATHSIG from the thread that
    /// started them, so no plugin outlives it.
    pub fn start(exe: PathBuf, warm: usize) -> std::io::Result<Launcher> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = WarmPool::start(exe.clone(), warm)?;
        let ready = pool.clone();
        let beat = Heartbeat::default();
        let beating = beat.clone();
        std::thread::Builder::new()
            .name("plugin-launcher".into())
            .spawn(move || {
                let mut verified = Verified::default();
                for job in rx {
                    beating.beat();
                    if let Job::Launch(req, reply) = job {
                        let _ = reply.send(spawn_one(&exe, &mut verified, &ready, &req));
                    }
                }
            })?;
        Ok(Launcher { tx, pool, beat })
    }

    /// The launcher thread as the systemd watchdog sees it: a probe is a message it
    /// answers between two launches, so a launch stuck in the kernel stops the pings.
    pub fn liveness(&self) -> Watched {
        let tx = self.tx.clone();
        Watched::new(
            "the launcher thread",
            self.beat.clone(),
            Box::new(move || {
                let _ = tx.send(Job::Probe);
            }),
        )
    }

    /// Kills the trampolines waiting for a launch (supervisor shutdown).
    pub fn shutdown(&self) {
        self.pool.shutdown();
    }

    pub async fn spawn(&self, req: LaunchRequest) -> Result<Spawned, LaunchFailure> {
        let (reply, rx) = oneshot::channel();
        let gone = || LaunchFailure {
            stage: LaunchStage::Spawn,
            message: "launcher thread is gone".into(),
        };
        self.tx
            .send(Job::Launch(Box::new(req), reply))
            .map_err(|_| gone())?;
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
pub(super) fn high_fd(fd: OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid fd returns a new fd we own, or -1.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` is a freshly duplicated, open fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// What the launcher thread has verified: sealed binaries and package trees.
#[derive(Default)]
struct Verified {
    binaries: sealed::SealedBinaries,
    trees: trees::VerifiedTrees,
}

fn spawn_one(
    exe: &std::path::Path,
    verified: &mut Verified,
    pool: &WarmPool,
    req: &LaunchRequest,
) -> Result<Spawned, LaunchFailure> {
    for tree in &req.spec.trees {
        verified.trees.verify(tree)?;
    }
    let binary = verified.binaries.get(&req.spec.binary, &req.spec.pin)?;
    let kind = WarmKind {
        confined: req.spec.confine.is_some(),
        cgroup_near: req.cgroup.as_ref().map(|p| p.cgroup().clone()),
    };
    // A ready trampoline may have died since (killed from outside): then one more,
    // started now.
    let mut ready = pool.take(&kind);
    loop {
        let (warm, was_ready) = match ready.take() {
            Some(w) => (w, true),
            None => {
                let place = match &req.cgroup {
                    None => warm::Place::Nowhere,
                    // v2: started inside the plugin's cgroup, with no migration.
                    Some(pending) if pending.cgroup().version() == "v2" => {
                        warm::Place::Plugin(pending)
                    }
                    Some(_) => warm::Place::Pool(pool.fresh_name()),
                };
                (warm::start(exe, &kind, place)?, false)
            }
        };
        let retired = warm.forks_late().then(|| warm.cgroup.clone()).flatten();
        let handed = hand_over(warm, req, binary);
        if let (Ok(_), Some(cg)) = (&handed, retired) {
            // The trampoline stays there as pid 1's parent; removed once it exits.
            pool.retire(cg);
        }
        match handed {
            Ok(spawned) => return Ok(spawned),
            Err(failure) if !was_ready => return Err(failure),
            Err(failure) => {
                tracing::warn!(error = %failure, "a ready trampoline could not take the launch; starting another");
            }
        }
    }
}

/// Gives `warm` the plugin's cgroup and the spec with the binary: a v1 trampoline's
/// own cgroup is renamed to the plugin's; a v2 one forks pid 1 into the plugin's
/// cgroup, made now.
fn hand_over(warm: Warm, req: &LaunchRequest, binary: &OwnedFd) -> Result<Spawned, LaunchFailure> {
    let cleanup = |warm: Warm| {
        if let Some(pending) = &req.cgroup {
            pending.cgroup().kill();
            pending.cgroup().remove();
        }
        warm.discard();
    };
    let confine_failure = |what: &str, e: &dyn std::fmt::Display| LaunchFailure {
        stage: LaunchStage::Confine,
        message: format!("{what}: {e}"),
    };
    let mut fork_into = None;
    if let (Some(pending), Some(own)) = (&req.cgroup, &warm.cgroup) {
        let placed = if warm.forks_late() {
            pending
                .make()
                .map_err(|e| confine_failure("creating cgroup", &e))
                .and_then(|()| {
                    pending.cgroup().v2_dir_fd().ok_or_else(|| {
                        confine_failure("opening the plugin's cgroup", &"cannot open it")
                    })
                })
                .map(|dir| fork_into = Some(dir))
        } else {
            pending
                .adopt(own)
                .map_err(|e| confine_failure("taking over the trampoline's cgroup", &e))
        };
        if let Err(failure) = placed {
            cleanup(warm);
            return Err(failure);
        }
    }
    if let Err(e) = send_spec(&warm.control, &req.spec, binary, fork_into.as_ref()) {
        cleanup(warm);
        return Err(spawn_failure("sending launch spec", e));
    }
    let Warm {
        started,
        broker,
        control,
        ..
    } = warm;
    Ok(Spawned {
        pid: started.pid,
        pidfd: started.pidfd,
        broker,
        control,
        stdout: started.stdout,
        stderr: started.stderr,
    })
}

/// Largest control message (the spec carries the compiled seccomp program).
pub const MAX_CONTROL_BYTES: usize = 4 << 20;

/// Sends the spec with the sealed binary and, for a trampoline that forks pid 1 only
/// now (cgroup v2), the plugin's cgroup directory to fork it into.
fn send_spec(
    control: &OwnedFd,
    spec: &LaunchSpec,
    binary: &OwnedFd,
    cgroup: Option<&OwnedFd>,
) -> std::io::Result<()> {
    let json = serde_json::to_vec(spec)?;
    if json.len() > MAX_CONTROL_BYTES {
        return Err(std::io::Error::other("launch spec too large"));
    }
    // Room for the whole spec in one datagram.
    let _ = nix::sys::socket::setsockopt(
        control,
        nix::sys::socket::sockopt::SndBufForce,
        &(json.len() * 2),
    );
    let mut fds = vec![binary.as_raw_fd()];
    fds.extend(cgroup.map(AsRawFd::as_raw_fd));
    send_datagram(control.as_raw_fd(), &json, &fds)
}

/// Sends one control message, optionally with an fd attached (SCM_RIGHTS).
pub fn send_control(fd: RawFd, msg: &ControlMsg, attach: Option<RawFd>) -> std::io::Result<()> {
    let fds: Vec<RawFd> = attach.into_iter().collect();
    send_datagram(fd, &serde_json::to_vec(msg)?, &fds)
}

pub(crate) fn send_datagram(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [std::io::IoSlice::new(bytes)];
    let cmsgs: Vec<ControlMessage<'_>> = if fds.is_empty() {
        Vec::new()
    } else {
        vec![ControlMessage::ScmRights(fds)]
    };
    sendmsg::<()>(fd, &iov, &cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one datagram into `buf` and the fds sent with it (close-on-exec).
pub(crate) fn recv_datagram(fd: RawFd, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg_space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        fd,
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: SCM_RIGHTS handed us these fds; nobody else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}

/// Reads the trampoline's reports until EOF, which means the plugin exec'd (the
/// control socket is close-on-exec in the plugin and closed by the trampoline).
/// Blocking: run it off the async runtime. `timeout` bounds each wait.
pub fn collect_launch(control: OwnedFd, timeout: Duration) -> Result<Launched, LaunchFailure> {
    use nix::sys::socket::{setsockopt, sockopt};
    let fail = |e: &dyn std::fmt::Display| LaunchFailure {
        stage: LaunchStage::Exec,
        message: format!("reading launch reports: {e}"),
    };
    let tv = nix::sys::time::TimeVal::new(
        timeout.as_secs() as libc::time_t,
        timeout.subsec_micros() as libc::suseconds_t,
    );
    setsockopt(&control, sockopt::ReceiveTimeout, &tv).map_err(|e| fail(&e))?;
    let mut launched = Launched::default();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (n, fds) = recv_datagram(control.as_raw_fd(), &mut buf).map_err(|e| {
            if e == nix::errno::Errno::EAGAIN {
                fail(&"the trampoline did not exec in time")
            } else {
                fail(&e)
            }
        })?;
        if n == 0 {
            return Ok(launched);
        }
        let parsed: ControlMsg = serde_json::from_slice(&buf[..n]).map_err(|e| fail(&e))?;
        match parsed {
            ControlMsg::Started { plugin_pid } => {
                // A trampoline forking at launch may report after pid 1 did.
                launched.plugin_pid = Some(plugin_pid);
                if let Some(e) = launched.enforcement.as_mut() {
                    e.plugin_pid = plugin_pid;
                }
            }
            ControlMsg::Confined { mut enforcement } => {
                enforcement.plugin_pid = launched.plugin_pid.unwrap_or(0);
                launched.enforcement = Some(enforcement);
                launched.seccomp_listener = fds.into_iter().next();
            }
            ControlMsg::Failed { failure } => return Err(failure),
        }
    }
}
