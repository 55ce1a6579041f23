//! End to end: packages are uploaded, never opened by the daemon. The CLI reads a
//! package with its caller's rights and refuses FIFOs, devices, symlinks and hard
//! links at once; the daemon accepts only plain entries within its caps, refuses
//! the old path-based calls, and non-admins cannot upload. Nothing refused is stored.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::{
    EntryKind, InstallPluginRequest, PackageChunk, PackageEnd, PackageEntry, UpdatePluginRequest,
    UploadHeader, UploadIntent,
};
use common::*;

const ADMIN_USER: u32 = 12_345;

fn manifest(name: &str) -> String {
    format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n")
}

/// Runs the CLI as `uid`, failing the test if it takes longer than `limit`.
fn cli_within(d: &Daemon, uid: u32, args: &[&str], limit: Duration) -> (Cli, Duration) {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = Command::new(bin("plexichat"))
        .env("PLEXICHAT_SOCKET", &d.socket)
        .args(args)
        .uid(uid)
        .gid(uid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run plexichat");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`plexichat {}` still running after {limit:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out.into(), started.elapsed())
}

/// Nothing of `name` anywhere: no row, no directory, no staging, no install record.
fn nothing_stored(d: &Daemon, name: &str) {
    let list = d.cli(&["--output", "json", "plugin", "list"]).json();
    let names: Vec<&str> = list["plugins"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(!names.contains(&name), "{name} is listed: {list}");
    assert!(!d.root().join("state/plugins").join(name).exists());
    let staging: Vec<String> = std::fs::read_dir(d.root().join("state/plugins"))
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".staging-"))
                .collect()
        })
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging left: {staging:?}");
    assert!(
        !d.audit(Some(name))
            .iter()
            .any(|r| r["action"] == "plugin.install" && r["outcome"] == "OUTCOME_OK"),
        "an install of {name} was recorded"
    );
}

#[test]
fn special_files_and_hard_links_are_refused_at_once_and_the_plain_twin_runs() {
    let d = Daemon::start();
    let echo = bin("echo_plugin");
    let outside = d.root().join("outside-secret");
    std::fs::write(&outside, "root:secret-hash:19000::::::\n").unwrap();
    std::fs::set_permissions(
        &outside,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    type Breaker = fn(&Path, &Path);
    let cases: [(&str, &str, Breaker); 5] = [
        ("fifo", "`plugin.toml` is a FIFO", |pkg, _| {
            std::fs::remove_file(pkg.join("plugin.toml")).unwrap();
            nix::unistd::mkfifo(
                &pkg.join("plugin.toml"),
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            )
            .unwrap();
        }),
        ("device", "`null` is a device node", |pkg, _| {
            nix::sys::stat::mknod(
                &pkg.join("null"),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 3),
            )
            .unwrap();
        }),
        (
            "symlink",
            "`zero` is a symbolic link (to /dev/zero)",
            |pkg, _| {
                std::os::unix::fs::symlink("/dev/zero", pkg.join("zero")).unwrap();
            },
        ),
        ("hardlink", "`shadow` has 2 hard links", |pkg, outside| {
            std::fs::hard_link(outside, pkg.join("shadow")).unwrap();
        }),
        (
            "oversized",
            "its files total more than 268435456 bytes",
            |pkg, _| {
                // Sparse: 300 MiB on paper, nothing on disk.
                let blob = std::fs::File::create(pkg.join("blob")).unwrap();
                blob.set_len(300 * 1024 * 1024).unwrap();
            },
        ),
    ];
    for (name, expected, breaker) in cases {
        let pkg = d.package(name, &manifest(name), &echo, name);
        breaker(&pkg, &outside);
        let (out, took) = cli_within(
            &d,
            0,
            &["plugin", "install", pkg.to_str().unwrap()],
            Duration::from_secs(10),
        );
        println!("{name}: refused in {took:?}: {}", out.stderr.trim());
        assert!(!out.status.success(), "{name}: accepted");
        assert!(out.stderr.contains(expected), "{name}: {}", out.stderr);
        nothing_stored(&d, name);
    }
    let stored = std::fs::read_dir(d.root().join("state/plugins"))
        .unwrap()
        .count();
    assert_eq!(stored, 0, "the plugin store holds nothing");

    // The allowed twin: the same package without the odd entry installs and runs.
    let pkg = d.package("plain", &manifest("plain"), &echo, "plain");
    std::fs::create_dir(pkg.join("assets")).unwrap();
    std::fs::write(pkg.join("assets/motd.txt"), "hello\n").unwrap();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    let installed = d.root().join("state/plugins/plain/1.0.0");
    assert_eq!(
        std::fs::read_to_string(installed.join("assets/motd.txt")).unwrap(),
        "hello\n"
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o7777
    };
    assert_eq!(mode(&installed.join("plain")), 0o755);
    assert_eq!(mode(&installed.join("assets/motd.txt")), 0o644);
    d.cli(&["plugin", "enable", "plain"]).ok();
    d.wait_running("plain");
    let install = d
        .audit(Some("plain"))
        .into_iter()
        .find(|r| r["action"] == "plugin.install" && r["outcome"] == "OUTCOME_OK")
        .expect("install recorded");
    assert!(
        install["detail"].to_string().contains("\"uploaded\":true"),
        "{install}"
    );
    d.cli(&["verify", "system-integrity"]).ok();
}

