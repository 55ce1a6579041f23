//! End to end: SIGHUP and `plexichat config reload` apply access roles, broker rate
//! limits and alert rules to the running supervisor and its running plugins (same
//! processes), name what waits for a restart, reopen the audit logs (a logrotate move
//! loses no line), and refuse a bad configuration with everything left as it was.

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

/// SIGHUP, and the `supervisor.reload` record it wrote.
fn hup_and_wait(d: &Daemon) -> serde_json::Value {
    let before = reloads(d).len();
    hup(d);
    wait_until(Duration::from_secs(10), "the reload record", || {
        reloads(d).len() > before
    });
    reloads(d).pop().expect("a reload record")
}

fn detail(r: &serde_json::Value) -> serde_json::Value {
    r["detail"].clone()
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn edit(d: &Daemon, from: &str, to: &str) {
    let text = std::fs::read_to_string(&d.config).expect("config");
    assert!(text.contains(from), "`{from}` in the config");
    std::fs::write(&d.config, text.replacen(from, to, 1)).expect("edit config");
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
    let first = hup_and_wait(&d);
    assert_eq!(first["outcome"], "OUTCOME_OK");
    assert_eq!(detail(&first)["applied"], serde_json::json!([]));
    assert_eq!(detail(&first)["needs_restart"], serde_json::json!([]));
    wait_until(Duration::from_secs(10), "the reopened log", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("supervisor.reload"))
    });
    assert!(std::fs::read_to_string(&rotated)
        .expect("rotated")
        .contains("plugin.enable"));

    // A bad file is refused, the running configuration kept.
    let text = std::fs::read_to_string(&d.config).expect("config");
    std::fs::write(&d.config, text.replace("burst = 1000", "burst = 0")).expect("edit");
    let refused = hup_and_wait(&d);
    assert_eq!(refused["outcome"], "OUTCOME_FAILED");
    let why = detail(&refused)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("broker.burst"), "{why}");
    assert!(why.contains("running one is kept"), "{why}");

    // A valid change to a live key is applied, and says so.
    std::fs::write(&d.config, text.replace("burst = 1000", "burst = 2000")).expect("edit");
    let changed = hup_and_wait(&d);
    assert_eq!(changed["outcome"], "OUTCOME_OK");
    assert_eq!(
        detail(&changed)["applied"],
        serde_json::json!(["broker.burst"])
    );
    assert_eq!(detail(&changed)["needs_restart"], serde_json::json!([]));

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

/// A uid that starts an admin and is a viewer after the reload.
const DEMOTED: u32 = 4242;
/// A uid with no role that is an admin after the reload.
const PROMOTED: u32 = 4343;
/// The PlexiChat server's uid: it changes plugins for an admin, never the host config.
const SERVER: u32 = 4444;

const RULE: &str = "\n[[alert]]\nname = \"reload-denials\"\nkind = \"denials\"\nthreshold = 1000\nwindow = \"10m\"\n";
const FILE_READ: &str = "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n";

fn install_noisy(d: &Daemon) -> i32 {
    let manifest = format!("name = \"noisy\"\nversion = \"1.0.0\"\nentry = \"noisy\"\n{FILE_READ}");
    let pkg = d.package("noisy", &manifest, &bin("echo_plugin"), "noisy");
    d.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
        .ok();
    d.cli(&["plugin", "approve", "noisy", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "noisy"]).ok();
    d.wait_running("noisy")
}

/// `burst N` on the flood plugin: N permission checks at once, tallied by code.
fn burst(d: &Daemon, n: u32) -> (u64, u64) {
    let out = d
        .cli(&["plugin", "invoke", "busy", "burst", &n.to_string()])
        .ok()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("burst tally");
    println!("burst {n}: {v}");
    let count = |code: &str| v["counts"][code].as_u64().unwrap_or(0);
    (count("Ok"), count("ResourceExhausted"))
}

