//! Hostile test plugin: each command tries one sandbox escape with raw syscalls and replies
//! with the kernel's verdict as JSON; "twin" commands do the legitimate version of an action.

use std::ffi::{c_long, c_void, CStr, CString};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plexichat_e2e::HOSTILE_COMMANDS as COMMANDS;
use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};
use serde_json::{json, Value};

/// The fds open when `main` started, before the Tokio runtime opened its own.
static START_FDS: OnceLock<Vec<i32>> = OnceLock::new();

const TWINS: &[&str] = &[
    "data-write",
    "data-read",
    "thread",
    "alloc",
    "tmp-write",
    "data-hardlink",
    "ioctl-ok",
    "rlimit-lower",
];

fn main() -> Result<(), SdkError> {
    // Before anything (the runtime included) opens a descriptor.
    let _ = START_FDS.set(open_fds());
    run()
}

#[tokio::main(flavor = "current_thread")]
async fn run() -> Result<(), SdkError> {
    let mut plugin = Plugin::new();
    for &name in COMMANDS {
        plugin = plugin.on_command(name, move |_ctx: PluginContext, args: Vec<u8>| async move {
            Ok::<String, String>(dispatch(name, &args).to_string())
        });
    }
    plugin.run().await
}

fn open_fds() -> Vec<i32> {
    // SAFETY: F_GETFD only reads the descriptor flags.
    (0..4096)
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1)
        .collect()
}

/// Runs one command; a panic becomes a verdict too (never "blocked").
fn dispatch(name: &'static str, args: &[u8]) -> Value {
    let arg = String::from_utf8_lossy(args).trim().to_string();
    match std::panic::catch_unwind(AssertUnwindSafe(|| command(name, &arg))) {
        Ok(v) => v,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let detail = format!("the hostile plugin's handler panicked: {msg}");
            if TWINS.contains(&name) {
                json!({"twin": name, "ok": false, "detail": detail})
            } else {
                json!({"attack": name, "blocked": false, "detail": detail})
            }
        }
    }
}

fn command(name: &str, arg: &str) -> Value {
    match name {
        "read-file" => read_file(arg),
        "write-file" => write_file(arg),
        "dotdot" => dotdot(),
        "symlink-escape" => symlink_escape(arg),
        "proc-root" => proc_root(),
        "hardlink" => hardlink(arg),
        "socket" => socket(arg),
        "connect-unix" => connect_unix(arg),
        "exec" => exec(arg, false),
        "execveat" => exec(arg, true),
        "execveat-exec-fd" => exec_through_exec_fd(arg),
        "fork-bomb" => fork_bomb(),
        "balloon" => balloon(arg),
        "spin" => spin(arg),
        "ptrace" => ptrace(arg),
        "process-vm-read" => process_vm_read(arg),
        "kill-all" => kill("kill-all", -1),
        "kill-pid" => match arg.parse::<i32>() {
            Ok(pid) if pid > 0 => kill("kill-pid", pid),
            _ => bad_arg(name, arg, "a positive pid"),
        },
        "unshare-user" => unshare_user(),
        "clone-newuser" => clone_newuser(),
        "clone3" => clone3(),
        "io-uring" => io_uring(),
        "x32" => x32(),
        "keyctl" => keyctl(),
        "bpf" => bpf(),
        "perf-event" => perf_event(),
        "userfaultfd" => userfaultfd(),
        "mount" => mount(),
        "pivot-root" => pivot_root(),
        "chroot" => chroot(),
        "tiocsti" => tiocsti(),
        "rlimit-raise" => rlimit_raise(),
        "fds" => json!({"fds": START_FDS.get().cloned().unwrap_or_default()}),
        "status-threads" => status_threads(arg),
        "data-write" => data_write(),
        "data-read" => data_read(),
        "thread" => thread_twin(),
        "alloc" => alloc(arg),
        "tmp-write" => tmp_write(),
        "data-hardlink" => data_hardlink(),
        "ioctl-ok" => ioctl_ok(),
        "rlimit-lower" => rlimit_lower(),
        _ => json!({"attack": name, "blocked": false, "detail": "unknown command"}),
    }
}

// ---------------------------------------------------------------------------------------
// Kernel answers

/// An errno as the kernel returned it.
#[derive(Clone, Copy, Debug)]
struct Errno(i32);

impl Errno {
    /// Must be called right after the failing call, before anything else touches errno.
    fn last() -> Errno {
        Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }

    fn text(self) -> String {
        format!(
            "{}: {}",
            errno_name(self.0),
            std::io::Error::from_raw_os_error(self.0)
        )
    }
}

type Sys = Result<i64, Errno>;

/// A raw return value: -1 means failure with errno.
fn sys(ret: i64) -> Sys {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::ESOCKTNOSUPPORT => "ESOCKTNOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTCONN => "ENOTCONN",
        _ => "E?",
    }
}

/// One syscall (or one child process) of an attack, and what came of it.
struct Step {
    what: String,
    ok: bool,
    errno: Option<i32>,
    detail: String,
}

impl Step {
    fn sys(what: impl Into<String>, res: Sys) -> Step {
        match res {
            Ok(r) => Step {
                what: what.into(),
                ok: true,
                errno: None,
                detail: format!("succeeded (returned {r})"),
            },
            Err(e) => Step {
                what: what.into(),
                ok: false,
                errno: Some(e.0),
                detail: e.text(),
            },
        }
    }

    fn custom(what: impl Into<String>, ok: bool, errno: Option<i32>, detail: String) -> Step {
        Step {
            what: what.into(),
            ok,
            errno,
            detail,
        }
    }

