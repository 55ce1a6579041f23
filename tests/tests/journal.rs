//! End to end: the daemon's own log in the journal's native protocol. There is no
//! journald here, so the test is the journal: in the daemon's own mount namespace a
//! test directory is /run/systemd, with the test's datagram socket at journal/socket.

mod common;

use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// One journal entry: its fields in order (a name may come twice).
#[derive(Debug)]
struct Entry(Vec<(String, String)>);

impl Entry {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn message(&self) -> &str {
        self.get("MESSAGE").unwrap_or("")
    }
}

/// Decodes the native protocol: `NAME=value\n`, or `NAME\n` + little-endian u64
/// length + value + `\n` for values that may hold newlines.
fn decode(mut rest: &[u8]) -> Entry {
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with a newline");
        let line = &rest[..nl];
        let (name, value, used) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (&line[..eq], &line[eq + 1..], nl + 1),
            None => {
                let len_at = nl + 1;
                let len = u64::from_le_bytes(rest[len_at..len_at + 8].try_into().unwrap());
                let start = len_at + 8;
                let end = start + len as usize;
                assert_eq!(rest[end], b'\n', "a binary field ends with a newline");
                (line, &rest[start..end], end + 1)
            }
        };
        let name = String::from_utf8(name.to_vec()).expect("field names are ASCII");
        assert!(
            !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_'),
            "journald accepts only upper-case names: {name:?}"
        );
        fields.push((name, String::from_utf8_lossy(value).into_owned()));
        rest = &rest[used..];
    }
    Entry(fields)
}