#[test]
fn an_admin_uploads_only_what_it_can_read_and_a_viewer_cannot_upload() {
    const VIEWER: u32 = 12_346;
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, ADMIN_USER],
        viewer_uids: vec![VIEWER],
        socket_mode: "0666",
        ..Settings::default()
    });
    let echo = bin("echo_plugin");
    // Readable by root only: the daemon (root) could read it, the caller cannot.
    let pkg = d.package("private", &manifest("private"), &echo, "private");
    let secret = pkg.join("secret");
    std::fs::write(&secret, "not yours\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let (out, _) = cli_within(
        &d,
        ADMIN_USER,
        &["plugin", "install", pkg.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(
        !out.status.success(),
        "installed a file the caller cannot read"
    );
    assert!(
        out.stderr.contains("`secret` cannot be opened") && out.stderr.contains("ermission denied"),
        "{}",
        out.stderr
    );
    nothing_stored(&d, "private");

    // The same caller installs a package it can read.
    std::fs::remove_file(&secret).unwrap();
    let (out, _) = cli_within(
        &d,
        ADMIN_USER,
        &["plugin", "install", pkg.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "{}", out.stderr);

    // A viewer may not upload: refused before anything is read into the store.
    let other = d.package("viewed", &manifest("viewed"), &echo, "viewed");
    let out = d.cli_as(VIEWER, &["plugin", "install", other.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(out.stderr.contains("may not upload"), "{}", out.stderr);
    nothing_stored(&d, "viewed");
    let out = d.cli_as(
        VIEWER,
        &["plugin", "update", "private", other.to_str().unwrap()],
    );
    assert!(out.stderr.contains("may not upload"), "{}", out.stderr);
}

fn chunk(item: Item) -> PackageChunk {
    PackageChunk { item: Some(item) }
}

fn header() -> Item {
    Item::Header(UploadHeader {
        intent: UploadIntent::Install as i32,
        name: String::new(),
        origin: "raw test client".into(),
        ..UploadHeader::default()
    })
}

fn file(path: &str, size: u64) -> Item {
    Item::Entry(PackageEntry {
        path: path.into(),
        kind: EntryKind::File as i32,
        mode: 0o644,
        size,
    })
}

/// What the daemon answers a hand-made stream (no CLI checks in the way).
fn raw_upload(d: &Daemon, items: Vec<Item>) -> (Result<(), tonic::Status>, Duration) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = d.admin().await;
        let started = Instant::now();
        let stream = tokio_stream::iter(items.into_iter().map(chunk));
        let answer = admin.upload_plugin(stream).await.map(drop);
        (answer, started.elapsed())
    })
}

#[test]
fn the_daemon_enforces_entry_rules_and_caps_itself() {
    let d = Daemon::start();
    let manifest_text = manifest("raw");
    let binary = std::fs::read(bin("echo_plugin")).unwrap();
    let good = |extra: Vec<Item>| {
        let mut items = vec![
            header(),
            file("plugin.toml", manifest_text.len() as u64),
            Item::Data(manifest_text.clone().into_bytes()),
        ];
        items.extend(extra);
        items
    };
    let cases: Vec<(&str, Vec<Item>, &str)> = vec![
        ("dotdot", good(vec![file("../escape", 0)]), "`..`"),
        ("absolute", good(vec![file("/etc/cron.d/x", 0)]), "absolute"),
        (
            "kind",
            good(vec![Item::Entry(PackageEntry {
                path: "dev".into(),
                kind: 7,
                mode: 0,
                size: 0,
            })]),
            "only regular files and directories",
        ),
        (
            "size cap",
            good(vec![file("huge", 256 * 1024 * 1024 + 1)]),
            "more than 268435456 bytes",
        ),
        (
            "entry cap",
            good((0..4100).map(|i| file(&format!("f{i}"), 0)).collect()),
            "more than 4096 entries",
        ),
        (
            "truncated",
            good(vec![file("raw", 10), Item::Data(vec![1, 2])]),
            "short of its declared size",
        ),
        (
            "no end",
            good(vec![]),
            "ended before the package was complete",
        ),
    ];
    for (what, items, expected) in cases {
        let (answer, took) = raw_upload(&d, items);
        let status = answer.expect_err(what);
        println!(
            "{what}: {:?} in {took:?}: {}",
            status.code(),
            status.message()
        );
        assert!(
            status.message().contains(expected),
            "{what}: {}",
            status.message()
        );
        assert_ne!(status.code(), tonic::Code::Ok);
        nothing_stored(&d, "raw");
    }
    // A manifest over 64 KiB is refused before it is parsed.
    let big = format!("{manifest_text}# {}\n", "x".repeat(70 * 1024));
    let big_len = big.len() as u64;
    let (answer, _) = raw_upload(
        &d,
        vec![
            header(),
            file("plugin.toml", big.len() as u64),
            Item::Data(big.into_bytes()),
            Item::End(PackageEnd {
                entries: 1,
                bytes: big_len,
            }),
        ],
    );
    let status = answer.expect_err("a 70 KiB manifest");
    assert!(
        status.message().contains("larger than 65536 bytes"),
        "{}",
        status.message()
    );
    nothing_stored(&d, "raw");

    // The allowed case over the raw API: a complete, plain stream installs.
    let mut items = good(vec![file("raw", binary.len() as u64)]);
    items.extend(binary.chunks(1024 * 1024).map(|c| Item::Data(c.to_vec())));
    items.push(Item::End(PackageEnd {
        entries: 2,
        bytes: (manifest_text.len() + binary.len()) as u64,
    }));
    // The binary must be executable: the raw entry says so.
    if let Some(Item::Entry(e)) = items.get_mut(3) {
        e.mode = 0o755;
    }
    let (answer, _) = raw_upload(&d, items);
    answer.expect("a plain package installs");
    assert!(d.root().join("state/plugins/raw/1.0.0/raw").is_file());
}

#[test]
fn the_path_based_calls_are_refused_and_open_nothing() {
    let d = Daemon::start();
    let pkg = d.package("bypath", &manifest("bypath"), &bin("echo_plugin"), "bypath");
    // A FIFO would hang a daemon that opened it; this one opens nothing.
    std::fs::remove_file(pkg.join("plugin.toml")).unwrap();
    nix::unistd::mkfifo(
        &pkg.join("plugin.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut admin = d.admin().await;
        let started = Instant::now();
        let install = admin
            .install_plugin(InstallPluginRequest {
                path: pkg.display().to_string(),
            })
            .await
            .expect_err("path install refused");
        let update = admin
            .update_plugin(UpdatePluginRequest {
                name: "bypath".into(),
                path: pkg.display().to_string(),
            })
            .await
            .expect_err("path update refused");
        assert!(started.elapsed() < Duration::from_secs(5));
        for status in [install, update] {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition);
            assert!(
                status.message().contains("UploadPlugin"),
                "{}",
                status.message()
            );
        }
    });
    nothing_stored(&d, "bypath");
}
