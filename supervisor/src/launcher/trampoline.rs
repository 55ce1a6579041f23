//! The launch-mode entry point: a freshly exec'd, single-threaded copy of the
//! supervisor, usually started before any plugin asked for it (see `warm.rs`). It
//! waits to be placed in its cgroup, does the confinement no plugin choice affects,
//! then reads its spec and the sealed binary, confines itself further in the design's
//! order and execs the plugin binary from the very fd the supervisor hashed. Failures
//! go back over the control socket, never as a panic.
//!
//! Confined trampolines fork once after entering the new namespaces: the child is
//! pid 1 of the plugin's pid namespace, waits for the spec and becomes the plugin;
//! this process stays as its parent, reports the child's host pid and mirrors its
//! exit status.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{
    check_sealed, recv_datagram, send_control, ConfineSpec, ControlMsg, LaunchFailure, LaunchSpec,
    LaunchStage, BROKER_FD, CONTROL_FD, EXEC_FD, GO, MAX_CONTROL_BYTES,
};
use crate::sandbox::sys::LinuxSys;
use crate::sandbox::{credentials, landlock, namespaces, rootfs, seccomp, Enforcement};

fn fail(stage: LaunchStage, message: impl Into<String>) -> LaunchFailure {
    LaunchFailure {
        stage,
        message: message.into(),
    }
}

fn os_fail(stage: LaunchStage, what: &str) -> LaunchFailure {
    fail(
        stage,
        format!("{what}: {}", std::io::Error::last_os_error()),
    )
}

fn confine_err(e: impl std::fmt::Display) -> LaunchFailure {
    fail(LaunchStage::Confine, e.to_string())
}

/// Runs the trampoline; only returns by exiting the process.
pub fn main() -> ! {
    let failure = match run() {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = send_control(
        CONTROL_FD,
        &ControlMsg::Failed {
            failure: failure.clone(),
        },
        None,
    );
    eprintln!("plexichat launch failed: {failure}");
    std::process::exit(127);
}

/// How the trampoline confines: not at all, forking pid 1 ahead of the spec (its
/// own cgroup becomes the plugin's), or forking pid 1 into the plugin's cgroup sent
/// with the spec (cgroup v2, where its own cannot be renamed).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Confined,
    ConfinedLate,
}

/// `<exe> __plexichat_launch <plain|confined|confined-late> <supervisor pid>`.
fn mode() -> Result<(Mode, i32), LaunchFailure> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    let bad = || fail(LaunchStage::Spawn, format!("bad launch arguments {args:?}"));
    let mode = match args.first().map(String::as_str) {
        Some("plain") => Mode::Plain,
        Some("confined") => Mode::Confined,
        Some("confined-late") => Mode::ConfinedLate,
        _ => return Err(bad()),
    };
    let supervisor = args.get(1).and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    Ok((mode, supervisor))
}

fn run() -> Result<std::convert::Infallible, LaunchFailure> {
    let (mode, supervisor) = mode()?;
    tie_to_parent(Some(supervisor))?;
    wait_for_go()?;
    close_stray_fds()?;
    // SAFETY: setsid has no preconditions; it detaches from the supervisor's terminal.
    if unsafe { libc::setsid() } < 0 {
        return Err(os_fail(LaunchStage::Confine, "setsid"));
    }
    match mode {
        Mode::Confined => return confined_launch(),
        Mode::ConfinedLate => return late_confined_launch(),
        Mode::Plain => {}
    }
    let (spec, binary, _) = read_spec()?;
    if spec.confine.is_some() {
        // Never a silent downgrade: this trampoline entered no namespaces.
        return Err(fail(
            LaunchStage::Spec,
            "a confined spec for an unconfined launch",
        ));
    }
    apply_rlimits(&spec)?;
    let data = spec.data_dir.display().to_string();
    exec(&spec, &binary, &data)
}

/// Blocks until the supervisor has placed this process in its cgroup.
fn wait_for_go() -> Result<(), LaunchFailure> {
    // SAFETY: fcntl on a fixed fd number; F_SETFD only changes its flags. Setting
    // close-on-exec first means a successful exec shows up as EOF for the parent.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(os_fail(LaunchStage::Spawn, "control fd"));
    }
    let mut buf = [0u8; 16];
    match recv_datagram(CONTROL_FD, &mut buf) {
        Ok((n, _)) if &buf[..n] == GO => Ok(()),
        Ok((0, _)) => Err(fail(
            LaunchStage::Spawn,
            "the launcher closed the control socket",
        )),
        Ok(_) => Err(fail(LaunchStage::Spawn, "unexpected first message")),
        Err(e) => Err(fail(LaunchStage::Spawn, format!("waiting to start: {e}"))),
    }
}

