//! End to end: what a plugin's events and bursts can cost the supervisor. Large emits
//! with a stalled watcher leave its memory within the stated bound, subscriptions
//! stop at their cap, and a burst, an oversized header or a refusal quoting a huge
//! path is answered per call while the plugin's one connection (and process) survives.

mod common;

use std::time::Duration;

use broker_proto::admin::v1::WatchEventsRequest;
use common::*;
use tokio_stream::StreamExt;

/// What the supervisor may hold beyond its idle size under any emit pattern the SDK
/// allows: the events held (at most `broker.event_budget` = 4 MiB per emitter, every
/// queue at most `event_queue_bytes` = 2 MiB) plus requests being decoded (the SDK's
/// 64 calls in flight of up to 1 MiB each) and the allocator's slack. See the README.
const RSS_BOUND_MIB: u64 = 96;

/// The plugins get room for what they send: 64 calls in flight of up to 1 MiB, each
/// copied into its request and again into its frame, pass the default 128 MiB, and an
/// OOM kill of the emitter is not what this suite measures (the supervisor's RSS is).
fn manifest(name: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n[resources]\nmemory = \"512MiB\"\n"
    )
}

fn install(d: &Daemon, name: &str, binary: &str) -> i32 {
    let pkg = d.package(name, &manifest(name), &bin(binary), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name)
}

fn invoke(d: &Daemon, plugin: &str, command: &str, args: &str) -> serde_json::Value {
    let out = d.cli(&["plugin", "invoke", plugin, command, args, "--timeout", "4m"]);
    let out = out.ok();
    serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("{plugin} {command}: {e}: {}", out.stdout))
}

fn count(v: &serde_json::Value, code: &str) -> u64 {
    v["counts"][code].as_u64().unwrap_or(0)
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib / 1024
}

fn fast_events() -> Settings {
    // The rate limiter is not what this suite measures.
    Settings {
        broker_rate: (100_000.0, 100_000),
        ..Settings::default()
    }
}

