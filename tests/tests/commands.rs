//! End to end: execute_commands runs only approved argvs, confined like the plugin,
//! killed at the timeout, with capped output.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SECOND_ADMIN: u32 = 65534;

fn install(d: &Daemon) {
    let scope = [
        "/usr/bin/uname -s",
        "/usr/bin/echo ...",
        "/usr/bin/sleep 30",
        "/usr/bin/head -c 1000000 /dev/zero",
        "/usr/bin/cat /etc/shadow",
        "/usr/bin/id -u",
    ]
    .map(|e| format!("\"{e}\""))
    .join(", ");
    let manifest = format!(
        "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n\n[[permissions]]\nname = \"execute_commands\"\njustification = \"system facts for the status page\"\nscope = [{scope}]\n"
    );
    let pkg = d.package("echo", &manifest, &bin("echo_plugin"), "echo");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "echo", "--comment", "read-only facts"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "echo", "--comment", "agreed"],
    )
    .ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running("echo");
}

fn exec(d: &Daemon, argv: &[&str]) -> String {
    let args = serde_json::to_string(argv).unwrap();
    d.cli(&[
        "plugin",
        "invoke",
        "echo",
        "exec",
        &args,
        "--timeout",
        "30s",
    ])
    .ok()
    .stdout
    .trim()
    .to_string()
}

#[test]
fn only_approved_commands_run_and_they_run_confined() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        exec_timeout: "2s",
        ..Settings::default()
    });
    install(&d);

    // Exact entries run exactly; a `...` entry allows more arguments.
    let out = exec(&d, &["/usr/bin/uname", "-s"]);
    assert!(
        out.starts_with("exit=Some(0)") && out.contains("stdout=Linux"),
        "{out}"
    );
    let out = exec(&d, &["/usr/bin/echo", "hello", "world"]);
    assert!(out.contains("stdout=hello world"), "{out}");
    for refused in [
        vec!["/usr/bin/uname", "-a"],
        vec!["/usr/bin/uname"],
        vec!["/bin/sh", "-c", "id"],
        vec!["/usr/bin/id"],
        vec!["/usr/bin/id -u"],
    ] {
        let out = exec(&d, &refused);
        assert!(
            out.starts_with("ERR Some(PermissionDenied)") && out.contains("execute_commands"),
            "{refused:?}: {out}"
        );
    }

    // Confined like the plugin: its own uid, and no host /etc to read.
    let uid = d.plugin_json("echo")["summary"]["uid"]
        .as_u64()
        .or_else(|| {
            d.cli(&["--output", "json", "security", "plugin-status"])
                .json()["plugins"][0]["uid"]
                .as_u64()
        })
        .unwrap();
    let out = exec(&d, &["/usr/bin/id", "-u"]);
    assert!(out.contains(&format!("stdout={uid}")), "{out} (uid {uid})");
    let out = exec(&d, &["/usr/bin/cat", "/etc/shadow"]);
    assert!(
        out.starts_with("exit=Some(1)") && out.contains("No such file"),
        "{out}"
    );

    // Output is capped, and a command past its timeout is killed.
    let out = exec(&d, &["/usr/bin/head", "-c", "1000000", "/dev/zero"]);
    assert!(
        out.contains("truncated=true") && out.contains("bytes=262144"),
        "{out}"
    );
    let t = Instant::now();
    let out = exec(&d, &["/usr/bin/sleep", "30"]);
    assert!(out.starts_with("ERR Some(DeadlineExceeded)"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // Audited, refusals as denied.
    let records: Vec<(String, String)> = d
        .audit_actions(Some("echo"))
        .into_iter()
        .filter(|(a, _)| a == "broker.execute")
        .collect();
    assert_eq!(
        records.iter().filter(|(_, o)| o == "denied").count(),
        5,
        "{records:?}"
    );
    assert_eq!(
        records.iter().filter(|(_, o)| o == "ok").count(),
        5,
        "{records:?}"
    );
    assert_eq!(
        records.iter().filter(|(_, o)| o == "failed").count(),
        1,
        "the timeout"
    );
}