/// The spec, the sealed plugin binary sent with it and, for a late fork, the
/// plugin's cgroup directory.
fn read_spec() -> Result<(LaunchSpec, OwnedFd, Option<OwnedFd>), LaunchFailure> {
    let mut buf = vec![0u8; MAX_CONTROL_BYTES];
    let (n, fds) = recv_datagram(CONTROL_FD, &mut buf)
        .map_err(|e| fail(LaunchStage::Spec, format!("reading the launch spec: {e}")))?;
    if n == 0 {
        return Err(fail(
            LaunchStage::Spec,
            "the launcher closed the control socket",
        ));
    }
    let spec =
        serde_json::from_slice(&buf[..n]).map_err(|e| fail(LaunchStage::Spec, e.to_string()))?;
    let mut fds = fds.into_iter();
    let binary = fds
        .next()
        .ok_or_else(|| fail(LaunchStage::Spec, "no plugin binary came with the spec"))?;
    Ok((spec, take_binary(binary)?, fds.next()))
}

/// The confinement a spec for a confined trampoline must carry.
fn confine_spec(spec: &LaunchSpec) -> Result<ConfineSpec, LaunchFailure> {
    spec.confine.clone().ok_or_else(|| {
        fail(
            LaunchStage::Spec,
            "an unconfined spec for a confined launch",
        )
    })
}

/// Dies with the parent (SIGKILL when it goes), and exits at once if it already
/// went before the request took effect.
fn tie_to_parent(expected_parent: Option<i32>) -> Result<(), LaunchFailure> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a valid signal number.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(os_fail(LaunchStage::Confine, "PR_SET_PDEATHSIG"));
    }
    // SAFETY: getppid cannot fail.
    if expected_parent.is_some_and(|p| unsafe { libc::getppid() } != p) {
        return Err(fail(
            LaunchStage::Confine,
            "supervisor exited during launch",
        ));
    }
    Ok(())
}

/// Only 0-2, the broker socket (3) and the control socket (4) are kept; the control
/// socket is close-on-exec, so the plugin gets 0-3.
fn close_stray_fds() -> Result<(), LaunchFailure> {
    // SAFETY: close_range on a range of fd numbers; closes whatever is open there.
    let r = unsafe { libc::syscall(libc::SYS_close_range, CONTROL_FD + 1, u32::MAX, 0) };
    if r < 0 {
        return Err(os_fail(LaunchStage::Confine, "close_range"));
    }
    // SAFETY: F_GETFD only reads the fd flags.
    if unsafe { libc::fcntl(BROKER_FD, libc::F_GETFD) } < 0 {
        return Err(os_fail(LaunchStage::Confine, "broker fd 3 is not open"));
    }
    Ok(())
}

/// The verified plugin binary: a sealed memfd the supervisor filled from the
/// plugin store while checking its SHA-256 pin. Sealed means it cannot have
/// changed since; it arrived close-on-exec, so it never leaks into the plugin.
fn take_binary(binary: OwnedFd) -> Result<OwnedFd, LaunchFailure> {
    check_sealed(binary.as_raw_fd()).map_err(|e| fail(LaunchStage::Integrity, e))?;
    Ok(binary)
}

/// Enters fresh namespaces and forks pid 1 of the new pid namespace, which waits
/// for the spec; this process becomes its monitor.
fn confined_launch() -> Result<std::convert::Infallible, LaunchFailure> {
    let sys = LinuxSys;
    namespaces::enter(&sys).map_err(|e| confine_err(format!("entering namespaces: {e}")))?;
    // SAFETY: this process is single-threaded (a fresh exec), so fork is safe; the
    // child continues with ordinary code until exec.
    match unsafe { libc::fork() } {
        -1 => Err(os_fail(LaunchStage::Confine, "fork into the pid namespace")),
        0 => {
            tie_to_parent(None)?;
            namespaces::loopback_up().map_err(|e| confine_err(format!("loopback: {e}")))?;
            let (spec, binary, _) = read_spec()?;
            let c = confine_spec(&spec)?;
            plugin_side(&spec, &c, binary)
        }
        child => monitor(child),
    }
}

