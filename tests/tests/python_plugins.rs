//! End to end: Python plugins (runtime = "python3") installed, pinned, reviewed and run
//! confined like native ones: the examples answer through the broker, imports are
//! recorded, and a changed package, SDK or interpreter never starts.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn sdk_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk-python/examples")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn require_sdk(sdk: &Path) {
    assert!(
        sdk.join("plexichat_boot.py").is_file(),
        "no SDK bundle at {}: run `make test` (scripts/python-sdk-bundle.sh builds it)",
        sdk.display()
    );
}

fn start() -> Daemon {
    require_sdk(&python_sdk_dir());
    Daemon::start_with(Settings::default())
}

/// Installs the example `dir` as plugin `name` (its manifest renamed), approves what
/// it asks and enables it.
fn install_example(d: &Daemon, name: &str, dir: &str) {
    let pkg = d.python_package(name, &sdk_examples().join(dir));
    let manifest = pkg.join("plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    // The first `name = ` is the plugin's (permissions and commands come later).
    let renamed: Vec<String> = text
        .lines()
        .scan(false, |done, l| {
            if !*done && l.starts_with("name = ") {
                *done = true;
                return Some(format!("name = \"{name}\""));
            }
            Some(l.to_string())
        })
        .collect();
    std::fs::write(&manifest, renamed.join("\n") + "\n").unwrap();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", name, "--comment", "ok"]).ok();
    d.cli(&["plugin", "enable", name]).ok();
}

/// Waits until `name` runs; on failure the panic carries its log and the daemon's.
fn running(d: &Daemon, name: &str) -> i32 {
    match std::panic::catch_unwind(|| d.wait_running(name)) {
        Ok(pid) => pid,
        Err(_) => {
            let log = std::fs::read_to_string(d.root().join(format!("log/plugins/{name}.log")))
                .unwrap_or_default();
            panic!(
                "{name} is not running: {}\nplugin log:\n{}\ndaemon log:\n{}",
                d.plugin_json(name),
                tail(&log, 30),
                tail(&d.log(), 30)
            );
        }
    }
}

fn invoke(d: &Daemon, plugin: &str, command: &str, arg: &str) -> String {
    let out = d.cli(&["plugin", "invoke", plugin, command, arg]);
    out.ok();
    out.stdout.trim().to_string()
}

#[test]
fn the_python_hello_runs_confined_answers_and_is_shown_as_pinned() {
    let d = start();
    install_example(&d, "hello-py", "hello");
    running(&d, "hello-py");
    assert_eq!(invoke(&d, "hello-py", "greet", "Ada"), "Hello, Ada!");

    // The reviewer sees what runs: the interpreter and every file, pinned.
    let show = d.plugin_json("hello-py");
    let rt = &show["plugin_runtime"];
    assert_eq!(rt["kind"], "RUNTIME_KIND_PYTHON3", "{show}");
    let interpreter = rt["interpreter"].as_str().unwrap();
    assert_eq!(
        Path::new(interpreter),
        Path::new("/usr/bin/python3").canonicalize().unwrap()
    );
    assert!(rt["interpreter_version"]
        .as_str()
        .unwrap()
        .starts_with("3."));
    let files: Vec<&str> = rt["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["main.py", "plugin.toml"], "{rt}");
    assert_eq!(rt["package_digest"], show["summary"]["sha256"]);
    let text = d.cli(&["plugin", "show", "hello-py"]);
    for want in [
        "python3 (interpreter /",
        "package files (pinned):",
        "main.py",
    ] {
        assert!(text.stdout.contains(want), "{want}: {}", text.stdout);
    }

    // Confined like a native plugin, with its own policy, and says what it runs on.
    let p = &d.security_of("hello-py");
    assert_eq!(p["confined"], true, "{p}");
    assert_eq!(p["seccomp_policy"], "python3");
    assert_eq!(p["landlock_status"], "fully_enforced");
    assert_eq!(p["plugin_runtime"]["kind"], "RUNTIME_KIND_PYTHON3");
    let table = d
        .cli(&["security", "plugin-status", "--plugin", "hello-py"])
        .stdout;
    assert!(table.contains("python3 3."), "{table}");

    // Nothing CPython does at start-up or serving a command is refused by seccomp.
    let denied = denied_syscalls(&d, "hello-py");
    assert!(denied.is_empty(), "seccomp refused CPython: {denied:?}");

    // A clean shutdown: the Shutdown message ends the interpreter with status 0
    // within the grace period, not a kill.
    d.cli(&["plugin", "disable", "hello-py"]).ok();
    wait_until(Duration::from_secs(15), "hello-py's stop audited", || {
        d.audit(Some("hello-py"))
            .iter()
            .any(|r| r["action"] == "plugin.stop")
    });
    let stop = d
        .audit(Some("hello-py"))
        .into_iter()
        .find(|r| r["action"] == "plugin.stop")
        .unwrap();
    assert_eq!(stop["detail"]["exit"], "exited with status 0", "{stop}");

    // verify system-integrity covers the package, the interpreter and the SDK.
    let v = d.cli(&["verify", "system-integrity"]);
    assert!(
        v.stdout.contains("interpreter") && v.stdout.contains("match their pins"),
        "{}",
        v.stdout
    );
}

fn denied_syscalls(d: &Daemon, plugin: &str) -> std::collections::BTreeSet<String> {
    d.audit(Some(plugin))
        .into_iter()
        .filter(|r| r["action"] == "security.syscall_denied")
        .filter_map(|r| r["detail"]["syscall"].as_str().map(str::to_string))
        .collect()
}

/// The syscalls policies/seccomp/python3.json adds to the default policy.
fn python3_additions() -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/seccomp/python3.json"),
    )
    .unwrap();
    let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(policy["extends"], "default");
    policy["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["syscall"].as_str().unwrap().to_string())
        .collect()
}

/// Under the default policy CPython is refused exactly what python3.json adds: each
/// addition is needed, and nothing it needs is missing.
#[test]
fn python3_policy_adds_to_the_default_only_what_cpython_is_refused() {
    require_sdk(&python_sdk_dir());
    let d = Daemon::start_with(Settings {
        python_seccomp_policy: "default",
        ..Settings::default()
    });
    install_example(&d, "hello-py", "hello");
    running(&d, "hello-py");
    assert_eq!(invoke(&d, "hello-py", "greet", "Ada"), "Hello, Ada!");
    let want = python3_additions();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut denied = denied_syscalls(&d, "hello-py");
    while denied != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        denied = denied_syscalls(&d, "hello-py");
    }
    assert_eq!(
        denied, want,
        "refused under the default policy vs python3.json's additions"
    );
}

