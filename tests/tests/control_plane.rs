//! End to end through the real daemon, CLI and hello plugin: install → review →
//! enable → invoke → events → disable, and the control plane's refusals.

mod common;

use std::time::Duration;

use broker_proto::admin::v1::{InvokeCommandRequest, NotificationKind, WatchNotificationsRequest};
use common::*;

fn install_hello(d: &Daemon) {
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_goes_from_directory_to_answering_and_back() {
    let d = Daemon::start();
    let mut admin = d.admin().await;
    let mut notifications = admin
        .watch_notifications(WatchNotificationsRequest {})
        .await
        .expect("watch notifications")
        .into_inner();
    install_hello(&d);
    let note = tokio::time::timeout(Duration::from_secs(5), notifications.message())
        .await
        .expect("admins are notified of the install")
        .expect("stream ok")
        .expect("a notification");
    assert_eq!(
        (note.kind(), note.plugin.as_str()),
        (NotificationKind::ApprovalRequired, "hello")
    );

    let pending = d.cli(&["--output", "json", "plugin", "pending"]).json();
    assert_eq!(pending["pending"][0]["plugin"], "hello");
    assert_eq!(
        pending["pending"][0]["permission"]["permission"],
        "database_read"
    );

    let refused = d.cli(&["plugin", "enable", "hello"]);
    assert!(!refused.status.success());
    assert!(
        refused.stderr.contains("database_read (pending)"),
        "{}",
        refused.stderr
    );
    assert_eq!(d.runtime_of("hello"), "stopped");

    d.cli(&[
        "plugin",
        "approve",
        "hello",
        "--comment",
        "reads only messages",
        "--expires-in",
        "30d",
    ])
    .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    let pid = d.wait_running("hello");
    assert!(process_alive(pid));

    let reply = admin
        .invoke_command(InvokeCommandRequest {
            plugin: "hello".into(),
            command: "greet".into(),
            args: b"Ada".to_vec(),
            timeout_ms: 5000,
        })
        .await
        .expect("greet answered")
        .into_inner();
    assert_eq!(reply.output, b"Hello, Ada!");

    let unknown = admin
        .invoke_command(InvokeCommandRequest {
            plugin: "hello".into(),
            command: "no-such-command".into(),
            args: vec![],
            timeout_ms: 5000,
        })
        .await
        .expect_err("an undeclared command is refused");
    // Refused by the supervisor against hello's [[commands]], before the plugin.
    assert_eq!(unknown.code(), tonic::Code::InvalidArgument, "{unknown:?}");
    assert!(
        unknown.message().contains("greet, has-permission, config"),
        "{unknown:?}"
    );

    let (published, reaction) = greeted_reaction(&mut admin, "hello").await;
    let body: serde_json::Value = serde_json::from_slice(&reaction.payload).unwrap();
    assert_eq!(body["reply_to"], published.as_str());

    d.cli(&["plugin", "disable", "hello"]).ok();
    wait_until(Duration::from_secs(10), "plugin process gone", || {
        !process_alive(pid)
    });
    assert_eq!(d.runtime_of("hello"), "stopped");
    let gone = admin
        .invoke_command(InvokeCommandRequest {
            plugin: "hello".into(),
            command: "greet".into(),
            args: vec![],
            timeout_ms: 1000,
        })
        .await
        .expect_err("a disabled plugin does not answer");
    assert_eq!(gone.code(), tonic::Code::Unavailable);

    let steps = d.audit_actions(Some("hello"));
    let expected = [
        ("plugin.install", "ok"),
        ("plugin.enable", "denied"),
        ("permission.approve", "ok"),
        ("plugin.enable", "ok"),
        ("plugin.start", "ok"),
        ("command.invoke", "ok"),
        ("plugin.disable", "ok"),
        ("plugin.stop", "ok"),
    ];
    let mut at = 0;
    for (action, outcome) in expected {
        let found = steps[at..]
            .iter()
            .position(|(a, o)| a == action && o == outcome)
            .unwrap_or_else(|| panic!("audit lacks {action}/{outcome} after step {at}: {steps:?}"));
        at += found + 1;
    }
    let all = d.audit(None);
    let publish = all
        .iter()
        .find(|r| r["action"] == "event.publish")
        .expect("publish audited");
    assert!(publish["detail"].to_string().contains("chat.message"));
    assert!(all
        .iter()
        .all(|r| !r["actor"].as_str().unwrap_or_default().is_empty()));

    // The JSON-line mirrors hold the same story.
    let system = std::fs::read_to_string(d.root().join("log/system/plugin_system.log")).unwrap();
    assert!(system.contains("\"action\":\"plugin.enable\""));
    let perms = std::fs::read_to_string(d.root().join("log/audit/permissions.log")).unwrap();
    assert!(perms.contains("\"action\":\"permission.approve\""));
    assert!(perms.contains("reads only messages"));
}

const GOOD: &str = r#"
name = "probe"
version = "1.0.0"
entry = "probe"
[[permissions]]
name = "file_read"
justification = "reads shared assets"
scope = ["/srv/assets"]
"#;

#[test]
fn malformed_manifests_are_refused_with_the_field_and_store_nothing() {
    let d = Daemon::start();
    let bin = bin("echo_plugin");
    let cases: &[(&str, String, &str)] = &[
        (
            "unknown-permission",
            GOOD.replace("file_read", "root_shell"),
            "permissions[0].name: unknown permission `root_shell`",
        ),
        (
            "no-justification",
            GOOD.replace("justification = \"reads shared assets\"", ""),
            "permissions[0].justification",
        ),
        (
            "bad-name",
            GOOD.replace("name = \"probe\"", "name = \"../Probe\""),
            "name: `../Probe` is not a valid plugin name",
        ),
        (
            "bad-version",
            GOOD.replace("1.0.0", "one"),
            "version: `one` is not a valid version",
        ),
        (
            "scope-mismatch",
            GOOD.replace("/srv/assets", "api.example.com"),
            "permissions[0].scope[0]",
        ),
        (
            "entry-outside",
            GOOD.replace("entry = \"probe\"", "entry = \"../../bin/sh\""),
            "entry: `../../bin/sh` leaves the plugin directory",
        ),
        (
            "entry-missing",
            GOOD.replace("entry = \"probe\"", "entry = \"nothere\""),
            "entry: `nothere` does not exist",
        ),
        (
            "unknown-field",
            format!("{GOOD}\nsetuid = true\n"),
            "unknown field `setuid`",
        ),
        ("not-toml", "name = ".to_string(), "plugin.toml:"),
    ];
    for (dir, manifest, expected) in cases {
        let pkg = d.package(dir, manifest, &bin, "probe");
        let out = d.cli(&["plugin", "install", pkg.to_str().unwrap()]);
        assert!(!out.status.success(), "{dir}: install should fail");
        assert!(
            out.stderr.contains(expected),
            "{dir}: expected `{expected}` in: {}",
            out.stderr
        );
    }
    // A symlinked entry is refused too: the CLI's packer sends no symlink.
    let pkg = d.package(
        "symlink-entry",
        &GOOD.replace("entry = \"probe\"", "entry = \"link\""),
        &bin,
        "probe",
    );
    std::os::unix::fs::symlink("/bin/sh", pkg.join("link")).unwrap();
    let out = d.cli(&["plugin", "install", pkg.to_str().unwrap()]);
    assert!(
        out.stderr
            .contains("`link` is a symbolic link (to /bin/sh)"),
        "{}",
        out.stderr
    );

    let list = d.cli(&["--output", "json", "plugin", "list"]).json();
    assert_eq!(
        list["plugins"].as_array().map(Vec::len).unwrap_or(0),
        0,
        "{list}"
    );
    let stored: Vec<_> = std::fs::read_dir(d.root().join("state/plugins"))
        .unwrap()
        .collect();
    assert!(
        stored.is_empty(),
        "nothing copied into the plugin store: {stored:?}"
    );

    // The same package with the manifest fixed installs: the refusals were about the manifest.
    let pkg = d.package("good", GOOD, &bin, "probe");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
}

#[test]
fn a_viewer_can_look_but_not_approve_and_the_refusal_is_audited() {
    const NOBODY: u32 = 65534;
    let d = Daemon::start_with(Settings {
        viewer_uids: vec![NOBODY],
        socket_mode: "0666",
        ..Settings::default()
    });
    install_hello(&d);
    let listed = d
        .cli_as(NOBODY, &["--output", "json", "plugin", "list"])
        .json();
    assert_eq!(listed["plugins"][0]["name"], "hello");

    let out = d.cli_as(
        NOBODY,
        &["plugin", "approve", "hello", "--comment", "sneaky"],
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
    assert_eq!(
        d.plugin_json("hello")["permissions"][0]["status"],
        "PERMISSION_STATUS_PENDING"
    );

    let refused = d
        .audit(None)
        .into_iter()
        .find(|r| r["action"] == "admin.refused")
        .expect("refusal audited");
    assert!(
        refused["actor"].as_str().unwrap().starts_with("uid=65534"),
        "{refused}"
    );
    assert!(refused["detail"].to_string().contains("approve"));
    let security =
        std::fs::read_to_string(d.root().join("log/security/plugin_security.log")).unwrap();
    assert!(security.contains("admin.refused"));

    // A uid with no role at all cannot even look.
    let d2 = Daemon::start_with(Settings {
        socket_mode: "0666",
        ..Settings::default()
    });
    let out = d2.cli_as(NOBODY, &["plugin", "list"]);
    assert!(out.stderr.contains("has no role"), "{}", out.stderr);
}

#[test]
fn approval_needs_a_comment_and_enable_lists_what_is_missing() {
    let d = Daemon::start();
    let manifest = r#"
name = "two"
version = "1.0.0"
entry = "two"
[[permissions]]
name = "database_read"
justification = "reads messages"
scope = ["messages"]
[[permissions]]
name = "network_outbound"
justification = "calls the weather API"
scope = ["api.weather.example:443"]
"#;
    let pkg = d.package("two", manifest, &bin("echo_plugin"), "two");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();

    let out = d.cli(&["plugin", "approve", "two", "--permission", "database_read"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("a comment is required"),
        "{}",
        out.stderr
    );
    assert_eq!(
        d.plugin_json("two")["permissions"][0]["status"],
        "PERMISSION_STATUS_PENDING"
    );

    d.cli(&[
        "plugin",
        "approve",
        "two",
        "--permission",
        "database_read",
        "--comment",
        "fine",
    ])
    .ok();
    d.cli(&[
        "plugin",
        "deny",
        "two",
        "--permission",
        "network_outbound",
        "--comment",
        "no egress",
    ])
    .ok();
    let out = d.cli(&["plugin", "enable", "two"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("network_outbound (denied)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("database_read"), "{}", out.stderr);
    assert_eq!(
        d.plugin_json("two")["summary"]["state"],
        "PLUGIN_STATE_DISABLED"
    );
}

#[test]
fn an_expired_grant_turns_false_while_running_and_blocks_enable() {
    let d = Daemon::start();
    install_hello(&d);
    d.cli(&[
        "plugin",
        "approve",
        "hello",
        "--comment",
        "short trial",
        "--expires-in",
        "4s",
    ])
    .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello");
    let ask = || {
        d.cli(&[
            "plugin",
            "invoke",
            "hello",
            "has-permission",
            "database_read",
        ])
        .ok()
        .stdout
        .trim()
        .to_string()
    };
    assert_eq!(ask(), "true");
    wait_until(Duration::from_secs(10), "grant expires", || {
        ask() == "false"
    });
    assert_eq!(
        d.plugin_json("hello")["permissions"][0]["status"],
        "PERMISSION_STATUS_EXPIRED"
    );

    d.cli(&["plugin", "disable", "hello"]).ok();
    let out = d.cli(&["plugin", "enable", "hello"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("database_read (expired)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_high_risk_permission_needs_two_different_admins() {
    const SECOND_ADMIN: u32 = 65534;
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    let manifest = r#"
name = "writer"
version = "1.0.0"
entry = "writer"
[[permissions]]
name = "file_write"
justification = "exports reports"
scope = ["/srv/reports"]
"#;
    let pkg = d.package("writer", manifest, &bin("echo_plugin"), "writer");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();

    d.cli(&["plugin", "approve", "writer", "--comment", "first look"])
        .ok();
    let pending = d.cli(&["plugin", "pending"]).ok().stdout.clone();
    assert!(pending.contains("1 of 2"), "{pending}");
    let p = &d.plugin_json("writer")["permissions"][0];
    assert_eq!(p["status"], "PERMISSION_STATUS_PENDING", "{p}");
    let out = d.cli(&["plugin", "enable", "writer"]);
    assert!(
        out.stderr.contains("file_write (pending)"),
        "{}",
        out.stderr
    );

    let again = d.cli(&["plugin", "approve", "writer", "--comment", "me again"]);
    assert!(!again.status.success());
    assert!(again.stderr.contains("different admin"), "{}", again.stderr);

    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "writer", "--comment", "second look"],
    )
    .ok();
    let p = &d.plugin_json("writer")["permissions"][0];
    assert_eq!(p["status"], "PERMISSION_STATUS_GRANTED", "{p}");
    assert_eq!(p["approvers"].as_array().map(Vec::len), Some(2), "{p}");
    d.cli(&["plugin", "enable", "writer"]).ok();
    let actions = d.audit_actions(Some("writer"));
    assert!(
        actions.contains(&("permission.approve_partial".into(), "ok".into())),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("permission.approve".into(), "denied".into())),
        "{actions:?}"
    );
}

#[test]
fn revoking_a_permission_takes_effect_on_running_plugins_at_once() {
    let d = Daemon::start();
    let reader = |name: &str| {
        format!(
            "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n[[permissions]]\nname = \"database_read\"\njustification = \"reads messages\"\nscope = [\"messages\"]\n"
        )
    };
    for name in ["one", "two"] {
        let pkg = d.package(name, &reader(name), &bin("echo_plugin"), name);
        d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
        d.cli(&["plugin", "approve", name, "--comment", "ok"]).ok();
        d.cli(&["plugin", "enable", name]).ok();
        d.wait_running(name);
    }
    let holds = |name: &str| {
        d.cli(&["plugin", "invoke", name, "has-permission", "database_read"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!((holds("one"), holds("two")), ("true".into(), "true".into()));

    let out = d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "one",
        "--comment",
        "incident 42",
    ]);
    assert!(
        out.ok().stdout.contains("revoked 1 grant"),
        "{}",
        out.stdout
    );
    assert_eq!(
        holds("one"),
        "false",
        "revoked at once for the running plugin"
    );
    assert_eq!(holds("two"), "true", "only the named plugin lost it");
    assert_eq!(
        d.plugin_json("one")["permissions"][0]["status"],
        "PERMISSION_STATUS_REVOKED"
    );

    let both = d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "one",
        "--all",
    ]);
    assert!(
        !both.status.success(),
        "a name and --all together are refused"
    );
    d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "--all",
        "--comment",
        "level 2",
    ])
    .ok();
    assert_eq!(holds("two"), "false");
    let revokes: Vec<_> = d
        .audit(None)
        .into_iter()
        .filter(|r| r["action"] == "permission.revoke")
        .collect();
    assert_eq!(revokes.len(), 2, "{revokes:?}");
    assert!(revokes[0]["detail"].to_string().contains("incident 42"));
    // A revoked grant cannot start the plugin again.
    d.cli(&["plugin", "disable", "one"]).ok();
    let out = d.cli(&["plugin", "enable", "one"]);
    assert!(
        out.stderr.contains("database_read (revoked)"),
        "{}",
        out.stderr
    );
}
