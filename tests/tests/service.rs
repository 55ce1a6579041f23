//! End to end: the systemd side — the shipped unit verifies cleanly against the real
//! binary, and the daemon speaks the Type=notify protocol (READY=1, STOPPING=1).

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

#[test]
fn the_shipped_unit_verifies_without_a_single_warning() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../systemd/plexichat-supervisor.service"),
    )
    .unwrap();
    for must in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=mixed",
        "StandardOutput=journal",
    ] {
        assert!(unit.contains(must), "the unit lacks {must}");
    }
    // The installed path does not exist here: point ExecStart at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let local = unit
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(rest) => format!(
                "ExecStart={} {}",
                bin("plexichat-supervisor").display(),
                rest.split_once(' ').map_or("", |(_, args)| args)
            ),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.path().join("plexichat-supervisor.service");
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
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