    /// Replaces the success text (e.g. "read 812 bytes").
    fn on_ok(mut self, text: impl FnOnce() -> String) -> Step {
        if self.ok {
            self.detail = text();
        }
        self
    }

    fn json(&self) -> Value {
        json!({
            "step": self.what,
            "ok": self.ok,
            "errno": self.errno,
            "errno_name": self.errno.map(errno_name),
            "detail": self.detail,
        })
    }
}

fn joined(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| format!("{}: {}", s.what, s.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `{"attack", "blocked", "errno" (of the first failed step), "detail", "steps"}`.
fn verdict(attack: &str, blocked: bool, steps: &[Step]) -> Value {
    let errno = steps.iter().find_map(|s| s.errno);
    json!({
        "attack": attack,
        "blocked": blocked,
        "errno": errno,
        "errno_name": errno.map(errno_name),
        "detail": joined(steps),
        "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
    })
}

fn with(mut v: Value, extra: Value) -> Value {
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v
}

fn twin(name: &str, ok: bool, steps: &[Step]) -> Value {
    json!({
        "twin": name,
        "ok": ok,
        "detail": joined(steps),
        "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
    })
}

fn bad_arg(name: &str, arg: &str, wanted: &str) -> Value {
    let detail = format!("bad argument {arg:?}: expected {wanted}; nothing was attempted");
    if TWINS.contains(&name) {
        json!({"twin": name, "ok": false, "detail": detail})
    } else {
        json!({"attack": name, "blocked": false, "detail": detail})
    }
}

fn cstring(s: &str) -> Option<CString> {
    CString::new(s).ok()
}

fn data_dir() -> String {
    std::env::var("PLEXICHAT_DATA_DIR").unwrap_or_else(|_| "/data".into())
}

/// Whether the contract's confinement is visibly in place: pid 1 of its own pid
/// namespace and not root. Attacks that would hurt the host (kill everything, SIGSTOP the
/// supervisor, mount over /tmp...) run only then. (no_new_privs cannot be read from
/// inside: the allowlist denies prctl(PR_GET_NO_NEW_PRIVS); the test checks it from the
/// host.)
fn confinement() -> (bool, String) {
    // SAFETY: plain getters.
    let (pid, uid, euid) = unsafe { (libc::getpid(), libc::getuid(), libc::geteuid()) };
    let confined = pid == 1 && uid != 0 && euid != 0;
    (confined, format!("pid {pid}, uid {uid}, euid {euid}"))
}

fn refused_unconfined(attack: &str, who: &str) -> Value {
    json!({
        "attack": attack,
        "blocked": false,
        "skipped": true,
        "detail": format!(
            "not attempted: the plugin is not confined ({who}; expected pid 1 in its own \
             pid namespace and a non-root uid), so this attack would harm the host"
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Files

/// open(O_RDONLY) + read(4096); returns whether the open succeeded. File contents are
/// never reported, only their size.
fn open_and_read(label: &str, path: &CStr, steps: &mut Vec<Step>) -> (bool, bool) {
    // SAFETY: path is NUL-terminated.
    let fd = sys(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as i64);
    steps.push(Step::sys(format!("open({label}, O_RDONLY)"), fd));
    let Ok(fd) = fd else {
        return (false, false);
    };
    let mut buf = [0u8; 4096];
    // SAFETY: buf is writable for its length; fd is ours.
    let n = sys(unsafe { libc::read(fd as i32, buf.as_mut_ptr().cast(), buf.len()) } as i64);
    let read_ok = n.is_ok();
    steps.push(
        Step::sys(format!("read({label})"), n)
            .on_ok(|| format!("read {} bytes", n.unwrap_or_default())),
    );
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd as i32) };
    (true, read_ok)
}

/// open(O_WRONLY|O_CREAT|O_TRUNC) + write; returns whether both succeeded.
fn create_and_write(label: &str, path: &CStr, content: &[u8], steps: &mut Vec<Step>) -> bool {
    // SAFETY: path is NUL-terminated.
    let fd = sys(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    } as i64);
    steps.push(Step::sys(format!("open({label}, O_WRONLY|O_CREAT)"), fd));
    let Ok(fd) = fd else { return false };
    // SAFETY: content is readable for its length; fd is ours.
    let n = sys(unsafe { libc::write(fd as i32, content.as_ptr().cast(), content.len()) } as i64);
    let ok = matches!(n, Ok(w) if w == content.len() as i64);
    steps.push(Step::sys(format!("write({label})"), n));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd as i32) };
    ok
}

fn read_whole(path: &CStr) -> Result<Vec<u8>, Errno> {
    // SAFETY: path is NUL-terminated.
    let fd = sys(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) } as i64)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let res = loop {
        // SAFETY: buf is writable for its length.
        match sys(unsafe { libc::read(fd as i32, buf.as_mut_ptr().cast(), buf.len()) } as i64) {
            Ok(0) => break Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n as usize]),
            Err(e) => break Err(e),
        }
    };
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd as i32) };
    res
}

fn unlink(path: &CStr) -> Sys {
    // SAFETY: path is NUL-terminated.
    sys(unsafe { libc::unlink(path.as_ptr()) } as i64)
}

fn read_file(arg: &str) -> Value {
    let Some(path) = cstring(arg).filter(|_| !arg.is_empty()) else {
        return bad_arg("read-file", arg, "a path");
    };
    let mut steps = Vec::new();
    let (opened, _) = open_and_read(arg, &path, &mut steps);
    verdict("read-file", !opened, &steps)
}

