//! End to end: a plugin writing gigabytes to stdout and stderr keeps its log within
//! the cap, gets its drops audited, and slows neither a bystander nor the admin API.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

const CAP: u64 = 4 << 20;
const RATE: u64 = 1 << 20;
const BURST: u64 = 2 << 20;
/// Each stream writes at least this much (2 GiB in all), and for at least FLOOD_SECS.
const FLOOD_BYTES: u64 = 1 << 30;
const FLOOD_SECS: u64 = 5;

fn install(d: &Daemon, name: &str, binary: &str) {
    let manifest = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n");
    let pkg = d.package(name, &manifest, &bin(binary), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name);
}

/// Sum of the sizes of the flooder's own log files.
fn log_bytes(d: &Daemon) -> u64 {
    let dir = d.root().join("log/plugins");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("flooder.log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Bytes of everything under `path` (the daemon's state and logs).
fn tree_bytes(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else {
        return 0;
    };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

fn free_bytes(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).expect("statvfs");
    s.blocks_available() as u64 * s.fragment_size() as u64
}

/// The bystander's p99 over `calls` brokered permission checks, in microseconds.
fn bystander_p99_us(d: &Daemon, calls: u32) -> f64 {
    let out = d
        .cli(&[
            "plugin",
            "invoke",
            "echo",
            "bench-calls",
            &format!("{calls} 1"),
        ])
        .ok()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("bench-calls JSON");
    v["p99_us"].as_f64().expect("p99_us")
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

fn dropped_records(d: &Daemon) -> Vec<serde_json::Value> {
    d.audit(Some("flooder"))
        .into_iter()
        .filter(|r| r["action"] == "plugin.output_dropped")
        .map(|r| r["detail"].clone())
        .collect()
}

#[test]
fn a_flooding_plugin_stays_within_its_cap_and_slows_nobody() {
    let d = Daemon::start_with(Settings {
        broker_rate: (1_000_000.0, 1_000_000),
        extra: format!(
            "[logs]\nplugin_log_max_bytes = \"{CAP}\"\nplugin_log_files = 4\nplugin_output_rate = \"{RATE}\"\nplugin_output_burst = \"{BURST}\"\noutput_dropped_interval = \"1s\"\n"
        ),
        ..Settings::default()
    });
    install(&d, "echo", "echo_plugin");
    install(&d, "flooder", "flooder");

    let calls = 1000;
    bystander_p99_us(&d, 200); // warm up
    let started = Instant::now();
    let quiet = bystander_p99_us(&d, calls);
    let round = started.elapsed();
    assert!(
        round < Duration::from_secs(FLOOD_SECS / 2),
        "a quiet round took {round:?}: the flood would not outlast it"
    );

    let free_before = free_bytes(d.root());
    let cpu_before = cpu_secs(d.pid());
    let done = d.root().join("state/data/flooder/flood.done");
    let out = d.cli(&[
        "plugin",
        "invoke",
        "flooder",
        "flood-output",
        &format!("{FLOOD_BYTES} {FLOOD_SECS}"),
    ]);
    assert_eq!(out.ok().stdout.trim(), "started");

    // While it floods: the log stays within the cap, the disk keeps its space and
    // the admin API answers; meanwhile the bystander runs its round.
    let (flood, samples) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut max_log, mut min_free, mut slowest_list, mut n) =
                (0, u64::MAX, Duration::ZERO, 0);
            let mut max_tree = 0;
            while !done.exists() {
                max_log = max_log.max(log_bytes(&d));
                max_tree = max_tree
                    .max(tree_bytes(&d.root().join("state")) + tree_bytes(&d.root().join("log")));
                min_free = min_free.min(free_bytes(d.root()));
                let t = Instant::now();
                d.cli(&["plugin", "list"]).ok();
                slowest_list = slowest_list.max(t.elapsed());
                n += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (max_log, max_tree, min_free, slowest_list, n)
        });
        std::thread::sleep(Duration::from_millis(500));
        let flood = bystander_p99_us(&d, calls);
        assert!(
            !done.exists(),
            "the flood ended before the bystander's round did"
        );
        (flood, sampler.join().expect("sampler"))
    });
    let (max_log, max_tree, min_free, slowest_list, lists) = samples;
    let note = std::fs::read_to_string(&done).expect("flood.done");
    let cpu = cpu_secs(d.pid()) - cpu_before;
    let written: u64 = note
        .split_whitespace()
        .filter_map(|kv| {
            kv.strip_prefix("stdout=")
                .or_else(|| kv.strip_prefix("stderr="))
        })
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    println!("flood: {note}");
    println!(
        "bystander p99: quiet {:.0} µs, during the flood {:.0} µs",
        quiet, flood
    );
    println!(
        "supervisor CPU during the flood: {cpu:.2} s for {:.2} GiB; slowest of {lists} `plugin list`: {slowest_list:?}",
        written as f64 / (1u64 << 30) as f64
    );
    println!(
        "flooder log: at most {max_log} bytes on disk (cap {CAP}); the daemon's state and logs at most {max_tree} bytes; the filesystem's free space (shared with other work) fell by at most {} bytes",
        free_before.saturating_sub(min_free)
    );

    assert!(written >= 2 * FLOOD_BYTES, "{note}");
    assert!(
        flood <= (2.0 * quiet).max(quiet + 50_000.0),
        "the bystander's p99 went from {quiet:.0} µs to {flood:.0} µs"
    );
    assert!(
        lists > 0 && slowest_list < Duration::from_secs(2),
        "{slowest_list:?}"
    );
    assert!(max_log <= CAP, "{max_log} bytes of logs, cap {CAP}");
    // What the daemon puts on disk stays small (the store, its logs), whatever the
    // plugin writes; the free space itself is shared with other work on this host.
    assert!(
        max_tree < CAP + (64 << 20),
        "{max_tree} bytes under the daemon's directories"
    );

    // Every byte is kept or counted: the drops reach the audit trail in aggregate.
    let kept_at_most = BURST + RATE * (note_secs(&note) as u64 + 2);
    wait_until(Duration::from_secs(10), "drops audited", || {
        dropped_records(&d)
            .iter()
            .map(|r| r["bytes"].as_u64().unwrap())
            .sum::<u64>()
            >= written - kept_at_most
    });
    let records = dropped_records(&d);
    let dropped: u64 = records.iter().map(|r| r["bytes"].as_u64().unwrap()).sum();
    println!(
        "{} plugin.output_dropped records, {dropped} bytes",
        records.len()
    );
    assert!(dropped <= written, "{dropped} dropped of {written}");
    assert!(
        records.len() as f64 <= note_secs(&note) + 3.0,
        "at most one record per second: {}",
        records.len()
    );
    assert!(records.iter().all(|r| r["lines"].is_u64()));
    let after = log_bytes(&d);
    assert!(
        after <= CAP,
        "{after} bytes of logs after the flood, cap {CAP}"
    );
    let live = std::fs::read_to_string(d.root().join("log/plugins/flooder.log")).unwrap();
    assert!(live.lines().all(|l| l.len() < 16 * 1024 + 64));

    // The flooder itself is still served, and so is the bystander.
    d.cli(&["plugin", "invoke", "echo", "echo", "still here"])
        .ok();
    assert_eq!(d.runtime_of("flooder"), "running");
}

fn note_secs(note: &str) -> f64 {
    note.split_whitespace()
        .find_map(|kv| kv.strip_prefix("secs="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
