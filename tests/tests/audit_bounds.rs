//! End to end: a hostile SDK plugin sends 100 rounds of brokered calls carrying 1 MiB
//! arguments; the audit trail (store and log mirrors) grows by at most its caps, and
//! `audit plugins` still answers, showing each cut field's length and SHA-256.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const ROUNDS: usize = 100;
/// About 1 MiB, within the broker's 1 MiB message limit with the rest of the call.
const BYTES: usize = 1_000_000;
/// Calls per round: has_permission, host action, execute, HTTP, file stat.
const KINDS: usize = 5;
/// The per-record cap of the supervisor (`audit::RECORD_BYTES`).
const RECORD_BYTES: u64 = 8 * 1024;

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Bytes of every file under `dir`.
fn tree_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        tree_size(&p)
                    } else {
                        size_of(&p)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn store_size(d: &Daemon) -> u64 {
    let state = d.root().join("state");
    size_of(&state.join("store.db")) + size_of(&state.join("store.db-wal"))
}

fn sha256(text: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum output");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn detail(record: &Value) -> Value {
    record["detail"].clone()
}

/// The cut form of a field: `{cut, bytes, sha256}` with the expected length and hash.
fn assert_cut(field: &Value, full: &str, what: &str) {
    assert_eq!(field["bytes"], full.len(), "{what}: {field}");
    assert_eq!(field["sha256"], sha256(full), "{what}");
    let kept = field["cut"].as_str().unwrap_or_default();
    assert!(kept.len() <= 1024 + 3, "{what}: kept {} bytes", kept.len());
    assert!(full.starts_with(kept.trim_end_matches('…')), "{what}");
}

#[test]
fn large_arguments_leave_bounded_audit_records_that_still_read() {
    let mut d = Daemon::start();
    let manifest = "name = \"bloat\"\nversion = \"1.0.0\"\nentry = \"bloat\"\n";
    let pkg = d.package("bloat", manifest, &bin("bloat_plugin"), "bloat");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "bloat"]).ok();
    d.wait_running("bloat");
    // Measured with the WAL checkpointed (a graceful stop) on both sides, so the
    // store's growth is its records, not WAL frames awaiting a checkpoint.
    d.stop();
    let (store_before, logs_before) = (store_size(&d), tree_size(&d.root().join("log")));
    d.restart();
    d.wait_running("bloat");
    let rounds = format!("{ROUNDS} {BYTES}");
    let out = d.cli(&[
        "plugin",
        "invoke",
        "bloat",
        "flood",
        &rounds,
        "--timeout",
        "240s",
    ]);
    out.ok();
    let answer: Value = serde_json::from_str(out.stdout.trim()).expect("codes");
    println!("{} calls: {answer}", ROUNDS * KINDS);
    let codes = &answer["codes"];
    // has_permission answers (not granted); the rest are refused as too large or
    // malformed, each before anything is recorded.
    assert_eq!(codes["Ok"], ROUNDS, "{codes}");
    assert_eq!(
        codes
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>()),
        Some((ROUNDS * KINDS) as u64)
    );

    // Every call has its record.
    let records = || {
        d.cli(&[
            "audit",
            "plugins",
            "--plugin",
            "bloat",
            "--limit",
            "1000",
            "--output-format",
            "json",
        ])
    };
    wait_until(Duration::from_secs(30), "records committed", || {
        let out = records();
        let v = out.ok().json();
        v["records"].as_array().map_or(0, |r| {
            r.iter()
                .filter(|r| r["action"].as_str().unwrap_or("").starts_with("broker."))
                .count()
        }) >= ROUNDS * KINDS
    });

    // `audit plugins` answers, and shows what was cut with its length and hash.
    let out = records();
    let listed = out.ok().json();
    let all = listed["records"].as_array().cloned().unwrap_or_default();
    let first = |action: &str| -> Value {
        let want = sha256(&big_arg(0, action));
        all.iter()
            .filter(|r| r["action"] == action)
            .map(detail)
            .find(|d| d.to_string().contains(&want))
            .unwrap_or_else(|| panic!("no record of round 0 for {action}"))
    };
    assert_cut(
        &first("broker.has_permission")["scope"],
        &big_arg(0, "broker.has_permission"),
        "has_permission scope",
    );
    assert_cut(
        &first("broker.host_action")["target"],
        &big_arg(0, "broker.host_action"),
        "host action target",
    );
    assert_cut(
        &first("broker.execute")["argv"],
        &big_arg(0, "broker.execute"),
        "execute argv",
    );
    assert_cut(
        &first("broker.http")["path"],
        &big_arg(0, "broker.http"),
        "HTTP path",
    );
    let file = first("broker.file_read");
    assert_cut(&file["path"], &big_arg(0, "broker.file_read"), "file path");
    // The error the plugin got (and its record) quotes a short prefix only.
    let error = file["error"].as_str().unwrap_or_default();
    assert!(
        error.len() < 400 && error.contains('…'),
        "{} bytes: {error}",
        error.len()
    );

    let wal = size_of(&d.root().join("state/store.db-wal"));
    d.stop();
    let (store_after, logs_after) = (store_size(&d), tree_size(&d.root().join("log")));
    let bound = (ROUNDS * KINDS) as u64 * RECORD_BYTES;
    let (store_growth, log_growth) = (
        store_after.saturating_sub(store_before),
        logs_after.saturating_sub(logs_before),
    );
    println!(
        "{} records: store grew {store_growth} bytes (WAL before the stop: {wal}), log mirrors {log_growth} bytes; bound {bound} each (uncapped: {} bytes)",
        ROUNDS * KINDS,
        ROUNDS * KINDS * BYTES
    );
    assert!(store_growth <= bound, "store grew {store_growth} > {bound}");
    assert!(log_growth <= bound, "logs grew {log_growth} > {bound}");
}

/// The field round `i` sent for `action`, as the plugin built it.
fn big_arg(i: usize, action: &str) -> String {
    let arg = format!("{i:06}{}", "a".repeat(BYTES));
    match action {
        "broker.has_permission" => format!("/{arg}"),
        "broker.execute" => serde_json::json!(["/bin/echo", arg]).to_string(),
        "broker.http" => format!("/{arg}"),
        "broker.file_read" => format!("/srv/{arg}"),
        _ => arg,
    }
}
