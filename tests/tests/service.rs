//! End to end: the systemd side — `make install`'s script (repeatable, edits kept, a clean
//! uninstall), the unit it generates (verifies cleanly, exposure <= 5.0), Type=notify.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`: whether it succeeded, and its stdout and stderr together.
fn run(cmd: &mut std::process::Command, what: &str) -> (bool, String) {
    let out = cmd.output().expect(what);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// `scripts/install.sh` (what `make install` runs after building) into `dest`.
fn install_script(action: &str, dest: &std::path::Path, prefix: &str) -> String {
    let (ok, said) = run(
        std::process::Command::new(repo().join("scripts/install.sh"))
            .arg(action)
            .env("DESTDIR", dest)
            .env("PREFIX", prefix)
            .env("PROFILE", "debug"),
        "scripts/install.sh",
    );
    assert!(ok, "install.sh {action}: {said}");
    said
}

/// The unit `make install` generates for `prefix`, with ExecStart pointed at the built
/// binary (the installed path does not exist on this host).
fn installed_unit_for_this_host(prefix: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dest = tempfile::tempdir().unwrap();
    install_script("install", dest.path(), prefix);
    let unit = std::fs::read_to_string(
        dest.path()
            .join(prefix.trim_start_matches('/'))
            .join("lib/systemd/system/plexichat-supervisor.service"),
    )
    .unwrap();
    let exec = format!("ExecStart={prefix}/bin/plexichat-supervisor ");
    assert!(
        unit.contains(&exec),
        "the unit does not start {prefix}/bin: {unit}"
    );
    let local = unit.replace(
        &exec,
        &format!("ExecStart={} ", bin("plexichat-supervisor").display()),
    );
    let path = dest.path().join("plexichat-supervisor.service");
    std::fs::write(&path, local).unwrap();
    (dest, path)
}

fn systemd_analyze(args: &[&str], unit: &std::path::Path) -> (bool, String) {
    run(
        std::process::Command::new("systemd-analyze")
            .args(args)
            .arg(unit),
        "systemd-analyze (Debian package systemd)",
    )
}

#[test]
fn the_installed_unit_verifies_without_a_single_warning() {
    for prefix in ["/usr/local", "/usr"] {
        let (_dest, unit) = installed_unit_for_this_host(prefix);
        let text = std::fs::read_to_string(&unit).unwrap();
        for must in [
            "Type=notify",
            "Delegate=yes",
            "KillMode=mixed",
            "WatchdogSec=",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=CAP_",
            "Group=plexichat",
        ] {
            assert!(text.contains(must), "the unit lacks {must}");
        }
        let (ok, said) = systemd_analyze(&["verify"], &unit);
        assert!(ok && said.trim().is_empty(), "{prefix}: {said}");
    }
}

/// The exposure systemd rates the installed unit at, offline (the VM test checks
/// the same on a running systemd).
#[test]
fn systemd_analyze_security_rates_the_unit_at_most_5() {
    let (_dest, unit) = installed_unit_for_this_host("/usr/local");
    let (_, said) = systemd_analyze(&["security", "--offline=yes"], &unit);
    let level = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {said}"));
    println!("systemd-analyze security: exposure {level}");
    assert!(level <= 5.0, "exposure {level} > 5.0:\n{said}");
}

#[test]
fn install_is_repeatable_keeps_edits_and_uninstall_removes_only_its_files() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    install_script("install", d, "/usr/local");
    let config = d.join("etc/plexichat/supervisor.toml");
    let seccomp = d.join("etc/plexichat/policies/seccomp/default.json");
    assert!(seccomp.is_file(), "the seccomp policy is installed");
    for generated in [
        "usr/local/share/bash-completion/completions/plexichat",
        "usr/local/share/zsh/site-functions/_plexichat",
        "usr/local/share/fish/vendor_completions.d/plexichat.fish",
        "usr/local/share/man/man1/plexichat.1",
    ] {
        let len = std::fs::metadata(d.join(generated)).map_or(0, |m| m.len());
        assert!(len > 0, "{generated} is not installed");
    }
    for b in ["plexichat-supervisor", "plexichat"] {
        let installed = std::fs::metadata(d.join("usr/local/bin").join(b))
            .unwrap()
            .len();
        let built = std::fs::metadata(bin(b)).unwrap().len();
        assert!(
            installed < built,
            "{b} is not stripped: {installed} vs {built} bytes"
        );
    }
    // Unchanged files: a second install changes nothing and writes no .dist.
    let again = install_script("install", d, "/usr/local");
    assert!(!again.contains(".dist"), "{again}");
    // An edited config is kept, the shipped one goes beside it, the change is shown.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("# edited by the operator\n");
    std::fs::write(&config, &text).unwrap();
    let said = install_script("install", d, "/usr/local");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text, "{said}");
    assert!(
        said.contains("kept /etc/plexichat/supervisor.toml (edited)"),
        "{said}"
    );
    assert!(said.contains("-# edited by the operator"), "{said}");
    assert!(d.join("etc/plexichat/supervisor.toml.dist").is_file());
    // State and logs (made by the daemon, not by install) survive the uninstall.
    std::fs::create_dir_all(d.join("var/lib/plexichat")).unwrap();
    std::fs::write(d.join("var/lib/plexichat/store.db"), b"state").unwrap();
    let said = install_script("uninstall", d, "/usr/local");
    assert!(
        said.contains("kept /etc/plexichat/supervisor.toml"),
        "{said}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
    assert!(d.join("var/lib/plexichat/store.db").is_file());
    for gone in [
        "usr/local/bin/plexichat-supervisor",
        "usr/local/bin/plexichat",
        "usr/local/lib/systemd/system/plexichat-supervisor.service",
        "usr/local/lib/sysusers.d/plexichat.conf",
        "usr/local/lib/tmpfiles.d/plexichat.conf",
        "etc/plexichat/supervisor.toml.dist",
        "etc/plexichat/policies/seccomp/default.json",
        "etc/plexichat/policies/permissions.toml",
        "usr/local/share/plexichat/installed-files",
        "usr/local/share/bash-completion/completions/plexichat",
        "usr/local/share/man/man1/plexichat.1",
    ] {
        assert!(!d.join(gone).exists(), "uninstall left {gone}");
    }
}

#[test]
fn the_daemon_reports_ready_and_stopping_over_notify_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut d = Daemon::start_with(Settings {
        env: vec![("NOTIFY_SOCKET", sock_path.display().to_string())],
        ..Settings::default()
    });
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a notification");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    // Ready means serving: the admin socket answers at once.
    d.cli(&["plugin", "list"]).ok();
    d.stop();
    let n = sock.recv(&mut buf).expect("a stop notification");
    let stopping = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
}
