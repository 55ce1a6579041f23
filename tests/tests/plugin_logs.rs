//! End to end: a plugin's own log cannot be forged. Whatever a plugin puts in a
//! `ctx.log` message, field key or value, or prints to stdout, is one line under the
//! supervisor's timestamp and source, with control characters and terminal escape
//! sequences written out, never passed through.

mod common;

use std::time::Duration;

use common::*;

fn log_text(d: &Daemon) -> String {
    std::fs::read_to_string(d.root().join("log/plugins/echo.log")).unwrap_or_default()
}

#[test]
fn forged_lines_and_escape_sequences_are_written_out_on_one_line() {
    let d = Daemon::start();
    d.run_plugin("echo", &bin("echo_plugin"));

    let forged = "2026-01-01T00:00:00.000Z [error] forged";
    let call = serde_json::json!({
        "message": format!("honest\r{forged}\u{1b}[2J"),
        "fields": [
            ["plain_key", "plain value"],
            [format!("k\n{forged}"), format!("v\n{forged}")],
            ["a b=c", "\u{1b}]0;title\u{7}"],
        ],
    });
    d.cli(&["plugin", "invoke", "echo", "log", &call.to_string()])
        .ok();
    d.cli(&[
        "plugin",
        "invoke",
        "echo",
        "say",
        &format!("printed\n{forged}\u{1b}[31m\n"),
    ])
    .ok();
    wait_until(Duration::from_secs(10), "both lines in the log", || {
        let t = log_text(&d);
        t.contains("honest") && t.contains("31m")
    });

    let text = log_text(&d);
    assert!(!text.contains('\u{1b}'), "an ESC reached the log: {text:?}");
    assert!(!text.contains('\r') && !text.contains('\u{7}'), "{text:?}");
    let logged: Vec<&str> = text.lines().filter(|l| l.contains("honest")).collect();
    assert_eq!(logged.len(), 1, "one ctx.log call is one line: {text}");
    let line = logged[0];
    assert!(line.contains(" [info] honest\\u{d}2026-01-01"), "{line}");
    // The allowed twin: a plain key and value are written as they are.
    assert!(line.contains(" plain_key=\"plain value\""), "{line}");
    // A key that is not a plain word is quoted, so it cannot pose as two fields.
    assert!(line.contains(" \"a b=c\"="), "{line}");
    assert!(line.contains("\"k\\n2026-01-01"), "{line}");
    // Nothing in the file starts with the forged stamp: every line is the supervisor's.
    for l in text.lines() {
        assert!(
            !l.starts_with("2026-01-01T00:00:00.000Z"),
            "forged line: {l}"
        );
        assert!(
            l.contains(" [info] ")
                || l.contains(" [stdout] ")
                || l.contains(" [stderr] ")
                || l.contains(" [supervisor] "),
            "a line without a source: {l}"
        );
    }
    // stdout: each newline the plugin printed starts a line of its own, with its own
    // stamp; the escape sequence in it is written out.
    let printed: Vec<&str> = text.lines().filter(|l| l.contains(" [stdout] ")).collect();
    assert!(
        printed.iter().any(|l| l.ends_with(" [stdout] printed")),
        "{printed:?}"
    );
    assert!(
        printed
            .iter()
            .any(|l| l.ends_with(&format!(" [stdout] {forged}\\u{{1b}}[31m"))),
        "{printed:?}"
    );
}