/// Enters the namespaces but the cgroup one, waits for the spec, then forks pid 1
/// directly into the plugin's cgroup (`CLONE_INTO_CGROUP`), where it enters its
/// cgroup namespace; this process stays in its pool cgroup as pid 1's monitor.
fn late_confined_launch() -> Result<std::convert::Infallible, LaunchFailure> {
    let sys = LinuxSys;
    namespaces::enter_all_but_cgroup(&sys)
        .map_err(|e| confine_err(format!("entering namespaces: {e}")))?;
    // The network namespace is this process's already; pid 1 inherits loopback up.
    namespaces::loopback_up().map_err(|e| confine_err(format!("loopback: {e}")))?;
    let (spec, binary, cgroup) = read_spec()?;
    let c = confine_spec(&spec)?;
    let cgroup = cgroup.ok_or_else(|| {
        fail(
            LaunchStage::Spec,
            "no cgroup came with the spec to fork the plugin into",
        )
    })?;
    match super::clone_into::fork_into(&cgroup) {
        Err(e) => Err(confine_err(format!(
            "fork into the pid namespace and the plugin's cgroup: {e}"
        ))),
        Ok(0) => {
            drop(cgroup);
            tie_to_parent(None)?;
            namespaces::enter_cgroup(&sys)
                .map_err(|e| confine_err(format!("entering the cgroup namespace: {e}")))?;
            plugin_side(&spec, &c, binary)
        }
        Ok(child) => {
            drop((cgroup, binary));
            monitor(child)
        }
    }
}

/// The parent that stays outside the plugin's pid namespace: reports the plugin's
/// host pid, lets go of every fd, and mirrors the plugin's exit.
fn monitor(child: i32) -> ! {
    let _ = send_control(CONTROL_FD, &ControlMsg::Started { plugin_pid: child }, None);
    // SAFETY: closing every fd we hold; nothing below needs one.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(child, &mut status, 0) };
        if r == child {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(126) };
        }
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        // SAFETY: restoring the default action and re-raising the plugin's signal on
        // ourselves, so the supervisor sees the same death.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::kill(libc::getpid(), sig);
        }
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(128 + sig) };
    }
    // SAFETY: _exit never returns.
    unsafe { libc::_exit(libc::WEXITSTATUS(status)) }
}

/// pid 1 of the new pid namespace: builds the root, drops to the plugin's uid,
/// applies Landlock then seccomp, reports, and execs.
fn plugin_side(
    spec: &LaunchSpec,
    c: &ConfineSpec,
    binary: OwnedFd,
) -> Result<std::convert::Infallible, LaunchFailure> {
    let sys = LinuxSys;
    namespaces::set_up(&sys, &c.hostname).map_err(|e| confine_err(format!("namespaces: {e}")))?;
    rootfs::build(&sys, &c.root).map_err(|e| confine_err(format!("root filesystem: {e}")))?;
    // Moved above the fd limit before the limit is set: see EXEC_FD.
    let binary = move_fd(binary, EXEC_FD)?;
    apply_rlimits(spec)?;
    credentials::drop_to(&sys, c.uid, c.gid)
        .map_err(|e| confine_err(format!("credentials: {e}")))?;
    let read_only: Vec<PathBuf> = c
        .root
        .read_only
        .iter()
        .filter_map(|e| match e {
            rootfs::RoEntry::Bind(p) if p.is_dir() => Some(p.clone()),
            _ => None,
        })
        // A Python plugin's package and SDK: read, never executed (their mounts are
        // noexec, and Landlock grants no execute right on them either).
        .chain(c.root.binds.iter().map(|b| b.target.clone()))
        .collect();
    // The kernel opens the loader for exec on the plugin's behalf, so it needs the
    // execute right; nothing else under the library directories does.
    let loader = crate::sandbox::elf::interpreter(&binary)
        .map_err(|e| confine_err(format!("reading the plugin binary's ELF header: {e}")))?;
    let exec_files: Vec<PathBuf> = loader.into_iter().collect();
    let grants = landlock::Grants {
        read_only: &read_only,
        exec_files: &exec_files,
        read_write: &[rootfs::DATA_MOUNT, "/tmp"],
        devices: &["/dev/null", "/dev/zero", "/dev/urandom"],
    };
    let ll = landlock::restrict(c.landlock_abi, &grants).map_err(confine_err)?;
    if ll.status != "fully_enforced" {
        return Err(confine_err(format!(
            "Landlock ABI {} ruleset is only {}; refusing to run with weaker confinement",
            ll.abi, ll.status
        )));
    }
    let enforcement = Enforcement {
        namespaces: namespaces::NAMES.iter().map(|s| s.to_string()).collect(),
        uid: c.uid,
        gid: c.gid,
        rootfs: "tmpfs root via pivot_root, host root detached, no /proc".into(),
        capabilities: "none (bounding, ambient, permitted, effective all empty)".into(),
        no_new_privs: true,
        landlock: Some(ll),
        seccomp_policy: c.seccomp_policy.clone(),
        seccomp_syscalls: c.seccomp_syscalls,
        plugin_pid: 0,
    };
    let report = ControlMsg::Confined { enforcement };
    // Everything exec needs is built before the filter goes on.
    let prepared = prepare_exec(spec, rootfs::DATA_MOUNT)?;
    let listener = seccomp::install(&c.seccomp_main, &c.seccomp_clone3)
        .map_err(|e| confine_err(format!("seccomp: {e}")))?;
    send_control(CONTROL_FD, &report, Some(listener.as_raw_fd()))
        .map_err(|e| confine_err(format!("reporting enforcement: {e}")))?;
    drop(listener);
    prepared.exec(&binary)
}

