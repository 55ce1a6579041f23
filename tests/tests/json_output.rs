//! `--output json` is canonical protobuf JSON: every CLI command's answer, run against
//! a real daemon, decodes back into its message with the pbjson deserializer (which
//! refuses unknown fields and values of the wrong form). The commands come from the
//! CLI's own clap definition, so a new command without a case here fails the test.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use broker_proto::admin::v1 as api;
use clap::CommandFactory;
use common::*;

/// Commands that print no response message: the installers' generators, and the
/// package tools that run without a supervisor.
const NO_JSON: [&str; 4] = ["completions", "manpage", "plugin pack", "plugin contents"];

/// Every leaf subcommand of `plexichat`, as its words ("plugin list").
fn leaves(cmd: &clap::Command, prefix: &str, out: &mut BTreeSet<String>) {
    for sub in cmd.get_subcommands() {
        let name = if prefix.is_empty() {
            sub.get_name().to_string()
        } else {
            format!("{prefix} {}", sub.get_name())
        };
        if sub.has_subcommands() {
            leaves(sub, &name, out);
        } else {
            out.insert(name);
        }
    }
}

/// Runs commands and notes which leaves were covered.
struct Run<'a> {
    d: &'a Daemon,
    covered: BTreeSet<String>,
}

impl Run<'_> {
    /// `plexichat --output json WORDS... ARGS...`, decoded as `T`. `words` is the
    /// leaf as `leaves` names it.
    fn json<T: serde::de::DeserializeOwned>(&mut self, words: &str, args: &[&str]) -> T {
        self.covered.insert(words.to_string());
        let mut argv = vec!["--output", "json"];
        argv.extend(words.split(' '));
        argv.extend(args);
        let out = self.d.cli(&argv);
        println!("{words}: {} bytes of JSON", out.stdout.len());
        out.message()
    }

    /// A streaming command: its stdout lines as they come, until the child is killed.
    fn stream(&mut self, words: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        self.covered.insert(words.to_string());
        let mut argv = vec!["--output", "json"];
        argv.extend(words.split(' '));
        argv.extend(args);
        let mut child = std::process::Command::new(bin("plexichat"))
            .env("PLEXICHAT_SOCKET", &self.d.socket)
            .args(&argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the CLI");
        let rx = lines_of(child.stdout.take().expect("stdout"));
        // Give the stream time to be opened before anything it should see happens.
        std::thread::sleep(Duration::from_millis(300));
        (child, rx)
    }
}

/// The next line of a stream, decoded as `T`.
fn next_line<T: serde::de::DeserializeOwned>(rx: &mpsc::Receiver<String>, what: &str) -> T {
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("no {what} line within 10s"));
    serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{what} line is not canonical protobuf JSON ({e}): {line}"))
}

const RULE: &str =
    "\n[[alert]]\nname = \"denials\"\nkind = \"denials\"\nthreshold = 5\nwindow = \"1m\"\n";
const FILE_READ: &str = "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n";

fn echo_package(d: &Daemon, name: &str, permissions: &str) -> String {
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n{permissions}");
    let pkg = d.package(name, &manifest, &bin("echo_plugin"), name);
    pkg.to_str().expect("utf-8").to_string()
}

/// The hello example as version 0.2.0, for `plugin update`.
fn hello_v2(d: &Daemon) -> String {
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugin-sdk/examples/hello/plugin.toml"),
    )
    .expect("hello manifest")
    .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let pkg = d.package("hello-v2", &manifest, &example("hello"), "hello");
    pkg.to_str().expect("utf-8").to_string()
}

