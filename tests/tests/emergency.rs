//! End to end: the emergency controls — disable-all (with and without core plugins),
//! revoke-all-permissions, safe mode across a restart, the security report, and
//! `plugin enable --verify-security` refusing a binary changed after install.

mod common;

use std::time::Duration;

use common::*;

fn manifest(name: &str, core: bool, permissions: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\ncore = {core}\n{permissions}"
    )
}

const FILE_READ: &str =
    "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n";

/// Installs the echo plugin as `name`, approves what it asks for and enables it.
fn install_running(d: &Daemon, name: &str, core: bool, permissions: &str) -> i32 {
    let pkg = d.package(
        name,
        &manifest(name, core, permissions),
        &bin("echo_plugin"),
        name,
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    if !permissions.is_empty() {
        d.cli(&["plugin", "approve", name, "--comment", "reviewed"])
            .ok();
    }
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name)
}

fn state_of(d: &Daemon, name: &str) -> String {
    short(&d.plugin_json(name)["summary"]["state"])
}

fn wait_gone(pid: i32) {
    wait_until(Duration::from_secs(15), "plugin process gone", || {
        !process_alive(pid)
    });
}

#[test]
fn disable_all_except_core_leaves_core_plugins_and_the_emergency_stops_them_too() {
    let d = Daemon::start();
    let core = install_running(&d, "corep", true, "");
    let plain = install_running(&d, "plain", false, "");

    let out = d
        .cli(&[
            "--output",
            "json",
            "plugin",
            "disable-all",
            "--except-core",
            "--comment",
            "suspicious traffic",
        ])
        .json();
    assert_eq!(out["disabled"], serde_json::json!(["plain"]));
    assert_eq!(out["kept"], serde_json::json!(["corep"]));
    wait_gone(plain);
    assert_eq!(state_of(&d, "plain"), "disabled");
    assert!(process_alive(core), "the core plugin keeps running");
    assert_eq!(d.runtime_of("corep"), "running");

    let out = d
        .cli(&[
            "emergency",
            "disable-all-plugins",
            "--comment",
            "compromise",
        ])
        .ok()
        .stdout
        .clone();
    assert!(out.contains("corep"), "{out}");
    wait_gone(core);
    assert_eq!(state_of(&d, "corep"), "disabled");
    let reason = d.plugin_json("corep")["summary"]["state_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("emergency: compromise"), "{reason}");
    let actions = d.audit_actions(None);
    let all = actions
        .iter()
        .filter(|(a, _)| a == "emergency.disable_all")
        .count();
    assert_eq!(all, 2, "{actions:?}");
    // Each disabled plugin has its own record, attributed to the admin.
    assert!(d
        .audit(Some("corep"))
        .iter()
        .any(|r| r["action"] == "plugin.disable" && r["actor"] == "uid=0(root)"));
}

#[test]
fn revoke_all_permissions_takes_effect_on_running_plugins_at_once() {
    let d = Daemon::start();
    install_running(&d, "reader", false, FILE_READ);
    let check = || {
        d.cli(&["plugin", "invoke", "reader", "has-permission", "file_read"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(check(), "true", "granted before the emergency");
    let out = d
        .cli(&[
            "--output",
            "json",
            "emergency",
            "revoke-all-permissions",
            "--comment",
            "contain",
        ])
        .json();
    assert_eq!(out["revoked"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(check(), "false", "the running plugin lost it");
    assert_eq!(
        d.plugin_json("reader")["permissions"][0]["status"],
        "PERMISSION_STATUS_REVOKED"
    );
    assert!(d
        .audit_actions(None)
        .contains(&("emergency.revoke_all".into(), "ok".into())));
}

#[test]
fn safe_mode_persists_across_restarts_and_no_plugin_starts_while_it_is_on() {
    let mut d = Daemon::start();
    let pid = install_running(&d, "steady", false, "");

    let on = d
        .cli(&[
            "--output",
            "json",
            "emergency",
            "enable-safe-mode",
            "--comment",
            "incident 7",
        ])
        .json();
    assert_eq!(on["enabled"], true);
    assert_eq!(on["plugins"], serde_json::json!(["steady"]));
    wait_gone(pid);
    assert_eq!(
        state_of(&d, "steady"),
        "enabled",
        "the plugin's own state is kept"
    );
    let refused = d.cli(&["plugin", "enable", "steady"]);
    assert!(
        !refused.status.success() && refused.stderr.contains("safe mode is on"),
        "{}",
        refused.stderr
    );

    d.restart();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        d.runtime_of("steady"),
        "stopped",
        "nothing starts in safe mode"
    );
    assert!(d.log().contains("safe mode is on"), "the daemon says why");
    let status = d
        .cli(&["--output", "json", "security", "plugin-status"])
        .json();
    assert_eq!(status["host"]["safe_mode"], true);
    let report = d
        .cli(&["--output", "json", "emergency", "security-report"])
        .json();
    assert_eq!(report["safe_mode"]["enabled"], true);
    assert_eq!(report["safe_mode"]["comment"], "incident 7");
    assert_eq!(report["integrity_ok"], true);
    assert_eq!(report["plugins"][0]["name"], "steady");
    let text = d.cli(&["emergency", "security-report"]).ok().stdout.clone();
    assert!(
        text.contains("safe mode") && text.contains("ON since"),
        "{text}"
    );

    let off = d
        .cli(&["--output", "json", "emergency", "disable-safe-mode"])
        .json();
    assert!(off.get("enabled").is_none(), "false, so absent: {off}");
    assert_eq!(off["plugins"], serde_json::json!(["steady"]));
    d.wait_running("steady");
    let actions = d.audit_actions(None);
    for a in [
        "emergency.safe_mode_on",
        "emergency.safe_mode_off",
        "emergency.security_report",
    ] {
        assert!(
            actions.contains(&(a.into(), "ok".into())),
            "{a}: {actions:?}"
        );
    }
}

#[test]
fn enable_verify_security_checks_the_pin_and_the_running_confinement() {
    let d = Daemon::start();
    let pkg = d.package(
        "guarded",
        &manifest("guarded", false, ""),
        &bin("echo_plugin"),
        "guarded",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();

    let out = d
        .cli(&[
            "--output",
            "json",
            "plugin",
            "enable",
            "guarded",
            "--verify-security",
        ])
        .json();
    let checks: Vec<(String, bool)> = out["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["ok"] == true))
        .collect();
    for want in [
        "plugin guarded",
        "host enforcement",
        "landlock",
        "cgroup",
        "seccomp",
        "no_new_privs",
        "capabilities",
        "namespaces",
    ] {
        assert!(
            checks.contains(&(want.to_string(), true)),
            "{want}: {checks:?}"
        );
    }
    assert_eq!(d.runtime_of("guarded"), "running");
    d.cli(&["plugin", "disable", "guarded"]).ok();

    // The installed binary changes after install: verification refuses to start it.
    let installed = d.root().join("state/plugins/guarded/1.0.0/guarded");
    let mut bytes = std::fs::read(&installed).unwrap();
    bytes.extend_from_slice(b"trojan");
    std::fs::write(&installed, bytes).unwrap();
    let refused = d.cli(&["plugin", "enable", "guarded", "--verify-security"]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("failed security verification")
            && refused.stderr.contains("changed: sha256"),
        "{}",
        refused.stderr
    );
    assert_eq!(state_of(&d, "guarded"), "disabled");
    assert_eq!(d.runtime_of("guarded"), "stopped");
    assert!(d
        .audit_actions(Some("guarded"))
        .contains(&("plugin.verify_security".into(), "denied".into())));
    let report = d
        .cli(&["--output", "json", "emergency", "security-report"])
        .json();
    assert!(
        report.get("integrity_ok").is_none(),
        "the report shows the tampering (false, so absent): {report}"
    );
}