/// Re-numbers `fd` to `to` (close-on-exec), closing the original.
fn move_fd(fd: OwnedFd, to: i32) -> Result<OwnedFd, LaunchFailure> {
    use std::os::fd::FromRawFd;
    if fd.as_raw_fd() == to {
        // Already there (dup3 refuses equal numbers); received fds are close-on-exec.
        return Ok(fd);
    }
    // SAFETY: dup3 onto a fixed number we do not otherwise use; O_CLOEXEC keeps it
    // from leaking into the plugin.
    let r = unsafe { libc::dup3(fd.as_raw_fd(), to, libc::O_CLOEXEC) };
    if r < 0 {
        return Err(os_fail(
            LaunchStage::Confine,
            "moving an fd to its fixed number",
        ));
    }
    drop(fd);
    // SAFETY: `to` is now an open fd that only this OwnedFd owns.
    Ok(unsafe { OwnedFd::from_raw_fd(to) })
}

fn apply_rlimits(spec: &LaunchSpec) -> Result<(), LaunchFailure> {
    let set = |resource, value: u64, name: &str| {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit with a valid resource id and a fully initialised rlimit.
        if unsafe { libc::setrlimit(resource, &lim) } < 0 {
            return Err(os_fail(LaunchStage::Confine, name));
        }
        Ok(())
    };
    set(libc::RLIMIT_CORE, 0, "RLIMIT_CORE")?;
    set(libc::RLIMIT_NOFILE, spec.rlimits.nofile, "RLIMIT_NOFILE")?;
    set(libc::RLIMIT_FSIZE, spec.rlimits.fsize, "RLIMIT_FSIZE")?;
    if spec.confine.is_some() {
        set(libc::RLIMIT_NPROC, spec.rlimits.nproc, "RLIMIT_NPROC")?;
    }
    Ok(())
}

fn cstring(s: &[u8]) -> Result<CString, LaunchFailure> {
    CString::new(s).map_err(|_| fail(LaunchStage::Exec, "string contains a NUL byte"))
}

/// argv and envp, ready for execveat without allocating.
struct PreparedExec {
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

fn prepare_exec(spec: &LaunchSpec, data_dir: &str) -> Result<PreparedExec, LaunchFailure> {
    let argv0 = spec
        .binary
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| spec.plugin.clone().into_bytes());
    let tmp = if spec.confine.is_some() {
        "/tmp"
    } else {
        data_dir
    };
    let env = [
        format!("PLEXICHAT_PLUGIN_NAME={}", spec.plugin),
        format!("PLEXICHAT_PLUGIN_VERSION={}", spec.version),
        format!("PLEXICHAT_BROKER_FD={BROKER_FD}"),
        format!("PLEXICHAT_DATA_DIR={data_dir}"),
        format!("HOME={data_dir}"),
        format!("TMPDIR={tmp}"),
    ];
    let mut strings = vec![cstring(&argv0)?];
    for a in &spec.args {
        strings.push(cstring(a.as_bytes())?);
    }
    for e in &env {
        strings.push(cstring(e.as_bytes())?);
    }
    let argc = 1 + spec.args.len();
    let argv = strings[..argc]
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp = strings[argc..]
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    Ok(PreparedExec {
        _strings: strings,
        argv,
        envp,
    })
}

impl PreparedExec {
    fn exec(&self, binary: &OwnedFd) -> Result<std::convert::Infallible, LaunchFailure> {
        let empty = c"";
        // SAFETY: execveat with a valid fd, AT_EMPTY_PATH and NUL-terminated arrays
        // of C strings owned by `self`; it only returns on failure.
        unsafe {
            libc::syscall(
                libc::SYS_execveat,
                binary.as_raw_fd(),
                empty.as_ptr(),
                self.argv.as_ptr(),
                self.envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        }
        Err(os_fail(LaunchStage::Exec, "execveat"))
    }
}

fn exec(
    spec: &LaunchSpec,
    binary: &OwnedFd,
    data_dir: &str,
) -> Result<std::convert::Infallible, LaunchFailure> {
    prepare_exec(spec, data_dir)?.exec(binary)
}