/// A Python package holding native code is refused at install, naming the file.
#[test]
fn native_extension_modules_are_refused_at_install() {
    let d = start();
    let pkg = d.python_package("hello-py", &sdk_examples().join("hello"));
    std::fs::copy(
        "/bin/true",
        pkg.join("_speedups.cpython-311-x86_64-linux-gnu.so"),
    )
    .unwrap();
    let out = d.cli(&["plugin", "install", pkg.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("native code: _speedups.cpython-311-x86_64-linux-gnu.so"),
        "{}",
        out.stderr
    );
    let list = d.cli(&["plugin", "list"]).stdout;
    assert!(!list.contains("hello-py"), "{list}");
    // The same package without it installs.
    std::fs::remove_file(pkg.join("_speedups.cpython-311-x86_64-linux-gnu.so")).unwrap();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
}

fn quarantined_for(d: &Daemon, name: &str, why: &str) {
    wait_until(
        Duration::from_secs(20),
        &format!("{name} quarantined"),
        || d.plugin_json(name)["summary"]["state"] == "PLUGIN_STATE_QUARANTINED",
    );
    let show = d.plugin_json(name);
    let reason = show["summary"]["state_reason"].as_str().unwrap_or_default();
    assert!(reason.contains(why), "{why}: {reason}");
}

fn restart(d: &Daemon, name: &str) {
    d.cli(&["plugin", "disable", name]).ok();
    d.cli(&["plugin", "enable", name]).ok();
}

/// What was pinned at install is what runs: a package file, the SDK bundle or the
/// interpreter changed afterwards refuses the start and quarantines the plugin.
#[test]
fn a_changed_package_sdk_or_interpreter_never_starts() {
    let own = tempfile::tempdir().unwrap();
    let sdk = own.path().join("sdk");
    require_sdk(&python_sdk_dir());
    copy_tree(&python_sdk_dir(), &sdk);
    let interpreter = own.path().join("python3");
    std::fs::copy(
        Path::new("/usr/bin/python3").canonicalize().unwrap(),
        &interpreter,
    )
    .unwrap();
    let d = Daemon::start_with(Settings {
        python_interpreter: interpreter.clone(),
        python_sdk: sdk.clone(),
        ..Settings::default()
    });
    let installed = |name: &str| d.root().join(format!("state/plugins/{name}/0.1.0"));

    // The package: one byte of main.py.
    install_example(&d, "pkg", "hello");
    running(&d, "pkg");
    let main = installed("pkg").join("main.py");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text.replace("Hello,", "Hullo,")).unwrap();
    restart(&d, "pkg");
    quarantined_for(&d, "pkg", "package");
    let v = d.cli(&["verify", "system-integrity"]);
    assert!(
        v.stdout.contains("package") && v.stdout.contains("changed"),
        "{}",
        v.stdout
    );

    // The SDK bundle the supervisor provides.
    install_example(&d, "sdk", "hello");
    running(&d, "sdk");
    std::fs::write(sdk.join("plexichat_plugin/extra.py"), "x = 1\n").unwrap();
    restart(&d, "sdk");
    quarantined_for(&d, "sdk", "SDK bundle");
    std::fs::remove_file(sdk.join("plexichat_plugin/extra.py")).unwrap();

    // The interpreter: still a working CPython, just not the one pinned.
    install_example(&d, "interp", "hello");
    running(&d, "interp");
    let mut bytes = std::fs::read(&interpreter).unwrap();
    bytes.extend_from_slice(b"\0tampered");
    std::fs::write(&interpreter, bytes).unwrap();
    restart(&d, "interp");
    quarantined_for(&d, "interp", "changed since install");
    let actions = d.audit_actions(Some("interp"));
    assert!(
        actions.contains(&("plugin.quarantine".into(), "ok".into())),
        "{actions:?}"
    );

    // The way back after a deliberate upgrade: repin, audited, then enable again.
    let no_comment = d.cli(&["plugin", "repin-runtime", "interp"]);
    assert!(
        !no_comment.status.success() && no_comment.stderr.contains("comment"),
        "{}",
        no_comment.stderr
    );
    let before = d.plugin_json("interp")["plugin_runtime"]["interpreter_sha256"].clone();
    let out = d.cli(&[
        "plugin",
        "repin-runtime",
        "interp",
        "--comment",
        "python upgrade",
    ]);
    out.ok();
    assert!(out.stdout.contains("now runs on"), "{}", out.stdout);
    let after = d.plugin_json("interp")["plugin_runtime"]["interpreter_sha256"].clone();
    assert_ne!(before, after);
    let repinned: Vec<_> = d
        .audit(Some("interp"))
        .into_iter()
        .filter(|r| r["action"] == "plugin.runtime_repinned")
        .collect();
    assert_eq!(repinned.len(), 1, "{repinned:?}");
    assert_eq!(repinned[0]["detail"]["before"]["sha256"], before);
    assert_eq!(repinned[0]["detail"]["after"]["sha256"], after);
    d.cli(&["plugin", "enable", "interp"]).ok();
    running(&d, "interp");
    assert_eq!(invoke(&d, "interp", "greet", "again"), "Hello, again!");

    // A changed package is never blessed by a repin, and a native plugin has none.
    let refused = d.cli(&["plugin", "repin-runtime", "pkg", "--comment", "try"]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("changed since install too"),
        "{}",
        refused.stderr
    );
    d.run_plugin("echo", &bin("echo_plugin"));
    let native = d.cli(&["plugin", "repin-runtime", "echo", "--comment", "try"]);
    assert!(native.stderr.contains("native plugin"), "{}", native.stderr);
}

