//! End to end: lifecycle commands on one plugin are serialised. Twenty parallel
//! installs, updates, removes, enables, disables and backups, ten rounds: the store
//! only ever points at files that exist, integrity holds, one install wins per
//! lifetime, and every loser is told why in words (never a SQLite message).

mod common;

use std::collections::BTreeMap;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const ROUNDS: usize = 10;

fn manifest(version: &str) -> String {
    format!("name = \"hello\"\nversion = \"{version}\"\nentry = \"hello\"\n")
}

/// The command mix of one round: 20 in all. Even rounds leave remove out, so
/// exactly one install can win; odd rounds race two removes in as well.
fn mix(round: usize, v1: &Path, v2: &Path) -> Vec<Vec<String>> {
    let (v1, v2) = (v1.display().to_string(), v2.display().to_string());
    let s = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut cmds = Vec::new();
    let installs = if round.is_multiple_of(2) { 7 } else { 5 };
    for _ in 0..installs {
        cmds.push(s(&["plugin", "install", &v1]));
    }
    for _ in 0..3 {
        cmds.push(s(&["plugin", "update", "hello", &v2]));
        cmds.push(s(&["plugin", "enable", "hello"]));
        cmds.push(s(&["plugin", "disable", "hello"]));
        cmds.push(s(&["--output", "json", "backup", "create"]));
    }
    cmds.push(s(&["plugin", "disable", "hello", "--force"]));
    if !round.is_multiple_of(2) {
        cmds.push(s(&["plugin", "remove", "hello", "--yes"]));
        cmds.push(s(&["plugin", "remove", "hello", "--yes"]));
    }
    assert_eq!(cmds.len(), 20);
    // A different interleaving each round.
    let n = cmds.len();
    cmds.rotate_left(round * 3 % n);
    cmds
}

/// What SQLite or a race would say; users must never see it.
fn unclear(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("constraint") || s.contains("database error") || s.contains("sqlite")
}

/// Every plugin row's directory and pinned binary exist.
fn store_points_at_real_files(d: &Daemon) -> Vec<String> {
    let db = rusqlite::Connection::open_with_flags(
        d.root().join("state/store.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store read-only");
    let mut stmt = db
        .prepare("SELECT install_dir FROM plugins")
        .expect("query plugins");
    let dirs: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("plugins")
        .map(|r| r.expect("row"))
        .collect();
    for dir in &dirs {
        assert!(
            Path::new(dir).join("hello").is_file(),
            "the store points at {dir}, which does not hold the binary"
        );
    }
    dirs
}

/// The install directories of `hello` in every backup file kept.
fn backed_up_dirs(d: &Daemon) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(d.root().join("state/backups"))
        .unwrap()
        .flatten()
    {
        let db = rusqlite::Connection::open_with_flags(
            entry.path(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open a backup read-only");
        if let Ok(dir) = db.query_row(
            "SELECT install_dir FROM plugins WHERE name = 'hello'",
            [],
            |r| r.get::<_, String>(0),
        ) {
            dirs.push(PathBuf::from(dir));
        }
    }
    dirs
}

fn version_dirs(d: &Daemon) -> Vec<PathBuf> {
    std::fs::read_dir(d.root().join("state/plugins/hello"))
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn staging_left(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(d.root().join("state/plugins"))
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".staging-"))
                .collect()
        })
        .unwrap_or_default()
}

/// The Ok install and remove records of `hello` after audit id `after`, in order.
fn lifetimes(d: &Daemon, after: i64) -> Vec<String> {
    let mut records: Vec<_> = d
        .audit(Some("hello"))
        .into_iter()
        .filter(|r| int(&r["id"]) > after && r["outcome"] == "OUTCOME_OK")
        .collect();
    records.sort_by_key(|r| int(&r["id"]));
    records
        .iter()
        .filter_map(|r| r["action"].as_str().map(str::to_string))
        .filter(|a| a == "plugin.install" || a == "plugin.remove")
        .collect()
}

fn last_audit_id(d: &Daemon) -> i64 {
    d.audit(None)
        .iter()
        .map(|r| int(&r["id"]))
        .max()
        .unwrap_or(0)
}

