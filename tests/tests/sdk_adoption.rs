//! A plugin author's first steps, exactly as the README's "Writing a plugin" gives them,
//! followed from an empty directory outside the workspace, offline and as `nobody`.
//!
//! The test reads the dependency lines and `src/main.rs` out of README.md itself, so the
//! README cannot drift from what works. `cargo new`, the path dependency, and `cargo
//! test` of the README's plugin (its harness test included) run as uid 65534 in a
//! private mount namespace where root's toolchain and registry cache are bind-mounted
//! read-only (root's home is 0700, so `nobody` could not reach them otherwise); the
//! crates come from that cache (`CARGO_NET_OFFLINE`), never the network. The build
//! uses a scratch `CARGO_TARGET_DIR` in the test's temp dir: a cold build of the SDK
//! and its dependencies took 186 s on the loaded 2-core machine (printed each run),
//! short enough not to share the workspace's `target/` (which `nobody` cannot write).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const SDK_PLACEHOLDER: &str = "/path/to/plexichat/plugin-sdk";
const NOBODY: u32 = 65534;

/// The README's "Writing a plugin" section.
fn writing_a_plugin(readme: &str) -> &str {
    let start = readme
        .find("## Writing a plugin\n")
        .expect("README has a `Writing a plugin` section");
    let rest = &readme[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The first fenced block of `lang` in `text`, with the list indentation removed.
fn fenced(text: &str, lang: &str) -> String {
    let open = format!("```{lang}\n");
    let at = text
        .find(&open)
        .unwrap_or_else(|| panic!("no ```{lang} block in the section"));
    let indent = text[..at].rsplit('\n').next().unwrap_or_default().len();
    let body = &text[at + open.len()..];
    let close = body.find("```").expect("the block is closed");
    body[..close]
        .lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Root's rustup and cargo homes, which the toolchain and the registry cache live in.
fn tool_homes() -> (PathBuf, PathBuf) {
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let rustup =
        std::env::var_os("RUSTUP_HOME").map_or_else(|| home.join(".rustup"), PathBuf::from);
    let cargo = std::env::var_os("CARGO_HOME").map_or_else(|| home.join(".cargo"), PathBuf::from);
    (rustup, cargo)
}

/// As root: a private mount namespace with the toolchain and registry cache reachable,
/// then everything else as `nobody` with a clean environment.
const SCRIPT: &str = r#"
set -eu
mount --bind "$ROOT_RUSTUP" "$T/ro/rustup"
mount --bind "$ROOT_CARGO" "$T/ro/cargo"
exec setpriv --reuid=65534 --regid=65534 --clear-groups env -i \
  PATH="$T/ro/cargo/bin:/usr/local/bin:/usr/bin:/bin" HOME="$T/home" \
  CARGO_HOME="$T/home/.cargo" RUSTUP_HOME="$T/ro/rustup" CARGO_NET_OFFLINE=true \
  CARGO_TARGET_DIR="$T/home/target" CARGO_TERM_COLOR=never T="$T" \
  sh -c '
    set -eu
    echo "uid=$(id -u)"
    cd "$T/home"
    cargo new my-plugin
    cd my-plugin
    tail -n 1 Cargo.toml | grep -qx "\[dependencies\]"
    cat "$T/deps.toml" >> Cargo.toml
    cp "$T/main.rs" src/main.rs
    started=$(date +%s)
    cargo test 2>&1
    echo "cargo test took $(( $(date +%s) - started )) s"
  '
"#;

#[test]
fn the_readme_first_steps_build_and_test_a_plugin_from_an_empty_directory_as_nobody() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .canonicalize()
        .expect("canonical workspace root");
    let readme = std::fs::read_to_string(workspace.join("README.md")).expect("README.md");
    let section = writing_a_plugin(&readme);
    let toml = fenced(section, "toml");
    let main_rs = fenced(section, "rust");
    assert!(
        toml.contains(SDK_PLACEHOLDER),
        "the README's dependency line: {toml}"
    );
    assert!(
        main_rs.contains("testing::TestBroker"),
        "the README's plugin has a harness test"
    );
    // Under `cargo new`'s own `[dependencies]` header, as an author pastes them.
    let deps: String = toml
        .lines()
        .filter(|l| l.trim() != "[dependencies]")
        .map(|l| {
            l.replace(
                SDK_PLACEHOLDER,
                &workspace.join("plugin-sdk").to_string_lossy(),
            ) + "\n"
        })
        .collect();

    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path();
    // `nobody` must traverse the temp dir to reach its home under it.
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for sub in ["ro/rustup", "ro/cargo", "home/.cargo/registry"] {
        std::fs::create_dir_all(t.join(sub)).expect("mkdir");
    }
    // The crates come from root's cache (index and .crate files); `nobody` unpacks its
    // own sources, since a few in root's unpacked tree are not world-readable.
    for sub in ["index", "cache"] {
        std::os::unix::fs::symlink(
            t.join("ro/cargo/registry").join(sub),
            t.join("home/.cargo/registry").join(sub),
        )
        .expect("symlink");
    }
    std::fs::write(t.join("deps.toml"), &deps).expect("deps.toml");
    std::fs::write(t.join("main.rs"), &main_rs).expect("main.rs");
    let chown = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(t.join("home"))
        .status()
        .expect("chown");
    assert!(chown.success());

    let (rustup, cargo) = tool_homes();
    let started = Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", SCRIPT])
        .env("T", t)
        .env("ROOT_RUSTUP", &rustup)
        .env("ROOT_CARGO", &cargo)
        .output()
        .expect("run unshare");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "empty-directory plugin: `cargo new` + cold `cargo test` as nobody (offline, scratch target dir) took {:.0} s\n{stdout}",
        elapsed.as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the README's steps failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("uid=65534"), "not run as nobody:\n{stdout}");
    assert!(
        stdout.contains("test tests::greets_counts_and_is_refused_without_its_grant ... ok"),
        "the README's harness test did not pass:\n{stdout}"
    );
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
    // Nothing was written into the workspace or root's cargo home on the way.
    assert!(!workspace.join("plugin-sdk/target").exists());
    assert!(!workspace.join("plugin-sdk/Cargo.lock").exists());
}