#[test]
fn large_emits_with_a_stalled_watcher_leave_memory_within_the_bound() {
    let d = Daemon::start_with(fast_events());
    install(&d, "emitter", "flood_plugin");
    install(&d, "listener", "flood_plugin");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // A watcher that never reads, and one that does (on their own connections).
    let stalled = rt.block_on(async {
        let mut admin = d.admin().await;
        let stream = admin
            .watch_events(WatchEventsRequest { topics: vec![] })
            .await
            .expect("watch")
            .into_inner();
        (admin, stream)
    });
    let reader = rt.spawn({
        let admin = rt.block_on(d.admin());
        async move {
            let mut admin = admin;
            let mut stream = admin
                .watch_events(WatchEventsRequest {
                    topics: vec!["plugin.emitter.*".into()],
                })
                .await
                .expect("watch")
                .into_inner();
            let (mut events, mut bytes) = (0u64, 0u64);
            while let Ok(Some(Ok(ev))) =
                tokio::time::timeout(Duration::from_secs(5), stream.next()).await
            {
                events += 1;
                bytes += ev.payload.len() as u64;
                if events == 100 {
                    break;
                }
            }
            (events, bytes)
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.pid();
    let idle = rss_mib(pid);

    // Past the payload cap: every one refused, naming the key.
    let over = invoke(&d, "emitter", "emit", "600 1040000 600");
    let after_over = rss_mib(pid);
    assert_eq!(count(&over, "InvalidArgument"), 600, "{over}");
    let why = over["first"]["InvalidArgument"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("broker.event_max_payload"), "{why}");

    // At the cap: served, or refused once the emitter's bytes in flight are full.
    let at = invoke(&d, "emitter", "emit", "600 65536 600");
    let after_at = rss_mib(pid);
    let (ok, exhausted) = (count(&at, "Ok"), count(&at, "ResourceExhausted"));
    assert_eq!(ok + exhausted, 600, "{at}");
    assert!(ok >= 100, "{at}");
    if exhausted > 0 {
        let why = at["first"]["ResourceExhausted"]
            .as_str()
            .unwrap_or_default();
        assert!(why.contains("broker.event_budget"), "{why}");
    }

    // The allowed twins: a subscriber and a reading watcher got the events whole.
    let (events, bytes) = rt.block_on(reader).expect("reader");
    assert!(
        events >= 20 && bytes == events * 65536,
        "{events} events, {bytes} bytes"
    );
    let got = invoke(&d, "listener", "received", "");
    assert!(got["events"].as_u64().unwrap_or(0) >= 20, "{got}");

    drop(stalled);
    std::thread::sleep(Duration::from_secs(2));
    let after_leave = rss_mib(pid);
    println!(
        "supervisor RSS MiB: idle {idle}, after 600 refused 1 MB emits {after_over}, after 600 \
         64 KiB emits {after_at} ({ok} ok, {exhausted} refused), after the watcher left \
         {after_leave}; listener got {got}"
    );
    for (when, rss) in [
        ("after oversized emits", after_over),
        ("after emits at the cap", after_at),
        ("after the watcher left", after_leave),
    ] {
        assert!(
            rss <= idle + RSS_BOUND_MIB,
            "{when}: {rss} MiB > idle {idle} + {RSS_BOUND_MIB}"
        );
    }

    // The stalled watcher's losses are audited in aggregate, not per event.
    wait_until(Duration::from_secs(15), "events_dropped audited", || {
        d.audit(None)
            .iter()
            .any(|r| r["action"] == "broker.events_dropped")
    });
    let drops: Vec<serde_json::Value> = d
        .audit(None)
        .into_iter()
        .filter(|r| r["action"] == "broker.events_dropped")
        .collect();
    assert!(drops.len() <= 10, "{} records", drops.len());
    println!("drop records: {drops:?}");
}

#[test]
fn subscriptions_stop_at_the_cap_with_a_clear_message() {
    let d = Daemon::start_with(fast_events());
    install(&d, "subscriber", "flood_plugin");
    let v = invoke(&d, "subscriber", "subscribe", "10000");
    println!("{v}");
    let held = v["held"].as_u64().unwrap_or(0);
    // `plugin.*` from the plugin's handler, then batches of 64 until one would pass 256.
    assert!(held <= 256 && held + 64 > 256, "{v}");
    assert_eq!(count(&v, "ResourceExhausted"), 1, "{v}");
    let why = v["first"]["ResourceExhausted"].as_str().unwrap_or_default();
    assert!(
        why.contains("at most 256 subscriptions") && why.contains("broker.max_subscriptions"),
        "{why}"
    );
    // What it holds still works: a server event on one of them reaches it.
    let out = d
        .cli(&["--output", "json", "event", "publish", "flood.t5", "{}"])
        .json();
    assert_eq!(
        out["delivered_to"],
        serde_json::json!(["subscriber"]),
        "{out}"
    );
    // ...and a topic past the cap was never added.
    let out = d
        .cli(&["--output", "json", "event", "publish", "flood.t9999", "{}"])
        .json();
    assert!(
        out.get("delivered_to").is_none(),
        "nobody, so absent: {out}"
    );
}

#[test]
fn a_burst_of_5000_calls_is_answered_call_by_call_without_a_restart() {
    let d = Daemon::start();
    let pid = install(&d, "busy", "flood_plugin");
    let v = invoke(&d, "busy", "burst", "5000");
    println!("{v}");
    let (ok, exhausted) = (count(&v, "Ok"), count(&v, "ResourceExhausted"));
    assert_eq!(
        ok + exhausted,
        5000,
        "every call answered ok or refused: {v}"
    );
    assert!(ok >= 1000, "the burst allowance was served: {v}");
    // Without the SDK's limit the broker's stream limit queues the burst in the client.
    let raw = install(&d, "raw", "raw_plugin");
    let v = invoke(&d, "raw", "burst", "5000");
    println!("raw: {v}");
    let (ok, exhausted) = (count(&v, "Ok"), count(&v, "ResourceExhausted"));
    assert_eq!(
        ok + exhausted,
        5000,
        "every call answered ok or refused: {v}"
    );
    // Still the same processes, one health interval later.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.runtime_of("busy"), "running");
    assert_eq!(d.plugin_pid("busy"), Some(pid), "the plugin was restarted");
    assert_eq!(
        d.plugin_pid("raw"),
        Some(raw),
        "the raw plugin was restarted"
    );
}

#[test]
fn oversized_headers_and_long_refusals_are_answered_on_their_stream() {
    let d = Daemon::start();
    let sdk = install(&d, "sdk", "flood_plugin");
    let raw = install(&d, "raw", "raw_plugin");

    // A refusal quoting a 200 KB path is cut before it reaches the plugin's header limit.
    let v = invoke(&d, "sdk", "long-path", "100000");
    println!("{v}");
    assert_eq!(count(&v["first"], "InvalidArgument"), 1, "{v}");
    let len = v["message_len"].as_u64().unwrap_or(0);
    assert!((1..=4096).contains(&len), "{v}");
    assert_eq!(count(&v["next"], "Ok"), 1, "{v}");

    // Metadata over the broker's header limit: refused on that call; the next works.
    for bytes in ["100000", "900000"] {
        let v = invoke(&d, "raw", "big-header", bytes);
        println!("{bytes}: {v}");
        assert_eq!(v["first"]["code"], "ResourceExhausted", "{v}");
        let why = v["first"]["message"].as_str().unwrap_or_default();
        assert!(why.contains("headers"), "{why}");
        assert_eq!(v["next"]["code"], "Ok", "{v}");
    }
    // The allowed twin: an ordinary header passes.
    let v = invoke(&d, "raw", "big-header", "1000");
    assert_eq!(v["first"]["code"], "Ok", "{v}");

    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(d.plugin_pid("sdk"), Some(sdk));
    assert_eq!(d.plugin_pid("raw"), Some(raw));
}