fn write_file(arg: &str) -> Value {
    let Some(path) = cstring(arg).filter(|_| !arg.is_empty()) else {
        return bad_arg("write-file", arg, "a path");
    };
    let mut steps = Vec::new();
    let written = create_and_write(arg, &path, b"written by the hostile plugin\n", &mut steps);
    if written {
        // Leave nothing behind if the sandbox let it through.
        steps.push(Step::sys(format!("unlink({arg}) (cleanup)"), unlink(&path)));
    }
    verdict("write-file", !written, &steps)
}

fn dotdot() -> Value {
    // Enough `..` to reach `/` from any data directory depth, then two spellings.
    let up = "/..".repeat(16);
    let data = data_dir();
    let paths = [
        format!("{data}{up}/etc/passwd"),
        format!("{data}{up}//etc/shadow"),
        "/data/../../../etc/passwd".to_string(),
        "/data/../../..//etc/shadow".to_string(),
    ];
    let mut steps = Vec::new();
    let mut any_opened = false;
    for p in &paths {
        let c = cstring(p).expect("no NUL");
        any_opened |= open_and_read(p, &c, &mut steps).0;
    }
    verdict("dotdot", !any_opened, &steps)
}

fn symlink_escape(arg: &str) -> Value {
    let Some(target) = cstring(arg).filter(|_| !arg.is_empty()) else {
        return bad_arg("symlink-escape", arg, "a host path");
    };
    let link_s = format!("{}/link", data_dir());
    let link = cstring(&link_s).expect("no NUL");
    let _ = unlink(&link);
    let mut steps = Vec::new();
    // SAFETY: both are NUL-terminated.
    let made = sys(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) } as i64);
    steps.push(Step::sys(format!("symlink({link_s} -> {arg})"), made));
    let (_, read) = open_and_read(&link_s, &link, &mut steps);
    if made.is_ok() {
        steps.push(Step::sys(
            format!("unlink({link_s}) (cleanup)"),
            unlink(&link),
        ));
    }
    verdict("symlink-escape", !read, &steps)
}

fn proc_root() -> Value {
    let mut steps = Vec::new();
    let mut any = false;
    for p in ["/proc/self/root/etc/shadow", "/proc/1/root/etc/passwd"] {
        let c = cstring(p).expect("no NUL");
        any |= open_and_read(p, &c, &mut steps).0;
    }
    verdict("proc-root", !any, &steps)
}

fn first_regular_file(dir: &str) -> Option<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().next()
}

fn hardlink(arg: &str) -> Value {
    let source = if arg.is_empty() {
        match first_regular_file("/usr/lib") {
            Some(p) => p,
            None => {
                return json!({
                    "attack": "hardlink",
                    "blocked": false,
                    "detail": "inconclusive: no regular file found in /usr/lib to link to",
                })
            }
        }
    } else {
        arg.to_string()
    };
    let Some(src) = cstring(&source) else {
        return bad_arg("hardlink", arg, "a path");
    };
    let dst_s = format!("{}/hl", data_dir());
    let dst = cstring(&dst_s).expect("no NUL");
    let _ = unlink(&dst);
    // SAFETY: both are NUL-terminated.
    let res = sys(unsafe { libc::link(src.as_ptr(), dst.as_ptr()) } as i64);
    let mut steps = vec![Step::sys(format!("link({source}, {dst_s})"), res)];
    if res.is_ok() {
        steps.push(Step::sys(
            format!("unlink({dst_s}) (cleanup)"),
            unlink(&dst),
        ));
    }
    with(
        verdict("hardlink", res.is_err(), &steps),
        json!({"source": source}),
    )
}

// ---------------------------------------------------------------------------------------
// Network

fn socket(arg: &str) -> Value {
    let (domain, ty, proto, label) = match arg {
        "inet" => (libc::AF_INET, libc::SOCK_STREAM, 0, "AF_INET, SOCK_STREAM"),
        "inet6" => (
            libc::AF_INET6,
            libc::SOCK_STREAM,
            0,
            "AF_INET6, SOCK_STREAM",
        ),
        "netlink" => (
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE,
            "AF_NETLINK, SOCK_RAW, NETLINK_ROUTE",
        ),
        "packet" => (
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
            "AF_PACKET, SOCK_RAW, ETH_P_ALL",
        ),
        "unix" => (libc::AF_UNIX, libc::SOCK_STREAM, 0, "AF_UNIX, SOCK_STREAM"),
        _ => return bad_arg("socket", arg, "inet, inet6, netlink, packet or unix"),
    };
    // SAFETY: socket(2) with constant arguments.
    let fd = sys(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) } as i64);
    if let Ok(fd) = fd {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd as i32) };
    }
    let steps = [Step::sys(format!("socket({label})"), fd)];
    with(
        verdict("socket", fd.is_err(), &steps),
        json!({"family": arg}),
    )
}

fn connect_unix(arg: &str) -> Value {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if arg.is_empty() || arg.len() >= addr.sun_path.len() || arg.contains('\0') {
        return bad_arg("connect-unix", arg, "a socket path shorter than 108 bytes");
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(arg.bytes()) {
        *d = s as libc::c_char;
    }
    let mut steps = Vec::new();
    // SAFETY: socket(2) with constant arguments.
    let fd = sys(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) } as i64,
    );
    steps.push(Step::sys("socket(AF_UNIX, SOCK_STREAM)", fd));
    let Ok(fd) = fd else {
        return verdict("connect-unix", true, &steps);
    };
    // SAFETY: addr is a valid sockaddr_un of the given size.
    let res = sys(unsafe {
        libc::connect(
            fd as i32,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    } as i64);
    steps.push(Step::sys(format!("connect({arg})"), res));
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd as i32) };
    verdict("connect-unix", res.is_err(), &steps)
}

