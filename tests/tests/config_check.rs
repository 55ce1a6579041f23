//! End to end: every invalid configuration value (and a catalog without `[events]`)
//! stops the real supervisor at once, naming the key, before it touches anything;
//! `plexichat-supervisor --check-config` prints the effective config or every problem.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::*;

/// A refused start must be over well within this (it takes milliseconds).
const AT_ONCE: Duration = Duration::from_secs(5);

/// Runs the supervisor with `args`; kills it and fails if it has not exited after
/// 20 s (a daemon that started instead of refusing). Returns status, stdout, stderr
/// and how long it ran.
fn run_supervisor(args: &[&str], dir: &Path) -> (ExitStatus, String, String, Duration) {
    let (out, err) = (dir.join("run.stdout"), dir.join("run.stderr"));
    let start = Instant::now();
    let mut child = Command::new(bin("plexichat-supervisor"))
        .args(args)
        .current_dir(dir)
        .env_remove("PLEXICHAT_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn supervisor");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait supervisor") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the supervisor was still running after 20 s with {args:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let texts = (read(&out), read(&err));
    let _ = std::fs::remove_file(out);
    let _ = std::fs::remove_file(err);
    (status, texts.0, texts.1, elapsed)
}

/// Every file under `root` with its size and mtime: a refused start changes none.
fn snapshot(root: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(path.clone());
            }
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((path, meta.len(), mtime));
        }
    }
    out.sort();
    out
}