fn open_alerts(d: &Daemon, plugin: &str) -> Vec<serde_json::Value> {
    d.cli(&["--output", "json", "security", "alerts"]).json()["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["plugin"] == plugin && a["rule"] == "reload-denials")
        .collect()
}

fn deny_flood(d: &Daemon) {
    // 8 refused file reads, each a `denials` event.
    d.cli(&["plugin", "invoke", "noisy", "deny-flood", "1"])
        .ok();
}

#[test]
fn a_reload_applies_roles_rates_and_alert_rules_to_running_plugins() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, DEMOTED],
        server_uids: vec![SERVER],
        socket_mode: "0666",
        extra: RULE.into(),
        ..Settings::default()
    });
    let busy = d.run_plugin("busy", &bin("flood_plugin"));
    let noisy = install_noisy(&d);
    let supervisor = d.pid();

    // Before: DEMOTED is an admin, PROMOTED has no role, the burst of 1000 serves
    // 300 calls at once, and 8 denials stay far below the rule's 1000.
    let reply = d
        .cli_as(DEMOTED, &["--output", "json", "config", "reload"])
        .json();
    assert!(
        reply.get("applied").is_none(),
        "nothing, so absent: {reply}"
    );
    let out = d.cli_as(PROMOTED, &["whoami"]);
    assert!(out.stderr.contains("has no role"), "{}", out.stderr);
    let out = d.cli_as(SERVER, &["--on-behalf-of", "alice", "config", "reload"]);
    assert!(
        out.stderr.contains("may not reload config"),
        "{}",
        out.stderr
    );
    assert!(d.audit(None).iter().any(|r| r["action"] == "admin.refused"
        && r["actor"].as_str().unwrap_or("").starts_with("uid=4444")));
    assert_eq!(burst(&d, 300), (300, 0));
    deny_flood(&d);
    std::thread::sleep(Duration::from_millis(500));
    assert!(open_alerts(&d, "noisy").is_empty(), "8 of 1000");

    // The file changes roles, the rate, the rule, and two keys that need a restart.
    let uid_base = {
        let text = std::fs::read_to_string(&d.config).expect("config");
        let line = text
            .lines()
            .find(|l| l.starts_with("uid_base = "))
            .expect("uid_base")
            .to_string();
        line
    };
    let base: u32 = uid_base["uid_base = ".len()..].parse().expect("a number");
    edit(&d, &uid_base, &format!("uid_base = {}", base + 1));
    edit(
        &d,
        &format!("admin = {{ uids = [0, {DEMOTED}] }}"),
        &format!("admin = {{ uids = [0, {PROMOTED}] }}"),
    );
    edit(
        &d,
        "viewer = { uids = [] }",
        &format!("viewer = {{ uids = [{DEMOTED}] }}"),
    );
    edit(&d, "rate_per_sec = 500.0", "rate_per_sec = 1.0");
    edit(&d, "burst = 1000", "burst = 20");
    edit(&d, "threshold = 1000", "threshold = 12");
    edit(&d, "state_dir = \"", "state_dir = \"/nonexistent");
    let record = hup_and_wait(&d);
    assert_eq!(record["outcome"], "OUTCOME_OK", "{record}");
    let applied = keys(&detail(&record)["applied"]);
    let waiting = keys(&detail(&record)["needs_restart"]);
    println!("applied: {applied:?}\nneeds_restart: {waiting:?}");
    for key in [
        "access.admin.uids",
        "access.viewer.uids",
        "broker.burst",
        "broker.rate_per_sec",
        "alert.reload-denials",
    ] {
        assert!(
            applied.contains(&key.to_string()),
            "{key} applied: {applied:?}"
        );
    }
    for key in ["sandbox.uid_base", "state_dir"] {
        assert!(
            waiting.contains(&key.to_string()),
            "{key} waits: {waiting:?}"
        );
    }
    let journal = d.log();
    assert!(
        journal.contains("reloaded:") && journal.contains("sandbox.uid_base"),
        "the journal line names the keys"
    );

    // Roles: the demoted uid may still look but no longer reload; the promoted one may.
    d.cli_as(DEMOTED, &["plugin", "list"]).ok();
    let out = d.cli_as(DEMOTED, &["config", "reload"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("may not reload config"),
        "{}",
        out.stderr
    );
    let reply = d
        .cli_as(PROMOTED, &["--output", "json", "config", "reload"])
        .json();
    println!("reload by {PROMOTED}: {reply}");
    assert!(reply.get("applied").is_none(), "already in force: {reply}");
    assert!(keys(&reply["needs_restart"]).contains(&"sandbox.uid_base".to_string()));
    let text = d
        .cli_as(PROMOTED, &["config", "reload"])
        .ok()
        .stdout
        .clone();
    assert!(
        text.contains("applied: none") && text.contains("needs restart:\n  "),
        "{text}"
    );

    // The rate: the same plugin process now gets its burst of 20 (plus 1/s).
    let (ok, refused) = burst(&d, 300);
    assert!((20..=25).contains(&ok), "{ok} of 300 at burst 20");
    assert_eq!(ok + refused, 300);
    assert_eq!(d.plugin_pid("busy"), Some(busy), "the same process");

    // The rule: 8 kept + 8 new denials pass the new threshold of 12.
    deny_flood(&d);
    wait_until(Duration::from_secs(10), "the alert at 12", || {
        !open_alerts(&d, "noisy").is_empty()
    });
    let alert = &open_alerts(&d, "noisy")[0];
    println!("alert: {alert}");
    assert_eq!(int(&alert["threshold"]), 12);
    assert_eq!(d.plugin_pid("noisy"), Some(noisy));

    // A bad file over the RPC: refused naming the key, nothing changed.
    edit(&d, "burst = 20", "burst = 0");
    edit(
        &d,
        &format!("admin = {{ uids = [0, {PROMOTED}] }}"),
        "admin = { uids = [0] }",
    );
    let out = d.cli(&["config", "reload"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("broker.burst") && out.stderr.contains("running one is kept"),
        "{}",
        out.stderr
    );
    assert_eq!(
        reloads(&d).last().expect("recorded")["outcome"],
        "OUTCOME_FAILED"
    );
    d.cli_as(PROMOTED, &["whoami"]).ok();
    let (ok, _) = burst(&d, 300);
    assert!(ok <= 25, "still at burst 20: {ok}");

    assert_eq!(d.pid(), supervisor);
    assert_eq!(d.plugin_pid("busy"), Some(busy));
    assert_eq!(d.plugin_pid("noisy"), Some(noisy));
}
