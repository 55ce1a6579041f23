//! End to end: the Python client package (`python/`) and its example PlexiChat server
//! against a real daemon, driven by pytest with the harness's packages and identities.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// A uid the tests' second admin runs as (a second approver of critical permissions).
const SECOND_ADMIN: u32 = 65534;
/// The PlexiChat server's uid in these tests (the `server` role).
const SERVER: u32 = 65533;

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../python")
}

fn python(d: &Daemon) -> Command {
    let mut c = Command::new("python3");
    c.env("PLEXICHAT_SOCKET", &d.socket)
        .env("PYTHONPATH", python_dir().join("src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(python_dir());
    c
}

fn daemon() -> Daemon {
    Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        server_uids: vec![SERVER],
        // The second admin is not root: it must reach the socket.
        socket_mode: "0666",
        ..Settings::default()
    })
}

fn example_package(d: &Daemon, name: &str) -> PathBuf {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../plugin-sdk/examples/{name}/plugin.toml")),
    )
    .expect("example manifest");
    d.package(name, &manifest, &example(name), name)
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_python_client_drives_the_daemon_through_its_whole_api() {
    let d = daemon();
    let hello = example_package(&d, "hello");
    // Settings for the client's settings test: a default, a typed one, a secret.
    let mut manifest = std::fs::read_to_string(hello.join("plugin.toml")).expect("manifest");
    manifest.push_str(
        "\n[[settings]]\nkey = \"greeting\"\ntype = \"string\"\ndefault = \"Hello\"\n\
         description = \"How to greet\"\n\n[[settings]]\nkey = \"max_greetings\"\n\
         type = \"integer\"\ndefault = 3\n\n[[settings]]\nkey = \"api_token\"\n\
         type = \"string\"\nsecret = true\n",
    );
    std::fs::write(hello.join("plugin.toml"), manifest).expect("manifest with settings");
    for name in ["moderator", "weather"] {
        example_package(&d, name);
    }
    d.package(
        "echo",
        "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n",
        &bin("echo_plugin"),
        "echo",
    );
    // A `.pxp` for the client's archive upload (packed by the CLI).
    let archived = d.package(
        "echo-archive",
        "name = \"echo-archive\"\nversion = \"1.0.0\"\nentry = \"echo\"\n",
        &bin("echo_plugin"),
        "echo",
    );
    let pxp = d.dir.path().join("packages/echo-archive.pxp");
    d.cli(&[
        "plugin",
        "pack",
        archived.to_str().expect("utf-8"),
        "-o",
        pxp.to_str().expect("utf-8"),
    ])
    .ok();
    let out = python(&d)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"])
        .env("PLEXICHAT_TEST_PACKAGES", d.dir.path().join("packages"))
        .env("PLEXICHAT_TEST_SECOND_ADMIN", SECOND_ADMIN.to_string())
        .env("PLEXICHAT_TEST_SERVER_UID", SERVER.to_string())
        .output()
        .expect("run pytest");
    println!("{}", report("pytest", &out));
    assert!(out.status.success(), "pytest failed");
}

#[test]
fn the_checked_in_python_stubs_match_the_protos() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(repo.join("scripts/python-stubs.sh"))
        .args(["--check".as_ref(), dir.path().as_os_str()])
        .output()
        .expect("run python-stubs.sh");
    assert!(out.status.success(), "{}", report("python-stubs.sh", &out));
    let stubs = [
        ("python/src", "plexichat_supervisor/_proto", "admin_pb2.py"),
        ("python/src", "plexichat_supervisor/_proto", "admin_pb2.pyi"),
        (
            "python/src",
            "plexichat_supervisor/_proto",
            "admin_pb2_grpc.py",
        ),
        (
            "plugin-sdk-python/src",
            "plexichat_plugin/_proto",
            "broker_pb2.py",
        ),
        (
            "plugin-sdk-python/src",
            "plexichat_plugin/_proto",
            "broker_pb2.pyi",
        ),
        (
            "plugin-sdk-python/src",
            "plexichat_plugin/_proto",
            "broker_grpc.py",
        ),
    ];
    for (src, package, file) in stubs {
        let fresh = std::fs::read(dir.path().join(package).join(file)).expect("generated stub");
        let checked_in = std::fs::read(repo.join(src).join(package).join(file)).expect("stub");
        assert!(
            fresh == checked_in,
            "{src}/{package}/{file} is stale: run scripts/python-stubs.sh"
        );
    }
}

