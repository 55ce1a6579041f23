//! End to end: the broker's per-plugin rate limits. A flooding plugin is refused
//! with RESOURCE_EXHAUSTED past its bucket, the refusals are audited in aggregate,
//! and another plugin's calls are not slowed down.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn manifest(name: &str) -> String {
    format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n")
}

fn counts(reply: &str) -> (u32, u32) {
    let field = |k: &str| {
        reply
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {reply}"))
    };
    (field("ok="), field("limited="))
}

#[test]
fn a_flooding_plugin_hits_its_limit_while_another_keeps_its_latency() {
    let d = Daemon::start_with(Settings {
        broker_rate: (50.0, 50),
        ..Settings::default()
    });
    for name in ["flooder", "quiet"] {
        let pkg = d.package(name, &manifest(name), &bin("echo_plugin"), name);
        d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
        d.cli(&["plugin", "enable", name]).ok();
        d.wait_running(name);
    }
    // Within the burst every call passes: the limit is not refusing by accident.
    let (ok, limited) = counts(
        d.cli(&["plugin", "invoke", "quiet", "flood", "40"])
            .ok()
            .stdout
            .trim(),
    );
    assert_eq!((ok, limited), (40, 0));

    let flood_started = Instant::now();
    let flood = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            d.cli(&[
                "plugin",
                "invoke",
                "flooder",
                "flood",
                "2000",
                "--timeout",
                "60s",
            ])
        });
        // The quiet plugin's own calls keep their latency meanwhile.
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..10 {
            let t = Instant::now();
            let out = d
                .cli(&["plugin", "invoke", "quiet", "echo", "hi"])
                .ok()
                .stdout
                .clone();
            assert_eq!(out.trim(), "hi");
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "quiet plugin slowed: {:?}",
                t.elapsed()
            );
        }
        flood.join().unwrap()
    });
    let (ok, limited) = counts(flood.ok().stdout.trim());
    let secs = flood_started.elapsed().as_secs_f64();
    assert_eq!(ok + limited, 2000);
    // Refusals are answered after 50 ms (REFUSAL_DELAY), so the flood takes its time
    // and the bucket refills meanwhile: what passed is the burst plus the rate.
    assert!(
        limited > 100,
        "2000 calls against 50/s, burst 50: only {limited} refused"
    );
    assert!(ok >= 50, "the burst passes: {ok}");
    assert!(
        ok as f64 <= 50.0 + 50.0 * secs * 1.1 + 5.0,
        "{ok} calls passed in {secs:.1} s against 50/s with a burst of 50"
    );

    let records: Vec<serde_json::Value> = d
        .audit(Some("flooder"))
        .into_iter()
        .filter(|r| r["action"] == "broker.rate_limited")
        .collect();
    assert!(!records.is_empty(), "refusals are audited");
    assert!(
        records.len() < 100,
        "in aggregate, not one record per refusal: {}",
        records.len()
    );
    let detail = &records[0]["detail"];
    assert_eq!(detail["service"], "config");
    assert!(d
        .audit(Some("quiet"))
        .iter()
        .all(|r| r["action"] != "broker.rate_limited"));
}
