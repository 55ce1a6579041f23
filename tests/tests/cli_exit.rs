//! End to end: the CLI's exit status is honest when the supervisor is SIGKILLed under
//! a load of admin actions: every exit 0 has its audit record, every failure says why.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

const CLOSED: &str = "the supervisor closed the connection before answering: the action may or may not have happened; check `plexichat audit plugins`";

/// One CLI run: what was asked (its unique tag) and what the CLI said.
struct Run {
    tag: String,
    args: Vec<String>,
    out: Cli,
}

/// The admin action number `n` of worker `w`, tagged so its record can be found.
fn action(w: usize, n: usize) -> (String, Vec<String>) {
    let tag = format!("w{w}n{n}");
    let args: Vec<String> = match (w + n) % 4 {
        0 => vec![
            "backup".into(),
            "create".into(),
            "--comment".into(),
            tag.clone(),
        ],
        1 => vec![
            "event".into(),
            "publish".into(),
            format!("chat.exit.{tag}"),
            "x".into(),
        ],
        2 => vec![
            "emergency".into(),
            "enable-safe-mode".into(),
            "--comment".into(),
            tag.clone(),
        ],
        _ => vec![
            "emergency".into(),
            "disable-safe-mode".into(),
            "--comment".into(),
            tag.clone(),
        ],
    };
    (tag, args)
}

/// Tags found in the audit log (comments and published topics), read from SQLite.
fn recorded_tags(d: &Daemon) -> BTreeSet<String> {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    let mut stmt = c
        .prepare("SELECT detail FROM audit_log WHERE outcome = 'ok' AND detail IS NOT NULL")
        .unwrap();
    let details: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    details
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["comment"].as_str().map(str::to_string).or_else(|| {
                v["topic"]
                    .as_str()
                    .and_then(|t| t.strip_prefix("chat.exit."))
                    .map(str::to_string)
            })
        })
        .collect()
}

/// Runs `workers` loops of tagged admin actions, SIGKILLs the supervisor once
/// `before_kill` of them succeeded, and keeps going a moment longer.
fn load_and_kill(d: &mut Daemon, workers: usize, before_kill: usize, round: usize) -> Vec<Run> {
    let runs = Mutex::new(Vec::new());
    let ok = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let pid = d.pid() as i32;
    std::thread::scope(|s| {
        for w in 0..workers {
            let (runs, ok, stop, d) = (&runs, &ok, &stop, &*d);
            s.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (tag, args) = action(w, round * 100_000 + n);
                    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = d.cli(&argv);
                    if out.status.success() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    runs.lock().unwrap().push(Run { tag, args, out });
                    n += 1;
                }
            });
        }
        wait_until(Duration::from_secs(60), "admin actions succeed", || {
            ok.load(Ordering::Relaxed) >= before_kill
        });
        // SAFETY: kill(2) on the supervisor's pid, our child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, Ordering::Relaxed);
    });
    d.crash();
    runs.into_inner().unwrap()
}

#[test]
fn every_admin_action_the_cli_reported_done_is_audited_across_a_sigkill() {
    let mut d = Daemon::start();
    let mut all = Vec::new();
    let mut closed = 0;
    // Until a kill has caught at least one action in flight (almost always the first).
    for round in 0..4 {
        let started = Instant::now();
        let runs = load_and_kill(&mut d, 12, 150, round);
        d.restart();
        let caught = runs
            .iter()
            .filter(|r| r.out.stderr.contains(CLOSED))
            .count();
        println!(
            "round {round}: {} actions in {:?}, {} answered ok, {caught} cut off by the kill",
            runs.len(),
            started.elapsed(),
            runs.iter().filter(|r| r.out.status.success()).count()
        );
        closed += caught;
        all.extend(runs);
        if closed > 0 {
            break;
        }
    }
    assert!(closed > 0, "no kill caught an action in flight");

    let recorded = recorded_tags(&d);
    let mut failures = Vec::new();
    for r in &all {
        let cmd = r.args.join(" ");
        if r.out.status.success() {
            if r.out.stdout.trim().is_empty() {
                failures.push(format!("`{cmd}` exited 0 without output"));
            }
            if !recorded.contains(&r.tag) {
                failures.push(format!("`{cmd}` exited 0 but has no audit record"));
            }
        } else {
            let err = r.out.stderr.trim();
            if r.out.status.code() != Some(1) || !err.starts_with("error: ") || err.len() < 20 {
                failures.push(format!(
                    "`{cmd}` exited {:?} with no clear error: {err:?}",
                    r.out.status.code()
                ));
            }
        }
    }
    let ok = all.iter().filter(|r| r.out.status.success()).count();
    let mut kinds = std::collections::BTreeMap::new();
    for r in all.iter().filter(|r| !r.out.status.success()) {
        let head: String = r.out.stderr.chars().take(70).collect();
        *kinds.entry(head).or_insert(0) += 1;
    }
    for (head, n) in &kinds {
        println!("  {n:>4} × {head}");
    }
    println!(
        "{} actions: {ok} exit 0 (each audited), {closed} `closed before answering`, {} other failures",
        all.len(),
        all.len() - ok - closed
    );
    assert!(
        failures.is_empty(),
        "{} dishonest exits, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // A closed stdout (`| head`) is still quiet and not a failure.
    let mut child = std::process::Command::new(bin("plexichat"))
        .env("PLEXICHAT_SOCKET", &d.socket)
        .args(["audit", "plugins", "--limit", "5000"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
