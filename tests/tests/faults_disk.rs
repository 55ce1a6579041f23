//! End to end, a full disk: state and logs on small tmpfs filesystems that fill up
//! while a plugin keeps calling and admins keep acting. Nothing is answered without
//! its audit record, the watermark refuses backups early, and the supervisor recovers
//! without a restart with its hash chain intact.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A tmpfs mounted for the test, detached again when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0755").as_str()),
        )
        .expect("mount tmpfs");
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn free_bytes(path: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(path).expect("statvfs");
    st.blocks_available() * st.fragment_size()
}

/// Writes a filler file under `dir` until at most `leave` bytes are free (0: until the
/// filesystem refuses a write).
fn fill(dir: &Path, leave: u64) -> Vec<PathBuf> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("filler-{n}"));
    let Ok(mut f) = std::fs::File::create(&path) else {
        return Vec::new();
    };
    let chunk = vec![0x5a_u8; 256 << 10];
    loop {
        let free = free_bytes(dir);
        if free <= leave {
            break;
        }
        let want = (free - leave).min(chunk.len() as u64) as usize;
        if f.write_all(&chunk[..want]).is_err() {
            break;
        }
    }
    vec![path]
}

/// Straight from SQLite: how many records of `action` with `outcome`.
fn count(d: &Daemon, action: &str, outcome: &str) -> u64 {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    c.query_row(
        "SELECT count(*) FROM audit_log WHERE action = ?1 AND outcome = ?2",
        [action, outcome],
        |r| r.get(0),
    )
    .expect("count")
}

/// The `audit.refused_unrecordable` aggregates, as (plugin, refused action, count).
fn aggregates(d: &Daemon) -> Vec<(Option<String>, String, u64)> {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    let mut stmt = c
        .prepare("SELECT plugin, detail FROM audit_log WHERE action = 'audit.refused_unrecordable'")
        .expect("query");
    stmt.query_map([], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
    })
    .expect("rows")
    .map(|row| {
        let (plugin, detail) = row.expect("row");
        let v: serde_json::Value = serde_json::from_str(&detail).expect("json");
        let action = v["refused_action"].as_str().expect("action").to_string();
        (plugin, action, v["count"].as_u64().expect("count"))
    })
    .collect()
}

/// The calls of plugin `echo` refused at the gate, summed over the aggregates.
fn refused_unrecordable(d: &Daemon) -> u64 {
    aggregates(d)
        .iter()
        .filter(|(p, _, _)| p.as_deref() == Some("echo"))
        .map(|(_, _, n)| n)
        .sum()
}

/// No-role connections refused at accept, by `uid`, summed over the aggregates.
fn connections_refused(d: &Daemon, uid: u32) -> u64 {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    let mut stmt = c
        .prepare("SELECT detail FROM audit_log WHERE action = 'admin.connection_refused'")
        .expect("query");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|d| serde_json::from_str::<serde_json::Value>(&d.expect("row")).expect("json"))
        .flat_map(|v| v["refused"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["uid"] == uid)
        .filter_map(|r| r["count"].as_u64())
        .sum()
}

fn topics_published(d: &Daemon) -> std::collections::BTreeSet<String> {
    let c = rusqlite::Connection::open(d.root().join("state/store.db")).expect("store");
    let mut stmt = c
        .prepare("SELECT detail FROM audit_log WHERE action = 'event.publish' AND outcome = 'ok'")
        .expect("query");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .filter_map(|d| {
            let v: serde_json::Value = serde_json::from_str(&d.ok()?).ok()?;
            v["topic"].as_str().map(String::from)
        })
        .collect()
}

/// A refusal must say why: the audit trail or the store cannot be written.
fn says_why(cli: &Cli) -> bool {
    let e = &cli.stderr;
    e.contains("audit trail cannot be written") || e.contains("store cannot be written")
}