/// `text` with the line `key = ...` replaced by `key = value`, or the line added
/// right after `[section]` when the generated file does not set `key`.
fn with(text: &str, section: &str, key: &str, value: &str) -> String {
    let prefix = format!("{key} = ");
    if text.lines().any(|l| l.starts_with(&prefix)) {
        text.lines()
            .map(|l| {
                if l.starts_with(&prefix) {
                    format!("{key} = {value}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        let header = format!("[{section}]\n");
        assert!(
            text.contains(&header),
            "no {header} in the generated config"
        );
        text.replacen(&header, &format!("{header}{key} = {value}\n"), 1)
    }
}

#[test]
fn each_invalid_value_stops_the_supervisor_at_once_naming_the_key() {
    let mut d = Daemon::start_with(Settings {
        own_policies: true,
        ..Settings::default()
    });
    // A plugin that would start with the supervisor, were it allowed to.
    let pkg = d.package(
        "echo",
        "name = \"echo\"\nversion = \"1.0.0\"\nentry = \"echo\"\n",
        &bin("echo_plugin"),
        "echo",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running("echo");
    d.stop();
    assert!(
        !d.socket.exists(),
        "a stopped supervisor removes its socket"
    );

    let root = d.root().to_path_buf();
    let valid = std::fs::read_to_string(&d.config).expect("generated config");
    let bad = root.join("bad.toml");
    let bad_arg = bad.to_str().unwrap().to_string();
    let cases = [
        (
            with(&valid, "runtime", "health_interval", "\"0s\""),
            "runtime.health_interval must be greater than 0 (got \"0s\")",
        ),
        (
            with(&valid, "broker", "rate_per_sec", "-1"),
            "broker.rate_per_sec must be a finite number greater than 0 (got -1)",
        ),
        (
            with(&valid, "broker", "rate_per_sec", "nan"),
            "broker.rate_per_sec must be a finite number greater than 0 (got NaN)",
        ),
        (
            with(&valid, "broker", "burst", "0"),
            "broker.burst must be at least 1 (got 0)",
        ),
        (
            with(&valid, "sandbox", "max_pids", "0"),
            "sandbox.max_pids must be at least 1 (got 0)",
        ),
        (
            with(&valid, "sandbox", "uid_base", "65534"),
            "sandbox.uid_base 65534 with sandbox.uid_count 100 gives plugins the ids 65534..65634, which include 65534 (nobody)",
        ),
        (
            with(&valid, "sandbox", "read_only", "[\"/\"]"),
            "sandbox.read_only[0] \"/\" must not be /",
        ),
        (
            with(&valid, "runtime", "stop_grace", "\"300years\""),
            "runtime.stop_grace must be at most 5m",
        ),
        (
            with(&valid, "sandbox", "warm_trampolines", "100000"),
            "sandbox.warm_trampolines must be at most 64 (got 100000)",
        ),
    ];
    let before = snapshot(&root);
    for (text, expected) in &cases {
        std::fs::write(&bad, text).expect("write bad config");
        let (status, _, err, took) = run_supervisor(&["--config", &bad_arg], &root);
        println!("refused in {took:?}: {expected}");
        assert!(!status.success(), "{expected}: started anyway: {err}");
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
        assert!(took < AT_ONCE, "{expected}: took {took:?}");
        assert!(
            !d.socket.exists(),
            "{expected}: the admin socket was created"
        );
    }

    // A catalog that lost its [events] section: the file is named.
    let catalog = root.join("policies/permissions.toml");
    let shipped = std::fs::read_to_string(&catalog).expect("catalog");
    let (head, _) = shipped
        .split_once("[events]")
        .expect("[events] in the catalog");
    std::fs::write(&catalog, head).expect("break the catalog");
    let config_arg = d.config.to_str().unwrap().to_string();
    let (status, _, err, took) = run_supervisor(&["--config", &config_arg], &root);
    println!("catalog without [events] refused in {took:?}");
    assert!(!status.success(), "started with no sensitive topics: {err}");
    assert!(
        err.contains(catalog.to_str().unwrap()) && err.contains("[events] section"),
        "{err}"
    );
    assert!(took < AT_ONCE, "took {took:?}");
    std::fs::write(&catalog, &shipped).expect("restore the catalog");
    std::fs::remove_file(&bad).expect("remove bad config");
    let after = snapshot(&root);
    assert_eq!(
        before.len(),
        after.len(),
        "refused starts created or removed files"
    );
    for (b, a) in before.iter().zip(&after) {
        if b.0 == catalog {
            continue; // rewritten by the test itself
        }
        assert_eq!(b, a, "a refused start touched {}", b.0.display());
    }

    // The valid neighbour: the same directory starts, and the plugin with it.
    d.restart();
    d.wait_running("echo");
}

#[test]
fn check_config_prints_the_effective_config_of_a_valid_file_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let config = root.join("supervisor.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{r}/state\"\nlog_dir = \"{r}/log\"\nadmin_socket = \"{r}/run/s.sock\"\n\
             [runtime]\nhealth_interval = \"2s\"\n[sandbox]\nuid_base = 3000000\nuid_count = 100\n",
            r = root.display()
        ),
    )
    .expect("write config");
    let arg = config.to_str().unwrap().to_string();
    let (status, out, err, took) = run_supervisor(&["--check-config", "--config", &arg], root);
    println!("--check-config answered in {took:?}");
    assert!(status.success(), "{err}");
    for line in [
        "health_interval = \"2s\"",
        "stop_grace = \"3s\"",
        "uid_base = 3000000",
        "max_pids = 128",
        "rate_per_sec = 500.0",
        "call_timeout = \"30s\"",
        "keep = 50",
        "# unset policy_dir",
    ] {
        assert!(out.contains(line), "`{line}` missing from:\n{out}");
    }
    let database = format!("database = \"{}/state/app.db\"", root.display());
    assert!(out.contains(&database), "{out}");
    for made in ["state", "log", "run"] {
        assert!(!root.join(made).exists(), "--check-config created {made}/");
    }

    // What it prints is itself a valid configuration, printed the same.
    let effective = root.join("effective.toml");
    std::fs::write(&effective, &out).expect("write effective");
    let arg = effective.to_str().unwrap().to_string();
    let (status, again, err, _) = run_supervisor(&["--check-config", "--config", &arg], root);
    assert!(status.success(), "{err}");
    assert_eq!(again, out);

    // Without --config: the embedded default, relative to the working directory.
    let (status, out, err, _) = run_supervisor(&["--check-config"], root);
    assert!(status.success(), "{err}");
    assert!(out.contains(&format!("state_dir = \"{}/var/state\"", root.display())));
    assert!(!root.join("var").exists(), "--check-config created var/");
}

#[test]
fn check_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let config = root.join("supervisor.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{r}/state\"\nlog_dir = \"\"\nadmin_socket = \"{r}/run/s.sock\"\n\
             policy_dir = \"{r}/policies\"\n\
             [runtime]\nhealth_interval = \"0s\"\n\
             [sandbox]\nuid_base = 65000\nmax_pids = 0\nread_only = [\"/\", \"/no/such/dir\"]\n\
             [broker]\nrate_per_sec = nan\nburst = 0\n",
            r = root.display()
        ),
    )
    .expect("write config");
    copy_policies(root);
    let catalog = root.join("policies/permissions.toml");
    let shipped = std::fs::read_to_string(&catalog).expect("catalog");
    let (head, _) = shipped.split_once("[events]").expect("[events]");
    std::fs::write(&catalog, head).expect("break the catalog");

    let arg = config.to_str().unwrap().to_string();
    let (status, out, err, _) = run_supervisor(&["--check-config", "--config", &arg], root);
    assert_eq!(status.code(), Some(1), "{out}{err}");
    assert!(
        out.is_empty(),
        "no effective config for a refused file: {out}"
    );
    for expected in [
        "log_dir must not be empty",
        "runtime.health_interval must be greater than 0 (got \"0s\")",
        "sandbox.uid_base 65000 with sandbox.uid_count 10000 gives plugins the ids 65000..75000, which include 65534 (nobody)",
        "sandbox.max_pids must be at least 1 (got 0)",
        "sandbox.read_only[0] \"/\" must not be /",
        "sandbox.read_only[1] \"/no/such/dir\" does not exist",
        "broker.rate_per_sec must be a finite number greater than 0 (got NaN)",
        "broker.burst must be at least 1 (got 0)",
        "permissions.toml: the [events] section must state the sensitive topics",
    ] {
        assert!(err.contains(expected), "`{expected}` missing from:\n{err}");
    }
    assert!(
        err.contains("would be refused (9 problems)"),
        "every problem counted: {err}"
    );

    // An explicit empty list is allowed; fixing the rest makes the file valid.
    std::fs::write(&catalog, format!("{head}[events]\nsensitive = []\n")).expect("catalog");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{r}/state\"\nlog_dir = \"{r}/log\"\nadmin_socket = \"{r}/run/s.sock\"\n\
             policy_dir = \"{r}/policies\"\n[sandbox]\nuid_base = 3000000\nuid_count = 100\n",
            r = root.display()
        ),
    )
    .expect("write config");
    let (status, out, err, _) = run_supervisor(&["--check-config", "--config", &arg], root);
    assert!(status.success(), "{err}");
    assert!(out.contains(&format!("policy_dir = \"{}/policies\"", root.display())));
}
