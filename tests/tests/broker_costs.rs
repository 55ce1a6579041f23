//! End to end: what a plugin's broker calls cost the supervisor is charged to that
//! plugin. A flood of endless statements runs one at a time, the rest queue or are
//! refused, its supervisor CPU is counted and capped, and a bystander plugin and the
//! admin API keep their latency.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use broker_proto::admin::v1::ListPluginsRequest;
use common::*;

/// `cpu`: the cores the plugin's own cgroup may use. The flood gets a small share,
/// so what slows others beyond it is what the supervisor spends for it.
fn install(d: &Daemon, name: &str, cpu: f64) {
    let manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"cost\"\n\n[resources]\ncpu = {cpu}\n"
    );
    let pkg = d.package(name, &manifest, &bin("cost_plugin"), "cost");
    d.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
        .ok();
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

/// (p50, p99) in µs of the bystander's own brokered calls: `mode` is `both` (a data-dir
/// `stat` and a permission check), `stat` or `perm`.
fn bystander_latency(d: &Daemon, mode: &str) -> (u64, u64) {
    let args = format!("300 {mode}");
    let out = d
        .cli(&[
            "plugin",
            "invoke",
            "calm",
            "latency",
            &args,
            "--timeout",
            "60s",
        ])
        .ok()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(&out).expect("latency json");
    (
        v["p50_us"].as_u64().expect("p50"),
        v["p99_us"].as_u64().expect("p99"),
    )
}

/// p99 in µs of `plugin list` over the admin socket.
fn list_latency(d: &Daemon) -> u64 {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut admin = d.admin().await;
        let mut took = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            admin
                .list_plugins(ListPluginsRequest::default())
                .await
                .expect("list");
            took.push(t.elapsed().as_micros() as u64);
        }
        took.sort_unstable();
        took[98]
    })
}

fn threads(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads:")
}

fn broker_cpu_usec(d: &Daemon, plugin: &str) -> u64 {
    let m = d
        .cli(&[
            "--output",
            "json",
            "monitor",
            "plugins",
            "--interval",
            "10ms",
        ])
        .ok()
        .json();
    m["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == plugin)
        .map(|p| int(&p["broker_cpu_usec"]) as u64)
        .unwrap_or(0)
}

/// Within 2x of the quiet figure, with a floor for a loaded 2-core machine.
fn within(quiet: u64, loaded: u64) -> bool {
    loaded <= (2 * quiet).max(quiet + 25_000)
}

#[test]
fn a_statement_flood_is_charged_to_its_plugin_and_slows_no_other() {
    let d = Daemon::start_with(Settings::default());
    std::fs::write(d.root().join("state/app.db"), b"").expect("app db");
    install(&d, "flood", 0.2);
    install(&d, "calm", 1.0);
    let pid = d.pid();

    // Quiet: the figures to compare with, taken side by side in the same run.
    bystander_latency(&d, "both"); // warm up
    let (q50, q99) = bystander_latency(&d, "both");
    let list_q = list_latency(&d);
    let threads_q = threads(pid);

    let flood_started = Instant::now();
    assert_eq!(
        d.cli(&["plugin", "invoke", "flood", "flood", "520"])
            .ok()
            .stdout
            .trim(),
        "started"
    );
    std::thread::sleep(Duration::from_secs(2));
    for mode in ["stat", "perm"] {
        let (p50, p99) = bystander_latency(&d, mode);
        eprintln!("flooded {mode}: p50 {p50} us, p99 {p99} us");
    }
    let (f50, f99) = bystander_latency(&d, "both");
    let list_f = list_latency(&d);
    let threads_f = threads(pid);
    let tally: BTreeMap<String, u64> = serde_json::from_str(
        &d.cli(&["plugin", "invoke", "flood", "flood-stop"])
            .ok()
            .stdout,
    )
    .expect("tally");
    let flood_secs = flood_started.elapsed().as_secs_f64();
    eprintln!(
        "bystander p50/p99 quiet {q50}/{q99} us, flooded {f50}/{f99} us; plugin list p99 quiet {list_q} us, flooded {list_f} us; supervisor threads {threads_q} -> {threads_f}; flood answers {tally:?}"
    );

    // The flood ran one at a time (broker.plugin_concurrency) and was refused past
    // its queue.
    let exhausted = tally.get("Some(ResourceExhausted)").copied().unwrap_or(0);
    let ran = tally.get("Some(DeadlineExceeded)").copied().unwrap_or(0);
    assert!(exhausted > 0, "never refused: {tally:?}");
    assert!(ran > 0, "no statement ran (the allowed twin): {tally:?}");
    assert!(
        threads_f <= threads_q + 8,
        "the flood grew the supervisor from {threads_q} to {threads_f} threads"
    );

    // Bystander and admin API keep their latency.
    assert!(within(q99, f99), "bystander p99 {q99} -> {f99} us");
    assert!(
        within(list_q, list_f),
        "plugin list p99 {list_q} -> {list_f} us"
    );

    // The supervisor CPU spent on the flood is counted against it, within its budget
    // (0.5 s/s), the 2 s of credit and the one statement that may be running.
    let flood_cpu = broker_cpu_usec(&d, "flood") as f64 / 1e6;
    let calm_cpu = broker_cpu_usec(&d, "calm") as f64 / 1e6;
    eprintln!("broker CPU: flood {flood_cpu:.2} s in {flood_secs:.1} s, calm {calm_cpu:.3} s");
    assert!(flood_cpu > 0.5, "the flood's statements were not charged");
    assert!(
        flood_cpu <= 0.5 * flood_secs + 2.0 + 1.2,
        "{flood_cpu:.2} s of supervisor CPU in {flood_secs:.1} s exceeds the budget"
    );
    assert!(calm_cpu < flood_cpu);
}