// ---------------------------------------------------------------------------------------
// Processes

/// `execve(path, [path], [])` (or `execveat(AT_FDCWD, ...)`): a return is a failure; on
/// success this process is gone and the invocation never gets a reply.
fn exec(arg: &str, at: bool) -> Value {
    let name = if at { "execveat" } else { "exec" };
    let Some(path) = cstring(arg).filter(|_| !arg.is_empty()) else {
        return bad_arg(name, arg, "a path");
    };
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated path and NULL-terminated argv/envp that outlive the call.
    let res = sys(unsafe {
        if at {
            libc::syscall(
                libc::SYS_execveat,
                libc::AT_FDCWD as c_long,
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                0 as c_long,
            )
        } else {
            libc::syscall(
                libc::SYS_execve,
                path.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        }
    });
    let what = if at {
        format!("execveat(AT_FDCWD, {arg}, [{arg}], [], 0)")
    } else {
        format!("execve({arg}, [{arg}], [])")
    };
    verdict(name, res.is_err(), &[Step::sys(what, res)])
}

/// The one exec shape the seccomp policy lets through (dirfd 256, AT_EMPTY_PATH),
/// with an absolute path so the dirfd is ignored: only Landlock stands in the way.
fn exec_through_exec_fd(arg: &str) -> Value {
    let name = "execveat-exec-fd";
    let Some(path) = cstring(arg).filter(|_| arg.starts_with('/')) else {
        return bad_arg(name, arg, "an absolute path");
    };
    let argv = [path.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated path and NULL-terminated argv/envp that outlive the call.
    let res = sys(unsafe {
        libc::syscall(
            libc::SYS_execveat,
            256 as c_long,
            path.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH as c_long,
        )
    });
    let what = format!("execveat(256, {arg}, [{arg}], [], AT_EMPTY_PATH)");
    verdict(name, res.is_err(), &[Step::sys(what, res)])
}

fn wait_child(pid: libc::pid_t) -> Result<libc::c_int, Errno> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == -1 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok(status);
    }
}

/// Runs one raw syscall in a forked child so a success cannot change this process; the
/// child exits 0 on success, else with the errno.
fn in_child(what: &str, f: impl FnOnce() -> c_long) -> Step {
    // SAFETY: the child only makes raw syscalls and _exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid == -1 {
        let e = Errno::last();
        return Step::custom(
            what,
            false,
            None,
            format!("inconclusive: fork for the probe failed: {}", e.text()),
        );
    }
    if pid == 0 {
        let r = f();
        // SAFETY: errno location is thread-local and valid.
        let code = if r == -1 {
            unsafe { *libc::__errno_location() }
        } else {
            0
        };
        // SAFETY: leaving the child without running any Rust/atexit code.
        unsafe { libc::_exit(code.clamp(0, 255)) };
    }
    match wait_child(pid) {
        Ok(status) if libc::WIFEXITED(status) => match libc::WEXITSTATUS(status) {
            0 => Step::custom(what, true, None, "succeeded (in a child process)".into()),
            e => Step::sys(what, Err(Errno(e))),
        },
        Ok(status) if libc::WIFSIGNALED(status) => Step::custom(
            what,
            false,
            None,
            format!(
                "the probing child was killed by signal {} (e.g. a seccomp kill action)",
                libc::WTERMSIG(status)
            ),
        ),
        Ok(status) => Step::custom(what, false, None, format!("odd wait status {status}")),
        Err(e) => Step::custom(
            what,
            false,
            None,
            format!("inconclusive: waitpid failed: {}", e.text()),
        ),
    }
}

fn fork_bomb() -> Value {
    let (confined, who) = confinement();
    if !confined {
        return refused_unconfined("fork-bomb", &who);
    }
    let mut forked: u64 = 0;
    let mut failure = None;
    while forked < 10_000 {
        // SAFETY: the child only sleeps until the cgroup is killed.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // sleep (clock_nanosleep) rather than pause: the allowlist has no `pause`,
            // and a denied pause would return at once and spin.
            loop {
                // SAFETY: async-signal-safe.
                unsafe { libc::sleep(3600) };
            }
        }
        if pid == -1 {
            failure = Some(Errno::last());
            break;
        }
        forked += 1;
    }
    let step = match failure {
        Some(e) => Step::sys(format!("fork() #{}", forked + 1), Err(e)),
        None => Step::custom("fork() x10000", true, None, "never failed".into()),
    };
    with(
        verdict("fork-bomb", forked < 1000, &[step]),
        json!({"forked": forked}),
    )
}

