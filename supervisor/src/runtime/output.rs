//! Drains a plugin's stdout and stderr pipes into its log, line by line with a cap on
//! line length, and discards unread what is beyond the plugin's output rate.

// Why splice: a flooding plugin writes as fast as its CPU allows. Reading, splitting
// and dropping that in user space would cost the supervisor as much CPU as the plugin
// spends writing; splicing the pipe into /dev/null hands the pages back without a
// copy, so a 1 GB flood costs the supervisor a few thousand system calls.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::plugin_log::{DropReport, Piece, PluginLog, MAX_LINE_BYTES};

/// Bytes read per system call.
const CHUNK: usize = 64 << 10;

/// The size asked for each output pipe (the kernel's default is 64 KiB).
const PIPE_BYTES: i32 = 1 << 20;

pub struct Drains(Vec<JoinHandle<()>>);

impl Drains {
    /// Waits for both pipes to reach EOF (the process and its children are gone),
    /// but not forever: a grandchild holding the pipe must not block a restart.
    pub async fn finish(self) {
        for h in self.0 {
            let abort = h.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), h)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

pub fn drain(stdout: OwnedFd, stderr: OwnedFd, log: Arc<PluginLog>) -> Drains {
    let mut tasks = Vec::new();
    for (fd, source) in [(stdout, "stdout"), (stderr, "stderr")] {
        // A larger pipe: a flood is discarded in 1 MiB steps instead of 64 KiB ones.
        // Pages are only taken while data waits in it; failing this costs only speed.
        let _ = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES),
        );
        match pipe::Receiver::from_owned_fd(fd) {
            Ok(rx) => tasks.push(tokio::spawn(pump(rx, source, Arc::clone(&log)))),
            Err(e) => tracing::warn!(source, error = %e, "cannot read plugin output"),
        }
    }
    Drains(tasks)
}

/// The audit record of one interval's dropped output.
pub fn record_dropped(shared: &Shared, r: DropReport) {
    let d = r.dropped;
    let entry = AuditEntry::new(&Actor::system(), "plugin.output_dropped", Outcome::Denied)
        .plugin(r.plugin)
        .detail(serde_json::json!({
            "bytes": d.bytes(),
            "lines": d.lines(),
            "over_rate_bytes": d.over_rate.bytes + d.unread_bytes,
            "discarded_unread_bytes": d.unread_bytes,
            "backlog_bytes": d.backlog.bytes,
            "write_failed_bytes": d.write_failed.bytes,
            "interval_ms": r.interval.as_millis() as u64,
            "rate_bytes_per_sec": r.rate,
            "burst_bytes": r.burst,
        }));
    shared.audit.record(entry);
}

async fn pump(rx: pipe::Receiver, source: &'static str, log: Arc<PluginLog>) {
    let mut rx = rx;
    let mut buf = vec![0u8; CHUNK];
    let mut lines = LineSplitter::new(MAX_LINE_BYTES);
    let mut devnull = dev_null();
    loop {
        if !log.has_budget() {
            if let Some(null) = &devnull {
                match discard_until_budget(&rx, null, &log).await {
                    Discarded::Budget(0) => {}
                    Discarded::Budget(_) => {
                        if let Some(mut b) = log.batch(source) {
                            b.offer(lines.resync());
                        }
                    }
                    Discarded::Eof => break,
                    // Splice refused: drop by reading instead, still counted.
                    Discarded::Unsupported => devnull = None,
                }
            }
        }
        let n = match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Some(mut batch) = log.batch(source) else {
            break;
        };
        lines.feed(&buf[..n], |piece| batch.offer(piece));
    }
    if let Some(rest) = lines.finish() {
        if let Some(mut batch) = log.batch(source) {
            batch.offer(Piece::Line(rest));
        }
    }
}

enum Discarded {
    /// The plugin has budget again, after this many bytes.
    Budget(usize),
    Eof,
    Unsupported,
}

/// One `/dev/null` for every drain: a plugin's output costs the supervisor no fd
/// beyond its two pipes (see `runtime::fd_budget`).
fn dev_null() -> Option<&'static File> {
    static NULL: std::sync::OnceLock<Option<File>> = std::sync::OnceLock::new();
    NULL.get_or_init(|| File::options().write(true).open("/dev/null").ok())
        .as_ref()
}

