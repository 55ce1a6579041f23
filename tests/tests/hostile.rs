//! End to end: a hostile plugin attacks its sandbox from inside, one escape per command.
//! Every attack must be stopped by the kernel (with the errno the design promises where it
//! promises one), denials must reach the audit trail, the legitimate twin of an action must
//! still work, and a well-behaved bystander plugin and the supervisor must not notice.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::attack::*;
use common::*;
use serde_json::Value;

/// The hostile plugin: no permissions, small resource limits.
const HOSTILE_MANIFEST: &str = r#"name = "hostile"
version = "1.0.0"
description = "Attacks its own sandbox"
entry = "hostile"

[resources]
cpu = 0.2
memory = "48MiB"
pids = 16
"#;

const ECHO_MANIFEST: &str = "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n";

/// Syscalls the seccomp filter must deny (and audit) when the quick attacks run.
const DENIED_SYSCALLS: &[&str] = &[
    "socket",
    "ptrace",
    "process_vm_readv",
    "unshare",
    "io_uring_setup",
    "keyctl",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "mount",
    "pivot_root",
    "chroot",
];

// ---------------------------------------------------------------------------------------
// Helpers

fn install_enabled(d: &Daemon, name: &str, manifest: &str, binary: &Path) {
    let pkg = d.package(name, manifest, binary, name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", name]).ok();
}

/// Gives the daemon a plugin uid range of its own, then restarts it. Plugin uids are
/// host-wide state (RLIMIT_NPROC counts all of a uid's tasks on the host), so parallel
/// daemons sharing the default `uid_base` let one test's fork bomb starve another test's
/// plugins. (A candidate for the shared harness, next to its per-daemon cgroup name.)
/// A supervisor with the hostile plugin and the `echo` bystander running.
fn start() -> Daemon {
    let d = Daemon::start_with(Settings {
        // Some attacks kill the plugin on purpose: restart it quickly, never quarantine.
        backoff_max: "1s",
        quarantine_after: 1000,
        ..Settings::default()
    });
    install_enabled(&d, "hostile", HOSTILE_MANIFEST, &bin("hostile"));
    install_enabled(&d, "echo", ECHO_MANIFEST, &bin("echo_plugin"));
    d.wait_running("hostile");
    d.wait_running("echo");
    d
}

fn attack(d: &Daemon, command: &str, arg: &str) -> Value {
    try_attack(d, "hostile", command, arg).unwrap_or_else(|e| panic!("{e}"))
}

fn has_action(d: &Daemon, prefix: &str) -> bool {
    d.audit_actions(Some("hostile"))
        .iter()
        .any(|(a, _)| a.starts_with(prefix))
}

/// The plugin process's host pid. `plugin_pid` is the launcher trampoline, the parent of
/// the plugin (its pid namespace's init); if the trampoline has no child it exec'ed into
/// the plugin itself.
fn plugin_host_pid(d: &Daemon, name: &str) -> i32 {
    let launcher = d
        .plugin_pid(name)
        .unwrap_or_else(|| panic!("{name} has no pid"));
    let path = format!("/proc/{launcher}/task/{launcher}/children");
    let children: Vec<i32> = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    match children[..] {
        [] => launcher,
        [child] => child,
        _ => panic!("{name}'s launcher {launcher} has several children {children:?}, expected one"),
    }
}

/// The `key:` line of a /proc status file, without the key.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
}

/// user + system CPU time of a whole process (dead threads included), in seconds.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/stat: {e}"));
    // After "(comm)": state is field 3, utime field 14, stime field 15.
    let rest: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The dynamic loader, found on the host under /usr/lib* (the sandbox shows the same).
fn ld_so() -> String {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/usr/lib64/ld-linux-x86-64.so.2",
        "/usr/lib/ld-linux-x86-64.so.2",
        "/usr/lib/ld-linux-aarch64.so.1",
        "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1",
    ];
    candidates
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .expect("no dynamic loader under /usr/lib*")
}

// ---------------------------------------------------------------------------------------
// The quick attacks, collected: one report listing every attack that got through.

const SECCOMP: &str = "the seccomp filter's EPERM";

