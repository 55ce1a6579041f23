//! The launch-mode entry point: a freshly exec'd, single-threaded copy of the
//! supervisor that reads its spec, confines itself and execs the plugin binary from
//! the very fd it hashed. Failures go back over the control socket, never a panic.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::{LaunchFailure, LaunchSpec, LaunchStage, BROKER_FD, CONTROL_FD};
use crate::install::sha256_reader;

const MAX_SPEC_BYTES: u64 = 1024 * 1024;

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

/// Runs the trampoline; only returns by exiting the process.
pub fn main() -> ! {
    let failure = match run() {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report(&failure);
    std::process::exit(127);
}

fn report(failure: &LaunchFailure) {
    use std::io::Write;
    // SAFETY: CONTROL_FD was placed by the launcher; we only write to it and exit.
    let mut control = unsafe { std::os::unix::net::UnixStream::from_raw_fd(CONTROL_FD) };
    if let Ok(json) = serde_json::to_vec(failure) {
        let _ = control.write_all(&json);
    }
    eprintln!("plexichat launch failed: {failure}");
}

fn run() -> Result<std::convert::Infallible, LaunchFailure> {
    let spec = read_spec()?;
    tie_to_supervisor(&spec)?;
    close_stray_fds()?;
    // SAFETY: setsid has no preconditions; it detaches from the supervisor's terminal.
    if unsafe { libc::setsid() } < 0 {
        return Err(os_fail(LaunchStage::Confine, "setsid"));
    }
    let binary = open_verified(&spec)?;
    apply_rlimits(&spec)?;
    exec(&spec, binary)
}

fn read_spec() -> Result<LaunchSpec, LaunchFailure> {
    // SAFETY: fcntl on a fixed fd number; F_SETFD only changes its flags. Setting
    // close-on-exec first means a successful exec shows up as EOF for the parent.
    if unsafe { libc::fcntl(CONTROL_FD, libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
        return Err(os_fail(LaunchStage::Spec, "control fd"));
    }
    // SAFETY: we borrow CONTROL_FD for reading without taking ownership (ManuallyDrop).
    let control = std::mem::ManuallyDrop::new(unsafe {
        std::os::unix::net::UnixStream::from_raw_fd(CONTROL_FD)
    });
    let mut buf = Vec::new();
    (&*control)
        .take(MAX_SPEC_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| fail(LaunchStage::Spec, e.to_string()))?;
    serde_json::from_slice(&buf).map_err(|e| fail(LaunchStage::Spec, e.to_string()))
}

/// Dies with the supervisor: SIGKILL when the launcher thread's process goes, and
/// an immediate exit if it already went before the request took effect.
fn tie_to_supervisor(spec: &LaunchSpec) -> Result<(), LaunchFailure> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with a valid signal number.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(os_fail(LaunchStage::Confine, "PR_SET_PDEATHSIG"));
    }
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != spec.supervisor_pid {
        return Err(fail(
            LaunchStage::Confine,
            "supervisor exited during launch",
        ));
    }
    Ok(())
}

/// Only 0-2, the broker socket (3) and the control socket (4, close-on-exec) may
/// cross into the plugin.
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

/// Opens the binary once, hashes that open file, and returns the same fd to exec,
/// so the file checked is the file run.
fn open_verified(spec: &LaunchSpec) -> Result<OwnedFd, LaunchFailure> {
    let file = std::fs::File::open(&spec.binary).map_err(|e| {
        fail(
            LaunchStage::Integrity,
            format!("cannot open {}: {e}", spec.binary.display()),
        )
    })?;
    let actual = sha256_reader(&file).map_err(|e| {
        fail(
            LaunchStage::Integrity,
            format!("cannot read {}: {e}", spec.binary.display()),
        )
    })?;
    if actual != spec.sha256 {
        return Err(fail(
            LaunchStage::Integrity,
            format!(
                "binary {} changed since install: sha256 {actual}, pinned {}",
                spec.binary.display(),
                spec.sha256
            ),
        ));
    }
    Ok(OwnedFd::from(file))
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
    Ok(())
}

fn cstring(stage: LaunchStage, s: &[u8]) -> Result<CString, LaunchFailure> {
    CString::new(s).map_err(|_| fail(stage, "string contains a NUL byte"))
}

fn exec(spec: &LaunchSpec, binary: OwnedFd) -> Result<std::convert::Infallible, LaunchFailure> {
    let argv0 = spec
        .binary
        .file_name()
        .map(|n| n.as_bytes().to_vec())
        .unwrap_or_else(|| spec.plugin.clone().into_bytes());
    let argv = [cstring(LaunchStage::Exec, &argv0)?];
    let env = [
        format!("PLEXICHAT_PLUGIN_NAME={}", spec.plugin),
        format!("PLEXICHAT_PLUGIN_VERSION={}", spec.version),
        format!("PLEXICHAT_BROKER_FD={BROKER_FD}"),
        format!("PLEXICHAT_DATA_DIR={}", spec.data_dir.display()),
    ]
    .iter()
    .map(|s| cstring(LaunchStage::Exec, s.as_bytes()))
    .collect::<Result<Vec<_>, _>>()?;
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let env_ptrs: Vec<*const libc::c_char> = env
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let empty = c"";
    // SAFETY: execveat with a valid fd, AT_EMPTY_PATH and NUL-terminated arrays of
    // valid C strings that outlive the call; it only returns on failure.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            binary.as_raw_fd(),
            empty.as_ptr(),
            argv_ptrs.as_ptr(),
            env_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Err(os_fail(LaunchStage::Exec, "execveat"))
}
