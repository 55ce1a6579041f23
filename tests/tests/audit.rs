//! End to end: brokered calls are audited in batches, and no refusal the supervisor
//! answered is lost when it is killed in the middle of a load.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

fn install_echo(d: &Daemon) {
    let manifest = "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n";
    let pkg = d.package("echo", manifest, &bin("echo_plugin"), "echo");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running("echo");
}

fn answered_denials(d: &Daemon) -> Vec<String> {
    std::fs::read_to_string(d.root().join("state/data/echo/denied.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Paths of the `broker.file_read` denials committed to the store, read straight from
/// SQLite (the supervisor is dead when this runs).
fn recorded_denials(d: &Daemon) -> BTreeSet<String> {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    let mut stmt = c
        .prepare(
            "SELECT detail FROM audit_log WHERE action = 'broker.file_read' AND outcome = 'denied'",
        )
        .unwrap();
    let details = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| d.unwrap())
        .collect::<Vec<_>>();
    details
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| v["path"].as_str().map(str::to_string))
        .collect()
}

fn count(d: &Daemon, action: &str, outcome: &str) -> i64 {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    c.query_row(
        "SELECT count(*) FROM audit_log WHERE action = ?1 AND outcome = ?2",
        [action, outcome],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn every_call_is_audited_and_a_killed_supervisor_loses_no_answered_denial() {
    let mut d = Daemon::start_with(Settings {
        broker_rate: (1_000_000.0, 1_000_000),
        ..Settings::default()
    });
    install_echo(&d);

    // A bounded run first: every call, allowed or refused, has its record.
    let out = d
        .cli(&["plugin", "invoke", "echo", "deny-flood", "25"])
        .ok()
        .stdout
        .clone();
    assert_eq!(out.trim(), "denied=200");
    d.cli(&["audit", "plugins", "--limit", "1"]).ok(); // a query flushes the batches
    assert_eq!(count(&d, "broker.has_permission", "ok"), 200);
    assert_eq!(count(&d, "broker.file_read", "denied"), 200);
    std::fs::remove_file(d.root().join("state/data/echo/denied.log")).unwrap();

    // Now kill -9 the supervisor while eight loops keep calling.
    let pid = d.pid() as i32;
    std::thread::scope(|s| {
        s.spawn(|| d.cli(&["plugin", "invoke", "echo", "deny-flood", "1000000"]));
        wait_until(Duration::from_secs(30), "denials under load", || {
            answered_denials(&d).len() >= 2000
        });
        // SAFETY: kill(2) on the supervisor's pid, our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    d.crash();
    let answered = answered_denials(&d);
    let recorded = recorded_denials(&d);
    let missing: Vec<&String> = answered.iter().filter(|p| !recorded.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered denials have no audit record, e.g. {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(answered.len() >= 2000);

    // The supervisor comes back on the same store.
    d.restart();
    d.wait_running("echo");
}