fn spin(arg: &str) -> Value {
    let mut it = arg.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(threads)), Some(Ok(secs))) = (it.next(), it.next()) else {
        return bad_arg("spin", arg, "`<threads> <seconds>`");
    };
    let mut started = 0u64;
    let mut errors = Vec::new();
    for _ in 0..threads {
        let end = Instant::now() + Duration::from_secs(secs);
        let res = std::thread::Builder::new().spawn(move || {
            let mut x = 0u64;
            while Instant::now() < end {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
        });
        match res {
            Ok(_) => started += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    json!({
        "attack": "spin",
        "started": started,
        "requested": threads,
        "seconds": secs,
        "detail": if errors.is_empty() { "all threads started".to_string() } else { errors.join("; ") },
    })
}

fn status_threads(arg: &str) -> Value {
    let Ok(n) = arg.parse::<u64>() else {
        return json!({"started": 0, "detail": format!("bad argument {arg:?}: expected a count")});
    };
    let mut started = 0u64;
    let mut errors = Vec::new();
    for _ in 0..n {
        match std::thread::Builder::new().spawn(|| std::thread::sleep(Duration::from_secs(30))) {
            Ok(_) => started += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    json!({"started": started, "detail": errors.join("; ")})
}

fn ptrace(arg: &str) -> Value {
    let Ok(pid) = arg.parse::<libc::pid_t>() else {
        return bad_arg("ptrace", arg, "a pid");
    };
    let mut steps = Vec::new();
    let (confined, who) = confinement();
    if confined {
        // SAFETY: PTRACE_ATTACH takes no pointers.
        let res = sys(unsafe {
            libc::ptrace(
                libc::PTRACE_ATTACH,
                pid,
                std::ptr::null_mut::<c_void>(),
                std::ptr::null_mut::<c_void>(),
            )
        });
        steps.push(Step::sys(format!("ptrace(PTRACE_ATTACH, {pid})"), res));
        if res.is_ok() {
            // Let it go again at once: wait for the attach stop, then detach.
            let _ = wait_child(pid);
            // SAFETY: as above.
            let det = sys(unsafe {
                libc::ptrace(
                    libc::PTRACE_DETACH,
                    pid,
                    std::ptr::null_mut::<c_void>(),
                    std::ptr::null_mut::<c_void>(),
                )
            });
            steps.push(Step::sys(format!("ptrace(PTRACE_DETACH, {pid})"), det));
        }
    } else {
        steps.push(Step::custom(
            format!("ptrace(PTRACE_ATTACH, {pid})"),
            true,
            None,
            format!(
                "not attempted (it would SIGSTOP the target): the plugin is not confined ({who})"
            ),
        ));
    }
    let attach_ok = steps[0].ok;
    // TRACEME in a child, so a success cannot leave this process traced.
    let traceme = in_child("ptrace(PTRACE_TRACEME)", || unsafe {
        libc::ptrace(
            libc::PTRACE_TRACEME,
            0,
            std::ptr::null_mut::<c_void>(),
            std::ptr::null_mut::<c_void>(),
        )
    });
    let traceme_ok = traceme.ok || traceme.detail.starts_with("inconclusive");
    steps.push(traceme);
    verdict("ptrace", !attach_ok && !traceme_ok, &steps)
}

static SELF_PROBE: [u8; 8] = *b"hostile!";

fn vm_read(pid: libc::pid_t, addr: usize) -> Sys {
    let mut local = [0u8; 8];
    let liov = libc::iovec {
        iov_base: local.as_mut_ptr().cast(),
        iov_len: local.len(),
    };
    let riov = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 8,
    };
    // SAFETY: both iovecs describe 8 bytes; the kernel checks the remote one.
    sys(unsafe {
        libc::syscall(
            libc::SYS_process_vm_readv,
            pid as c_long,
            &liov as *const libc::iovec,
            1 as c_long,
            &riov as *const libc::iovec,
            1 as c_long,
            0 as c_long,
        )
    })
}

fn process_vm_read(arg: &str) -> Value {
    let mut parts = arg.split_whitespace();
    let Some(Ok(pid)) = parts.next().map(str::parse::<libc::pid_t>) else {
        return bad_arg("process-vm-read", arg, "`<pid> [hex address]`");
    };
    let addr = match parts.next() {
        None => 0x40_0000,
        Some(a) => match usize::from_str_radix(a.trim_start_matches("0x"), 16) {
            Ok(a) => a,
            Err(_) => return bad_arg("process-vm-read", arg, "`<pid> [hex address]`"),
        },
    };
    let target = vm_read(pid, addr);
    // EFAULT means the kernel let us at the target and only the address was wrong.
    let blocked = matches!(target, Err(e) if e.0 != libc::EFAULT);
    let own = vm_read(
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() },
        SELF_PROBE.as_ptr() as usize,
    );
    let steps = [
        Step::sys(format!("process_vm_readv({pid}, {addr:#x}, 8)"), target),
        Step::sys(
            "process_vm_readv(self, own static, 8) (for comparison)",
            own,
        ),
    ];
    verdict("process-vm-read", blocked, &steps)
}

/// Probes with signal 0 (same permission checks, harmless), then sends SIGKILL when the
/// plugin is confined (only then is the real attack harmless to the host).
fn kill(name: &str, pid: libc::pid_t) -> Value {
    // SAFETY: kill(2) with signal 0 only checks.
    let probe = sys(unsafe { libc::kill(pid, 0) } as i64);
    let mut steps = vec![Step::sys(format!("kill({pid}, 0)"), probe)];
    let (confined, who) = confinement();
    let killed = if confined {
        // SAFETY: the attack itself; confined, it can reach nothing outside.
        let res = sys(unsafe { libc::kill(pid, libc::SIGKILL) } as i64);
        steps.push(Step::sys(format!("kill({pid}, SIGKILL)"), res));
        res.is_ok()
    } else {
        steps.push(Step::custom(
            format!("kill({pid}, SIGKILL)"),
            false,
            None,
            format!("not sent: the plugin is not confined ({who})"),
        ));
        false
    };
    with(
        verdict(name, probe.is_err() && !killed, &steps),
        json!({"confined": confined}),
    )
}

fn unshare_user() -> Value {
    let step = in_child("unshare(CLONE_NEWUSER)", || unsafe {
        libc::unshare(libc::CLONE_NEWUSER) as c_long
    });
    verdict("unshare-user", !step.ok, &[step])
}

/// A raw clone-like syscall; a child (return 0) exits at once and is reaped.
fn clone_like(ret: c_long) -> Sys {
    if ret == 0 {
        // SAFETY: we are the new child: leave without touching anything.
        unsafe { libc::_exit(0) };
    }
    let res = sys(ret);
    if let Ok(child) = res {
        let _ = wait_child(child as libc::pid_t);
    }
    res
}

fn clone_newuser() -> Value {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as c_long;
    // SAFETY: no CLONE_VM: the child runs on a copy of this stack and only _exits.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            0 as c_long,
            0 as c_long,
            0 as c_long,
            0 as c_long,
        )
    };
    let res = clone_like(ret);
    verdict(
        "clone-newuser",
        res.is_err(),
        &[Step::sys("clone(CLONE_NEWUSER|SIGCHLD)", res)],
    )
}

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

