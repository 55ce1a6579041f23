//! End to end: the CLI's operator polish — "did you mean" for a misspelled plugin
//! name, confirmation before `plugin remove` and `restore`, and true help texts.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn listed(d: &Daemon) -> Vec<String> {
    d.cli(&["--output", "json", "plugin", "list"]).json()["plugins"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect()
}

fn install_hello(d: &Daemon) {
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
}

#[test]
fn a_misspelled_plugin_name_gets_the_closest_installed_names() {
    let d = Daemon::start();
    install_hello(&d);
    let pkg = d.package(
        "help",
        "name = \"help\"\nversion = \"1.0.0\"\nentry = \"help\"\n",
        &bin("echo_plugin"),
        "help",
    );
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();

    let out = d.cli(&["plugin", "show", "helo"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("plugin `helo` is not installed")
            && out
                .stderr
                .contains("(did you mean \"hello\" or \"help\"?) (not found)"),
        "{}",
        out.stderr
    );
    // Every command naming a plugin, a prefix too.
    for args in [
        &["plugin", "enable", "hell"][..],
        &["plugin", "disable", "hallo"],
        &["plugin", "approve", "helloo", "--comment", "x"],
        &[
            "monitor",
            "plugins",
            "--plugin",
            "hel",
            "--interval",
            "10ms",
        ],
    ] {
        let out = d.cli(args);
        assert!(
            !out.status.success()
                && out.stderr.contains("did you mean")
                && out.stderr.contains("\"hello\""),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Nothing close: the daemon's words alone.
    let out = d.cli(&["plugin", "show", "zzzzzzzz"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("not installed") && !out.stderr.contains("did you mean"),
        "{}",
        out.stderr
    );
    // The right name works.
    d.cli(&["plugin", "show", "hello"]).ok();
}

#[test]
fn remove_and_restore_refuse_without_yes_when_stdin_is_not_a_terminal() {
    let d = Daemon::start();
    let pid = d.run_hello();
    let data = d.root().join("state/data/hello");
    assert!(data.is_dir(), "a running plugin has its data directory");

    // stdin is not a terminal here (the harness gives the CLI /dev/null).
    let out = d.cli(&["plugin", "remove", "hello"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--yes") && out.stderr.contains("nothing was changed"),
        "{}",
        out.stderr
    );
    assert_eq!(listed(&d), ["hello"], "still installed");
    assert_eq!(d.plugin_pid("hello"), Some(pid), "still running");
    assert!(data.is_dir(), "its data untouched");
    assert!(
        !d.audit_actions(Some("hello"))
            .iter()
            .any(|(a, _)| a == "plugin.remove"),
        "no removal recorded"
    );

    let id = d.cli(&["--output", "json", "backup", "create"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let backups = || d.cli(&["--output", "json", "backup", "list"]).json()["backups"].clone();
    let before = backups();
    let out = d.cli(&["restore", "--backup-id", &id]);
    assert!(
        !out.status.success() && out.stderr.contains("--yes"),
        "{}",
        out.stderr
    );
    assert_eq!(
        backups(),
        before,
        "no safety backup taken: nothing happened"
    );
    assert_eq!(d.plugin_pid("hello"), Some(pid), "not stopped by a restore");

    // The allowed cases.
    d.cli(&["restore", "--backup-id", &id, "--yes"]).ok();
    d.wait_running("hello");
    d.cli(&["plugin", "remove", "hello", "--yes"]).ok();
    assert!(listed(&d).is_empty(), "removed");
    assert!(!data.exists(), "its data deleted");
}

/// Runs the CLI on a pseudo-terminal, answers `answer` once it asks `[y/N]`;
/// returns what it printed and whether it succeeded.
fn on_terminal(d: &Daemon, args: &[&str], answer: &str) -> (String, bool) {
    let OnTerminal {
        mut child,
        mut master,
    } = d.cli_on_terminal(args, 140);
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut answered = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
        if !answered && String::from_utf8_lossy(&seen).contains("[y/N]") {
            master.write_all(answer.as_bytes()).unwrap();
            answered = true;
        }
    };
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    (text, status.is_some_and(|s| s.success()))
}

#[test]
fn on_a_terminal_remove_asks_and_only_yes_removes() {
    let d = Daemon::start();
    install_hello(&d);
    let (text, ok) = on_terminal(&d, &["plugin", "remove", "hello"], "n\n");
    assert!(
        text.contains("remove plugin hello and delete its data? [y/N]"),
        "{text:?}"
    );
    assert!(!ok && text.contains("not confirmed"), "{text:?}");
    assert_eq!(listed(&d), ["hello"], "a no keeps it");
    let (text, ok) = on_terminal(&d, &["plugin", "remove", "hello"], "y\n");
    assert!(ok && text.contains("removed hello"), "{text:?}");
    assert!(listed(&d).is_empty(), "a yes removes it");
}

#[test]
fn help_texts_say_what_the_flags_do() {
    let d = Daemon::start();
    let help = d.cli(&["plugin", "disable", "--help"]).ok().stdout.clone();
    // --force is the stop mode; core plugins need no flag to be disabled.
    assert!(help.contains("Kill it at once"), "{help}");
    assert!(!help.contains("Also disable a core plugin"), "{help}");
    let help = d.cli(&["plugin", "remove", "--help"]).ok().stdout.clone();
    assert!(
        help.contains("data directory") && help.contains("--yes"),
        "{help}"
    );
    let help = d.cli(&["restore", "--help"]).ok().stdout.clone();
    assert!(help.contains("--yes"), "{help}");
}

#[test]
fn completions_load_in_bash_and_man_pages_cover_every_subcommand_without_a_supervisor() {
    let script = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new(bin("plexichat"))
        .args(["completions", "bash"])
        .env("PLEXICHAT_SOCKET", "/nonexistent/supervisor.sock")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(script.path(), &out.stdout).unwrap();
    // Bash loads it and completes `plexichat plugin rem` to `remove`.
    let check = format!(
        "source {} && COMP_WORDS=(plexichat plugin rem) COMP_CWORD=2 && _plexichat plexichat rem plugin && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.path().display()
    );
    let bash = Command::new("bash").args(["-c", &check]).output().unwrap();
    let words = String::from_utf8_lossy(&bash.stdout);
    assert!(
        bash.status.success() && words.lines().any(|w| w == "remove"),
        "{words} {}",
        String::from_utf8_lossy(&bash.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("plexichat"))
        .args(["manpage", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "plexichat.1",
        "plexichat-plugin-remove.1",
        "plexichat-restore.1",
    ] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    let disable = std::fs::read_to_string(dir.path().join("plexichat-plugin-disable.1")).unwrap();
    assert!(disable.contains("Kill it at once"), "{disable}");
    // Hidden from the help an operator reads.
    let help = Command::new(bin("plexichat"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        !help.contains("completions") && !help.contains("manpage"),
        "{help}"
    );
}
