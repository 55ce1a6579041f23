//! End to end: a plugin's declared `[[settings]]` and `[[commands]]` — defaults seen
//! by the plugin, values set and checked by the operator, secrets never shown, logged
//! or audited, values kept across a restart and pruned by an update, and undeclared
//! commands refused before they reach the plugin.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const SECRET: &str = "Zq9-s3cret-token-77";

/// The hello example's binary (`config KEY` reads a config key, `config KEY=VALUE`
/// writes one) under a manifest that declares settings and two of its commands.
fn manifest(version: &str, settings: &str) -> String {
    format!(
        r#"name = "tuned"
version = "{version}"
entry = "tuned"
{settings}
[[commands]]
name = "greet"
description = "Says hello"
arguments = [{{ name = "name", description = "whom to greet" }}]

[[commands]]
name = "config"
description = "Reads KEY or writes KEY=VALUE"
arguments = [{{ name = "key", required = true }}]
"#
    )
}

const SETTINGS_V1: &str = r#"
[[settings]]
key = "limit"
type = "integer"
default = 5
description = "How many at most"

[[settings]]
key = "mode"
type = "enum"
choices = ["fast", "safe"]
default = "safe"

[[settings]]
key = "api_token"
type = "string"
secret = true
description = "Token for the upstream API"
"#;

/// Version 2: `limit` becomes a boolean, `mode` is gone, `api_token` stays.
const SETTINGS_V2: &str = r#"
[[settings]]
key = "limit"
type = "boolean"
default = true

[[settings]]
key = "api_token"
type = "string"
secret = true
"#;

fn package(d: &Daemon, dir: &str, manifest: &str) -> PathBuf {
    d.package(dir, manifest, &example("hello"), "tuned")
}

/// What the plugin itself reads for `key` through GetConfig.
fn plugin_sees(d: &Daemon, key: &str) -> String {
    d.cli(&["plugin", "invoke", "tuned", "config", key])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn config(d: &Daemon, args: &[&str]) -> Cli {
    let mut all = vec!["plugin", "config"];
    all.extend_from_slice(args);
    d.cli(&all)
}

/// Every text the supervisor wrote where an operator or a log shipper reads: its own
/// log, every file under log_dir (audit and security logs, plugin logs).
fn logged_text(d: &Daemon) -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    let mut out = d.log();
    walk(&d.dir.path().join("log"), &mut out);
    out
}

