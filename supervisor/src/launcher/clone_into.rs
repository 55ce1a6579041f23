//! Starting a trampoline with `clone3(CLONE_PIDFD)`, on cgroup v2 directly inside its
//! cgroup (`CLONE_INTO_CGROUP`: no migration afterwards); the pidfd comes from the
//! same call that made the process.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::{BROKER_FD, CONTROL_FD, LAUNCH_ARG};

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The fds the trampoline finds at 3 and 4.
pub struct ChildFds {
    pub broker: RawFd,
    pub control: RawFd,
}

pub struct Started {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh fds owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks and execs `exe` in launch mode with `args` after the launch argument,
/// inside the cgroup directory `cgroup` if given (v2). Everything the child needs is
/// prepared before the clone; between clone and exec it only calls dup2, execve and
/// _exit.
pub fn spawn(
    exe: &Path,
    args: &[String],
    fds: &ChildFds,
    cgroup: Option<&OwnedFd>,
) -> std::io::Result<Started> {
    let exe_c = CString::new(exe.as_os_str().as_bytes())?;
    let mut strings = vec![CString::new(LAUNCH_ARG)?];
    for a in args {
        strings.push(CString::new(a.as_bytes())?);
    }
    let argv: Vec<*const libc::c_char> = std::iter::once(exe_c.as_ptr())
        .chain(strings.iter().map(|s| s.as_ptr()))
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // Above 10 like the other sources, so no dup2 below overwrites a source that
    // a later dup2 still needs.
    let devnull = super::high_fd(OwnedFd::from(std::fs::File::open("/dev/null")?))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (out_w, err_w) = (super::high_fd(out_w)?, super::high_fd(err_w)?);
    let plan = [
        (devnull.as_raw_fd(), 0),
        (out_w.as_raw_fd(), 1),
        (err_w.as_raw_fd(), 2),
        (fds.broker, BROKER_FD),
        (fds.control, CONTROL_FD),
    ];
    let mut pidfd: RawFd = -1;
    let into = cgroup.map_or(0, |_| CLONE_INTO_CGROUP);
    let clone_args = CloneArgs {
        flags: libc::CLONE_PIDFD as u64 | into,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.map_or(0, |c| c.as_raw_fd() as u64),
        ..CloneArgs::default()
    };
    // The child runs only async-signal-safe calls on memory prepared above.
    let pid = clone3(&clone_args)?;
    if pid == 0 {
        // SAFETY: in the child of clone3: dup2 and execve are async-signal-safe;
        // every source fd is >= 10, so no dup2 clobbers a later source.
        unsafe {
            for (from, to) in plan {
                if libc::dup2(from, to) < 0 {
                    libc::_exit(126);
                }
            }
            libc::execve(exe_c.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    drop((out_w, err_w, devnull));
    Ok(Started {
        pid: pid as i32,
        // SAFETY: CLONE_PIDFD stored a fresh pidfd we own.
        pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
        stdout: out_r,
        stderr: err_r,
    })
}

/// For the single-threaded trampoline: forks like fork(2), the child created inside
/// the cgroup directory `cgroup` (v2). Returns 0 in the child, its pid in the parent.
pub fn fork_into(cgroup: &OwnedFd) -> std::io::Result<i32> {
    let clone_args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // Without a new stack clone3 behaves like fork: the caller is single-threaded,
    // so the child may go on with ordinary code.
    clone3(&clone_args)
}

/// clone3(2) without a new stack: 0 in the child, the child's pid in the parent.
fn clone3(args: &CloneArgs) -> std::io::Result<i32> {
    // SAFETY: clone3 with a fully initialised clone_args of the size we pass; any
    // pointer in it (the pidfd slot) points at memory that outlives the call.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid as i32)
}
