//! End to end: Python plugins (runtime = "python3") installed, pinned, reviewed and run
//! confined like native ones: the examples answer through the broker, imports are
//! recorded, and a changed package, SDK or interpreter never starts.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn sdk_examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk-python/examples")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn start() -> Daemon {
    assert!(
        python_sdk_dir().join("plexichat_boot.py").is_file(),
        "no SDK bundle at {}: run `make test` (scripts/python-sdk-bundle.sh builds it)",
        python_sdk_dir().display()
    );
    Daemon::start_with(Settings::default())
}

#[test]
fn the_python_hello_runs_confined_and_answers_through_the_broker() {
    let d = start();
    let pkg = d.python_package("hello-py", &sdk_examples().join("hello"));
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello-py", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello-py"]).ok();
    if std::panic::catch_unwind(|| d.wait_running("hello-py")).is_err() {
        let log =
            std::fs::read_to_string(d.root().join("log/plugins/hello-py.log")).unwrap_or_default();
        panic!(
            "not running: {}\nplugin log:\n{log}\ndaemon log tail:\n{}",
            d.plugin_json("hello-py"),
            tail(&d.log(), 40)
        );
    }
    let out = d.cli(&["plugin", "invoke", "hello-py", "greet", "Ada"]);
    assert_eq!(out.ok().stdout.trim(), "Hello, Ada!");
}
