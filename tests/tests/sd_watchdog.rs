//! End to end: the systemd watchdog. With `WATCHDOG_USEC` the daemon sends WATCHDOG=1
//! over a test NOTIFY_SOCKET at half the interval, and stops while its audit writer is
//! really stuck: blocked in SQLite on a lock this test holds on the store file.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// The test's NOTIFY_SOCKET, read by a thread: every datagram with when it came.
struct Notifications {
    _dir: tempfile::TempDir,
    path: String,
    rx: mpsc::Receiver<(Instant, String)>,
}

impl Notifications {
    fn new() -> Notifications {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        Notifications {
            path: path.display().to_string(),
            _dir: dir,
            rx,
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (_, text) = self.rx.recv_timeout(left).expect("READY=1 within 20 s");
            if text.lines().any(|l| l == "READY=1") {
                return;
            }
        }
    }

    /// Every notification of the next `window`, after dropping those that came before.
    fn next(&self, window: Duration) -> Vec<(Instant, String)> {
        let _ = self.rx.try_iter().count();
        let end = Instant::now() + window;
        let mut got = Vec::new();
        while let Ok(n) = self
            .rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            got.push(n);
        }
        got
    }

    /// When each WATCHDOG=1 of the next `window` came.
    fn pings_for(&self, window: Duration) -> Vec<Instant> {
        self.next(window)
            .into_iter()
            .filter(|(_, text)| text.lines().any(|l| l == "WATCHDOG=1"))
            .map(|(at, _)| at)
            .collect()
    }
}

fn gaps_ms(pings: &[Instant]) -> Vec<u64> {
    pings
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).as_millis() as u64)
        .collect()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn watched_daemon(notify: &Notifications, extra: &[(&'static str, &str)]) -> Daemon {
    let mut env = vec![
        ("NOTIFY_SOCKET", notify.path.clone()),
        ("WATCHDOG_USEC", "400000".to_string()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let d = Daemon::start_with(Settings {
        env,
        ..Settings::default()
    });
    notify.wait_ready();
    d
}

#[test]
fn pings_come_at_half_the_watchdog_interval() {
    let notify = Notifications::new();
    let mut d = watched_daemon(&notify, &[]);
    // A plugin running and a call made meanwhile: the launcher and the writer are busy
    // with real work too.
    d.run_hello();
    let pings = notify.pings_for(Duration::from_secs(3));
    let gaps = gaps_ms(&pings);
    println!("{} pings in 3 s, gaps {gaps:?} ms", pings.len());
    assert!(pings.len() >= 10, "about 15 expected: {gaps:?}");
    let m = median(gaps.clone());
    assert!(
        (180..=300).contains(&m),
        "median gap {m} ms, not ~200: {gaps:?}"
    );
    // Stopping: no ping after STOPPING=1.
    let after: Vec<String> = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(300));
            d.stop();
        });
        notify.next(Duration::from_secs(5))
    })
    .into_iter()
    .map(|(_, t)| t)
    .collect();
    let stopping = after
        .iter()
        .position(|t| t.lines().any(|l| l == "STOPPING=1"))
        .expect("STOPPING=1");
    assert!(
        !after[stopping + 1..]
            .iter()
            .any(|t| t.contains("WATCHDOG=1")),
        "{after:?}"
    );
}

#[test]
fn a_watchdog_meant_for_another_pid_is_not_pinged() {
    let notify = Notifications::new();
    let _d = watched_daemon(&notify, &[("WATCHDOG_PID", "1")]);
    let pings = notify.pings_for(Duration::from_millis(1500));
    assert!(pings.is_empty(), "{} pings", pings.len());
}

#[test]
fn a_bad_watchdog_usec_is_refused_at_start() {
    let (status, said) = Daemon::start_failing(
        Settings {
            env: vec![("WATCHDOG_USEC", "30s".into())],
            ..Settings::default()
        },
        |_| {},
    );
    assert!(!status.success(), "{said}");
    assert!(
        said.contains(r#"WATCHDOG_USEC="30s" is not a positive number of microseconds"#),
        "{said}"
    );
}

#[test]
fn a_stalled_audit_writer_stops_the_pings_until_it_moves_again() {
    let notify = Notifications::new();
    let d = watched_daemon(&notify, &[]);
    let healthy = notify.pings_for(Duration::from_secs(1));
    assert!(
        healthy.len() >= 3,
        "pinging before the stall: {}",
        healthy.len()
    );

    // A second connection takes the store's write lock, as a `sqlite3` left open
    // in a transaction would. The writer then waits in SQLite's busy handler (5 s).
    let store = rusqlite::Connection::open(d.root().join("state/store.db")).unwrap();
    store.busy_timeout(Duration::from_secs(10)).unwrap();
    store.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::thread::scope(|s| {
        // A call whose record must be committed before it is answered.
        let publish = s.spawn(|| d.cli(&["event", "publish", "watchdog.test", "{}"]));
        let held = Instant::now();
        let early = notify.pings_for(Duration::from_millis(1500));
        let stalled = notify.pings_for(Duration::from_millis(2000));
        println!(
            "pings while the writer is blocked: {} in the first 1.5 s, {} in the next 2 s",
            early.len(),
            stalled.len()
        );
        assert!(stalled.is_empty(), "no ping while the writer is stuck");
        let log = d.log();
        let said = log
            .lines()
            .find(|l| l.contains("no progress since the last watchdog ping"))
            .unwrap_or_else(|| panic!("the stall is logged: {log}"));
        println!("{said}");
        assert!(
            said.contains("ERROR") && said.contains("the audit writer thread"),
            "{said}"
        );

        store.execute_batch("COMMIT").unwrap();
        println!("lock held {:?}", held.elapsed());
        let out = publish.join().unwrap();
        out.ok();
        let resumed = notify.pings_for(Duration::from_secs(2));
        let gaps = gaps_ms(&resumed);
        println!(
            "{} pings in the 2 s after the lock was released, gaps {gaps:?}",
            resumed.len()
        );
        assert!(resumed.len() >= 5, "pinging again: {gaps:?}");
    });
    assert!(d.log().contains("made progress again"));
    let published = d.audit_actions(None);
    assert!(
        published.contains(&("event.publish".into(), "ok".into())),
        "the held record landed"
    );
}
