//! End to end: store backups — taken before every install and on demand — and the
//! restore, with the daemon running: plugins and grants come back, the audit log is
//! kept, `--exclude-plugins` starts nothing, and bad or tampered backups change nothing.

mod common;

use std::time::Duration;

use common::*;

fn manifest(name: &str) -> String {
    format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n")
}

fn install(d: &Daemon, name: &str) {
    let pkg = d.package(name, &manifest(name), &bin("echo_plugin"), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
}

fn backups(d: &Daemon) -> Vec<serde_json::Value> {
    d.cli(&["--output", "json", "backup", "list"]).json()["backups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn names(d: &Daemon) -> Vec<String> {
    d.cli(&["--output", "json", "plugin", "list"]).json()["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn has_file_read(d: &Daemon, name: &str) -> String {
    d.cli(&["plugin", "invoke", name, "has-permission", "file_read"])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn restore_brings_back_plugins_and_grants_and_keeps_the_audit_log() {
    let d = Daemon::start();
    install(&d, "keeper");
    let list = backups(&d);
    assert_eq!(list.len(), 1, "one automatic backup before the install");
    assert_eq!(list[0]["reason"], "install");
    assert_eq!(
        int(&list[0]["plugins"]),
        0,
        "taken before the plugin existed"
    );

    d.cli(&["plugin", "approve", "keeper", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "keeper"]).ok();
    d.wait_running("keeper");
    let good = d
        .cli(&[
            "--output",
            "json",
            "backup",
            "create",
            "--comment",
            "known good",
        ])
        .json();
    let good_id = good["id"].as_str().unwrap().to_string();
    assert_eq!(good["plugins"], 1);
    assert_eq!(good["reason"], "manual");

    // The incident: keeper loses its grant and is disabled, a new plugin arrives.
    d.cli(&["plugin", "revoke-permission", "file_read", "keeper"])
        .ok();
    d.cli(&["plugin", "disable", "keeper"]).ok();
    install(&d, "intruder");
    assert_eq!(backups(&d).len(), 3);

    let out = d
        .cli(&[
            "--output",
            "json",
            "restore",
            "--yes",
            "--backup-id",
            &good_id,
            "--comment",
            "back to known good",
        ])
        .json();
    assert_eq!(out["plugins"], serde_json::json!(["keeper"]));
    assert_eq!(out["started"], serde_json::json!(["keeper"]));
    let safety = out["safety_backup_id"].as_str().unwrap().to_string();
    assert_eq!(names(&d), ["keeper"], "the intruder is not in the backup");
    assert!(
        !d.root().join("state/plugins/intruder").exists(),
        "its files are gone"
    );
    d.wait_running("keeper");
    assert_eq!(has_file_read(&d, "keeper"), "true", "the grant is back");

    // History is never rolled back: the revocation and the intruder's install stay.
    let actions = d.audit_actions(None);
    for a in ["permission.revoke", "plugin.install", "backup.restore"] {
        assert!(actions.iter().any(|(x, _)| x == a), "{a}: {actions:?}");
    }
    d.cli(&["verify", "system-integrity"]).ok();
    let list = backups(&d);
    assert!(
        list.iter()
            .any(|b| b["id"] == safety.as_str() && b["reason"] == "restore" && b["plugins"] == 2),
        "the state before the restore was backed up: {list:?}"
    );

    // --exclude-plugins: the same records, but nothing starts.
    let out = d
        .cli(&[
            "--output",
            "json",
            "restore",
            "--yes",
            "--backup-id",
            &good_id,
            "--exclude-plugins",
        ])
        .json();
    assert!(
        out.get("started").is_none(),
        "none started, so absent: {out}"
    );
    wait_until(Duration::from_secs(10), "keeper stopped", || {
        d.runtime_of("keeper") == "stopped"
    });
    let summary = &d.plugin_json("keeper")["summary"];
    assert_eq!(summary["state"], "PLUGIN_STATE_DISABLED");
    assert!(
        summary["state_reason"]
            .as_str()
            .unwrap()
            .contains("--verify-security"),
        "{summary}"
    );
    d.cli(&["plugin", "enable", "keeper", "--verify-security"])
        .ok();
    d.wait_running("keeper");
}

#[test]
fn unknown_hostile_or_tampered_backups_are_refused_and_change_nothing() {
    let d = Daemon::start();
    install(&d, "only");
    let id = d.cli(&["--output", "json", "backup", "create"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    install(&d, "later");

    for (bad, want) in [
        ("../../../etc/passwd", "is not a backup id"),
        ("19990101-000000-000", "no backup"),
        ("", "is not a backup id"),
    ] {
        let out = d.cli(&["restore", "--yes", "--backup-id", bad]);
        assert!(!out.status.success(), "{bad}");
        assert!(out.stderr.contains(want), "{bad}: {}", out.stderr);
    }
    let file = d.root().join(format!("state/backups/{id}.sqlite"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"\0");
    std::fs::write(&file, bytes).unwrap();
    let out = d.cli(&["restore", "--yes", "--backup-id", &id]);
    assert!(
        !out.status.success() && out.stderr.contains("was modified since it was taken"),
        "{}",
        out.stderr
    );
    assert_eq!(names(&d), ["later", "only"], "nothing changed");
    let failed = d
        .audit(None)
        .iter()
        .filter(|r| r["action"] == "backup.restore" && r["outcome"] == "OUTCOME_FAILED")
        .count();
    assert_eq!(failed, 4, "each refusal is audited");
}
