//! End to end: `plexichat monitor plugins` (table, JSON, the real-time terminal UI
//! under a pseudo-terminal) and the loopback Prometheus endpoint; alert rules raising
//! alerts, writing the security log, quarantining, and being acknowledged.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
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
    assert_eq!(busy["calls"]["has_permission"], 40, "{busy}");
    assert_eq!(busy["calls"]["file_read"], 40, "{busy}");
    assert_eq!(busy["denials"], 40, "the 40 refused reads");
    assert_eq!(idle["denials"], 0);
    assert_eq!(idle["calls"], serde_json::json!({}));
    for p in [busy, idle] {
        assert_eq!(p["runtime"], "running");
        assert!(p["memory_bytes"].as_u64().unwrap() > 0, "{p}");
        assert!(p["memory_limit"].as_u64().unwrap() > 0, "{p}");
        assert!(p["pids"].as_u64().unwrap() >= 1, "{p}");
        assert!(p["cpu_usec"].as_u64().unwrap() > 0, "{p}");
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
    assert!(
        http_get(port, "/").starts_with("HTTP/1.1 404"),
        "only /metrics"
    );
}

/// Runs `plexichat monitor plugins --real-time` on a pseudo-terminal until it has
/// drawn `want`, then presses q; returns everything it drew.
fn run_tui(d: &Daemon, want: &str) -> String {
    run_tui_cols(d, want, 140)
}

/// [`run_tui`] on a terminal `cols` columns wide.
fn run_tui_cols(d: &Daemon, want: &str, cols: u16) -> String {
    let winsize = nix::pty::Winsize {
        ws_row: 30,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&winsize), None).unwrap();
    let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
    let mut child = Command::new(bin("plexichat"))
        .args(["monitor", "plugins", "--real-time", "--interval", "300ms"])
        .env("PLEXICHAT_SOCKET", &d.socket)
        .env("TERM", "xterm-256color")
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    // SAFETY: fcntl on a descriptor we own, setting O_NONBLOCK.
    unsafe {
        let fd = master.as_raw_fd();
        libc::fcntl(
            fd,
            libc::F_SETFL,
            libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
        );
    }
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
        || d.plugin_json("noisy")["summary"]["state"] == "quarantined",
    );
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    let alert = &open[0];
    assert_eq!(alert["plugin"], "noisy");
    assert_eq!(alert["rule"], "denial-flood");
    assert_eq!(alert["quarantined"], true);
    assert!(alert["count"].as_u64().unwrap() >= 10);
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
    assert_eq!(crash["quarantined"], false);
    assert_ne!(d.plugin_json("crashy")["summary"]["state"], "quarantined");
    d.cli(&["plugin", "disable", "crashy"]).ok();

    let id = alert["id"].as_i64().unwrap().to_string();
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
        d.plugin_json("hostile")["summary"]["state"] == "quarantined"
    });
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "seccomp");
    assert_eq!(open[0]["kind"], "seccomp_violations");
    assert_eq!(open[0]["quarantined"], true);
    assert_eq!(d.runtime_of("bystander"), "running", "only the offender");
}

#[test]
fn a_repeated_oom_rule_quarantines_a_plugin_killed_for_memory_twice() {
    let d = Daemon::start_with(Settings {
        extra: "[[alert]]\nname = \"repeated-oom\"\nkind = \"oom_kills\"\nthreshold = 2\nwindow = \"5m\"\nquarantine = true\n".into(),
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
        || d.plugin_json("hostile")["summary"]["state"] == "quarantined",
    );
    let open = alerts(&d, false);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["rule"], "repeated-oom");
    assert_eq!(open[0]["kind"], "oom_kills");
    assert_eq!(open[0]["quarantined"], true);
    assert!(oom_kills() >= 2);
}
