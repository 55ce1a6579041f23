//! End to end: events on topics the policy marks sensitive reach only plugins whose
//! sensitive_events grant covers them; everything else reaches every subscriber.

mod common;

use common::*;

fn install(d: &Daemon, name: &str, sensitive_scope: Option<&str>) {
    let mut manifest = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n");
    if let Some(scope) = sensitive_scope {
        manifest.push_str(&format!(
            "\n[[permissions]]\nname = \"sensitive_events\"\njustification = \"moderates private chats\"\nscope = [\"{scope}\"]\n"
        ));
    }
    let pkg = d.package(name, &manifest, &bin("events_plugin"), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    if sensitive_scope.is_some() {
        d.cli(&["plugin", "approve", name, "--comment", "moderation"])
            .ok();
    }
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

fn publish(d: &Daemon, topic: &str) -> Vec<String> {
    let v = d
        .cli(&["--output", "json", "event", "publish", topic, "{}"])
        .json();
    let mut to: Vec<String> = v["delivered_to"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .filter_map(|p| p.as_str().map(str::to_string))
        .collect();
    to.sort();
    to
}

fn subscribe(d: &Daemon, plugin: &str, pattern: &str) -> String {
    d.cli(&["plugin", "invoke", plugin, "subscribe", pattern])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn sensitive_topics_reach_only_granted_plugins() {
    let d = Daemon::start();
    install(&d, "plain", None);
    install(&d, "moderator", Some("chat.private.*"));
    // Both wait for their subscriptions (taken at session start) before publishing.
    wait_until(
        std::time::Duration::from_secs(10),
        "both subscribed",
        || publish(&d, "chat.message").len() == 2,
    );

    assert_eq!(publish(&d, "chat.message"), ["moderator", "plain"]);
    // chat.* overlaps the sensitive chat.private.*: only the granted plugin gets those.
    assert_eq!(publish(&d, "chat.private.dm"), ["moderator"]);

    // Subscribing inside a sensitive topic needs the grant, and names it when missing.
    let out = subscribe(&d, "plain", "chat.private.*");
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("sensitive_events"),
        "{out}"
    );
    let topics = subscribe(&d, "moderator", "chat.private.*");
    assert!(topics.split(',').any(|t| t == "chat.private.*"), "{topics}");
    let out = subscribe(&d, "moderator", "user.*");
    assert!(out.starts_with("ERR Some(PermissionDenied)"), "{out}");
    assert!(d
        .audit_actions(Some("plain"))
        .iter()
        .any(|(a, o)| a == "broker.subscribe" && o == "denied"));

    // Revocation takes effect at the next delivery.
    d.cli(&[
        "plugin",
        "revoke-permission",
        "sensitive_events",
        "moderator",
        "--comment",
        "done",
    ])
    .ok();
    assert!(publish(&d, "chat.private.dm").is_empty());
}