#[test]
fn every_command_prints_canonical_protobuf_json() {
    let d = Daemon::start_with(Settings {
        extra: RULE.to_string(),
        ..Settings::default()
    });
    let mut all = BTreeSet::new();
    leaves(&plexichat_supervisor::cli::Cli::command(), "", &mut all);
    let mut r = Run {
        d: &d,
        covered: BTreeSet::new(),
    };

    // Identity: uid 0 (root) is present, not left out as a default.
    let me: api::WhoAmIResponse = r.json("whoami", &[]);
    assert_eq!((me.uid, me.role()), (Some(0), api::Role::Admin), "{me:?}");
    let raw = d.cli(&["--output", "json", "whoami"]).json();
    assert_eq!(
        raw["uid"], 0,
        "an optional field set to 0 is present: {raw}"
    );
    assert_eq!(raw["role"], "ROLE_ADMIN", "enums by name: {raw}");
    assert!(raw.get("on_behalf_of").is_none(), "unset is absent: {raw}");

    // Notifications stream while plugins arrive.
    let (mut notes, note_lines) = r.stream("notifications watch", &[]);

    // Hello: install, review, enable.
    let hello = d.hello_package();
    // Declared settings for the `plugin config` commands: a plain one and a secret.
    let mut manifest = std::fs::read_to_string(hello.join("plugin.toml")).expect("manifest");
    manifest.push_str(
        "\n[[settings]]\nkey = \"greeting\"\ntype = \"string\"\ndefault = \"Hello\"\n\
         \n[[settings]]\nkey = \"token\"\ntype = \"string\"\nsecret = true\n",
    );
    std::fs::write(hello.join("plugin.toml"), manifest).expect("manifest with settings");
    let s: api::PluginSummary = r.json("plugin install", &[hello.to_str().expect("utf-8")]);
    assert_eq!(s.state(), api::PluginState::Disabled);
    let note: api::Notification = next_line(&note_lines, "notification");
    assert_eq!(
        note.kind(),
        api::NotificationKind::ApprovalRequired,
        "{note:?}"
    );
    let p: api::ListPendingResponse = r.json("plugin pending", &[]);
    assert_eq!(p.pending.len(), 1, "{p:?}");
    let a: api::DecisionResponse = r.json("plugin approve", &["hello", "--comment", "ok"]);
    assert_eq!(a.decided[0].status(), api::PermissionStatus::Granted);
    let _: api::EnablePluginResponse = r.json("plugin enable", &["hello"]);
    d.wait_running("hello");
    let l: api::ListPluginsResponse = r.json("plugin list", &[]);
    assert_eq!(l.plugins[0].runtime(), api::RuntimePhase::Running);
    let _: api::PluginDetail = r.json("plugin show", &["hello"]);
    let review: api::PluginReview = r.json("plugin review", &["hello"]);
    assert!(!review.permissions[0].allows.is_empty(), "{review:?}");

    // Publisher keys: one proposed then removed, one revoked.
    let mut fingerprints = Vec::new();
    for name in ["removed", "revoked"] {
        let key = d.root().join(format!("key-{name}"));
        let made = std::process::Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                key.to_str().expect("utf-8"),
            ])
            .output()
            .expect("ssh-keygen");
        assert!(made.status.success(), "{made:?}");
        let public = key.with_extension("pub");
        let k: api::TrustedKey = r.json(
            "trust add-key",
            &[
                public.to_str().expect("utf-8"),
                "--name",
                name,
                "--comment",
                "t",
            ],
        );
        assert_eq!(k.state(), api::TrustState::Proposed);
        fingerprints.push(k.fingerprint);
    }
    let keys: api::ListTrustedKeysResponse = r.json("trust list", &[]);
    assert_eq!(keys.keys.len(), 2);
    let removed: api::TrustedKey = r.json("trust remove", &[&fingerprints[0], "--comment", "t"]);
    assert_eq!(removed.state(), api::TrustState::Removed);
    let revoked: api::TrustedKey = r.json("trust revoke", &[&fingerprints[1], "--comment", "t"]);
    assert_eq!(revoked.state(), api::TrustState::Revoked);
    let db = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/advisory-db");
    let imported: api::ImportAdvisoriesResponse =
        r.json("advisories import", &[db.to_str().expect("utf-8")]);
    assert_eq!(imported.database.map(|d| d.advisories), Some(3));
    // A Python plugin's pins, and a repin of its runtime.
    let py = d.python_package(
        "hello-py",
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugin-sdk-python/examples/hello"),
    );
    let _: api::PluginSummary = r.json("plugin install", &[py.to_str().expect("utf-8")]);
    let shown: api::PluginDetail = r.json("plugin show", &["hello-py"]);
    let pinned = shown.plugin_runtime.expect("a runtime");
    assert_eq!(pinned.kind(), api::RuntimeKind::Python3);
    assert!(
        pinned.files.iter().any(|f| f.path == "main.py"),
        "{pinned:?}"
    );
    let repinned: api::PluginDetail = r.json(
        "plugin repin-runtime",
        &["hello-py", "--comment", "same python"],
    );
    assert_eq!(
        repinned.plugin_runtime.map(|p| p.interpreter_sha256),
        Some(pinned.interpreter_sha256)
    );
    // A trial of the (not running) Python plugin: its report.
    let trial: api::TrialReport = r.json("plugin trial", &["hello-py", "--duration", "1s"]);
    assert!(trial.confined && !trial.crashed, "{trial:?}");

    // Events both ways: the watcher sees hello's answer, its payload in base64.
    let (mut watch, event_lines) = r.stream("event watch", &["plugin.hello.*"]);
    let published: api::PublishEventResponse =
        r.json("event publish", &["chat.message", "hi there"]);
    assert_eq!(published.delivered_to, ["hello"]);
    let event: api::PluginEvent = next_line(&event_lines, "event");
    let payload: serde_json::Value =
        serde_json::from_slice(&event.payload).expect("hello emits JSON");
    assert_eq!(payload["text"], "Hello from hello!", "{payload}");
    let _ = watch.kill();
    let _ = watch.wait();

    // A command's output is bytes: base64 in JSON, the plugin's text once decoded.
    let greet: api::InvokeCommandResponse = r.json("plugin invoke", &["hello", "greet", "Ada"]);
    let text = String::from_utf8(greet.output).expect("text output");
    assert!(text.contains("Ada"), "{text}");

    // Declared settings: the form, a value set, read and unset; a secret's value is
    // absent from every answer, its `is_set` present.
    let form: api::PluginSettings = r.json("plugin config show", &["hello"]);
    let keys: Vec<&str> = form.settings.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["greeting", "token"], "{form:?}");
    let set: api::PluginSetting = r.json("plugin config set", &["hello", "greeting", "Hi"]);
    assert_eq!(
        (set.is_set, set.value.as_deref()),
        (true, Some("Hi")),
        "{set:?}"
    );
    let got: api::PluginSetting = r.json("plugin config get", &["hello", "greeting"]);
    assert_eq!(got.value.as_deref(), Some("Hi"), "{got:?}");
    let unset: api::PluginSetting = r.json("plugin config unset", &["hello", "greeting"]);
    assert_eq!(
        (unset.is_set, unset.value.as_deref()),
        (false, Some("Hello"))
    );
    d.cli(&["plugin", "config", "set", "hello", "token", "t0ken-value"])
        .ok();
    let secret = d
        .cli(&[
            "--output", "json", "plugin", "config", "get", "hello", "token",
        ])
        .json();
    assert_eq!(secret["is_set"], true, "{secret}");
    assert!(
        secret.get("value").is_none(),
        "a secret's value is absent: {secret}"
    );

    // A second plugin to deny, send back and remove.
    let two = echo_package(&d, "two", FILE_READ);
    let _: api::PluginSummary = r.json("plugin install", &[&two]);
    let n: api::DecisionResponse = r.json("plugin deny", &["two", "--comment", "no"]);
    assert_eq!(n.decided[0].status(), api::PermissionStatus::Denied);
    let s: api::PluginSummary = r.json("plugin request-changes", &["two", "--comment", "fix"]);
    assert_eq!(s.state(), api::PluginState::ChangesRequested);
    let _: api::RemovePluginResponse = r.json("plugin remove", &["two", "--yes"]);
    let _ = notes.kill();
    let _ = notes.wait();

    // An alert, raised by denials, listed and acknowledged.
    let noisy = echo_package(&d, "noisy", "");
    d.cli(&["plugin", "install", &noisy]).ok();
    d.cli(&["plugin", "enable", "noisy"]).ok();
    d.wait_running("noisy");
    d.cli(&["plugin", "invoke", "noisy", "deny-flood", "1"])
        .ok();
    let mut alerts = api::ListAlertsResponse::default();
    wait_until(Duration::from_secs(10), "the denials alert", || {
        alerts = r.json("security alerts", &[]);
        !alerts.alerts.is_empty()
    });
    let id = alerts.alerts[0].id.to_string();
    let acked: api::Alert = r.json("security ack-alert", &[&id, "--comment", "seen"]);
    assert!(acked.acknowledged_at_ms > 0);

    let revoked: api::RevokeResponse = r.json(
        "plugin revoke-permission",
        &["database_read", "hello", "--comment", "x"],
    );
    assert_eq!(revoked.revoked.len(), 1);

    // The audit trail: detail is an object, outcomes are names, unset is absent.
    let audit: api::AuditResponse = r.json("audit plugins", &["--plugin", "hello"]);
    let install = audit
        .records
        .iter()
        .find(|a| a.action == "plugin.install")
        .expect("install audited");
    assert_eq!(install.outcome(), api::Outcome::Ok);
    let raw = d
        .cli(&[
            "audit",
            "plugins",
            "--plugin",
            "hello",
            "--output-format",
            "json",
        ])
        .json();
    let record = raw["records"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["action"] == "plugin.install"))
        .expect("install record")
        .clone();
    assert!(
        record["detail"].is_object(),
        "detail is an object: {record}"
    );
    assert_eq!(record["outcome"], "OUTCOME_OK", "{record}");
    assert!(record["id"].is_string(), "int64 as a string: {record}");
    assert!(
        record.get("on_behalf_of").is_none(),
        "unset is absent: {record}"
    );
    r.covered.remove("audit plugins");
    let _: api::AuditReportResponse = r.json("audit plugins", &["--report", "monthly"]);

    let _: api::SecurityStatusResponse = r.json("security plugin-status", &[]);
    let v: api::VerifyIntegrityResponse = r.json("verify system-integrity", &[]);
    assert!(v.ok, "{v:?}");
    let m: api::MonitorResponse = r.json("monitor plugins", &["--interval", "10ms"]);
    let installed: api::ListPluginsResponse = r.json("plugin list", &[]);
    assert_eq!(
        m.plugins.len(),
        installed.plugins.len(),
        "one row per plugin"
    );
    let _: api::ReloadConfigResponse = r.json("config reload", &[]);

    // Backups and a restore of the state they hold.
    let b: api::BackupInfo = r.json("backup create", &["--comment", "json"]);
    let list: api::ListBackupsResponse = r.json("backup list", &[]);
    assert!(list.backups.iter().any(|x| x.id == b.id));
    let restored: api::RestoreBackupResponse = r.json("restore", &["--yes", "--backup-id", &b.id]);
    assert_eq!(restored.restored.map(|x| x.id), Some(b.id));
    d.wait_running("hello");

    let u: api::UpdatePluginResponse = r.json("plugin update", &["hello", &hello_v2(&d)]);
    assert_eq!(u.previous_version, "0.1.0");
    let _: api::PluginSummary = r.json("plugin disable", &["hello"]);
    let _: api::DisableAllResponse = r.json("plugin disable-all", &[]);

    // Emergency controls.
    let _: api::DisableAllResponse = r.json("emergency disable-all-plugins", &[]);
    let _: api::RevokeResponse = r.json("emergency revoke-all-permissions", &[]);
    let on: api::SafeModeStatus = r.json("emergency enable-safe-mode", &["--comment", "t"]);
    assert!(on.enabled);
    let _: api::SecurityReportResponse = r.json("emergency security-report", &[]);
    let off: api::SafeModeStatus = r.json("emergency disable-safe-mode", &[]);
    assert!(!off.enabled);

    // Every command of the CLI has its case (or prints no message at all).
    let expected: BTreeSet<String> = all
        .iter()
        .filter(|c| !NO_JSON.contains(&c.as_str()))
        .cloned()
        .collect();
    let missing: Vec<_> = expected.difference(&r.covered).collect();
    println!(
        "{} commands decoded, of {} in the CLI",
        r.covered.len(),
        all.len()
    );
    assert!(
        missing.is_empty(),
        "commands without a JSON case here: {missing:?}"
    );
    let unknown: Vec<_> = r.covered.difference(&all).collect();
    assert!(
        unknown.is_empty(),
        "cases for commands the CLI lacks: {unknown:?}"
    );
}

#[test]
fn output_that_is_not_the_message_is_refused_by_the_decoder() {
    // The decoder the test above relies on refuses what it must.
    let unknown = serde_json::from_str::<api::PluginSummary>(r#"{"name":"a","colour":"red"}"#);
    assert!(unknown.is_err(), "an unknown field is refused");
    let number = serde_json::from_str::<api::PluginSummary>(r#"{"state":"enabled"}"#);
    assert!(
        number.is_err(),
        "an enum by a name it does not have is refused"
    );
    let bytes = serde_json::from_str::<api::PluginEvent>(r#"{"payload":[104,105]}"#);
    assert!(bytes.is_err(), "bytes as an integer array are refused");
    let ok = serde_json::from_str::<api::PluginEvent>(r#"{"payload":"aGk=","timestamp_ms":"5"}"#)
        .expect("canonical");
    assert_eq!((&ok.payload[..], ok.timestamp_ms), (&b"hi"[..], 5));
}
