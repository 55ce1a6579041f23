//! End to end: how the supervisor runs plugin processes: crash backoff and
//! quarantine, the handshake deadline, and state surviving supervisor restarts.

mod common;

use std::time::Duration;

use common::*;

fn manifest(name: &str) -> String {
    format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n")
}

fn install_enabled(d: &Daemon, name: &str, binary: &std::path::Path) {
    let pkg = d.package(name, &manifest(name), binary, name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", name]).ok();
}

fn crash_times(d: &Daemon, name: &str) -> Vec<i64> {
    d.audit(Some(name))
        .iter()
        .filter(|r| r["action"] == "plugin.crash")
        .map(|r| int(&r["ts_ms"]))
        .collect()
}

#[test]
fn a_plugin_crashing_at_start_backs_off_then_is_quarantined() {
    let d = Daemon::start_with(Settings {
        backoff_initial: "300ms",
        backoff_max: "5s",
        quarantine_after: 4,
        ..Settings::default()
    });
    install_enabled(&d, "crasher", &bin("crasher"));
    wait_until(Duration::from_secs(30), "crasher quarantined", || {
        d.plugin_json("crasher")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED"
    });
    let show = d.plugin_json("crasher");
    let reason = show["summary"]["state_reason"].as_str().unwrap();
    assert!(reason.contains("crashed 4 times"), "{reason}");
    assert!(reason.contains("exited with status 1"), "{reason}");
    assert_eq!(show["summary"]["runtime"], "RUNTIME_PHASE_STOPPED");

    let t = crash_times(&d, "crasher");
    assert_eq!(t.len(), 4, "{t:?}");
    let gaps: Vec<i64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // 300ms, 600ms, 1200ms of backoff: each wait clearly longer than the last.
    assert!(gaps[0] >= 300, "{gaps:?}");
    assert!(
        gaps[1] > gaps[0] + 150 && gaps[2] > gaps[1] + 300,
        "backoff grows: {gaps:?}"
    );
    let actions = d.audit_actions(Some("crasher"));
    assert!(actions.contains(&("plugin.quarantine".into(), "ok".into())));
    let log = std::fs::read_to_string(d.root().join("log/plugins/crasher.log")).unwrap();
    assert!(
        log.contains("[stderr]"),
        "crasher's stderr reaches its log: {log}"
    );

    // Quarantine sticks: nothing restarts it until an admin enables it again.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(crash_times(&d, "crasher").len(), 4);
}

#[test]
fn a_plugin_that_never_handshakes_is_killed_at_the_deadline() {
    let d = Daemon::start_with(Settings {
        handshake_timeout: "1s",
        backoff_initial: "5s",
        backoff_max: "5s",
        ..Settings::default()
    });
    install_enabled(&d, "silent", &bin("silent"));
    let pid = {
        let mut pid = None;
        wait_until(Duration::from_secs(10), "silent has a pid", || {
            pid = d.plugin_pid("silent");
            pid.is_some()
        });
        pid.unwrap()
    };
    assert!(process_alive(pid));
    wait_until(Duration::from_secs(10), "handshake timeout audited", || {
        d.audit_actions(Some("silent"))
            .contains(&("plugin.handshake_timeout".into(), "failed".into()))
    });
    wait_until(Duration::from_secs(5), "silent killed", || {
        !process_alive(pid)
    });
    // The supervisor records the reason just after the kill lands: wait for it.
    wait_until(Duration::from_secs(5), "the reason in plugin show", || {
        let show = d.plugin_json("silent");
        show["last_exit"]
            .as_str()
            .unwrap_or_default()
            .contains("no handshake within 1s")
            && show["summary"]["runtime"] == "RUNTIME_PHASE_BACKOFF"
    });
    // The normal twin: a plugin that does handshake under the same deadline runs.
    install_enabled(&d, "echo", &bin("echo_plugin"));
    d.wait_running("echo");
}

#[test]
fn state_survives_a_supervisor_restart_and_enabled_plugins_come_back() {
    let mut d = Daemon::start();
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    let first = d.wait_running("hello");
    d.cli(&["plugin", "invoke", "hello", "config", "greeting=bonjour"])
        .ok();

    d.restart();
    assert!(!process_alive(first), "a graceful stop stops the plugins");
    let second = d.wait_running("hello");
    assert_ne!(first, second);
    let show = d.plugin_json("hello");
    assert_eq!(
        show["permissions"][0]["status"],
        "PERMISSION_STATUS_GRANTED"
    );
    let value = d
        .cli(&["plugin", "invoke", "hello", "config", "greeting"])
        .ok()
        .stdout
        .clone();
    assert_eq!(value.trim(), "bonjour");
    let actions = d.audit_actions(None);
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| a == "supervisor.start")
            .count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&("permission.approve".into(), "ok".into())));

    // SIGKILL of the supervisor takes its plugins with it, and the next start
    // brings them back.
    d.crash();
    wait_until(
        Duration::from_secs(5),
        "plugin dies with the supervisor",
        || !process_alive(second),
    );
    d.restart();
    let third = d.wait_running("hello");
    assert!(process_alive(third));
}

#[test]
fn a_wedged_plugin_fails_its_health_check_and_is_restarted() {
    let d = Daemon::start_with(Settings {
        health_interval: "500ms",
        ..Settings::default()
    });
    install_enabled(&d, "echo", &bin("echo_plugin"));
    let first = d.wait_running("echo");
    // Healthy plugins pass ping after ping.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.plugin_pid("echo"), Some(first));
    let frozen = d.cli(&["plugin", "invoke", "echo", "freeze", "--timeout", "1s"]);
    assert!(
        frozen.stderr.contains("did not answer"),
        "{}",
        frozen.stderr
    );
    wait_until(Duration::from_secs(15), "health failure audited", || {
        d.audit_actions(Some("echo"))
            .contains(&("plugin.health_failed".into(), "failed".into()))
    });
    wait_until(Duration::from_secs(5), "wedged process killed", || {
        !process_alive(first)
    });
    let second = d.wait_running("echo");
    assert_ne!(first, second);
    let echoed = d
        .cli(&["plugin", "invoke", "echo", "echo", "still here"])
        .ok()
        .stdout
        .clone();
    assert_eq!(echoed.trim(), "still here");
}
