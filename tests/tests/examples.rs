//! End to end: the SDK's example plugins, one per permission family, installed from
//! their own manifests into the real daemon and exercised.

mod common;

use std::path::Path;

use common::*;

const SECOND_ADMIN: u32 = 65534;

fn install_example(d: &Daemon, name: &str) {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugin-sdk/examples")
            .join(name)
            .join("plugin.toml"),
    )
    .unwrap();
    let pkg = d.package(name, &manifest, &example(name), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", name, "--comment", "example"])
        .ok();
    // High and critical permissions need a second admin; a no-op otherwise refused.
    let _ = d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", name, "--comment", "example"],
    );
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

fn invoke(d: &Daemon, plugin: &str, command: &str, args: &str) -> Cli {
    d.cli(&["plugin", "invoke", plugin, command, args])
}

fn audited(d: &Daemon, plugin: &str, action: &str) -> Vec<serde_json::Value> {
    d.audit(Some(plugin))
        .into_iter()
        .filter(|r| r["action"] == action)
        .collect()
}

#[test]
fn every_example_plugin_installs_runs_and_reaches_its_service() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    for name in ["archive", "weather", "moderator", "sysinfo"] {
        install_example(&d, name);
    }

    // files: its own data directory needs no permission.
    let out = invoke(&d, "archive", "save", "first entry")
        .ok()
        .stdout
        .clone();
    assert_eq!(out.trim(), "archive is 12 bytes");
    let archived =
        std::fs::read_to_string(d.root().join("state/data/archive/archive.log")).unwrap();
    assert_eq!(archived, "first entry\n");

    // commands: exactly the approved argv, run confined.
    let out = invoke(&d, "sysinfo", "kernel", "").ok().stdout.clone();
    assert!(out.trim().starts_with("Linux "), "{out}");

    // network: the request is made by the supervisor for the granted host (this
    // machine has no route to it, so it fails there, after the grant check).
    let _ = invoke(&d, "weather", "weather", "Oslo");
    let http = audited(&d, "weather", "broker.http");
    assert_eq!(http.len(), 1, "{http:?}");
    assert!(http[0]["detail"]
        .to_string()
        .contains("api.open-meteo.com:443"));

    // sensitive events and host actions: a private chat message reaches the moderator
    // (it holds the grant), which asks for a ban; no server is connected here, so the
    // host action is refused as unavailable, after the grant check.
    let v = d
        .cli(&[
            "--output",
            "json",
            "event",
            "publish",
            "chat.private.mallory",
            "buy cheap pills",
        ])
        .json();
    assert_eq!(v["delivered_to"], serde_json::json!(["moderator"]));
    wait_until(std::time::Duration::from_secs(5), "the ban attempt", || {
        !audited(&d, "moderator", "broker.host_action").is_empty()
    });
    let attempt = &audited(&d, "moderator", "broker.host_action")[0];
    assert_eq!(attempt["outcome"], "OUTCOME_FAILED");
    assert!(
        attempt["detail"]
            .to_string()
            .contains("no PlexiChat server"),
        "{attempt}"
    );
}