const SECOND_ADMIN: u32 = 65534;

fn app_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
         INSERT INTO messages (body) VALUES ('hello'), ('world'), ('again');",
    )
    .unwrap();
}

/// The Python examples, as shipped: hello greets events and counts messages, notes
/// keeps notes — through the broker, with the permissions the reviewer approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_examples_reach_events_and_the_database() {
    require_sdk(&python_sdk_dir());
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    app_db(&d.root().join("state/app.db"));
    install_example(&d, "hello-py", "hello");
    // database_write is high risk: a second admin approves too.
    let pkg = d.python_package("notes-py", &sdk_examples().join("notes"));
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "notes-py", "--comment", "ok"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "notes-py", "--comment", "ok too"],
    )
    .ok();
    d.cli(&["plugin", "enable", "notes-py"]).ok();
    running(&d, "hello-py");
    running(&d, "notes-py");

    assert_eq!(invoke(&d, "hello-py", "count", ""), "3");
    assert_eq!(invoke(&d, "notes-py", "note", "buy milk"), "stored 1");
    assert_eq!(
        invoke(&d, "notes-py", "note", "x'); DROP TABLE notes; --"),
        "stored 1"
    );
    assert_eq!(
        invoke(&d, "notes-py", "recent", ""),
        "x'); DROP TABLE notes; --\nbuy milk"
    );
    assert_eq!(invoke(&d, "notes-py", "count", ""), "3");
    d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "notes-py",
        "--comment",
        "no longer needed",
    ])
    .ok();
    let after = invoke(&d, "notes-py", "count", "");
    assert!(
        after.starts_with("not allowed") && after.contains("messages"),
        "{after}"
    );

    // An event in, the plugin's own event out, under its namespace.
    let mut admin = d.admin().await;
    let (published, reaction) = greeted_reaction(&mut admin, "hello-py").await;
    let body: serde_json::Value = serde_json::from_slice(&reaction.payload).unwrap();
    assert_eq!(body["reply_to"], published.as_str());
}