#[test]
fn a_hostile_plugin_cannot_escape_its_sandbox() {
    let d = start();
    let mut s = Suite::new(&d, "hostile");
    let store = d.root().join("state/store.db");
    let store = store.to_str().unwrap();
    let config = d.root().join("supervisor.toml");
    let admin_socket = d.root().join("run/supervisor.sock");
    let state_file = d.root().join("state/evil");

    // What the plugin starts with: fds 0-3 only.
    if let Some(v) = s.run("fds", "") {
        if v["fds"] != serde_json::json!([0, 1, 2, 3]) {
            s.fail(format!(
                "the plugin starts with fds {}, expected [0,1,2,3]",
                v["fds"]
            ));
        }
    }

    // Every thread, seen from the host: seccomp filter mode, no_new_privs, no root, no caps.
    match s.run("status-threads", "3") {
        Some(v) if v["started"] == 3 => {
            let pid = plugin_host_pid(&d, "hostile");
            let tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            if tasks.len() < 4 {
                s.fail(format!(
                    "plugin pid {pid} has {} threads, expected at least 4 (main + 3)",
                    tasks.len()
                ));
            }
            for task in tasks {
                let status = std::fs::read_to_string(task.join("status")).unwrap_or_default();
                let t = task.display();
                let field = |k: &str| status_field(&status, k).unwrap_or("<missing>").to_string();
                if field("Seccomp") != "2" {
                    s.fail(format!(
                        "{t}: Seccomp: {} (expected 2, filter mode)",
                        field("Seccomp")
                    ));
                }
                if field("NoNewPrivs") != "1" {
                    s.fail(format!(
                        "{t}: NoNewPrivs: {} (expected 1)",
                        field("NoNewPrivs")
                    ));
                }
                for key in ["Uid", "Gid"] {
                    let ids = field(key);
                    if ids.split_whitespace().count() != 4
                        || ids.split_whitespace().any(|i| i == "0")
                    {
                        s.fail(format!("{t}: {key}: {ids} (expected four non-zero ids)"));
                    }
                }
                for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                    if field(key) != "0000000000000000" {
                        s.fail(format!(
                            "{t}: {key}: {} (expected no capabilities)",
                            field(key)
                        ));
                    }
                }
            }
        }
        Some(v) => s.fail(format!("status-threads 3 did not start 3 threads: {v}")),
        None => {}
    }

    // The legitimate twins work.
    s.twin("data-write", "");
    s.twin("data-read", "");
    s.twin("thread", "");
    s.twin("alloc", "8");
    s.twin("tmp-write", "");
    s.twin("data-hardlink", "");
    s.twin("ioctl-ok", "");
    s.twin("rlimit-lower", "");

    // Files outside the minimal root.
    s.blocked("read-file", "/etc/shadow");
    s.blocked("read-file", store);
    s.blocked("read-file", config.to_str().unwrap());
    for path in [
        "/etc-escape",
        "/evil",
        "/usr/lib/evil",
        "/tmp/../usr/lib/evil",
        state_file.to_str().unwrap(),
    ] {
        s.blocked("write-file", path);
    }
    s.blocked("dotdot", "");
    s.blocked("symlink-escape", "/etc/shadow");
    s.blocked("symlink-escape", store);
    s.blocked("proc-root", "");
    let link_source = if Path::new("/usr/lib/os-release").is_file() {
        "/usr/lib/os-release"
    } else {
        "" // the plugin picks the first regular file in /usr/lib
    };
    s.blocked("hardlink", link_source);

    // No network, no sockets at all (the broker fd is inherited).
    for family in ["inet", "inet6", "netlink", "packet", "unix"] {
        s.blocked_with("socket", family, libc::EPERM, SECCOMP);
    }
    s.blocked_with(
        "connect-unix",
        admin_socket.to_str().unwrap(),
        libc::EPERM,
        SECCOMP,
    );

    // Other processes.
    let sup = d.pid().to_string();
    s.blocked_with("ptrace", &sup, libc::EPERM, SECCOMP);
    if let Some(v) = s.blocked("process-vm-read", &sup) {
        if v["steps"][0]["errno"] != libc::EPERM {
            s.fail(format!(
                "`process-vm-read {sup}`: expected EPERM ({SECCOMP}), got {}",
                v["steps"][0]["detail"]
            ));
        }
    }

    // Namespaces, new kernel interfaces, privileged operations.
    s.blocked_with("unshare-user", "", libc::EPERM, SECCOMP);
    s.blocked_with("clone-newuser", "", libc::EPERM, SECCOMP);
    if let Some(v) = s.blocked_with(
        "clone3",
        "",
        libc::ENOSYS,
        "clone3 -> ENOSYS, so libc falls back to clone",
    ) {
        let detail = v["detail"].as_str().unwrap_or_default();
        if !detail.contains("ENOSYS") {
            s.fail(format!("clone3's detail does not name ENOSYS: {detail}"));
        }
    }
    for (command, why) in [
        ("io-uring", SECCOMP),
        ("x32", "the filter rejects the x32 bit with EPERM"),
        ("keyctl", SECCOMP),
        ("bpf", SECCOMP),
        ("perf-event", SECCOMP),
        ("userfaultfd", SECCOMP),
        ("mount", SECCOMP),
        ("pivot-root", SECCOMP),
        ("chroot", SECCOMP),
    ] {
        s.blocked_with(command, "", libc::EPERM, why);
    }
    // Blocked means EPERM from every variant (ENOTTY would mean it reached the driver).
    s.blocked_with(
        "tiocsti",
        "",
        libc::EPERM,
        "ioctl masked: TIOCSTI/TIOCLINUX",
    );
    s.blocked_with("rlimit-raise", "", libc::EPERM, "no CAP_SYS_RESOURCE");

    // The denials are in the audit trail, naming the syscall.
    let mut found = BTreeSet::new();
    poll(Duration::from_secs(10), || {
        found = denied_syscalls(&d, "hostile");
        DENIED_SYSCALLS.iter().all(|n| found.contains(*n))
    });
    let missing: Vec<_> = DENIED_SYSCALLS
        .iter()
        .filter(|n| !found.contains(**n))
        .collect();
    if !missing.is_empty() {
        s.fail(format!(
            "no `security.syscall_denied` audit record names {missing:?} (names seen: {found:?})"
        ));
    }

    // exec: a success replaces the plugin, so there is no reply at all.
    s.blocked("exec", "/bin/sh");
    let ld = ld_so();
    s.blocked("exec", &ld);
    s.blocked("execveat", &ld);
    // The exec shape seccomp allows, aimed at an executable library: Landlock lets
    // the plugin execute its loader and nothing else.
    s.blocked_with(
        "execveat-exec-fd",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        libc::EACCES,
        "Landlock's execute right, held by the loader alone",
    );

    // Signals out of the sandbox.
    if let Some(v) = s.blocked("kill-all", "") {
        if v["confined"] != true {
            s.fail(format!(
                "kill-all: SIGKILL was not sent, the plugin is not confined: {v}"
            ));
        }
    }
    s.bystanders("kill(-1, SIGKILL)");
    if let Some(v) = s.blocked("kill-pid", &sup) {
        if v["confined"] != true {
            s.fail(format!(
                "kill-pid: SIGKILL was not sent, the plugin is not confined: {v}"
            ));
        }
    }
    s.bystanders("kill(<supervisor pid>, SIGKILL)");

    s.finish();
}

