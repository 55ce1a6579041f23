//! End to end: SIGHUP reloads without stopping anything. The audit logs are reopened
//! (a logrotate move loses no line), a bad configuration is refused while the running
//! one is kept, a changed key is named as waiting for a restart, and the plugin keeps
//! its process throughout.

mod common;

use std::time::Duration;

use common::*;

fn reloads(d: &Daemon) -> Vec<serde_json::Value> {
    d.audit(None)
        .into_iter()
        .filter(|r| r["action"] == "supervisor.reload")
        .collect()
}

fn hup(d: &Daemon) {
    // SAFETY: kill(2) on the supervisor, our child.
    unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) };
}

fn detail(r: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(r["detail"].as_str().unwrap_or("null")).unwrap_or_default()
}

#[test]
fn sighup_reloads_reopens_the_logs_and_stops_nothing() {
    let d = Daemon::start();
    let pid = d.run_hello();
    let supervisor = d.pid();

    // logrotate's move, then the reload: the next lines go to a new file by the old name.
    let log = d.root().join("log/system/plugin_system.log");
    let rotated = d.root().join("log/system/plugin_system.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    hup(&d);
    wait_until(Duration::from_secs(10), "the first reload", || {
        reloads(&d).len() == 1
    });
    let first = &reloads(&d)[0];
    assert_eq!(first["outcome"], "ok");
    assert_eq!(detail(first)["needs_restart"], serde_json::json!([]));
    wait_until(Duration::from_secs(10), "the reopened log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("supervisor.reload"))
    });
    assert!(std::fs::read_to_string(&rotated)
        .expect("rotated")
        .contains("plugin.enable"));

    // A bad file is refused, the running configuration kept.
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, text.replace("burst = 1000", "burst = 0")).expect("edit");
    hup(&d);
    wait_until(Duration::from_secs(10), "the refused reload", || {
        reloads(&d).len() == 2
    });
    let refused = &reloads(&d)[1];
    assert_eq!(refused["outcome"], "failed");
    let why = detail(refused)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("broker.burst"), "{why}");
    assert!(why.contains("running one is kept"), "{why}");

    // A valid change is named as waiting for a restart.
    std::fs::write(&d.config, text.replace("burst = 1000", "burst = 2000")).expect("edit");
    hup(&d);
    wait_until(Duration::from_secs(10), "the third reload", || {
        reloads(&d).len() == 3
    });
    let changed = &reloads(&d)[2];
    assert_eq!(changed["outcome"], "ok");
    assert_eq!(
        detail(changed)["needs_restart"],
        serde_json::json!(["broker.burst"])
    );

    // Nothing stopped: the same supervisor, the same plugin process, still answering.
    assert_eq!(d.pid(), supervisor);
    assert!(process_alive(supervisor as i32));
    assert_eq!(d.plugin_pid("hello"), Some(pid));
    assert!(d
        .cli(&["plugin", "invoke", "hello", "greet", "Ada"])
        .ok()
        .stdout
        .contains("Ada"));
    assert!(!d
        .audit(Some("hello"))
        .iter()
        .any(|r| r["action"] == "plugin.stop"));
}
