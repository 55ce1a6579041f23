//! End to end: `plexichat monitor plugins` (table, JSON, the real-time terminal UI
//! under a pseudo-terminal) and the loopback Prometheus endpoint; alert rules raising
//! alerts, writing the security log, quarantining, and being acknowledged.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FILE_READ: &str = "\n[[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports\"]\n";

fn install_running(d: &Daemon, name: &str, permissions: &str) -> i32 {
    let manifest =
        format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n{permissions}");
    let pkg = d.package(name, &manifest, &bin("echo_plugin"), name);
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    if !permissions.is_empty() {
        d.cli(&["plugin", "approve", name, "--comment", "ok"]).ok();
    }
    d.cli(&["plugin", "enable", name]).ok();
    d.wait_running(name)
}

/// `deny-flood N`: 8 loops of one allowed permission check and one refused file read.
fn deny_flood(d: &Daemon, name: &str, n: u32) {
    d.cli(&["plugin", "invoke", name, "deny-flood", &n.to_string()])
        .ok();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(conn, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn monitor_shows_usage_calls_and_denials_per_plugin_and_prometheus_serves_them() {
    let port = free_port();
    let d = Daemon::start_with(Settings {
        extra: format!("[monitor]\nprometheus_listen = \"127.0.0.1:{port}\"\n"),
        ..Settings::default()
    });
    install_running(&d, "busy", FILE_READ);
    install_running(&d, "idle", "");
    deny_flood(&d, "busy", 5);

    let m = d
        .cli(&[
            "--output",
            "json",
            "monitor",
            "plugins",
            "--interval",
            "200ms",
        ])
        .json();
    let plugins = m["plugins"].as_array().unwrap();
    let busy = plugins.iter().find(|p| p["name"] == "busy").unwrap();
    let idle = plugins.iter().find(|p| p["name"] == "idle").unwrap();
    // Canonical protobuf JSON: uint64 as decimal strings, zero and empty left out.
    assert_eq!(busy["calls"]["has_permission"], "40", "{busy}");
    assert_eq!(busy["calls"]["file_read"], "40", "{busy}");
    assert_eq!(busy["denials"], "40", "the 40 refused reads");
    assert!(idle.get("denials").is_none(), "{idle}");
    assert!(idle.get("calls").is_none(), "{idle}");
    for p in [busy, idle] {
        assert_eq!(p["runtime"], "RUNTIME_PHASE_RUNNING");
        assert!(int(&p["memory_bytes"]) > 0, "{p}");
        assert!(int(&p["memory_limit"]) > 0, "{p}");
        assert!(int(&p["pids"]) >= 1, "{p}");
        assert!(int(&p["cpu_usec"]) > 0, "{p}");
    }
    let table = d
        .cli(&["monitor", "plugins", "--interval", "200ms"])
        .ok()
        .stdout
        .clone();
    assert!(
        table.contains("CPU%") && table.contains("DENIALS"),
        "{table}"
    );
    let busy_line = table.lines().find(|l| l.starts_with("busy")).unwrap();
    assert!(
        busy_line.contains(" 80 ") && busy_line.contains(" 40 "),
        "{busy_line}"
    );

    let scrape = http_get(port, "/metrics");
    assert!(scrape.starts_with("HTTP/1.1 200 OK"), "{scrape}");
    assert!(
        scrape.contains(
            "plexichat_plugin_broker_calls_total{plugin=\"busy\",service=\"file_read\"} 40"
        ),
        "{scrape}"
    );
    assert!(scrape.contains("plexichat_plugin_denials_total{plugin=\"busy\"} 40"));
    assert!(scrape.contains("plexichat_plugin_up{plugin=\"idle\"} 1"));
    assert!(scrape.contains("plexichat_safe_mode 0"));
    for query in ["/metrics?x=1", "/metrics?"] {
        let answer = http_get(port, query);
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{query}: {answer}");
        assert!(answer.contains("plexichat_safe_mode 0"), "{query}");
    }
    for other in ["/", "/metricsx", "/metrics/x", "/x?metrics"] {
        let answer = http_get(port, other);
        assert!(answer.starts_with("HTTP/1.1 404"), "{other}: {answer}");
    }
}

/// Runs `plexichat monitor plugins --real-time` on a pseudo-terminal until it has
/// drawn `want`, then presses q; returns everything it drew.
fn run_tui(d: &Daemon, want: &str) -> String {
    run_tui_cols(d, want, 140)
}

/// [`run_tui`] on a terminal `cols` columns wide.
fn run_tui_cols(d: &Daemon, want: &str, cols: u16) -> String {
    let OnTerminal {
        mut child,
        mut master,
    } = d.cli_on_terminal(
        &["monitor", "plugins", "--real-time", "--interval", "300ms"],
        cols,
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains(want) {
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    master.write_all(b"q").unwrap();
    let status = wait_child(&mut child, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "q quits cleanly: {status:?}"
    );
    // What it drew while quitting (leaving the alternate screen).
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

fn wait_child(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[test]
fn the_real_time_view_draws_every_plugin_and_quits_on_q() {
    let d = Daemon::start();
    install_running(&d, "watched", "");
    let drawn = run_tui(&d, "watched");
    // Cells are drawn word by word, with cursor moves in between.
    assert!(
        drawn.contains("plexichat") && drawn.contains("monitor:"),
        "title drawn: {drawn:?}"
    );
    assert!(drawn.contains("watched"), "the plugin's row");
    assert!(drawn.contains("RESTARTS"), "the header");
    // It left the alternate screen it entered.
    assert!(drawn.contains("\x1b[?1049h") && drawn.contains("\x1b[?1049l"));
}

/// The screen `drawn` leaves, `cols` wide: printable text placed at the cursor, which
/// only `CSI row;col H` moves (all ratatui's crossterm backend uses); other escape
/// sequences are skipped.
fn screen(drawn: &str, cols: usize) -> Vec<String> {
    let mut grid = vec![vec![' '; cols]; 30];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = drawn.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.next_if_eq(&'[').is_none() {
                chars.next();
                continue;
            }
            let mut params = String::new();
            while let Some(p) = chars.next_if(|p| !p.is_ascii_alphabetic() && *p != '~') {
                params.push(p);
            }
            if chars.next() == Some('H') {
                let mut n = params.split(';').map(|x| x.parse::<usize>().unwrap_or(1));
                row = n.next().unwrap_or(1).saturating_sub(1);
                col = n.next().unwrap_or(1).saturating_sub(1);
            }
        } else if !c.is_control() {
            if let Some(cell) = grid.get_mut(row).and_then(|r| r.get_mut(col)) {
                *cell = c;
            }
            col += 1;
        }
    }
    grid.into_iter().map(|r| r.into_iter().collect()).collect()
}

#[test]
fn on_a_narrow_terminal_the_real_time_view_drops_columns_and_never_cuts_a_figure() {
    let d = Daemon::start();
    install_running(&d, "narrow", "");
    let pid = d.plugin_pid("narrow").expect("running").to_string();
    let drawn = run_tui_cols(&d, "widen", 50);
    let lines = screen(&drawn, 50);
    let text = lines.join("\n");
    println!("{text}");
    let words = |line: &str| -> Vec<String> {
        line.split(|c: char| c.is_whitespace() || "│─┌┐└┘".contains(c))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let header = lines
        .iter()
        .find(|l| l.contains("PLUGIN"))
        .unwrap_or_else(|| panic!("no header: {text}"));
    let all = [
        "PLUGIN", "STATE", "RUNTIME", "PID", "CPU%", "BROKER%", "MEMORY", "MEM%", "PIDS", "CALLS",
        "DENIALS", "RESTARTS", "ALERTS",
    ];
    let shown = words(header);
    assert!(
        shown.iter().all(|h| all.contains(&h.as_str())),
        "whole headers only: {shown:?}"
    );
    assert!(shown.len() < all.len(), "some columns dropped: {shown:?}");
    let hidden = all.len() - shown.len();
    assert!(
        text.contains(&format!("{hidden} column(s) hidden: widen the terminal")),
        "the footer says how many: {text}"
    );
    let row = lines
        .iter()
        .find(|l| l.contains("narrow"))
        .unwrap_or_else(|| panic!("no row: {text}"));
    let cells = words(row);
    assert!(
        shown.contains(&"PID".to_string()),
        "the pid is kept: {shown:?}"
    );
    assert!(cells.contains(&pid), "pid {pid} whole: {cells:?}");
    if shown.contains(&"MEMORY".to_string()) {
        assert!(
            cells
                .iter()
                .any(|c| ["B", "KiB", "MiB", "GiB"].contains(&c.as_str())),
            "memory with its unit: {cells:?}"
        );
    }
    // Wide, nothing is hidden.
    let wide = run_tui(&d, "RESTARTS");
    assert!(!wide.contains("hidden"), "{wide:?}");
}

const RULES: &str = r#"
[[alert]]
name = "denial-flood"
kind = "denials"
threshold = 10
window = "1m"
quarantine = true

[[alert]]
name = "crash-loop"
kind = "crashes"
threshold = 2
window = "1m"
"#;

fn alerts(d: &Daemon, all: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["--output", "json", "security", "alerts"];
    if all {
        args.push("--all");
    }
    d.cli(&args).json()["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn alert_rules_raise_alerts_quarantine_and_stay_open_until_acknowledged() {
    let d = Daemon::start_with(Settings {
        extra: RULES.to_string(),
        quarantine_after: 50,
        backoff_initial: "100ms",
        backoff_max: "200ms",
        ..Settings::default()
    });
    install_running(&d, "calm", FILE_READ);
    install_running(&d, "noisy", FILE_READ);
    // Below the threshold: 8 refusals, no alert.
    deny_flood(&d, "calm", 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(alerts(&d, true).is_empty(), "8 denials stay below 10");

    // The alert may kill it before the command finishes: its answer does not matter.
    let _ = d.cli(&["plugin", "invoke", "noisy", "deny-flood", "2"]);
    wait_until(
        Duration::from_secs(15),
        "noisy quarantined by its alert",
        || d.plugin_json("noisy")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED",
    );
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    let alert = &open[0];
    assert_eq!(alert["plugin"], "noisy");
    assert_eq!(alert["rule"], "denial-flood");
    assert_eq!(alert["quarantined"], true);
    assert!(int(&alert["count"]) >= 10, "{alert}");
    let reason = d.plugin_json("noisy")["summary"]["state_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("denial-flood"), "{reason}");
    assert_eq!(
        d.runtime_of("calm"),
        "running",
        "the calm plugin is untouched"
    );
    let log = std::fs::read_to_string(d.root().join("log/security/plugin_security.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"security.alert\"") && l.contains("noisy")),
        "the security log has the alert"
    );
    let status = d.cli(&["security", "plugin-status"]).ok().stdout.clone();
    assert!(
        status.contains("open alerts") && status.contains("denial-flood"),
        "{status}"
    );

    // A crash loop raises its alert without quarantining (the rule does not ask to).
    let pkg = d.package(
        "crashy",
        "name = \"crashy\"\nversion = \"1.0.0\"\nentry = \"crashy\"\n",
        &bin("crasher"),
        "crashy",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "crashy"]).ok();
    wait_until(Duration::from_secs(20), "crash-loop alert", || {
        alerts(&d, false).iter().any(|a| a["rule"] == "crash-loop")
    });
    let crash = alerts(&d, false)
        .into_iter()
        .find(|a| a["rule"] == "crash-loop")
        .unwrap();
    assert_eq!(crash["plugin"], "crashy");
    assert!(
        crash.get("quarantined").is_none(),
        "false, so absent: {crash}"
    );
    assert_ne!(
        d.plugin_json("crashy")["summary"]["state"],
        "PLUGIN_STATE_QUARANTINED"
    );
    d.cli(&["plugin", "disable", "crashy"]).ok();

    let id = int(&alert["id"]).to_string();
    d.cli(&["security", "ack-alert", &id, "--comment", "investigated"])
        .ok();
    let again = d.cli(&["security", "ack-alert", &id]);
    assert!(
        !again.status.success() && again.stderr.contains("already acknowledged"),
        "{}",
        again.stderr
    );
    assert!(
        alerts(&d, false)
            .iter()
            .all(|a| a["rule"] != "denial-flood"),
        "no longer open"
    );
    let acked = alerts(&d, true)
        .into_iter()
        .find(|a| a["rule"] == "denial-flood")
        .unwrap();
    assert_eq!(acked["acknowledged_by"], "uid=0(root)");
    assert!(d
        .audit_actions(Some("noisy"))
        .contains(&("alert.acknowledge".into(), "ok".into())));
    let missing = d.cli(&["security", "ack-alert", "9999"]);
    assert!(!missing.status.success() && missing.stderr.contains("no alert 9999"));
}

const HOSTILE_MANIFEST: &str = "name = \"hostile\"\nversion = \"1.0.0\"\nentry = \"hostile\"\n";

#[test]
fn a_seccomp_violation_rule_quarantines_a_plugin_that_keeps_trying() {
    let d = Daemon::start_with(Settings {
        extra: "[[alert]]\nname = \"seccomp\"\nkind = \"seccomp_violations\"\nthreshold = 3\nwindow = \"1m\"\nquarantine = true\n".into(),
        ..Settings::default()
    });
    let pkg = d.package("hostile", HOSTILE_MANIFEST, &bin("hostile"), "hostile");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "hostile"]).ok();
    d.wait_running("hostile");
    install_running(&d, "bystander", "");
    let attack = |what: &str| {
        let _ = d.cli(&["plugin", "invoke", "hostile", what]);
    };
    attack("bpf");
    wait_until(Duration::from_secs(10), "the bpf denial recorded", || {
        d.audit_actions(Some("hostile"))
            .contains(&("security.syscall_denied".into(), "denied".into()))
    });
    assert!(alerts(&d, true).is_empty(), "one denied syscall is below 3");
    assert_eq!(d.runtime_of("hostile"), "running");

    attack("keyctl");
    attack("mount");
    wait_until(Duration::from_secs(15), "hostile quarantined", || {
        d.plugin_json("hostile")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED"
    });
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "seccomp");
    assert_eq!(open[0]["kind"], "seccomp_violations");
    assert_eq!(open[0]["quarantined"], true);
    assert_eq!(d.runtime_of("bystander"), "running", "only the offender");
}

/// The `kills` of a `security.oom_kill` detail, an object or its JSON text.
fn kills_of(detail: &serde_json::Value) -> u64 {
    let parsed = detail
        .as_str()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    parsed.as_ref().unwrap_or(detail)["kills"]
        .as_u64()
        .unwrap_or(1)
}

#[test]
fn a_repeated_oom_rule_quarantines_a_plugin_killed_for_memory_twice() {
    let port = free_port();
    let d = Daemon::start_with(Settings {
        extra: format!("[[alert]]\nname = \"repeated-oom\"\nkind = \"oom_kills\"\nthreshold = 2\nwindow = \"5m\"\nquarantine = true\n[monitor]\nprometheus_listen = \"127.0.0.1:{port}\"\n"),
        backoff_initial: "100ms",
        backoff_max: "500ms",
        quarantine_after: 50,
        ..Settings::default()
    });
    let manifest = format!("{HOSTILE_MANIFEST}\n[resources]\nmemory = \"48MiB\"\n");
    let pkg = d.package("hostile", &manifest, &bin("hostile"), "hostile");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "hostile"]).ok();
    let oom_kills = || {
        d.audit_actions(Some("hostile"))
            .iter()
            .filter(|(a, _)| a == "security.oom_kill")
            .count()
    };
    let first = d.wait_running("hostile");
    let _ = d.cli(&["plugin", "invoke", "hostile", "balloon", "512"]);
    wait_until(Duration::from_secs(20), "the first OOM kill", || {
        oom_kills() >= 1
    });
    wait_until(Duration::from_secs(20), "restarted after it", || {
        d.runtime_of("hostile") == "running" && d.plugin_pid("hostile") != Some(first)
    });
    assert!(alerts(&d, true).is_empty(), "one OOM kill is below 2");

    let _ = d.cli(&["plugin", "invoke", "hostile", "balloon", "512"]);
    wait_until(
        Duration::from_secs(30),
        "quarantined by repeated-oom",
        || d.plugin_json("hostile")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED",
    );
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "repeated-oom");
    assert_eq!(open[0]["kind"], "oom_kills");
    assert_eq!(open[0]["quarantined"], true);
    assert!(oom_kills() >= 2);

    // Prometheus counts the same records (one may stand for several kills), read
    // once the plugin is stopped and nothing waits for a commit.
    let mut body = String::new();
    wait_until(Duration::from_secs(10), "stopped and all committed", || {
        body = scrape_metrics(port);
        sample(&body, &info("hostile", "quarantined", "stopped")).is_some()
            && sample(&body, "plexichat_audit_queue_entries") == Some(0.0)
    });
    let records = d.audit(Some("hostile"));
    let kills: u64 = records
        .iter()
        .filter(|r| r["action"] == "security.oom_kill")
        .map(|r| kills_of(&r["detail"]))
        .sum();
    let crashes = records
        .iter()
        .filter(|r| r["action"] == "plugin.crash")
        .count();
    let series = "plexichat_plugin_oom_kills_total{plugin=\"hostile\"}";
    assert_eq!(sample(&body, series), Some(kills as f64), "{body}");
    let series = "plexichat_plugin_crashes_total{plugin=\"hostile\"}";
    assert_eq!(sample(&body, series), Some(crashes as f64), "{body}");
    assert!(crashes >= 1, "the first OOM kill ended a run");
    println!("oom: {kills} kills, {crashes} crashes recorded and exposed");
}