// ---------------------------------------------------------------------------------------
// Resource exhaustion, one daemon each so they run in parallel.

#[test]
fn a_fork_bomb_stops_at_pids_max_and_hurts_nobody_else() {
    let d = start();
    assert_fork_bomb_contained(&d, "hostile");
    d.wait_running("hostile");
}

#[test]
fn a_memory_balloon_is_oom_killed_audited_and_restarted() {
    let d = start();
    assert_balloon_oom_killed_and_restarted(&d, "hostile");
    let v = attack(&d, "alloc", "8");
    assert_eq!(v["ok"], true, "the restarted plugin cannot use 8 MiB: {v}");
}

#[test]
fn a_cpu_hog_is_throttled_audited_and_does_not_slow_the_bystander() {
    let d = start();
    let pid = plugin_host_pid(&d, "hostile");
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let v = attack(&d, "spin", "4 3");
    assert_eq!(v["started"], 4, "the spinning threads did not start: {v}");

    let mut slow = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let out = invoke(&d, "echo", "echo", &format!("ping {i}"));
        let took = t.elapsed();
        out.ok();
        assert_eq!(reply_text(&out).unwrap(), format!("ping {i}"));
        if took >= Duration::from_secs(1) {
            slow.push(format!("#{i}: {took:?}"));
        }
    }
    assert!(
        slow.is_empty(),
        "bystander echo calls took 1s or more while hostile spun: {slow:?}"
    );

    // Once the 3 s spin is over, the whole process must have used about cpu = 0.2 cores.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(started.elapsed()));
    let wall = started.elapsed().as_secs_f64();
    let used = cpu_seconds(pid) - cpu_before;
    eprintln!("hostile used {used:.2}s of CPU in {wall:.2}s of spinning");
    assert!(
        used <= 0.4 * wall,
        "4 spinning threads used {used:.2}s of CPU in {wall:.2}s: cpu = 0.2 is not enforced"
    );
    wait_until(
        Duration::from_secs(20),
        "a security.cpu_throttled audit record for hostile",
        || has_action(&d, "security.cpu_throttled"),
    );
    assert_bystanders_fine(&d, "the CPU hog");
}
