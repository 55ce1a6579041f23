//! End to end: the JSON-line audit mirrors rotate by size and keep a count of files,
//! and a rotation loses no record: the kept files hold every record of their category
//! from the oldest kept one on, in order, as the store has them.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn ids(path: &Path) -> Vec<i64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("whole JSON lines");
            v["id"].as_i64().expect("id")
        })
        .collect()
}

#[test]
fn audit_mirrors_rotate_by_size_and_lose_no_record() {
    let d = Daemon::start_with(Settings {
        broker_rate: (1_000_000.0, 1_000_000),
        extra: "[logs]\naudit_log_max_bytes = \"64KiB\"\naudit_log_files = 3\n".into(),
        ..Settings::default()
    });
    d.run_plugin("echo", &bin("echo_plugin"));
    // 4000 audited brokered calls: about a megabyte of activity log.
    d.cli(&["plugin", "invoke", "echo", "bench-calls", "4000 8"])
        .ok();
    d.cli(&["audit", "plugins", "--limit", "1"]).ok(); // flushes the batches

    let live = d.root().join("log/plugins/activity.log");
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", live.display()));
    assert!(numbered(2).exists(), "rotated at least twice");
    assert!(!numbered(3).exists(), "three files kept, no more");
    let mut kept = Vec::new();
    for path in [numbered(2), numbered(1), live.clone()] {
        let len = std::fs::metadata(&path).expect("file").len();
        // A rotation happens between whole batches: one batch may pass the size.
        assert!(len <= 64 * 1024 * 4, "{} is {len} bytes", path.display());
        kept.extend(ids(&path));
    }
    assert!(
        kept.windows(2).all(|w| w[0] < w[1]),
        "in order across the files"
    );

    // Every brokered call's record from the oldest kept one on is in the files.
    let store = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    let first = kept[0];
    let mut stmt = store
        .prepare("SELECT id FROM audit_log WHERE action LIKE 'broker.%' AND id >= ?1 ORDER BY id")
        .expect("query");
    let stored: Vec<i64> = stmt
        .query_map([first], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("id"))
        .collect();
    assert_eq!(kept, stored, "the mirror holds exactly the store's records");
    let all: i64 = store
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action LIKE 'broker.%'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert!(
        (kept.len() as i64) < all,
        "the oldest records were rotated away"
    );
}