#[test]
fn declared_settings_reach_the_plugin_and_secrets_stay_hidden() {
    let mut d = Daemon::start();
    let v1 = package(&d, "v1", &manifest("1.0.0", SETTINGS_V1));
    d.cli(&["plugin", "install", v1.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "tuned"]).ok();
    d.wait_running("tuned");

    // Defaults are what the plugin reads when nothing was set.
    assert_eq!(plugin_sees(&d, "limit"), "5");
    assert_eq!(plugin_sees(&d, "mode"), "safe");
    assert_eq!(plugin_sees(&d, "api_token"), "", "a secret has no default");

    // Set, seen by the running plugin without a restart.
    let set = config(&d, &["set", "tuned", "limit", "42"]);
    assert!(
        set.ok().stdout.contains("limit = 42 (set)"),
        "{}",
        set.stdout
    );
    assert_eq!(plugin_sees(&d, "limit"), "42");

    // A value that does not fit is refused naming key and type, and changes nothing.
    let bad = config(&d, &["set", "tuned", "limit", "many"]);
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("setting `limit`") && bad.stderr.contains("integer"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("invalid argument"), "{}", bad.stderr);
    let bad = config(&d, &["set", "tuned", "mode", "slow"]);
    assert!(bad.stderr.contains("one of fast, safe"), "{}", bad.stderr);
    let bad = config(&d, &["set", "tuned", "colour", "red"]);
    assert!(
        bad.stderr.contains("declares no setting `colour`")
            && bad.stderr.contains("limit, mode, api_token"),
        "{}",
        bad.stderr
    );
    assert_eq!(plugin_sees(&d, "limit"), "42");
    assert_eq!(plugin_sees(&d, "mode"), "safe");
    assert_eq!(
        config(&d, &["get", "tuned", "limit"]).ok().stdout.trim(),
        "42"
    );

    // The plugin may not overwrite what the operator owns; its own keys still work.
    let own = d.cli(&["plugin", "invoke", "tuned", "config", "limit=7"]);
    assert!(
        !own.status.success() && own.stderr.contains("declared setting"),
        "{}",
        own.stderr
    );
    assert_eq!(plugin_sees(&d, "limit"), "42");
    d.cli(&["plugin", "invoke", "tuned", "config", "scratch=1"])
        .ok();
    assert_eq!(plugin_sees(&d, "scratch"), "1");

    // A secret: the plugin reads it, nobody else sees it.
    // Through stdin, as an operator keeps a secret out of the process list.
    let mut set = std::process::Command::new(bin("plexichat"))
        .env("PLEXICHAT_SOCKET", &d.socket)
        .args(["plugin", "config", "set", "tuned", "api_token", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(set.stdin.take().unwrap(), "{SECRET}").unwrap();
    let out = set.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(SECRET));
    assert_eq!(plugin_sees(&d, "api_token"), SECRET);
    let shown = config(&d, &["show", "tuned"]).ok().stdout.clone();
    println!("{shown}");
    assert!(
        shown.contains("(secret: set)") && !shown.contains(SECRET),
        "{shown}"
    );
    assert!(shown.contains("enum(fast|safe)"), "{shown}");
    let json = d
        .cli(&["--output", "json", "plugin", "config", "show", "tuned"])
        .json();
    let token = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "api_token")
        .unwrap()
        .clone();
    // Canonical protobuf JSON with the proto's field names (preserve_proto_field_names).
    assert!(token["is_set"] == true, "{token}");
    assert!(token["value"].is_null(), "{token}");
    assert!(!json.to_string().contains(SECRET));
    let got = config(&d, &["get", "tuned", "api_token"])
        .ok()
        .stdout
        .clone();
    assert_eq!(got.trim(), "(secret: set)");

    // Audited, with the secret's value nowhere in the trail or in any log file.
    let audit = d.audit(Some("tuned"));
    let changes: Vec<_> = audit
        .iter()
        .filter(|r| r["action"] == "plugin.setting_set")
        .collect();
    assert!(changes
        .iter()
        .any(|r| short(&r["outcome"]) == "ok" && r["after"] == "42"));
    assert!(changes
        .iter()
        .any(|r| short(&r["outcome"]) == "ok" && r["after"] == "(secret: set)"));
    assert!(changes.iter().any(|r| short(&r["outcome"]) == "denied"));
    let trail = serde_json::to_string(&d.audit(None)).unwrap();
    assert!(!trail.contains(SECRET), "secret in the audit trail");
    let logged = logged_text(&d);
    assert!(
        logged.contains("plugin.setting_set") && logged.contains("api_token"),
        "the audit mirror in log_dir was read"
    );
    assert!(!logged.contains(SECRET), "secret in a log file");

    // Kept across a restart.
    d.restart();
    d.wait_running("tuned");
    assert_eq!(plugin_sees(&d, "limit"), "42");
    assert_eq!(plugin_sees(&d, "api_token"), SECRET);

    // Unset: the default again.
    config(&d, &["unset", "tuned", "limit"]).ok();
    assert_eq!(plugin_sees(&d, "limit"), "5");
    config(&d, &["set", "tuned", "limit", "9"]).ok();
    config(&d, &["set", "tuned", "mode", "fast"]).ok();

    // A restore brings back the values of its backup, with the plugin.
    let id = d.cli(&["--output", "json", "backup", "create"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    config(&d, &["set", "tuned", "limit", "11"]).ok();
    d.cli(&["restore", "--yes", "--backup-id", &id]).ok();
    d.wait_running("tuned");
    assert_eq!(plugin_sees(&d, "limit"), "9", "the backup's value");
    assert_eq!(plugin_sees(&d, "api_token"), SECRET);

    // An update drops the values that no longer fit or whose key is gone.
    let v2 = package(&d, "v2", &manifest("1.0.1", SETTINGS_V2));
    d.cli(&["plugin", "update", "tuned", v2.to_str().unwrap()])
        .ok();
    wait_until(
        std::time::Duration::from_secs(20),
        "version 1.0.1 running",
        || {
            let s = d.plugin_json("tuned")["summary"].clone();
            s["version"] == "1.0.1" && short(&s["runtime"]) == "running"
        },
    );
    assert_eq!(plugin_sees(&d, "limit"), "true", "the new default");
    assert_eq!(plugin_sees(&d, "api_token"), SECRET, "still fits: kept");
    let update = d
        .audit(Some("tuned"))
        .into_iter()
        .rfind(|r| r["action"] == "plugin.update")
        .unwrap();
    let detail = update["detail"].to_string();
    assert!(
        detail.contains("limit") && detail.contains("mode"),
        "{detail}"
    );
    assert!(!logged_text(&d).contains(SECRET), "secret in a log file");
}

#[test]
fn only_declared_commands_are_invoked_and_show_lists_them() {
    let d = Daemon::start_with(Settings {
        viewer_uids: vec![65534],
        socket_mode: "0666",
        ..Settings::default()
    });
    let v1 = package(&d, "v1", &manifest("1.0.0", SETTINGS_V1));
    d.cli(&["plugin", "install", v1.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "tuned"]).ok();
    d.wait_running("tuned");

    let shown = d.cli(&["plugin", "show", "tuned"]).ok().stdout.clone();
    println!("{shown}");
    assert!(shown.contains("COMMAND") && shown.contains("greet") && shown.contains("[name]"));
    let json = d.plugin_json("tuned");
    let names: Vec<_> = json["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["greet", "config"]);
    assert_eq!(json["commands"][1]["arguments"][0]["required"], true);

    // Declared: reaches the plugin. Undeclared (the binary does answer it): refused.
    let hello = d.cli(&["plugin", "invoke", "tuned", "greet", "Ada"]);
    assert_eq!(hello.ok().stdout.trim(), "Hello, Ada!");
    let refused = d.cli(&["plugin", "invoke", "tuned", "has-permission", "file_read"]);
    assert!(!refused.status.success());
    assert!(
        refused
            .stderr
            .contains("declares no command `has-permission`")
            && refused.stderr.contains("greet, config")
            && refused.stderr.contains("invalid argument"),
        "{}",
        refused.stderr
    );
    // Named arguments (a JSON object) must include the required ones.
    let missing = d.cli(&["plugin", "invoke", "tuned", "config", "{\"other\": 1}"]);
    assert!(
        missing.stderr.contains("needs argument(s) key"),
        "{}",
        missing.stderr
    );
    let audit = d.audit_actions(Some("tuned"));
    let invokes: Vec<_> = audit
        .iter()
        .filter(|(a, _)| a == "command.invoke")
        .collect();
    assert!(invokes.iter().any(|(_, o)| o == "ok"), "{invokes:?}");
    assert_eq!(
        invokes.iter().filter(|(_, o)| o == "denied").count(),
        2,
        "{invokes:?}"
    );

    // A manifest that declares no commands: nothing reaches the plugin, though its
    // binary (hello's, under a name the harness declares nothing for) answers greet.
    let bare_bin = d.dir.path().join("bare-hello");
    std::fs::copy(example("hello"), &bare_bin).unwrap();
    let bare = d.package(
        "bare",
        "name = \"bare\"\nversion = \"1.0.0\"\nentry = \"bare\"\n",
        &bare_bin,
        "bare",
    );
    d.cli(&["plugin", "install", bare.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "bare"]).ok();
    d.wait_running("bare");
    let refused = d.cli(&["plugin", "invoke", "bare", "greet", "Ada"]);
    assert!(
        !refused.status.success()
            && refused
                .stderr
                .contains("declares no commands, so `greet` cannot be invoked"),
        "{}",
        refused.stderr
    );
    let shown = d.cli(&["plugin", "show", "bare"]).ok().stdout.clone();
    assert!(shown.contains("commands: none declared"), "{shown}");

    // A viewer reads settings but may not change them.
    d.cli_as(65534, &["plugin", "config", "show", "tuned"]).ok();
    let denied = d.cli_as(65534, &["plugin", "config", "set", "tuned", "limit", "1"]);
    assert!(
        !denied.status.success() && denied.stderr.contains("permission denied"),
        "{}",
        denied.stderr
    );
    assert_eq!(
        config(&d, &["get", "tuned", "limit"]).ok().stdout.trim(),
        "5"
    );
}
