//! End to end: the administrator's approval conditions — a narrower scope than
//! requested, and sending a plugin back to its author.

mod common;

use common::*;

fn files_manifest(name: &str, scope: &std::path::Path) -> String {
    format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n\n[[permissions]]\nname = \"file_read\"\njustification = \"reads shared reports\"\nscope = [\"{}\"]\n\n[[permissions]]\nname = \"network_outbound\"\njustification = \"uploads summaries\"\nscope = [\"api.example.com\"]\n",
        scope.display()
    )
}

fn invoke(d: &Daemon, plugin: &str, command: &str, args: &str) -> String {
    d.cli(&["plugin", "invoke", plugin, command, args])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn an_approval_can_narrow_the_scope_but_never_widen_it() {
    let d = Daemon::start();
    let shared = d.root().join("shared");
    for sub in ["reports", "payroll"] {
        std::fs::create_dir_all(shared.join(sub)).unwrap();
        std::fs::write(shared.join(sub).join("f.txt"), sub).unwrap();
    }
    let pkg = d.package(
        "files",
        &files_manifest("files", &shared),
        &bin("files_plugin"),
        "files",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    let reports = shared.join("reports");
    let reports = reports.to_str().unwrap();

    // --scope names exactly one permission.
    let out = d.cli(&[
        "plugin",
        "approve",
        "files",
        "--comment",
        "x",
        "--scope",
        reports,
    ]);
    assert!(
        !out.status.success() && out.stderr.contains("exactly one"),
        "{}",
        out.stderr
    );
    // Wider than, or beside, the request: refused, nothing granted.
    for bad in ["/srv", "/etc/passwd"] {
        let out = d.cli(&[
            "plugin",
            "approve",
            "files",
            "--permission",
            "file_read",
            "--comment",
            "x",
            "--scope",
            bad,
        ]);
        assert!(
            !out.status.success() && out.stderr.contains("only narrow"),
            "{bad}: {}",
            out.stderr
        );
    }
    let perms = &d.plugin_json("files")["permissions"];
    assert!(
        perms
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "PERMISSION_STATUS_PENDING"),
        "{perms}"
    );

    // Within the request: granted as narrowed, and enforced as narrowed.
    d.cli(&[
        "plugin",
        "approve",
        "files",
        "--permission",
        "file_read",
        "--comment",
        "reports only",
        "--scope",
        reports,
    ])
    .ok();
    d.cli(&[
        "plugin",
        "approve",
        "files",
        "--permission",
        "network_outbound",
        "--comment",
        "ok",
    ])
    .ok();
    let show = d.plugin_json("files");
    let read = show["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["permission"] == "file_read")
        .unwrap()
        .clone();
    assert_eq!(
        read["granted_scope"],
        serde_json::json!([reports]),
        "{read}"
    );
    assert_eq!(
        read["requested_scope"],
        serde_json::json!([shared.to_str().unwrap()])
    );
    d.cli(&["plugin", "enable", "files"]).ok();
    d.wait_running("files");
    let granted = shared.join("reports/f.txt");
    let beside = shared.join("payroll/f.txt");
    assert_eq!(
        invoke(&d, "files", "read", granted.to_str().unwrap()),
        "reports"
    );
    let out = invoke(&d, "files", "read", beside.to_str().unwrap());
    assert!(out.starts_with("ERR PermissionDenied"), "{out}");
}

#[test]
fn request_changes_sends_a_plugin_back_and_blocks_it_until_it_changes() {
    let d = Daemon::start();
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    let out = d.cli(&["plugin", "request-changes", "hello"]);
    assert!(
        !out.status.success() && out.stderr.contains("comment"),
        "{}",
        out.stderr
    );
    let out = d
        .cli(&[
            "plugin",
            "request-changes",
            "hello",
            "--comment",
            "explain the database read",
        ])
        .ok()
        .stdout
        .clone();
    assert!(out.contains("changes_requested"), "{out}");
    let summary = &d.plugin_json("hello")["summary"];
    assert_eq!(summary["state"], "PLUGIN_STATE_CHANGES_REQUESTED");
    assert!(summary["state_reason"]
        .as_str()
        .unwrap()
        .contains("explain the database read"));

    let out = d.cli(&["plugin", "approve", "hello", "--comment", "fine"]);
    assert!(
        !out.status.success() && out.stderr.contains("sent back to its author"),
        "{}",
        out.stderr
    );
    let out = d.cli(&["plugin", "enable", "hello"]);
    assert!(
        !out.status.success() && out.stderr.contains("requested changes"),
        "{}",
        out.stderr
    );
    let actions = d.audit_actions(Some("hello"));
    assert!(
        actions.contains(&("plugin.request_changes".into(), "ok".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("plugin.enable".into(), "denied".into())),
        "{actions:?}"
    );
}

#[test]
fn grants_about_to_expire_are_listed_and_show_their_expiry() {
    let d = Daemon::start();
    let shared = d.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let pkg = d.package(
        "files",
        &files_manifest("files", &shared),
        &bin("files_plugin"),
        "files",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&[
        "plugin",
        "approve",
        "files",
        "--permission",
        "file_read",
        "--comment",
        "short",
        "--expires-in",
        "10d",
    ])
    .ok();
    d.cli(&[
        "plugin",
        "approve",
        "files",
        "--permission",
        "network_outbound",
        "--comment",
        "long",
        "--expires-in",
        "60d",
    ])
    .ok();

    let soon = d
        .cli(&[
            "--output",
            "json",
            "plugin",
            "pending",
            "--expiring-within",
            "14d",
        ])
        .json();
    let listed: Vec<&str> = soon["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["permission"]["permission"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["file_read"], "{soon}");
    let expires = int(&soon["pending"][0]["permission"]["expires_at_ms"]);
    let in_days = (expires - now_ms()) as f64 / 86_400_000.0;
    assert!((9.9..=10.0).contains(&in_days), "{in_days}");
    let both = d
        .cli(&[
            "--output",
            "json",
            "plugin",
            "pending",
            "--expiring-within",
            "61d",
        ])
        .json();
    assert_eq!(both["pending"].as_array().unwrap().len(), 2);
    let table = d
        .cli(&["plugin", "pending", "--expiring-within", "14d"])
        .ok()
        .stdout
        .clone();
    assert!(
        table.contains("file_read") && !table.contains("network_outbound"),
        "{table}"
    );
    // Nothing is pending review any more.
    let pending = d.cli(&["plugin", "pending"]).ok().stdout.clone();
    assert!(
        pending.contains("no permission requests pending"),
        "{pending}"
    );
    // `plugin show` shows each grant's expiry.
    let show = d.cli(&["plugin", "show", "files"]).ok().stdout.clone();
    assert!(show.contains("EXPIRES"), "{show}");
    for perm in ["file_read", "network_outbound"] {
        let line = show.lines().find(|l| l.starts_with(perm)).unwrap();
        assert!(
            line.split_whitespace()
                .any(|w| w.contains('T') && w.ends_with('Z')),
            "{line}"
        );
    }
}

#[test]
fn a_grant_expiring_while_the_daemon_runs_is_recorded_and_stops_working() {
    let d = Daemon::start();
    let shared = d.root().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("r.txt"), "report").unwrap();
    let pkg = d.package(
        "files",
        &files_manifest("files", &shared),
        &bin("files_plugin"),
        "files",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&[
        "plugin",
        "approve",
        "files",
        "--comment",
        "trial",
        "--expires-in",
        "3s",
    ])
    .ok();
    d.cli(&["plugin", "enable", "files"]).ok();
    d.wait_running("files");
    let file = shared.join("r.txt");
    assert_eq!(
        invoke(&d, "files", "read", file.to_str().unwrap()),
        "report"
    );
    wait_until(
        std::time::Duration::from_secs(10),
        "the expiry record",
        || {
            d.audit_actions(Some("files"))
                .iter()
                .any(|(a, _)| a == "permission.expired")
        },
    );
    let out = invoke(&d, "files", "read", file.to_str().unwrap());
    assert!(out.starts_with("ERR PermissionDenied"), "{out}");
    let expired = d
        .audit(Some("files"))
        .into_iter()
        .filter(|r| r["action"] == "permission.expired")
        .count();
    assert_eq!(expired, 2, "file_read and network_outbound, once each");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn the_monthly_report_counts_calls_denials_and_incidents_per_plugin() {
    let d = Daemon::start();
    let pkg = d.package(
        "files",
        "name = \"files\"\nversion = \"1.0.0\"\nentry = \"files\"\n",
        &bin("files_plugin"),
        "files",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "files"]).ok();
    d.wait_running("files");
    assert_eq!(invoke(&d, "files", "write", "/data/a.txt=hello"), "5");
    assert_eq!(invoke(&d, "files", "read", "/data/a.txt"), "hello");
    for _ in 0..3 {
        let out = invoke(&d, "files", "read", "/etc/hostname");
        assert!(out.starts_with("ERR PermissionDenied"), "{out}");
    }

    // A plugin that crashes at start: its crashes are incidents.
    let pkg = d.package(
        "crasher",
        "name = \"crasher\"\nversion = \"1.0.0\"\nentry = \"crasher\"\n",
        &bin("crasher"),
        "crasher",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "crasher"]).ok();
    wait_until(std::time::Duration::from_secs(10), "a crash", || {
        d.audit_actions(Some("crasher"))
            .iter()
            .any(|(a, _)| a == "plugin.crash")
    });

    let v = d
        .cli(&[
            "audit",
            "plugins",
            "--report",
            "monthly",
            "--output-format",
            "json",
        ])
        .json();
    let crasher = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == "crasher")
        .unwrap()
        .clone();
    assert!(int(&crasher["incidents"]) >= 1, "{crasher}");
    assert!(
        int(&crasher["incidents_by_kind"]["plugin.crash"]) >= 1,
        "{crasher}"
    );
    let this_month = {
        let out = d
            .cli(&["audit", "plugins", "--report", "monthly"])
            .ok()
            .stdout
            .clone();
        assert!(out.contains("PLUGIN") && out.contains("files"), "{out}");
        out
    };
    assert!(
        this_month.starts_with("audit report for 20"),
        "{this_month}"
    );
    let files = v["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == "files")
        .unwrap()
        .clone();
    assert_eq!(int(&files["calls"]), 5, "{files}");
    assert_eq!(int(&files["permission_use"]["file_write"]), 1, "{files}");
    assert_eq!(int(&files["permission_use"]["file_read"]), 1, "{files}");
    assert_eq!(int(&files["denials"]), 3, "{files}");
    assert_eq!(
        int(&files["denials_by_permission"]["file_read"]),
        3,
        "{files}"
    );
    assert_eq!(int(&files["incidents"]), 0, "{files}");

    // Another month has nothing; a malformed month is refused.
    let empty = d
        .cli(&[
            "audit",
            "plugins",
            "--report",
            "monthly",
            "--month",
            "2020-01",
            "--output-format",
            "json",
        ])
        .json();
    assert!(
        empty.get("plugins").is_none(),
        "no plugins, so absent: {empty}"
    );
    let bad = d.cli(&[
        "audit", "plugins", "--report", "monthly", "--month", "2020-13",
    ]);
    assert!(
        !bad.status.success() && bad.stderr.contains("1-12"),
        "{}",
        bad.stderr
    );
}

#[test]
fn verify_system_integrity_names_what_was_tampered_with() {
    let d = Daemon::start_with(Settings {
        own_policies: true,
        ..Settings::default()
    });
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();

    let clean = d
        .cli(&["--output", "json", "verify", "system-integrity"])
        .json();
    assert_eq!(clean["ok"], true, "{clean}");
    let names: Vec<&str> = clean["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in ["plugin hello", "audit chain", "store"] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("policy ") && n.ends_with("permissions.toml")),
        "{names:?}"
    );

    // Tamper with an audit record, the installed binary and a policy file.
    let db = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    let id: i64 = db
        .query_row(
            "SELECT min(id) FROM audit_log WHERE action = 'permission.approve'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    db.execute(
        "UPDATE audit_log SET outcome = 'denied' WHERE id = ?1",
        [id],
    )
    .unwrap();
    let binary = d.root().join("state/plugins/hello/0.1.0/hello");
    let mut bytes = std::fs::read(&binary).unwrap();
    bytes.push(0);
    std::fs::write(&binary, bytes).unwrap();
    let policy = d.root().join("policies/permissions.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{text}\n# edited\n")).unwrap();

    let out = d.cli(&["verify", "system-integrity"]);
    assert!(!out.status.success(), "exit status says it failed");
    for named in ["plugin hello", "audit chain", "permissions.toml"] {
        assert!(
            out.stderr.contains(named),
            "{named} not named: {}",
            out.stderr
        );
    }
    assert!(
        out.stdout.contains(&format!("record {id} was changed")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("changed since the supervisor loaded it"),
        "{}",
        out.stdout
    );
    let store_line = out.stdout.lines().find(|l| l.starts_with("store")).unwrap();
    assert!(store_line.contains("ok"), "{store_line}");
}
