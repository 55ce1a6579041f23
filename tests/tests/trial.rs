//! End to end: `plexichat plugin trial` runs a plugin under review confined, with no
//! grants, and reports what it tried against its manifest; checked from outside that
//! nothing it tried was reached (app database, network, grants, state, data dir).

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A listener on loopback that counts the connections it gets; its port.
fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (port, seen)
}

fn manifest(name: &str, port: u16) -> String {
    format!(
        r#"name = "{name}"
version = "1.0.0"
entry = "{name}"

[[permissions]]
name = "file_write"
justification = "writes its reports"
scope = ["/srv/reports"]

[[permissions]]
name = "network_outbound"
justification = "calls its API"
scope = ["localhost:{port}"]
"#
    )
}

fn app_db(path: &Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password_hash TEXT);
         INSERT INTO users (name, password_hash) VALUES ('alice', 'canary-hash');",
    )
    .unwrap();
}

fn db_state(path: &Path) -> (i64, Vec<u8>) {
    let rows = rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    (rows, std::fs::read(path).unwrap())
}

fn trials_left(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.root().join("state/trials"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn lines_of(report: &serde_json::Value) -> Vec<String> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["text"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_trial_reports_what_the_plugin_tried_and_reaches_none_of_it() {
    const VIEWER: u32 = 65534;
    let d = Daemon::start_with(Settings {
        viewer_uids: vec![VIEWER],
        socket_mode: "0666",
        ..Settings::default()
    });
    let db = d.root().join("state/app.db");
    app_db(&db);
    let (requested_port, requested_seen) = counting_listener();
    let (other_port, other_seen) = counting_listener();
    let pkg = d.package(
        "trialled",
        &manifest("trialled", requested_port),
        &bin("trial_plugin"),
        "trialled",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    // Admins only: a viewer is refused before anything runs.
    let viewer = d.cli_as(VIEWER, &["plugin", "trial", "trialled", "--duration", "1s"]);
    assert!(!viewer.status.success());
    assert!(
        viewer.stderr.contains("permission denied"),
        "{}",
        viewer.stderr
    );
    let before = d.plugin_json("trialled");
    let db_before = db_state(&db);
    let real_data = d.root().join("state/data/trialled");
    let data_before = std::fs::read_dir(&real_data).map(|rd| rd.count()).ok();

    // A second trial while one runs is refused at once, naming the first.
    let probe =
        format!("probe http://localhost:{requested_port}/api http://127.0.0.1:{other_port}/steal");
    let started = Instant::now();
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| {
            d.cli(&[
                "--output",
                "json",
                "plugin",
                "trial",
                "trialled",
                "--duration",
                "4s",
                "--event",
                "trial.hello=from the admin",
                "--invoke",
                &probe,
            ])
        });
        wait_until(Duration::from_secs(20), "the first trial runs", || {
            !trials_left(&d).is_empty()
        });
        let second = d.cli(&["plugin", "trial", "trialled", "--duration", "1s"]);
        assert!(!second.status.success(), "a concurrent trial ran");
        assert!(
            second.stderr.contains("a trial of trialled is in progress"),
            "{}",
            second.stderr
        );
        first.join().unwrap()
    });
    let elapsed = started.elapsed();
    let report = first.ok().json();
    println!("trial took {elapsed:?}; report: {report:#}");

    // The comparison, line by line.
    let lines = lines_of(&report);
    for want in [
        "tried database_read on users — NOT requested".to_string(),
        format!("tried network_outbound 127.0.0.1:{other_port} — NOT requested"),
        format!("tried network_outbound localhost:{requested_port} — requested"),
        "requested file_write on /srv/reports — never tried".to_string(),
    ] {
        assert!(lines.contains(&want), "no line {want:?} in {lines:#?}");
    }
    assert_eq!(lines.len(), 4, "{lines:#?}");
    // Every call was refused as a trial; the syscall by seccomp, by name.
    let invocation = &report["invocations"][0];
    assert_eq!(invocation["ok"], true, "{invocation}");
    assert_eq!(
        invocation["output"].as_str().unwrap(),
        format!(
            "db=Some(PermissionDenied) http://localhost:{requested_port}/api=Some(PermissionDenied) http://127.0.0.1:{other_port}/steal=Some(PermissionDenied) bpf=refused"
        )
    );
    let syscalls: Vec<&str> = report["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(syscalls.contains(&"bpf"), "{syscalls:?}");
    let peaks = &report["peaks"];
    println!("peaks: {peaks}");
    assert!(int(&peaks["memory_bytes"]) > 0, "{peaks}");
    assert!(int(&peaks["pids"]) > 0, "{peaks}");
    assert!(int(&peaks["cpu_usec"]) > 0, "{peaks}");
    assert!(
        peaks["source"].as_str().unwrap().contains("memory"),
        "{peaks}"
    );
    assert_eq!(report["confined"], true);
    // Proto3 JSON leaves false out.
    assert!(report.get("crashed").is_none(), "{}", report["exit"]);
    assert!(report["exit"]
        .as_str()
        .unwrap()
        .starts_with("stopped after the trial"));
    assert!(int(&report["ran_ms"]) >= 4000, "{}", report["ran_ms"]);
    assert_eq!(report["events_delivered"], 1);
    let tail = report["log_tail"].to_string();
    assert!(tail.contains("trial plugin starting"), "{tail}");
    assert!(tail.contains("event trial.hello from the admin"), "{tail}");

    // From outside: nothing was reached, nothing changed.
    assert_eq!(
        requested_seen.load(Ordering::SeqCst),
        0,
        "the requested host got a connection"
    );
    assert_eq!(
        other_seen.load(Ordering::SeqCst),
        0,
        "the other host got a connection"
    );
    assert_eq!(db_state(&db), db_before, "the app database changed");
    let after = d.plugin_json("trialled");
    assert_eq!(
        after["permissions"], before["permissions"],
        "grants changed"
    );
    assert_eq!(after["summary"]["state"], before["summary"]["state"]);
    assert_eq!(short(&after["summary"]["runtime"]), "stopped");
    assert_eq!(
        trials_left(&d),
        Vec::<String>::new(),
        "the trial dir is left"
    );
    let data_after = std::fs::read_dir(&real_data).map(|rd| rd.count()).ok();
    assert_eq!(data_after, data_before, "the real data dir was touched");
    let audit = d.audit(Some("trialled"));
    let trial = audit
        .iter()
        .find(|r| r["action"] == "plugin.trial")
        .expect("a plugin.trial audit record");
    println!("audit: {trial}");
    assert!(trial.to_string().contains("bpf"), "{trial}");
    assert!(trial.to_string().contains("NOT requested"), "{trial}");
    // The denial went to the report, not the audit trail (no alert, no quarantine).
    assert!(!audit
        .iter()
        .any(|r| r["action"] == "security.syscall_denied"));
}

#[test]
fn fixtures_answer_and_bad_requests_and_running_plugins_are_refused() {
    let mut d = Daemon::start();
    let (port, seen) = counting_listener();
    let pkg = d.package(
        "fixtured",
        &manifest("fixtured", port),
        &bin("trial_plugin"),
        "fixtured",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    let fixture = d.root().join("fixture.db");
    let c = rusqlite::Connection::open(&fixture).unwrap();
    c.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password_hash TEXT);
         INSERT INTO users (name) VALUES ('sample-a'), ('sample-b'), ('sample-c');",
    )
    .unwrap();
    drop(c);
    let canned = d.root().join("http.json");
    std::fs::write(
        &canned,
        format!(r#"{{"http://localhost:{port}/api": {{"status": 200, "body": "canned"}}}}"#),
    )
    .unwrap();
    let report = d
        .cli(&[
            "--output",
            "json",
            "plugin",
            "trial",
            "fixtured",
            "--duration",
            "2s",
            "--fixture-db",
            fixture.to_str().unwrap(),
            "--fixture-http",
            canned.to_str().unwrap(),
            "--invoke",
            "read-fixture",
            "--invoke",
            &format!("probe http://localhost:{port}/api http://localhost:{port}/other"),
        ])
        .ok()
        .json();
    println!("{report:#}");
    assert_eq!(report["invocations"][0]["output"], "rows=3");
    let probe = report["invocations"][1]["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        probe.starts_with("db=ok ")
            && probe.contains(&format!("localhost:{port}/api=ok"))
            && probe.contains(&format!("localhost:{port}/other=Some(PermissionDenied)")),
        "{probe}"
    );
    let lines = lines_of(&report);
    assert!(
        lines.contains(
            &"tried database_read on users — NOT requested (answered from the fixture)".into()
        ),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&format!(
            "tried network_outbound localhost:{port} — requested (answered from the fixture)"
        )),
        "{lines:#?}"
    );
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "a fixture answer reached the network"
    );

    // The text report, as an admin reads it.
    let text = d
        .cli(&["plugin", "trial", "fixtured", "--duration", "1s"])
        .ok()
        .stdout
        .clone();
    println!("{text}");
    for want in [
        "Trial of fixtured 1.0.0: ran",
        "requested file_write on /srv/reports — never tried",
        "Syscalls refused by seccomp: none",
        "Peaks: memory",
        "[stderr] trial plugin starting",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }

    // Bad durations: a clear error, nothing run.
    let long = d.cli(&["plugin", "trial", "fixtured", "--duration", "10m"]);
    assert!(!long.status.success());
    assert!(
        long.stderr
            .contains("duration must be between 1s and 5m (got 10m)"),
        "{}",
        long.stderr
    );
    let junk = d.cli(&["plugin", "trial", "fixtured", "--duration", "soon"]);
    assert!(!junk.status.success());
    assert!(
        junk.stderr.contains("expected a duration"),
        "{}",
        junk.stderr
    );
    let refusals = d
        .audit(Some("fixtured"))
        .iter()
        .filter(|r| r["action"] == "plugin.trial")
        .count();
    assert_eq!(
        refusals, 2,
        "a refused request was run or audited as a trial"
    );

    // A running plugin is refused, naming why; the allowed case above ran.
    d.run_plugin("live", &bin("trial_plugin"));
    let running = d.cli(&["plugin", "trial", "live", "--duration", "1s"]);
    assert!(!running.status.success());
    assert!(
        running.stderr.contains("plugin `live` is running now")
            && running.stderr.contains("plexichat plugin disable live"),
        "{}",
        running.stderr
    );
    assert_eq!(d.runtime_of("live"), "running");
    assert_eq!(trials_left(&d), Vec::<String>::new());

    // A client that hangs up does not cancel the trial: it runs out, stops, is audited.
    let mut gone = std::process::Command::new(bin("plexichat"))
        .env("PLEXICHAT_SOCKET", d.root().join("run/supervisor.sock"))
        .args(["plugin", "trial", "fixtured", "--duration", "2s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "the trial runs", || {
        !trials_left(&d).is_empty()
    });
    gone.kill().unwrap();
    let _ = gone.wait();
    wait_until(
        Duration::from_secs(20),
        "the abandoned trial is audited",
        || {
            d.audit(Some("fixtured"))
                .iter()
                .filter(|r| r["action"] == "plugin.trial")
                .count()
                == 3
        },
    );
    assert_eq!(trials_left(&d), Vec::<String>::new());

    // The supervisor stopping mid-trial ends it: the plugin stopped, recorded, cleaned.
    let mut cut = std::process::Command::new(bin("plexichat"))
        .env("PLEXICHAT_SOCKET", d.root().join("run/supervisor.sock"))
        .args(["plugin", "trial", "fixtured", "--duration", "60s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(20), "the trial runs", || {
        !trials_left(&d).is_empty()
    });
    let stopping = Instant::now();
    d.stop();
    println!("stopped mid-trial in {:?}", stopping.elapsed());
    assert!(stopping.elapsed() < Duration::from_secs(20));
    let _ = cut.wait();
    assert_eq!(trials_left(&d), Vec::<String>::new());
    d.restart();
    let ended: Vec<String> = d
        .audit(Some("fixtured"))
        .iter()
        .filter(|r| r["action"] == "plugin.trial")
        .map(|r| r.to_string())
        .collect();
    assert_eq!(ended.len(), 4, "{ended:#?}");
    assert!(
        ended[3].contains("ended early, the supervisor is stopping"),
        "{}",
        ended[3]
    );
}