async fn discard_until_budget(rx: &pipe::Receiver, null: &File, log: &PluginLog) -> Discarded {
    let mut total = 0;
    loop {
        if rx.readable().await.is_err() {
            return Discarded::Eof;
        }
        match rx.try_io(|| splice_to(rx.as_raw_fd(), null)) {
            Ok(0) => return Discarded::Eof,
            Ok(n) => {
                total += n;
                log.discarded(n);
                if log.has_budget() {
                    return Discarded::Budget(total);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Discarded::Unsupported,
            Err(_) => return Discarded::Eof,
        }
    }
}

/// Moves up to a pipe's worth from the pipe `from` into `null` without copying it.
fn splice_to(from: std::os::fd::RawFd, null: &File) -> std::io::Result<usize> {
    // SAFETY: splice(2) on two descriptors this task owns for the call's duration;
    // null offsets, as neither end is seekable.
    let n = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            null.as_raw_fd(),
            std::ptr::null_mut(),
            PIPE_BYTES as usize,
            libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Cuts a byte stream into lines of at most `max` bytes.
pub struct LineSplitter {
    partial: Vec<u8>,
    max: usize,
    /// After a discard: the stream is mid-line until the next newline.
    skipping: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            max,
            skipping: false,
        }
    }

    pub fn feed(&mut self, mut chunk: &[u8], mut emit: impl FnMut(Piece<'_>)) {
        while !chunk.is_empty() {
            if self.skipping {
                let end = chunk.iter().position(|b| *b == b'\n');
                let bytes = end.map_or(chunk.len(), |i| i + 1);
                emit(Piece::Skipped {
                    bytes,
                    ends_line: end.is_some(),
                });
                self.skipping = end.is_none();
                chunk = &chunk[bytes..];
                continue;
            }
            let room = self.max - self.partial.len();
            let window = &chunk[..chunk.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(i) if self.partial.is_empty() => {
                    emit(Piece::Line(&chunk[..i]));
                    chunk = &chunk[i + 1..];
                }
                Some(i) => {
                    self.partial.extend_from_slice(&chunk[..i]);
                    emit(Piece::Line(&self.partial));
                    self.partial.clear();
                    chunk = &chunk[i + 1..];
                }
                None if window.len() == room => {
                    self.partial.extend_from_slice(window);
                    emit(Piece::Line(&self.partial));
                    self.partial.clear();
                    chunk = &chunk[room..];
                }
                None => {
                    self.partial.extend_from_slice(chunk);
                    return;
                }
            }
        }
    }

    /// The stream was discarded from here: what was held of the current line is
    /// dropped, and so is the rest of the line the next bytes continue.
    pub fn resync(&mut self) -> Piece<'static> {
        let bytes = self.partial.len();
        self.partial.clear();
        self.skipping = true;
        Piece::Skipped {
            bytes,
            ends_line: false,
        }
    }

    /// An unterminated last line.
    pub fn finish(&mut self) -> Option<&[u8]> {
        (!self.partial.is_empty() && !self.skipping).then_some(&self.partial[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin_log::{OutputLimits, Reporter};
    use std::sync::Mutex;
    use std::time::Duration;

    fn pieces(split: &mut LineSplitter, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        split.feed(chunk, |p| {
            out.push(match p {
                Piece::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Piece::Skipped { bytes, ends_line } => format!("<skip {bytes} {ends_line}>"),
            })
        });
        out
    }

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_cap_across_chunks() {
        let mut s = LineSplitter::new(4);
        assert_eq!(pieces(&mut s, b"ab\ncd"), ["ab"]);
        assert_eq!(pieces(&mut s, b"e\nfghij\n"), ["cde", "fghi", "j"]);
        assert_eq!(pieces(&mut s, b"tail"), ["tail"]);
        assert_eq!(s.finish(), None);
        assert_eq!(pieces(&mut s, b"xy"), Vec::<String>::new());
        assert_eq!(s.finish(), Some(&b"xy"[..]));
    }

    #[test]
    fn after_a_discard_the_broken_line_is_skipped() {
        let mut s = LineSplitter::new(100);
        assert!(pieces(&mut s, b"half a li").is_empty());
        assert_eq!(
            s.resync(),
            Piece::Skipped {
                bytes: 9,
                ends_line: false
            }
        );
        assert_eq!(pieces(&mut s, b"ne\nwhole\n"), ["<skip 3 true>", "whole"]);
    }

    fn limits(rate: u64, burst: u64) -> OutputLimits {
        OutputLimits {
            files: 2,
            file_bytes: 1 << 20,
            rate,
            burst,
            report_every: Duration::from_secs(60),
        }
    }

    fn collecting() -> (Reporter, Arc<Mutex<Vec<DropReport>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        (Box::new(move |r| sink.lock().unwrap().push(r)), seen)
    }

    #[tokio::test]
    async fn long_lines_are_split_and_all_output_lands() {
        let dir = tempfile::tempdir().unwrap();
        let (report, _) = collecting();
        let (log, writer) = PluginLog::start(dir.path(), "p", limits(1 << 20, 1 << 20), report);
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let drains = drain(r1, r2, log);
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        nix::unistd::write(&w1, format!("hello\n{long}\ntail").as_bytes()).unwrap();
        nix::unistd::write(&w2, b"oops\n").unwrap();
        drop((w1, w2));
        drains.finish().await;
        writer.close().await;
        let text = std::fs::read_to_string(dir.path().join("plugins/p.log")).unwrap();
        assert!(text.contains("[stdout] hello\n"));
        assert!(text.contains("[stderr] oops\n"));
        assert!(text.contains("[stdout] tail\n"));
        assert!(text.lines().all(|l| l.len() < MAX_LINE_BYTES + 64));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_is_discarded_and_every_byte_accounted_for() {
        let dir = tempfile::tempdir().unwrap();
        let (report, seen) = collecting();
        let (log, writer) = PluginLog::start(dir.path(), "p", limits(64 << 10, 64 << 10), report);
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let drains = drain(r1, r2, log);
        drop(w2);
        let total: usize = 64 << 20;
        let writer_thread = std::thread::spawn(move || {
            let line = [b'f'; 1023]
                .iter()
                .chain(b"\n")
                .copied()
                .collect::<Vec<u8>>();
            let block = line.repeat(64);
            let mut sent = 0;
            while sent < total {
                sent += nix::unistd::write(&w1, &block).unwrap();
            }
            sent
        });
        let sent = writer_thread.join().unwrap();
        drains.finish().await;
        writer.close().await;
        let reports = seen.lock().unwrap();
        let dropped: u64 = reports.iter().map(|r| r.dropped.bytes()).sum();
        let unread: u64 = reports.iter().map(|r| r.dropped.unread_bytes).sum();
        let text = std::fs::read_to_string(dir.path().join("plugins/p.log")).unwrap();
        let kept = text.lines().filter(|l| l.contains("[stdout] ")).count() as u64;
        assert!(kept > 0 && kept < 1000, "{kept} lines kept of 65536");
        assert_eq!(
            dropped + kept * 1024,
            sent as u64,
            "every byte kept or counted"
        );
        assert!(
            unread > (sent as u64) / 2,
            "most of it discarded unread: {unread}"
        );
    }
}