/// The test's journal: a socket bound where the daemon will find it, read all the
/// time by a thread (a full socket queue would block the daemon's logging, as a
/// stalled journald would).
struct Journal {
    dir: tempfile::TempDir,
    entries: Arc<Mutex<Vec<Entry>>>,
    /// Entries that came as a sealed memfd (too large for one datagram).
    from_memfd: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Journal {
    fn new(listening: bool) -> Journal {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("journal")).unwrap();
        let journal = Journal {
            dir,
            entries: Arc::default(),
            from_memfd: Arc::default(),
            stop: Arc::default(),
        };
        if listening {
            let sock = UnixDatagram::bind(journal.root().join("journal/socket")).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let (entries, memfds, stop) = (
                Arc::clone(&journal.entries),
                Arc::clone(&journal.from_memfd),
                Arc::clone(&journal.stop),
            );
            std::thread::spawn(move || read(&sock, &entries, &memfds, &stop));
        }
        journal
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn count(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    /// The first entry `found` accepts, within 20 s.
    fn wait_for(&self, what: &str, found: impl Fn(&Entry) -> bool) -> Entry {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            {
                let entries = self.entries.lock().unwrap();
                if let Some(e) = entries.iter().find(|e| found(e)) {
                    return Entry(e.0.clone());
                }
                assert!(
                    Instant::now() < deadline,
                    "no journal entry {what}; got {} entries: {:#?}",
                    entries.len(),
                    entries.iter().map(Entry::message).collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read(sock: &UnixDatagram, entries: &Mutex<Vec<Entry>>, memfds: &AtomicUsize, stop: &AtomicBool) {
    let mut buf = vec![0u8; 1 << 20];
    while !stop.load(Ordering::SeqCst) {
        let Some((n, fd)) = recv(sock.as_raw_fd(), &mut buf) else {
            continue;
        };
        let payload = match fd {
            Some(fd) => {
                memfds.fetch_add(1, Ordering::SeqCst);
                let mut f = std::fs::File::from(fd);
                let mut all = Vec::new();
                f.rewind().unwrap();
                f.read_to_end(&mut all).unwrap();
                all
            }
            None => buf[..n].to_vec(),
        };
        // The layer checks the socket with an empty datagram first.
        if !payload.is_empty() {
            entries.lock().unwrap().push(decode(&payload));
        }
    }
}

/// One datagram and the fd passed with it, if any; `None` after the read timeout.
fn recv(fd: RawFd, buf: &mut [u8]) -> Option<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = match recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC) {
        Ok(m) => m,
        Err(nix::errno::Errno::EAGAIN) => return None,
        Err(e) => panic!("recvmsg on the journal socket: {e}"),
    };
    let mut passed = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave us these fds.
            passed = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
        }
    }
    Some((msg.bytes, passed))
}

#[test]
fn warnings_reach_the_journal_with_their_priority_and_the_plugins_name() {
    let journal = Journal::new(true);
    let d = Daemon::start_with(Settings {
        journal: Some(journal.root().to_path_buf()),
        ..Settings::default()
    });
    let serving = journal.wait_for("supervisor serving", |e| {
        e.message() == "supervisor serving"
    });
    assert_eq!(serving.get("PRIORITY"), Some("6"), "info: {serving:?}");
    assert_eq!(
        serving.get("SYSLOG_IDENTIFIER"),
        Some("plexichat-supervisor")
    );
    assert!(serving.get("PLEXICHAT_SOCKET").is_some(), "{serving:?}");

    d.run_plugin("hostile", &bin("hostile"));
    // An event inside the plugin's span carries its name from the span.
    let running = journal.wait_for("plugin running", |e| e.message() == "plugin running");
    assert_eq!(
        running.get("PLEXICHAT_PLUGIN"),
        Some("hostile"),
        "{running:?}"
    );
    assert_eq!(running.get("PRIORITY"), Some("6"));

    let _ = d.cli(&["plugin", "invoke", "hostile", "bpf"]);
    let denied = journal.wait_for("seccomp denied a syscall", |e| {
        e.message() == "seccomp denied a syscall" && e.get("PLEXICHAT_SYSCALL") == Some("bpf")
    });
    println!("{denied:#?}");
    assert_eq!(denied.get("PRIORITY"), Some("4"), "a warning");
    assert_eq!(denied.get("PLEXICHAT_PLUGIN"), Some("hostile"));
    assert_eq!(
        denied.get("PLEXICHAT_ACTION"),
        Some("security.syscall_denied")
    );
    assert_eq!(denied.get("PLEXICHAT_OUTCOME"), Some("denied"));
    assert_eq!(
        denied.get("SYSLOG_IDENTIFIER"),
        Some("plexichat-supervisor")
    );

    // The harness asks for debug: priority 7.
    journal.wait_for("at debug", |e| e.get("PRIORITY") == Some("7"));
    // Nothing went to stderr as well: the journal would have every line twice.
    let stderr = d.log();
    assert!(
        !stderr.contains("supervisor serving") && !stderr.contains("seccomp denied"),
        "{stderr}"
    );
    println!(
        "{} journal entries ({} through a memfd)",
        journal.count(),
        journal.from_memfd.load(Ordering::SeqCst)
    );
}

#[test]
fn at_log_level_warn_a_crash_still_names_its_plugin() {
    let journal = Journal::new(true);
    let d = Daemon::start_with(Settings {
        journal: Some(journal.root().to_path_buf()),
        env: vec![("PLEXICHAT_LOG", "warn".into())],
        ..Settings::default()
    });
    let manifest = "name = \"crasher\"\nversion = \"1.0.0\"\nentry = \"crasher\"\n";
    let pkg = d.package("crasher", manifest, &bin("crasher"), "crasher");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "enable", "crasher"]).ok();
    let crashed = journal.wait_for("plugin crashed", |e| e.message() == "plugin crashed");
    println!("{crashed:#?}");
    assert_eq!(crashed.get("PRIORITY"), Some("4"));
    assert_eq!(
        crashed.get("PLEXICHAT_PLUGIN"),
        Some("crasher"),
        "from the span"
    );
    assert_eq!(crashed.get("PLEXICHAT_ACTION"), Some("plugin.crash"));
    assert_eq!(crashed.get("PLEXICHAT_OUTCOME"), Some("failed"));
    let entries = journal.entries.lock().unwrap();
    let below: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.get("PRIORITY"), Some("5" | "6" | "7")))
        .map(Entry::message)
        .collect();
    assert!(
        below.is_empty(),
        "--log warn: nothing below warning: {below:?}"
    );
}

#[test]
fn without_a_journal_socket_the_log_stays_plain_text_on_stderr() {
    let journal = Journal::new(false);
    let d = Daemon::start_with(Settings {
        journal: Some(journal.root().to_path_buf()),
        ..Settings::default()
    });
    wait_until(
        Duration::from_secs(10),
        "supervisor serving on stderr",
        || d.log().contains("supervisor serving"),
    );
    let log = d.log();
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the journal socket cannot be reached"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {log}");
    assert!(said[0].contains("WARN"), "{}", said[0]);
    assert!(!log.contains('\x1b'), "no colour off a terminal: {log}");
}