/// The body of a `GET /metrics` answer.
fn scrape_metrics(port: u16) -> String {
    let answer = http_get(port, "/metrics");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The value of the one sample `series` (name and labels exactly as exposed).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn info(plugin: &str, state: &str, runtime: &str) -> String {
    format!("plexichat_plugin_info{{plugin=\"{plugin}\",state=\"{state}\",runtime=\"{runtime}\"}}")
}

const METRICS_RULES: &str = "[[alert]]\nname = \"denial-flood\"\nkind = \"denials\"\nthreshold = 10\nwindow = \"1m\"\nquarantine = true\n";

fn metrics_daemon() -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(Settings {
        extra: format!("[monitor]\nprometheus_listen = \"127.0.0.1:{port}\"\n{METRICS_RULES}"),
        ..Settings::default()
    });
    (d, port)
}

#[test]
fn prometheus_shows_the_build_the_process_plugin_states_spawns_and_audit_lag() {
    let (d, port) = metrics_daemon();
    install_running(&d, "steady", FILE_READ);
    install_running(&d, "parked", "");
    install_running(&d, "noisy", FILE_READ);
    d.cli(&["plugin", "disable", "parked"]).ok();
    // The alert may kill it before the command finishes: its answer does not matter.
    let _ = d.cli(&["plugin", "invoke", "noisy", "deny-flood", "2"]);
    wait_until(Duration::from_secs(15), "noisy quarantined", || {
        d.plugin_json("noisy")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED"
            && d.runtime_of("noisy") == "stopped"
    });

    // Quiescent: every record committed, nothing waits.
    let mut body = String::new();
    wait_until(Duration::from_secs(10), "the audit queue drained", || {
        body = scrape_metrics(port);
        sample(&body, "plexichat_audit_queue_entries") == Some(0.0)
    });
    assert_eq!(
        sample(&body, "plexichat_audit_commit_lag_seconds"),
        Some(0.0)
    );

    let version = env!("CARGO_PKG_VERSION");
    assert!(
        body.lines().any(|l| l
            .starts_with(&format!("plexichat_build_info{{version=\"{version}\""))
            && l.ends_with("} 1")),
        "{body}"
    );
    assert_eq!(
        sample(&body, &info("steady", "enabled", "running")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, &info("parked", "disabled", "stopped")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, &info("noisy", "quarantined", "stopped")),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        body.lines()
            .filter(|l| l.starts_with("plexichat_plugin_info{"))
            .count(),
        3,
        "one info series per plugin"
    );

    // Every start recorded is one observation; the histogram is well formed.
    let starts = d
        .audit_actions(None)
        .iter()
        .filter(|(a, o)| a == "plugin.start" && o == "ok")
        .count();
    assert_eq!(starts, 3, "three plugins started once each");
    let count = sample(&body, "plexichat_plugin_spawn_seconds_count");
    assert_eq!(count, Some(starts as f64), "{body}");
    let inf = sample(&body, "plexichat_plugin_spawn_seconds_bucket{le=\"+Inf\"}");
    assert_eq!(inf, count);
    let sum = sample(&body, "plexichat_plugin_spawn_seconds_sum").unwrap_or_default();
    assert!(sum > 0.0 && sum < 3.0 * 30.0, "spawn seconds summed: {sum}");
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with("plexichat_plugin_spawn_seconds_bucket{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {buckets:?}"
    );
    println!("spawn: {starts} starts, {sum:.3} s in all, buckets {buckets:?}");

    // The supervisor's own process, checked against what /proc says of its pid.
    let fds = sample(&body, "process_open_fds").unwrap_or_default();
    let max = sample(&body, "process_max_fds").unwrap_or_default();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let soft: f64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert_eq!(max, soft, "the daemon's soft RLIMIT_NOFILE");
    assert!(fds > 0.0 && fds < max, "open fds {fds} of {max}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = sample(&body, "process_start_time_seconds").unwrap_or_default();
    assert!(
        started <= now + 1.0 && started > now - 600.0,
        "started {started}, now {now}"
    );
    assert!(sample(&body, "process_threads").unwrap_or_default() >= 2.0);
    assert!(sample(&body, "process_resident_memory_bytes").unwrap_or_default() > 1e6);
    assert!(sample(&body, "process_cpu_seconds_total").unwrap_or_default() > 0.0);
    println!(
        "process: {fds} of {max} fds, started {:.0} s ago",
        now - started
    );

    for family in [
        "plexichat_build_info",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_threads",
        "plexichat_plugin_info",
        "plexichat_plugin_spawn_seconds",
        "plexichat_audit_queue_entries",
        "plexichat_audit_commit_lag_seconds",
        "plexichat_plugin_crashes_total",
        "plexichat_plugin_oom_kills_total",
    ] {
        assert!(body.contains(&format!("# HELP {family} ")), "{family} HELP");
        assert!(body.contains(&format!("# TYPE {family} ")), "{family} TYPE");
    }
    assert_eq!(
        sample(&body, "plexichat_plugin_crashes_total{plugin=\"steady\"}"),
        Some(0.0)
    );
}

/// promtool, or `None` (with one SKIPPED line) off CI; on CI its absence fails.
fn promtool() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing (Debian: apt-get install --no-install-recommends prometheus)"
        );
        println!(
            "SKIPPED: promtool not installed (apt-get install --no-install-recommends prometheus)"
        );
    }
    found
}