fn clone3() -> Value {
    let args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: fork-like clone3 (no CLONE_VM, no stack): the child only _exits.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>() as c_long,
        )
    };
    let res = clone_like(ret);
    verdict(
        "clone3",
        res.is_err(),
        &[Step::sys("clone3({flags: 0, exit_signal: SIGCHLD})", res)],
    )
}

fn close_if_fd(res: Sys) -> Sys {
    if let Ok(fd) = res {
        // SAFETY: closing the fd the kernel just gave us.
        unsafe { libc::close(fd as i32) };
    }
    res
}

fn io_uring() -> Value {
    // A zeroed struct io_uring_params (120 bytes).
    let mut params = [0u8; 120];
    // SAFETY: params is writable for its size.
    let res = close_if_fd(sys(unsafe {
        libc::syscall(libc::SYS_io_uring_setup, 8 as c_long, params.as_mut_ptr())
    }));
    verdict(
        "io-uring",
        res.is_err(),
        &[Step::sys("io_uring_setup(8, {0})", res)],
    )
}

fn x32() -> Value {
    const X32_SYSCALL_BIT: c_long = 0x4000_0000;
    // SAFETY: getpid through the x32 ABI takes no arguments.
    let res = sys(unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) });
    verdict(
        "x32",
        res.is_err(),
        &[Step::sys("syscall(0x40000000 | SYS_getpid)", res)],
    )
}

fn keyctl() -> Value {
    const KEYCTL_GET_KEYRING_ID: c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: c_long = -3;
    // SAFETY: no pointers.
    let res = sys(unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_GET_KEYRING_ID,
            KEY_SPEC_SESSION_KEYRING,
            0 as c_long,
        )
    });
    verdict(
        "keyctl",
        res.is_err(),
        &[Step::sys(
            "keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)",
            res,
        )],
    )
}

fn bpf() -> Value {
    const BPF_PROG_LOAD: c_long = 5;
    // A zeroed union bpf_attr (128 bytes).
    let attr = [0u64; 16];
    // SAFETY: attr is readable for its size.
    let res = close_if_fd(sys(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            attr.as_ptr(),
            std::mem::size_of_val(&attr) as c_long,
        )
    }));
    verdict(
        "bpf",
        res.is_err(),
        &[Step::sys("bpf(BPF_PROG_LOAD, {0}, 128)", res)],
    )
}

fn perf_event() -> Value {
    // struct perf_event_attr (PERF_ATTR_SIZE_VER8 = 136 bytes): a user-only software
    // clock on this process, the most permissive request there is.
    let mut attr = [0u8; 136];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes()); // type = PERF_TYPE_SOFTWARE
    attr[4..8].copy_from_slice(&136u32.to_ne_bytes()); // size
    attr[8..16].copy_from_slice(&0u64.to_ne_bytes()); // config = PERF_COUNT_SW_CPU_CLOCK
    let bits: u64 = 1 | (1 << 5) | (1 << 6); // disabled, exclude_kernel, exclude_hv
    attr[40..48].copy_from_slice(&bits.to_ne_bytes());
    // SAFETY: attr is a valid perf_event_attr of the declared size.
    let res = close_if_fd(sys(unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            0 as c_long,
            -1 as c_long,
            -1 as c_long,
            0 as c_long,
        )
    }));
    verdict(
        "perf-event",
        res.is_err(),
        &[Step::sys(
            "perf_event_open({SOFTWARE, CPU_CLOCK, user only}, self, any cpu)",
            res,
        )],
    )
}

fn userfaultfd() -> Value {
    const UFFD_USER_MODE_ONLY: c_long = 1;
    let mut steps = Vec::new();
    for (flags, label) in [
        (0 as c_long, "userfaultfd(0)"),
        (
            UFFD_USER_MODE_ONLY | libc::O_CLOEXEC as c_long,
            "userfaultfd(UFFD_USER_MODE_ONLY|O_CLOEXEC)",
        ),
    ] {
        // SAFETY: no pointers.
        let res = close_if_fd(sys(unsafe { libc::syscall(libc::SYS_userfaultfd, flags) }));
        steps.push(Step::sys(label, res));
    }
    let blocked = steps.iter().all(|s| !s.ok);
    verdict("userfaultfd", blocked, &steps)
}