/// An update of a Python plugin pins the new tree (and the runtime again); the same
/// version with different files is refused, as for a native binary.
#[test]
fn a_python_update_pins_the_new_tree_and_runs_it() {
    let d = start();
    install_example(&d, "hello-py", "hello");
    running(&d, "hello-py");
    let first = d.plugin_json("hello-py")["summary"]["sha256"].clone();

    let v2 = d.python_package("hello-py-v2", &sdk_examples().join("hello"));
    let manifest = std::fs::read_to_string(v2.join("plugin.toml")).unwrap();
    std::fs::write(
        v2.join("plugin.toml"),
        manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\""),
    )
    .unwrap();
    let main = std::fs::read_to_string(v2.join("main.py")).unwrap();
    std::fs::write(
        v2.join("main.py"),
        main.replace("Hello, {name}!", "Hi, {name}!"),
    )
    .unwrap();

    // Same version, different files: refused, nothing changes.
    let same = d.python_package("hello-py-same", &sdk_examples().join("hello"));
    std::fs::write(same.join("main.py"), main.replace("Hello,", "Howdy,")).unwrap();
    let refused = d.cli(&["plugin", "update", "hello-py", same.to_str().unwrap()]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert_eq!(d.plugin_json("hello-py")["summary"]["sha256"], first);

    d.cli(&["plugin", "update", "hello-py", v2.to_str().unwrap()])
        .ok();
    wait_until(Duration::from_secs(20), "hello-py 0.2.0 running", || {
        let s = d.plugin_json("hello-py");
        s["summary"]["version"] == "0.2.0" && d.runtime_of("hello-py") == "running"
    });
    let show = d.plugin_json("hello-py");
    assert_ne!(show["summary"]["sha256"], first, "the new tree is pinned");
    assert_eq!(
        show["plugin_runtime"]["package_digest"],
        show["summary"]["sha256"]
    );
    assert_eq!(invoke(&d, "hello-py", "greet", "Ada"), "Hi, Ada!");
}