fn contrib(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(path)
}

#[test]
fn promtool_accepts_the_shipped_alert_rules_and_a_live_scrape() {
    let Some(promtool) = promtool() else {
        return;
    };
    // The rules parse, and each fires on its case and not before (the unit tests
    // beside them).
    for (how, file) in [
        ("check", "prometheus/plexichat-alerts.yml"),
        ("test", "prometheus/plexichat-alerts.test.yml"),
    ] {
        let checked = Command::new(&promtool)
            .args([how, "rules"])
            .arg(contrib(file))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&checked.stdout);
        assert!(
            checked.status.success(),
            "promtool {how} rules {file}: {out}{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        println!("{}", out.trim());
    }

    let (d, port) = metrics_daemon();
    install_running(&d, "busy", FILE_READ);
    deny_flood(&d, "busy", 1);
    let body = scrape_metrics(port);
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let linted = check.wait_with_output().unwrap();
    assert!(
        linted.status.success() && linted.stdout.is_empty() && linted.stderr.is_empty(),
        "promtool check metrics: {}{}\n{body}",
        String::from_utf8_lossy(&linted.stdout),
        String::from_utf8_lossy(&linted.stderr)
    );

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(contrib("grafana/plexichat-supervisor.json")).unwrap(),
    )
    .unwrap();
    // Every metric a panel queries is one the daemon exposes.
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("plexichat_") || w.starts_with("process_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    body.contains(&format!("# TYPE {family} ")),
                    "{expr}: {name} is not exposed"
                );
                queried += 1;
            }
        }
    }
    assert!(queried >= 8, "{queried} metrics queried");
}