fn mount() -> Value {
    let (confined, who) = confinement();
    if !confined {
        return refused_unconfined("mount", &who);
    }
    // SAFETY: constant NUL-terminated strings.
    let res = sys(unsafe {
        libc::mount(
            c"none".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        )
    } as i64);
    let mut steps = vec![Step::sys("mount(none, /tmp, tmpfs, 0, NULL)", res)];
    if res.is_ok() {
        // SAFETY: as above.
        let un = sys(unsafe { libc::umount2(c"/tmp".as_ptr(), libc::MNT_DETACH) } as i64);
        steps.push(Step::sys("umount2(/tmp, MNT_DETACH) (cleanup)", un));
    }
    verdict("mount", res.is_err(), &steps)
}

fn pivot_root() -> Value {
    let (confined, who) = confinement();
    if !confined {
        return refused_unconfined("pivot-root", &who);
    }
    // SAFETY: constant NUL-terminated strings.
    let res =
        sys(unsafe { libc::syscall(libc::SYS_pivot_root, c"/tmp".as_ptr(), c"/tmp".as_ptr()) });
    verdict(
        "pivot-root",
        res.is_err(),
        &[Step::sys("pivot_root(/tmp, /tmp)", res)],
    )
}

fn chroot() -> Value {
    // In a child: a success must not change this process's root.
    let step = in_child("chroot(/tmp)", || unsafe {
        libc::chroot(c"/tmp".as_ptr()) as c_long
    });
    verdict("chroot", !step.ok, &[step])
}

fn ioctl0(cmd: libc::Ioctl, arg: *mut c_void) -> Sys {
    // SAFETY: the caller passes the pointer the request expects.
    sys(unsafe { libc::syscall(libc::SYS_ioctl, 0 as c_long, cmd, arg) })
}

fn tiocsti() -> Value {
    let mut c: u8 = b'x';
    let mut subcode: u8 = 3; // TIOCL_PASTESEL
    let sti = libc::TIOCSTI;
    let steps = [
        Step::sys(
            "ioctl(0, TIOCSTI, 'x')",
            ioctl0(sti, (&mut c as *mut u8).cast()),
        ),
        Step::sys(
            "ioctl(0, TIOCSTI | 1<<32, 'x')",
            ioctl0(sti | (1 << 32), (&mut c as *mut u8).cast()),
        ),
        Step::sys(
            "ioctl(0, TIOCLINUX, TIOCL_PASTESEL)",
            ioctl0(libc::TIOCLINUX, (&mut subcode as *mut u8).cast()),
        ),
    ];
    // fd 0 is /dev/null: an unfiltered request reaches the driver and gets ENOTTY, so
    // only EPERM proves the filter stopped it.
    let blocked = steps.iter().all(|s| s.errno == Some(libc::EPERM));
    verdict("tiocsti", blocked, &steps)
}

fn ioctl_ok() -> Value {
    // SAFETY: zeroed termios is valid.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let res = ioctl0(libc::TCGETS, (&mut t as *mut libc::termios).cast());
    // ENOTTY (fd 0 is /dev/null) or success (a tty) both mean the driver answered.
    let ok = matches!(res, Ok(_) | Err(Errno(libc::ENOTTY)));
    twin("ioctl-ok", ok, &[Step::sys("ioctl(0, TCGETS)", res)])
}

fn get_nofile() -> Result<libc::rlimit, Errno> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl is writable.
    sys(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } as i64).map(|_| rl)
}

fn set_nofile(cur: libc::rlim_t, max: libc::rlim_t) -> Sys {
    let rl = libc::rlimit {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: rl is readable.
    sys(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } as i64)
}

fn rlimit_raise() -> Value {
    let orig = match get_nofile() {
        Ok(rl) => rl,
        Err(e) => {
            return verdict(
                "rlimit-raise",
                false,
                &[Step::sys("getrlimit(RLIMIT_NOFILE) (inconclusive)", Err(e))],
            )
        }
    };
    let want = orig.rlim_max.saturating_add(1);
    let res = set_nofile(want, want);
    let mut steps = vec![Step::sys(
        format!(
            "setrlimit(RLIMIT_NOFILE, {{cur: {want}, max: {want}}}) (hard was {})",
            orig.rlim_max
        ),
        res,
    )];
    if res.is_ok() {
        steps.push(Step::sys(
            "setrlimit back (cleanup)",
            set_nofile(orig.rlim_cur, orig.rlim_max),
        ));
    }
    verdict("rlimit-raise", res.is_err(), &steps)
}

fn rlimit_lower() -> Value {
    let orig = match get_nofile() {
        Ok(rl) => rl,
        Err(e) => return twin("rlimit-lower", false, &[Step::sys("getrlimit", Err(e))]),
    };
    let lower = orig.rlim_cur.saturating_sub(1);
    let res = set_nofile(lower, orig.rlim_max);
    let mut steps = vec![Step::sys(
        format!(
            "setrlimit(RLIMIT_NOFILE, {{cur: {lower}, max: {}}})",
            orig.rlim_max
        ),
        res,
    )];
    if res.is_ok() {
        steps.push(Step::sys(
            "setrlimit back",
            set_nofile(orig.rlim_cur, orig.rlim_max),
        ));
    }
    twin("rlimit-lower", res.is_ok(), &steps)
}

// ---------------------------------------------------------------------------------------
// Memory

