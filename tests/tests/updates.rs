//! End to end: `plexichat plugin update` — a newer version within the reviewed
//! permissions replaces the running one at once; one that asks for more stops until
//! the growth is approved; same-version binary swaps and downgrades are refused.

mod common;

use std::path::PathBuf;

use common::*;

const FILE_READ: &str = "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n";

fn manifest(version: &str, extra: &str) -> String {
    format!("name = \"upd\"\nversion = \"{version}\"\nentry = \"upd\"\n{FILE_READ}{extra}")
}

/// A package of the echo plugin whose binary differs by `salt` trailing bytes (an
/// ELF file runs the same with bytes appended; its SHA-256 differs).
fn package(d: &Daemon, dir: &str, manifest: &str, salt: &[u8]) -> PathBuf {
    let pkg = d.package(dir, manifest, &bin("echo_plugin"), "upd");
    let entry = pkg.join("upd");
    let mut bytes = std::fs::read(&entry).unwrap();
    bytes.extend_from_slice(salt);
    std::fs::write(&entry, bytes).unwrap();
    pkg
}

fn update(d: &Daemon, pkg: &std::path::Path) -> Cli {
    d.cli(&[
        "--output",
        "json",
        "plugin",
        "update",
        "upd",
        pkg.to_str().unwrap(),
    ])
}

fn summary(d: &Daemon) -> serde_json::Value {
    d.plugin_json("upd")["summary"].clone()
}

#[test]
fn updates_carry_reviewed_permissions_and_send_growth_back_to_review() {
    let d = Daemon::start();
    let v1 = package(&d, "v1", &manifest("1.0.0", ""), b"");
    d.cli(&["plugin", "install", v1.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "upd", "--comment", "ok"]).ok();
    d.cli(&["plugin", "enable", "upd"]).ok();
    let pid1 = d.wait_running("upd");
    let sha1 = summary(&d)["sha256"].as_str().unwrap().to_string();

    // Refused: the same version with another binary, an older version, another plugin.
    let swap = package(&d, "swap", &manifest("1.0.0", ""), b"evil");
    let out = update(&d, &swap);
    assert!(
        !out.status.success() && out.stderr.contains("different binary"),
        "{}",
        out.stderr
    );
    let old = package(&d, "old", &manifest("0.9.0", ""), b"");
    let out = update(&d, &old);
    assert!(
        !out.status.success() && out.stderr.contains("older than the installed"),
        "{}",
        out.stderr
    );
    let other = d.package(
        "other",
        &manifest("2.0.0", "").replace("\"upd\"", "\"other\""),
        &bin("echo_plugin"),
        "other",
    );
    let out = update(&d, &other);
    assert!(
        !out.status.success() && out.stderr.contains("not `upd`"),
        "{}",
        out.stderr
    );
    assert_eq!(summary(&d)["sha256"], sha1.as_str(), "nothing changed");
    assert_eq!(d.plugin_pid("upd"), Some(pid1), "still the same process");

    // Within what was reviewed (a narrower scope): pinned, restarted on the new
    // binary, the grant kept and shrunk with the request.
    let v11 = package(
        &d,
        "v1.1",
        &manifest("1.1.0", "").replace("/srv/reports", "/srv/reports/q1"),
        b"v1.1",
    );
    let out = update(&d, &v11).json();
    assert_eq!(out["previous_version"], "1.0.0");
    assert_eq!(out["carried_over"], serde_json::json!(["file_read"]));
    assert!(out.get("to_review").is_none(), "nothing, so absent: {out}");
    assert!(!out["backup_id"].as_str().unwrap().is_empty());
    let pid2 = d.wait_running("upd");
    assert_ne!(pid2, pid1, "the old version no longer runs");
    let s = summary(&d);
    assert_eq!(s["version"], "1.1.0");
    assert_ne!(s["sha256"], sha1.as_str());
    let check = d
        .cli(&["plugin", "invoke", "upd", "has-permission", "file_read"])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_eq!(check, "true");
    assert_eq!(
        d.plugin_json("upd")["permissions"][0]["granted_scope"],
        serde_json::json!(["/srv/reports/q1"]),
        "the grant never exceeds the new request"
    );

    // Growth: a wider file_read scope and a new permission go back to review.
    let grown = "\n[[permissions]]\nname = \"network_outbound\"\njustification = \"uploads\"\nscope = [\"api.example.com\"]\n";
    let v2 = package(
        &d,
        "v2",
        &manifest("2.0.0", grown).replace("/srv/reports", "/srv"),
        b"v2",
    );
    let out = update(&d, &v2).json();
    assert_eq!(
        out["to_review"],
        serde_json::json!(["file_read", "network_outbound"])
    );
    assert!(
        out.get("carried_over").is_none(),
        "nothing, so absent: {out}"
    );
    let s = summary(&d);
    assert_eq!(s["state"], "PLUGIN_STATE_DISABLED");
    assert_eq!(
        s["runtime"], "RUNTIME_PHASE_STOPPED",
        "the old version was stopped"
    );
    assert!(
        s["state_reason"]
            .as_str()
            .unwrap()
            .contains("awaiting review"),
        "{s}"
    );
    let pending = d.cli(&["--output", "json", "plugin", "pending"]).json();
    assert_eq!(pending["pending"].as_array().unwrap().len(), 2, "{pending}");
    let enable = d.cli(&["plugin", "enable", "upd"]);
    assert!(!enable.status.success(), "not before the review");

    d.cli(&[
        "plugin",
        "approve",
        "upd",
        "--comment",
        "wider scope reviewed",
    ])
    .ok();
    d.cli(&["plugin", "enable", "upd"]).ok();
    d.wait_running("upd");
    assert_eq!(summary(&d)["version"], "2.0.0");

    let reasons: Vec<String> = d.cli(&["--output", "json", "backup", "list"]).json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "update").count(),
        2,
        "a backup before each update that changed something, none for refusals: {reasons:?}"
    );
    let updates: Vec<String> = d
        .audit(Some("upd"))
        .iter()
        .filter(|r| r["action"] == "plugin.update")
        .map(|r| short(&r["outcome"]))
        .collect();
    assert_eq!(updates, ["failed", "failed", "failed", "ok", "ok"]);
}
