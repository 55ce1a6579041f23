//! The commands each test and example plugin binary answers, declared for it in the
//! packages the harness writes: the supervisor invokes only declared commands.

use std::path::Path;

/// The commands `binary` (a test plugin or an SDK example) answers; empty for one
/// that answers none or is not known here.
pub fn answered_by(binary: &Path) -> &'static [&'static str] {
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match name {
        "bloat_plugin" => &["flood"],
        "cost_plugin" => &["flood", "flood-stop", "latency"],
        "crasher" => &[],
        "db_plugin" => &["query"],
        "echo_plugin" => &[
            "echo",
            "has-permission",
            "flood",
            "log",
            "say",
            "fault-load",
            "fault-stop",
            "deny-flood",
            "bench-calls",
            "host",
            "http",
            "exec",
            "freeze",
        ],
        "events_plugin" => &["subscribe"],
        "files_plugin" => &["read", "write", "list"],
        "flood_plugin" => &["emit", "subscribe", "burst", "long-path", "received"],
        "flooder" => &["flood-output"],
        "hostile" => plexichat_e2e::HOSTILE_COMMANDS,
        "raw_plugin" => &["big-header", "burst"],
        "silent" => &[],
        "trial_plugin" => &["probe", "read-fixture"],
        "archive" => &["save", "policy"],
        "hello" => &["greet", "has-permission", "config"],
        "moderator" => &[],
        "notes" => &["note", "recent", "count"],
        "sysinfo" => &["kernel"],
        "weather" => &["weather"],
        _ => &[],
    }
}

/// `manifest` with a `[[commands]]` entry per command `binary` answers, unless it
/// declares commands itself (a test of declarations writes its own).
pub fn with_commands(manifest: &str, binary: &Path) -> String {
    let declares = manifest.lines().any(|l| {
        l.trim_start().starts_with("[[commands]]") || l.trim_start().starts_with("commands")
    });
    if declares {
        return manifest.to_string();
    }
    let mut out = manifest.to_string();
    for name in answered_by(binary) {
        out.push_str(&format!("\n[[commands]]\nname = \"{name}\"\n"));
    }
    out
}
