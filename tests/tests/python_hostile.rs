//! End to end: the hostile battery from Python (tests/python-plugins/hostile). A Python
//! plugin reaching for the kernel with open(), socket.socket(), subprocess, os.fork(),
//! a bytearray balloon and ctypes is stopped by the same layers as a native one, each
//! with the errno that names the layer, beside its legitimate twin working, while a
//! native bystander keeps answering. Imports are observed and audited, not blocked.

mod common;

use std::path::Path;
use std::time::Duration;

use common::attack::*;
use common::*;

const SECCOMP: &str = "the seccomp filter's EPERM";
const ECHO_MANIFEST: &str = "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n";
const PLUGIN: &str = "hostile-py";

/// A supervisor with the hostile Python plugin and the native `echo` bystander running.
fn start() -> Daemon {
    assert!(
        python_sdk_dir().join("plexichat_boot.py").is_file(),
        "no SDK bundle at {}: run `make test`",
        python_sdk_dir().display()
    );
    let d = Daemon::start_with(Settings {
        // Some attacks kill the plugin on purpose: restart it quickly, never quarantine.
        backoff_max: "1s",
        quarantine_after: 1000,
        ..Settings::default()
    });
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("python-plugins/hostile");
    let pkg = d.python_package(PLUGIN, &source);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", PLUGIN]).ok();
    let echo = d.package("echo", ECHO_MANIFEST, &bin("echo_plugin"), "echo");
    d.cli(&["plugin", "install", echo.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running(PLUGIN);
    d.wait_running("echo");
    d
}

/// `3.11` of the interpreter the plugins run on.
fn python_minor() -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .args([
            "-I",
            "-S",
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .expect("/usr/bin/python3");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Some regular file directly under `dir` on the host, or one level down.
fn first_file(dir: &str) -> Option<String> {
    let file_in = |d: &Path| {
        std::fs::read_dir(d)
            .ok()?
            .filter_map(Result::ok)
            .find(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path().display().to_string())
    };
    file_in(Path::new(dir)).or_else(|| {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .find_map(|e| file_in(&e.path()))
    })
}

fn attack(d: &Daemon, command: &str, arg: &str) -> serde_json::Value {
    try_attack(d, PLUGIN, command, arg).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_hostile_python_plugin_cannot_escape_its_sandbox() {
    let d = start();
    let mut s = Suite::new(&d, PLUGIN);
    let store = d.root().join("state/store.db");
    let config = d.root().join("supervisor.toml");

    // The legitimate twins work.
    for twin in [
        "data-write",
        "data-read",
        "tmp-write",
        "thread",
        "fork-ok",
        "ctypes-ok",
        "socketpair",
    ] {
        s.twin(twin, "");
    }
    s.twin("alloc", "8");

    // Files outside the minimal root are not there; what it may only read is on a
    // read-only mount.
    for path in [
        "/etc/shadow",
        store.to_str().unwrap(),
        config.to_str().unwrap(),
    ] {
        s.blocked_with(
            "read-file",
            path,
            libc::ENOENT,
            "the minimal root has no such file",
        );
    }
    for path in [
        "/evil",
        "/plugin/main.py",
        "/sdk/plexichat_boot.py",
        "/usr/lib/evil",
    ] {
        s.blocked_with("write-file", path, libc::EROFS, "a read-only mount");
    }
    s.blocked_with(
        "write-file",
        store.to_str().unwrap(),
        libc::ENOENT,
        "not in the root",
    );

    // The host's site-packages are hidden; the standard library beside them is readable.
    let stdlib = format!("/usr/lib/python{}/os.py", python_minor());
    match s.run("read-file", &stdlib) {
        Some(v) if v["blocked"] == false => {}
        other => s.fail(format!(
            "reading the standard library's {stdlib} failed: {other:?}"
        )),
    }
    if let Some(site_file) = first_file("/usr/lib/python3/dist-packages") {
        s.blocked_with(
            "read-file",
            &site_file,
            libc::ENOENT,
            "site-packages masked",
        );
    } else {
        eprintln!("no /usr/lib/python3/dist-packages on this host: masking not exercised");
    }

    // No sockets of any family: seccomp refuses socket(2) itself.
    for family in ["inet", "inet6", "unix", "netlink", "packet", "vsock", "all"] {
        s.blocked_with("socket", family, libc::EPERM, SECCOMP);
    }
    // subprocess forks, but the child's exec is refused: only the supervisor's one
    // execveat of the pinned interpreter was ever allowed.
    s.blocked_with("subprocess", "", libc::EPERM, SECCOMP);
    // ctypes reaches the kernel directly; the filter answers.
    for syscall in ["mount", "ptrace", "bpf", "unshare", "io_uring_setup"] {
        s.blocked_with("ctypes", syscall, libc::EPERM, SECCOMP);
    }
    s.blocked_with("ctypes", "tiocsti", libc::EPERM, SECCOMP);
    s.bystanders("the quick attacks");
    s.finish();

    // Denials reach the audit trail as the supervisor serves them.
    let want = [
        "socket",
        "execve",
        "mount",
        "ptrace",
        "bpf",
        "unshare",
        "io_uring_setup",
    ];
    let mut denied = denied_syscalls(&d, PLUGIN);
    poll(Duration::from_secs(15), || {
        denied = denied_syscalls(&d, PLUGIN);
        want.iter().all(|s| denied.contains(*s))
    });
    for syscall in want {
        assert!(
            denied.contains(syscall),
            "no denial audited for {syscall}: {denied:?}"
        );
    }
}

#[test]
fn a_python_fork_bomb_stops_at_pids_max_and_hurts_nobody_else() {
    let d = start();
    assert_fork_bomb_contained(&d, PLUGIN);
    // It reaped its children: forking works again.
    assert_eq!(attack(&d, "fork-ok", "")["ok"], true);
}

#[test]
fn a_python_memory_balloon_is_oom_killed_audited_and_restarted() {
    let d = start();
    assert_balloon_oom_killed_and_restarted(&d, PLUGIN);
    assert_eq!(attack(&d, "alloc", "8")["ok"], true);
}

/// Each module the plugin loads for the first time is reported, audited as
/// plugin.import and listed by `plugin show` — observed, never blocked.
#[test]
fn imports_are_observed_audited_and_shown() {
    let d = start();
    let v = attack(&d, "import-probe", "");
    let new: Vec<String> = v["new"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    assert!(
        new.contains(&"ctypes".to_string()),
        "ctypes was already loaded? {v}"
    );
    wait_until(
        Duration::from_secs(10),
        "plugin.import of ctypes audited",
        || {
            d.audit(Some(PLUGIN))
                .iter()
                .any(|r| r["action"] == "plugin.import" && r["detail"]["module"] == "ctypes")
        },
    );
    let show = d.plugin_json(PLUGIN);
    let imports: Vec<&str> = show["imports"]
        .as_array()
        .unwrap_or_else(|| panic!("no imports: {show}"))
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(imports.contains(&"ctypes"), "{imports:?}");
    let ctypes = show["imports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "ctypes")
        .unwrap();
    assert!(
        ctypes["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with("/usr/lib/python3")),
        "{ctypes}"
    );
    // The SDK's own modules, loaded before the hook, are not reported as the plugin's.
    assert!(
        !imports.iter().any(|n| n.starts_with("grpclib")),
        "{imports:?}"
    );
    let text = d.cli(&["plugin", "show", PLUGIN]).stdout;
    assert!(
        text.contains("observation only") && text.contains("ctypes"),
        "{text}"
    );
}

/// A plugin importing without end costs the supervisor a bounded list: 1024 names kept
/// per run and audited, the rest only counted; a bystander does not notice.
#[test]
fn an_import_flood_is_bounded_per_run() {
    let d = start();
    let v = attack(&d, "import-flood", "3000");
    assert_eq!(v["imported"], 3000, "{v}");
    let mut show = d.plugin_json(PLUGIN);
    poll(Duration::from_secs(20), || {
        show = d.plugin_json(PLUGIN);
        show["imports"].as_array().map_or(0, Vec::len) == 1024
            && show["imports_over_cap"].as_u64().unwrap_or(0) >= 3000 - 1024
    });
    let kept = show["imports"].as_array().map_or(0, Vec::len);
    let over = show["imports_over_cap"].as_u64().unwrap_or(0);
    assert_eq!(kept, 1024, "names kept");
    assert!(over >= 3000 - 1024, "counted past the cap: {over}");
    let audited = d
        .audit(Some(PLUGIN))
        .iter()
        .filter(|r| r["action"] == "plugin.import")
        .count();
    assert_eq!(audited, 1024, "one plugin.import record per name kept");
    assert_bystanders_fine(&d, "the import flood");
}

/// An import reported while the audit trail is known unwritable is refused
/// (UNAVAILABLE), not recorded unaudited, and not lost: the SDK reports it again once
/// the trail works, and it is audited once.
#[test]
fn an_import_during_an_audit_outage_is_recorded_once_the_trail_works() {
    let d = start();
    let v = attack(&d, "import-later", "12 uuid");
    assert_eq!(v["module"], "uuid", "{v}");
    // A second connection holds the store's write lock; the refused publish shows the
    // audit writer has found out (its commit failed after SQLite's busy wait).
    let store = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    store.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let locked = std::time::Instant::now();
    let publish = d.cli(&["event", "publish", "outage.test", "{}"]);
    assert!(
        !publish.status.success() && publish.stderr.contains("audit trail cannot be written"),
        "{}",
        publish.stderr
    );
    let shown = |d: &Daemon| {
        d.plugin_json(PLUGIN)["imports"]
            .as_array()
            .is_some_and(|i| i.iter().any(|m| m["name"] == "uuid"))
    };
    // The import happens at 12 s; its report is refused and nothing is kept.
    std::thread::sleep(Duration::from_secs(15).saturating_sub(locked.elapsed()));
    assert!(
        !shown(&d),
        "uuid kept while its audit record could not be written"
    );
    store.execute_batch("ROLLBACK").expect("unlock");
    wait_until(
        Duration::from_secs(30),
        "uuid recorded after the outage",
        || shown(&d),
    );
    let records = d
        .audit(Some(PLUGIN))
        .into_iter()
        .filter(|r| r["action"] == "plugin.import" && r["detail"]["module"] == "uuid")
        .count();
    assert_eq!(records, 1, "audited exactly once");
}