#[test]
fn the_example_server_forwards_chat_serves_bans_and_prints_notifications() {
    let d = daemon();
    for name in ["hello", "moderator"] {
        let pkg = example_package(&d, name);
        d.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
            .ok();
    }
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "approve", "moderator", "--comment", "ok"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "moderator", "--comment", "agreed"],
    )
    .ok();
    let mut server = python(&d)
        .args(["examples/plexichat_server.py", "--linger", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start plexichat_server.py");
    // Enabled while the example is connected: it sees the plugins start.
    std::thread::sleep(std::time::Duration::from_secs(2));
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.cli(&["plugin", "enable", "moderator"]).ok();
    d.wait_running("hello");
    d.wait_running("moderator");
    // A new plugin waiting for review: the example prints the notification.
    let weather = example_package(&d, "weather");
    d.cli(&["plugin", "install", weather.to_str().expect("utf-8")])
        .ok();
    std::thread::sleep(std::time::Duration::from_millis(500));
    {
        use std::io::Write;
        let mut stdin = server.stdin.take().expect("stdin");
        stdin
            .write_all(b"#general ada: hello everyone\n@bob mallory: buy cheap watches\n")
            .expect("chat lines");
    }
    let out = server.wait_with_output().expect("example output");
    let text = report("plexichat_server.py", &out);
    println!("{text}");
    assert!(out.status.success(), "the example failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "published chat.message",
        "event plugin.hello.greeted from hello",
        "host action from moderator: user_management ban_user mallory",
        "published chat.private.mallory",
        "notification approval_required weather",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in\n{text}");
    }
    let banned = d
        .audit(Some("moderator"))
        .into_iter()
        .any(|r| r["action"] == "broker.host_action" && r["outcome"] == "OUTCOME_OK");
    assert!(banned, "the ban was not audited as ok");
}

fn expect_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str, seen: &mut Vec<String>) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no `{needle}` within 30 s; the example printed:\n{}",
        seen.join("\n")
    );
}

#[test]
fn the_example_server_keeps_serving_host_actions_across_a_supervisor_restart() {
    let mut d = daemon();
    let pkg = example_package(&d, "moderator");
    d.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
        .ok();
    d.cli(&["plugin", "approve", "moderator", "--comment", "ok"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "moderator", "--comment", "agreed"],
    )
    .ok();
    d.cli(&["plugin", "enable", "moderator"]).ok();
    d.wait_running("moderator");
    let mut server = python(&d)
        .args(["examples/plexichat_server.py", "--linger", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start plexichat_server.py");
    let rx = lines_of(server.stdout.take().expect("stdout"));
    let mut stdin = server.stdin.take().expect("stdin");
    let mut seen = Vec::new();
    expect_line(&rx, "connected as", &mut seen);
    // Give the host-actions stream a moment to register before the first ban.
    std::thread::sleep(std::time::Duration::from_millis(500));
    use std::io::Write;
    writeln!(stdin, "@bob mallory: buy cheap watches").expect("chat line");
    expect_line(&rx, "ban_user mallory", &mut seen);

    d.restart();
    d.wait_running("moderator");
    // The example reconnects with a backoff of at most 5 s; a ban before that is
    // refused to the plugin (no server connected) and not replayed, so wait for the
    // reconnection to show in the audit trail first.
    wait_until(
        std::time::Duration::from_secs(20),
        "the example server reconnected",
        || {
            d.audit(None)
                .iter()
                .filter(|r| r["action"] == "host_actions.connect")
                .count()
                >= 2
        },
    );
    writeln!(stdin, "@bob trent: buy cheap watches").expect("chat line");
    expect_line(&rx, "ban_user trent", &mut seen);
    drop(stdin);
    let status = server.wait().expect("example exits");
    assert!(status.success(), "the example failed: {status}");
}