#[test]
fn parallel_mixed_lifecycle_commands_never_corrupt_the_store() {
    let d = Daemon::start();
    let bin = bin("echo_plugin");
    let v1 = d.package("v1", &manifest("1.0.0"), &bin, "hello");
    let v2 = d.package("v2", &manifest("2.0.0"), &bin, "hello");
    let mut backup_ids = HashSet::new();
    // Per command kind: (succeeded, refused) over all rounds.
    let mut won: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut reasons = std::collections::BTreeSet::new();
    for round in 0..ROUNDS {
        let since = last_audit_id(&d);
        let cmds = mix(round, &v1, &v2);
        let started = Instant::now();
        let outs: Vec<(Vec<String>, Cli)> = std::thread::scope(|s| {
            let handles: Vec<_> = cmds
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    let d = &d;
                    // Four bursts of five, 700 ms apart: commands in a burst race
                    // each other, and later bursts land during and after the
                    // winning install rather than all before its upload ends.
                    let delay = Duration::from_millis((k % 4) as u64 * 700);
                    s.spawn(move || {
                        std::thread::sleep(delay);
                        let args: Vec<&str> = c.iter().map(String::as_str).collect();
                        (c.clone(), d.cli(&args))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("CLI thread"))
                .collect()
        });
        let took = started.elapsed();

        let mut installs_won = 0;
        for (cmd, out) in &outs {
            let what = cmd.join(" ");
            let kind = cmd
                .iter()
                .filter(|a| !a.starts_with('-') && *a != "json")
                .take(2)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let tally = won.entry(kind.clone()).or_insert((0, 0));
            if out.status.success() {
                tally.0 += 1;
            } else {
                tally.1 += 1;
            }
            if out.status.success() {
                if what.contains("install") {
                    installs_won += 1;
                }
                if what.contains("backup create") {
                    let id = serde_json::from_str::<serde_json::Value>(&out.stdout)
                        .expect("backup create prints JSON")["id"]
                        .as_str()
                        .expect("a backup id")
                        .to_string();
                    assert!(backup_ids.insert(id.clone()), "backup id {id} given twice");
                }
                continue;
            }
            assert!(
                !out.stderr.trim().is_empty(),
                "{what}: failed without a word"
            );
            reasons.insert(format!("{kind}: {}", out.stderr.trim()));
            assert!(!unclear(&out.stderr), "{what}: {}", out.stderr);
            if what.contains("install") {
                assert!(
                    out.stderr.contains("`hello` is already installed")
                        || out.stderr.contains("in progress"),
                    "a losing install says why: {}",
                    out.stderr
                );
            }
        }
        let order = lifetimes(&d, since);
        let lost_installs = outs
            .iter()
            .filter(|(c, o)| c.contains(&"install".to_string()) && !o.status.success())
            .count();
        let failed_records = d
            .audit(Some("hello"))
            .iter()
            .filter(|r| int(&r["id"]) > since)
            .filter(|r| r["action"] == "plugin.install" && r["outcome"] == "OUTCOME_FAILED")
            .count();
        assert_eq!(
            failed_records, lost_installs,
            "every losing install is audited under the plugin's name"
        );
        let recorded_installs = order.iter().filter(|a| *a == "plugin.install").count();
        assert_eq!(
            installs_won, recorded_installs,
            "every install reported won is recorded: {order:?}"
        );
        if round.is_multiple_of(2) {
            assert_eq!(installs_won, 1, "round {round}: exactly one install won");
        }
        // Serialised: installs and removes alternate, starting with an install.
        for (i, a) in order.iter().enumerate() {
            let want = if i.is_multiple_of(2) {
                "plugin.install"
            } else {
                "plugin.remove"
            };
            assert_eq!(a, want, "round {round}: lifetimes overlap: {order:?}");
        }

        let dirs = store_points_at_real_files(&d);
        let installed = order.len() % 2 == 1;
        assert_eq!(dirs.len(), usize::from(installed), "{dirs:?} vs {order:?}");
        // Only the version the store points at, and those kept backups point at
        // (so a restore from before an update finds its files), stay on disk.
        let mut allowed = backed_up_dirs(&d);
        allowed.extend(dirs.iter().map(PathBuf::from));
        for version in version_dirs(&d) {
            assert!(
                allowed.contains(&version),
                "left over: {version:?} ({allowed:?})"
            );
        }
        assert!(staging_left(&d).is_empty(), "{:?}", staging_left(&d));
        let integrity = d
            .cli(&["--output", "json", "verify", "system-integrity"])
            .json();
        assert_eq!(integrity["ok"], true, "round {round}: {integrity}");
        println!(
            "round {round}: {} commands in {took:?}, {installs_won} install(s) won, lifetimes {order:?}",
            outs.len()
        );

        // The next round starts from nothing installed.
        if installed {
            d.cli(&["plugin", "remove", "hello", "--yes"]).ok();
        }
    }
    println!("(succeeded, refused) by command: {won:?}");
    println!(
        "refusals seen:\n  {}",
        reasons.into_iter().collect::<Vec<_>>().join("\n  ")
    );
}

#[test]
fn concurrent_backups_all_succeed_with_distinct_ids_and_pruning_leaves_nothing() {
    let d = Daemon::start_with(Settings {
        extra: "[backup]\nkeep = 5\n".into(),
        ..Settings::default()
    });
    let outs: Vec<Cli> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| d.cli(&["--output", "json", "backup", "create"])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = HashSet::new();
    for out in &outs {
        let id = out.json()["id"].as_str().unwrap().to_string();
        assert!(ids.insert(id.clone()), "backup id {id} given twice");
    }
    assert_eq!(ids.len(), 16);
    // Five kept; nothing of the pruned ones left (no file, -wal, -shm or partial).
    let kept: Vec<String> = d.cli(&["--output", "json", "backup", "list"]).json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept.len(), 5, "{kept:?}");
    let mut files: Vec<String> = std::fs::read_dir(d.root().join("state/backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = kept.iter().map(|id| format!("{id}.sqlite")).collect();
    want.sort();
    assert_eq!(files, want, "only the kept backups' files remain");
    for f in &files {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(d.root().join("state/backups").join(f))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

#[test]
fn a_restore_excludes_plugin_commands_and_finds_the_files_of_before_an_update() {
    let d = Daemon::start();
    let bin = bin("echo_plugin");
    let v1 = d.package("v1", &manifest("1.0.0"), &bin, "hello");
    let v2 = d.package("v2", &manifest("2.0.0"), &bin, "hello");
    let v3 = d.package("v3", &manifest("3.0.0"), &bin, "hello");
    d.cli(&["plugin", "install", v1.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello");
    let before = d.cli(&["--output", "json", "backup", "create"]).json()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A restore in a burst of commands on the plugin it replaces.
    let (v2s, v3s) = (v2.display().to_string(), v3.display().to_string());
    let burst: Vec<Vec<&str>> = vec![
        vec!["restore", "--yes", "--backup-id", &before],
        vec!["plugin", "update", "hello", &v2s],
        vec!["plugin", "disable", "hello"],
        vec!["plugin", "enable", "hello"],
        vec!["plugin", "update", "hello", &v3s],
        vec!["--output", "json", "backup", "create"],
    ];
    let outs: Vec<Cli> = std::thread::scope(|s| {
        let handles: Vec<_> = burst.iter().map(|args| s.spawn(|| d.cli(args))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (args, out) in burst.iter().zip(&outs) {
        assert!(
            out.status.success() || !unclear(&out.stderr),
            "{args:?}: {}",
            out.stderr
        );
        println!(
            "{args:?}: {}",
            if out.status.success() {
                "ok".into()
            } else {
                out.stderr.trim().to_string()
            }
        );
    }
    assert!(outs[0].status.success(), "the restore: {}", outs[0].stderr);
    store_points_at_real_files(&d);
    d.cli(&["verify", "system-integrity"]).ok();

    // Whatever ran, now update past the backup and restore it: the backup's
    // version comes back with its files and runs.
    let now = d.plugin_json("hello")["summary"]["version"]
        .as_str()
        .unwrap()
        .to_string();
    if now != "3.0.0" {
        d.cli(&["plugin", "update", "hello", &v3s]).ok();
    }
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.cli(&["restore", "--yes", "--backup-id", &before]).ok();
    assert_eq!(d.plugin_json("hello")["summary"]["version"], "1.0.0");
    store_points_at_real_files(&d);
    d.wait_running("hello");
    d.cli(&["verify", "system-integrity"]).ok();
}