#[test]
fn a_full_disk_refuses_what_it_cannot_record_and_recovers_without_a_restart() {
    let mounts = std::cell::RefCell::new(Vec::new());
    let mut settings = Settings {
        broker_rate: (1_000_000.0, 1_000_000),
        // The no-role caller below must reach the socket to be refused by the daemon.
        socket_mode: "0666",
        ..Settings::default()
    };
    settings.extra = "[storage]\nmin_free = \"6MiB\"\ncheck_interval = \"200ms\"\n".into();
    let mut d = Daemon::start_prepared(settings, |root| {
        mounts
            .borrow_mut()
            .push(Tmpfs::mount(&root.join("state"), "48m"));
        mounts
            .borrow_mut()
            .push(Tmpfs::mount(&root.join("log"), "16m"));
    });
    let (state, log) = (d.root().join("state"), d.root().join("log"));
    d.run_plugin("echo", &bin("echo_plugin"));
    let hello = d.hello_package();
    d.cli(&["plugin", "install", hello.to_str().expect("utf-8")])
        .ok();

    // Below the watermark: backups are refused while there is still room, and an
    // alert says so. The allowed twin first: a backup with room to spare.
    d.cli(&["backup", "create", "--comment", "room"]).ok();
    let mut fillers = fill(&state, 3 << 20);
    fillers.extend(fill(&log, 3 << 20));
    wait_until(Duration::from_secs(20), "the low-space alert", || {
        d.cli(&["--output", "json", "security", "alerts"])
            .stdout
            .contains("disk-space-low")
    });
    let refused = d.cli(&["backup", "create", "--comment", "low"]);
    assert!(!refused.status.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("storage.min_free"),
        "{}",
        refused.stderr
    );

    // Now fill both filesystems while the plugin keeps calling.
    assert_eq!(
        d.cli(&["plugin", "invoke", "echo", "fault-load"])
            .ok()
            .stdout
            .trim(),
        "started"
    );
    std::thread::sleep(Duration::from_millis(300));
    fillers.extend(fill(&state, 0));
    fillers.extend(fill(&log, 0));
    wait_until(Duration::from_secs(60), "audit commits failing", || {
        d.log().contains("audit records cannot be committed")
    });

    // Admin actions while nothing can be recorded: each one either succeeded (and
    // then has its record) or says why it was refused.
    let mut published = Vec::new();
    let mut refusals = 0;
    let mut invoked_ok = 0u64;
    let mut toggles_ok = 0u64;
    let invokes_before = count(&d, "command.invoke", "ok");
    let toggles_before = count(&d, "plugin.enable", "ok") + count(&d, "plugin.disable", "ok");
    for i in 0..40 {
        let invoke = d.cli(&["plugin", "invoke", "echo", "echo", &format!("{i}")]);
        if invoke.status.success() {
            invoked_ok += 1;
        } else {
            assert!(says_why(&invoke), "invoke: {}", invoke.stderr);
            refusals += 1;
        }
        let topic = format!("fault.t{i}");
        let publish = d.cli(&["event", "publish", &topic, "x"]);
        if publish.status.success() {
            published.push(topic);
        } else {
            assert!(says_why(&publish), "publish: {}", publish.stderr);
            refusals += 1;
        }
        let toggle = d.cli(&[
            "plugin",
            if i % 2 == 0 { "disable" } else { "enable" },
            "hello",
        ]);
        if toggle.status.success() {
            toggles_ok += 1;
        } else {
            assert!(!toggle.stderr.trim().is_empty(), "a silent failure");
            refusals += usize::from(says_why(&toggle));
        }
        let nobody = d.cli_as(54321, &["plugin", "list"]);
        assert!(!nobody.status.success());
        assert!(
            nobody.stderr.contains("has no role"),
            "no-role: {}",
            nobody.stderr
        );
        // Reading needs no record: root can still look.
        d.cli(&["plugin", "list"]).ok();
    }
    assert!(refusals > 0, "nothing was refused: the disk never filled");

    // Space returns: the writer recovers on its own.
    for f in &fillers {
        let _ = std::fs::remove_file(f);
    }
    wait_until(Duration::from_secs(30), "audit commits again", || {
        d.log().contains("audit records are being committed again")
    });
    let tally: BTreeMap<String, u64> = serde_json::from_str(
        &d.cli(&["plugin", "invoke", "echo", "fault-stop"])
            .ok()
            .stdout,
    )
    .expect("tally");
    d.cli(&["audit", "plugins", "--limit", "1"]).ok(); // flushes the batches
    eprintln!("plugin answers: {tally:?}");
    let answered = |k: &str| tally.get(k).copied().unwrap_or(0);
    let unavailable: u64 = tally
        .iter()
        .filter(|(k, _)| k.ends_with(":Some(Unavailable)"))
        .map(|(_, n)| n)
        .sum();
    assert!(unavailable > 0, "the plugin was never refused: {tally:?}");
    assert!(answered("config_get:ok") > 0 && answered("file_read:denied") > 0);
    let other: Vec<_> = tally
        .keys()
        .filter(|k| !k.ends_with(":ok") && !k.ends_with(":denied") && !k.ends_with("Unavailable)"))
        .collect();
    assert!(other.is_empty(), "unexpected answers: {other:?}");

    // Every allowed call the plugin was answered has its record, exactly.
    assert_eq!(
        count(&d, "broker.has_permission", "ok"),
        answered("has_permission:ok")
    );
    assert_eq!(
        count(&d, "broker.config_get", "ok"),
        answered("config_get:ok")
    );
    // Every answered refusal too; a refusal whose record was not durable in time was
    // answered UNAVAILABLE, and its record landed later.
    let denied = count(&d, "broker.file_read", "denied");
    let late = denied - answered("file_read:denied");
    assert!(denied >= answered("file_read:denied"));
    // The rest of the UNAVAILABLE answers are in the aggregates, to the call.
    assert_eq!(
        refused_unrecordable(&d) + late,
        unavailable,
        "refusals at the gate plus late denial records = UNAVAILABLE answers"
    );

    // Every admin action that reported success has its record.
    let recorded = topics_published(&d);
    let missing: Vec<_> = published
        .iter()
        .filter(|t| !recorded.contains(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "published without a record: {missing:?}"
    );
    assert!(count(&d, "command.invoke", "ok") - invokes_before >= invoked_ok);
    let toggles_after = count(&d, "plugin.enable", "ok") + count(&d, "plugin.disable", "ok");
    assert!(toggles_after - toggles_before >= toggles_ok);
    // 40 no-role callers, refused at accept: every one of them in the aggregates,
    // which wait on the writer while the store is full.
    wait_until(
        Duration::from_secs(15),
        "the refused connections recorded",
        || {
            d.cli(&["audit", "plugins", "--limit", "1"]).ok();
            connections_refused(&d, 54321) >= 40
        },
    );
    let aggregated = connections_refused(&d, 54321);
    assert_eq!(aggregated, 40);
    eprintln!(
        "admin: {invoked_ok} invokes, {} publishes, {toggles_ok} enable/disable ok; {refusals} refused; {aggregated} no-role refusals counted while unrecordable",
        published.len()
    );

    // Recovered without a restart: the chain verifies and backups work again.
    d.cli(&["verify", "system-integrity"]).ok();
    wait_until(Duration::from_secs(10), "space above the watermark", || {
        d.cli(&["backup", "create", "--comment", "after"])
            .status
            .success()
    });
    assert!(count(&d, "storage.space_recovered", "ok") >= 1);
    d.stop();
    drop(mounts);
}
