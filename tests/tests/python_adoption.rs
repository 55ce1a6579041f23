//! End to end: the README's "Writing a Python plugin" steps, followed from an empty
//! directory by someone who knows only Python: the manifest, the plugin and its test as
//! written there, the SDK pip-installed into a virtual environment, the test passing,
//! then install, review, approval and a command that reads the database, confined.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The README's section on Python plugins.
fn section() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md");
    let start = readme
        .find("## Writing a Python plugin")
        .expect("the README has a Python section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i);
    rest[..end].to_string()
}

/// The fenced blocks of `language` in `text`, in order, unindented.
fn blocks(text: &str, language: &str) -> Vec<String> {
    let fence = format!("```{language}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&fence) {
        let indent = rest[..i].rsplit('\n').next().unwrap_or("").len();
        let body = &rest[i + fence.len()..];
        let end = body.find("```").expect("a closed fence");
        let code: String = body[..end]
            .lines()
            .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
            .collect::<Vec<_>>()
            .join("\n");
        out.push(code + "\n");
        rest = &body[end + 3..];
    }
    out
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

#[test]
fn a_python_plugin_written_from_the_readme_installs_is_approved_and_reads_the_database() {
    let section = section();
    let toml = blocks(&section, "toml");
    let python = blocks(&section, "python");
    assert!(
        toml.len() == 1 && python.len() == 2,
        "the README's steps changed shape"
    );

    // Steps 1-2: an empty directory, the two files as written.
    let work = tempfile::tempdir().unwrap();
    let plugin = work.path().join("my-plugin");
    std::fs::create_dir(&plugin).unwrap();
    std::fs::write(plugin.join("plugin.toml"), &toml[0]).unwrap();
    std::fs::write(plugin.join("main.py"), &python[0]).unwrap();
    std::fs::write(plugin.join("test_main.py"), &python[1]).unwrap();

    // Step 3: the SDK pip-installed from a checkout into a venv beside the plugin. The
    // test machine is offline, so the venv reuses the system's site-packages (the SDK's
    // dependencies, pytest, a setuptools recent enough to build it) and the system's
    // pip installs into it without fetching a build environment; otherwise as written.
    let checkout = work.path().join("plexichat-plugin-sdk-python");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk-python"),
        &checkout,
    );
    let env = work.path().join("env");
    run(
        Command::new("python3")
            .args(["-m", "venv", "--system-site-packages", "--without-pip"])
            .arg(&env),
        "python3 -m venv",
    );
    run(
        Command::new("python3")
            .args(["-m", "pip", "--python"])
            .arg(env.join("bin/python"))
            .args([
                "install",
                "-q",
                "--no-index",
                "--no-build-isolation",
                "--disable-pip-version-check",
            ])
            .arg(&checkout),
        "pip install the SDK",
    );
    let tested = run(
        Command::new(env.join("bin/python"))
            .args(["-B", "-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .current_dir(&plugin)
            .env_remove("PYTHONPATH"),
        "the README's test",
    );
    assert!(tested.contains("1 passed"), "{tested}");
    assert!(
        !plugin.join("__pycache__").exists(),
        "-B wrote no bytecode into the package"
    );

    // Step 4: install, review, approve, enable, use — against the real daemon.
    let sh = blocks(&section, "sh").concat();
    for step in [
        "plugin install ./my-plugin",
        "plugin show my-plugin",
        "plugin approve my-plugin",
        "plugin enable my-plugin",
        "plugin invoke my-plugin count",
    ] {
        assert!(sh.contains(step), "the README no longer says `{step}`");
    }
    let d = Daemon::start_with(Settings::default());
    let db = rusqlite::Connection::open(d.root().join("state/app.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO messages (body) VALUES ('a'), ('b'), ('c'), ('d');",
    )
    .unwrap();
    d.cli(&["plugin", "install", plugin.to_str().unwrap()]).ok();
    let show = d.cli(&["plugin", "show", "my-plugin"]);
    show.ok();
    for want in [
        "python3 (interpreter",
        "main.py",
        "test_main.py",
        "database_read",
    ] {
        assert!(show.stdout.contains(want), "{want}: {}", show.stdout);
    }
    d.cli(&[
        "plugin",
        "approve",
        "my-plugin",
        "--comment",
        "reviewed main.py",
    ])
    .ok();
    d.cli(&["plugin", "enable", "my-plugin"]).ok();
    d.wait_running("my-plugin");
    let count = d.cli(&["plugin", "invoke", "my-plugin", "count"]);
    count.ok();
    assert_eq!(count.stdout.trim(), "4");
    let greet = d.cli(&["plugin", "invoke", "my-plugin", "greet", "Ada"]);
    greet.ok();
    assert_eq!(greet.stdout.trim(), "Hello, Ada!");
    let status = d.security_of("my-plugin");
    assert_eq!(status["confined"], true, "{status}");
}