/// mmaps and touches `mib` MiB, 1 MiB at a time; returns how many MiB were touched and
/// the failure, if any. Everything is unmapped again before returning.
fn touch_mib(mib: u64) -> (u64, Option<Errno>) {
    const MIB: usize = 1 << 20;
    let mut chunks = Vec::new();
    let mut failure = None;
    for _ in 0..mib {
        // SAFETY: a fresh private anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MIB,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            failure = Some(Errno::last());
            break;
        }
        for off in (0..MIB).step_by(4096) {
            // SAFETY: inside the mapping just made.
            unsafe { std::ptr::write_volatile((p as *mut u8).add(off), 0xa5) };
        }
        chunks.push(p);
    }
    let touched = chunks.len() as u64;
    for p in chunks {
        // SAFETY: unmapping our own mappings.
        unsafe { libc::munmap(p, MIB) };
    }
    (touched, failure)
}

fn balloon(arg: &str) -> Value {
    let Ok(mib) = arg.parse::<u64>() else {
        return bad_arg("balloon", arg, "a size in MiB");
    };
    let (touched, failure) = touch_mib(mib);
    let step = match failure {
        Some(e) => Step::sys(format!("mmap of MiB #{}", touched + 1), Err(e)),
        None => Step::custom(
            format!("allocate and touch {mib} MiB"),
            true,
            None,
            format!("allocated and touched all {mib} MiB without being stopped"),
        ),
    };
    with(
        verdict("balloon", failure.is_some(), &[step]),
        json!({"touched_mib": touched}),
    )
}

fn alloc(arg: &str) -> Value {
    let Ok(mib) = arg.parse::<u64>() else {
        return bad_arg("alloc", arg, "a size in MiB");
    };
    let (touched, failure) = touch_mib(mib);
    let step = match failure {
        Some(e) => Step::sys(format!("mmap of MiB #{}", touched + 1), Err(e)),
        None => Step::custom(
            format!("allocate and touch {mib} MiB"),
            true,
            None,
            format!("touched {touched} MiB"),
        ),
    };
    twin("alloc", failure.is_none(), &[step])
}

// ---------------------------------------------------------------------------------------
// Twins

fn write_and_read_back(label: &str, path_s: &str, steps: &mut Vec<Step>) -> bool {
    let path = cstring(path_s).expect("no NUL");
    // SAFETY: getpid has no preconditions.
    let content = format!("twin written by pid {}\n", unsafe { libc::getpid() });
    if !create_and_write(label, &path, content.as_bytes(), steps) {
        return false;
    }
    let back = read_whole(&path);
    let same = back.as_deref().ok() == Some(content.as_bytes());
    steps.push(Step::custom(
        format!("read back {label}"),
        same,
        back.as_ref().err().map(|e| e.0),
        match &back {
            Ok(b) if same => format!("{} bytes, identical", b.len()),
            Ok(b) => format!("content differs: {:?}", String::from_utf8_lossy(b)),
            Err(e) => e.text(),
        },
    ));
    same
}

fn data_write() -> Value {
    let p = format!("{}/twin.txt", data_dir());
    let mut steps = Vec::new();
    let ok = write_and_read_back(&p, &p, &mut steps);
    twin("data-write", ok, &steps)
}

fn data_read() -> Value {
    let p = format!("{}/twin.txt", data_dir());
    let c = cstring(&p).expect("no NUL");
    let res = read_whole(&c);
    let step = match &res {
        Ok(b) => Step::custom(
            format!("read {p}"),
            true,
            None,
            format!("{:?}", String::from_utf8_lossy(b)),
        ),
        Err(e) => Step::sys(format!("read {p}"), Err(*e)),
    };
    twin("data-read", res.is_ok(), &[step])
}

fn thread_twin() -> Value {
    let step = match std::thread::Builder::new().spawn(|| 42) {
        Ok(h) => match h.join() {
            Ok(42) => Step::custom("spawn + join", true, None, "the thread returned 42".into()),
            _ => Step::custom("spawn + join", false, None, "the thread panicked".into()),
        },
        Err(e) => Step::custom(
            "spawn",
            false,
            e.raw_os_error(),
            format!("thread spawn failed: {e}"),
        ),
    };
    let ok = step.ok;
    twin("thread", ok, &[step])
}

fn tmp_write() -> Value {
    let mut steps = Vec::new();
    let ok = write_and_read_back("/tmp/x", "/tmp/x", &mut steps);
    if ok {
        steps.push(Step::sys(
            "unlink(/tmp/x)",
            unlink(&cstring("/tmp/x").expect("no NUL")),
        ));
    }
    twin("tmp-write", ok, &steps)
}

fn data_hardlink() -> Value {
    let data = data_dir();
    let (a_s, b_s) = (format!("{data}/a"), format!("{data}/b"));
    let (a, b) = (
        cstring(&a_s).expect("no NUL"),
        cstring(&b_s).expect("no NUL"),
    );
    let _ = unlink(&b);
    let mut steps = Vec::new();
    let mut ok = create_and_write(&a_s, &a, b"linked\n", &mut steps);
    if ok {
        // SAFETY: both are NUL-terminated.
        let res = sys(unsafe { libc::link(a.as_ptr(), b.as_ptr()) } as i64);
        ok = res.is_ok();
        steps.push(Step::sys(format!("link({a_s}, {b_s})"), res));
        if ok {
            let back = read_whole(&b);
            ok = back.as_deref().ok() == Some(&b"linked\n"[..]);
            steps.push(Step::custom(
                format!("read {b_s}"),
                ok,
                back.as_ref().err().map(|e| e.0),
                "same content through the link".into(),
            ));
        }
    }
    let _ = unlink(&b);
    let _ = unlink(&a);
    twin("data-hardlink", ok, &steps)
}
