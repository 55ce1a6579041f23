//! End to end: one supervisor per state directory and per cgroup subtree. A second
//! one, started by mistake on the same state or the same cgroup_name, refuses at once
//! naming the running one's pid, and the running one's plugins are untouched.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs a second supervisor on `config` and returns its exit status, output and
/// how long it took.
fn second(config: &std::path::Path) -> (std::process::ExitStatus, String, Duration) {
    let started = Instant::now();
    let out = Command::new(bin("plexichat-supervisor"))
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .expect("run a second supervisor");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text, started.elapsed())
}

#[test]
fn a_second_supervisor_refuses_and_the_first_keeps_its_plugins() {
    let mut d = Daemon::start();
    let pid = d.run_hello();
    let first = d.pid();

    // The same configuration: same state directory.
    let (status, text, took) = second(&d.config);
    assert!(!status.success(), "{text}");
    assert!(text.contains("another supervisor"), "{text}");
    assert!(text.contains(&format!("(pid {first})")), "{text}");
    assert!(text.contains("state directory"), "{text}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // Its own state directory and socket, but the first one's cgroup_name.
    let other = tempfile::tempdir().expect("tempdir");
    let root = d.root().display().to_string();
    let config = std::fs::read_to_string(&d.config)
        .expect("config")
        .replace(&root, &other.path().display().to_string());
    let other_config = other.path().join("supervisor.toml");
    std::fs::write(&other_config, config).expect("write config");
    let (status, text, _) = second(&other_config);
    assert!(!status.success(), "{text}");
    assert!(text.contains("cgroup subtree"), "{text}");
    assert!(text.contains(&format!("(pid {first})")), "{text}");
    assert!(
        !text.contains("removed cgroups left by a previous supervisor"),
        "{text}"
    );

    // The first one's plugin never noticed: same process, still answering.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.plugin_pid("hello"), Some(pid));
    assert!(process_alive(pid));
    assert!(d
        .cli(&["plugin", "invoke", "hello", "greet", "Ada"])
        .ok()
        .stdout
        .contains("Ada"));

    // Once the first has stopped, the same state starts again (the kernel released
    // the lock with the process), and a SIGKILLed one leaves no stale lock either.
    d.restart();
    d.wait_running("hello");
    d.crash();
    d.restart();
    d.wait_running("hello");
}
