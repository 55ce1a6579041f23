//! A plugin's own log (`<log_dir>/plugins/<name>.log`, rotated and capped): its
//! stdout/stderr and broker log lines, within a byte rate, written off the async path.

// Why: producers (the pipe drains, the broker's log call) only format lines into a
// bounded buffer under a short lock; one writer task per plugin hands each batch to
// the blocking pool, so no async worker ever waits for the disk and a plugin whose
// disk stalls only fills its own buffer. What does not fit the rate or the buffer,
// or fails to write, is dropped and counted, and reported once per interval.

pub mod rate;
pub mod rotate;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::{now_ms, rfc3339_ms};
use crate::config::LogsConfig;
use rate::{ByteBucket, Dropped};
use rotate::{RotatingFile, Rotation, WriteFailed};

/// Longest line kept; the rest of an overlong line is cut so one plugin cannot
/// fill the disk with a single write.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Budget a drain needs before it reads again after discarding: more than one
/// longest line with its prefix, so long lines get through a sustained flood too.
pub const READ_AGAIN_BYTES: usize = 32 * 1024;

/// The limits of one plugin's log, from `[logs]`.
#[derive(Debug, Clone)]
pub struct OutputLimits {
    pub files: u32,
    pub file_bytes: u64,
    pub rate: u64,
    pub burst: u64,
    pub report_every: Duration,
}

impl From<&LogsConfig> for OutputLimits {
    fn from(c: &LogsConfig) -> OutputLimits {
        OutputLimits {
            files: c.plugin_log_files,
            file_bytes: c.file_bytes(),
            rate: c.plugin_output_rate,
            burst: c.plugin_output_burst,
            report_every: c.output_dropped_interval,
        }
    }
}

impl OutputLimits {
    /// Formatted bytes waiting for the writer: a burst plus what arrives while one
    /// batch is written.
    fn max_pending(&self) -> usize {
        (2 * self.burst).max(256 << 10) as usize
    }
}

/// What was dropped over one interval, for the audit trail.
#[derive(Debug, Clone)]
pub struct DropReport {
    pub plugin: String,
    pub dropped: Dropped,
    pub interval: Duration,
    pub rate: u64,
    pub burst: u64,
}

/// Called once per interval with drops to report (the runtime audits them).
pub type Reporter = Box<dyn Fn(DropReport) + Send + Sync>;

struct State {
    bucket: ByteBucket,
    /// Formatted lines waiting for the writer.
    pending: Vec<u8>,
    dropped: Dropped,
    closed: bool,
}

/// The producers' side of a plugin's log.
pub struct PluginLog {
    plugin: String,
    limits: OutputLimits,
    state: Mutex<State>,
    wake: Notify,
}

/// The writer task of a plugin's log; [`LogWriter::close`] flushes and ends it.
pub struct LogWriter {
    log: Arc<PluginLog>,
    task: Option<JoinHandle<()>>,
}

impl PluginLog {
    /// The log of `plugin` under `log_dir/plugins/` and its writer task (on the
    /// current tokio runtime). Files are opened by the writer: a log that cannot be
    /// written costs the plugin its lines, never its start.
    pub fn start(
        log_dir: &Path,
        plugin: &str,
        limits: OutputLimits,
        report: Reporter,
    ) -> (Arc<PluginLog>, LogWriter) {
        let rotation = Rotation {
            dir: log_dir.join("plugins"),
            plugin: plugin.to_string(),
            files: limits.files.max(1),
            file_bytes: limits.file_bytes,
        };
        let log = Arc::new(PluginLog::new(plugin, limits));
        // Error level: recorded at any `--log` level (see `Runtime::start`).
        let span = tracing::error_span!("plugin_log", plugin = %plugin);
        let task = tokio::spawn(tracing::Instrument::instrument(
            write_loop(Arc::clone(&log), rotation, report),
            span,
        ));
        (
            Arc::clone(&log),
            LogWriter {
                log,
                task: Some(task),
            },
        )
    }

    fn new(plugin: &str, limits: OutputLimits) -> PluginLog {
        PluginLog {
            plugin: plugin.to_string(),
            state: Mutex::new(State {
                bucket: ByteBucket::new(limits.rate, limits.burst, Instant::now()),
                pending: Vec::new(),
                dropped: Dropped::default(),
                closed: false,
            }),
            limits,
            wake: Notify::new(),
        }
    }

    /// One line sent through the broker (`ctx.log`), under `source` (its level).
    pub fn line(&self, source: &str, text: &str) {
        let text = crate::text::prefix(text.trim_end_matches(['\n', '\r']), MAX_LINE_BYTES);
        if let Some(mut batch) = self.batch(source) {
            batch.offer(Piece::Line(text.as_bytes()));
        }
    }

    /// Locks the log for a run of lines from one source, all stamped now; `None`
    /// once the log is closed.
    pub fn batch<'a>(&'a self, source: &'a str) -> Option<Batch<'a>> {
        let mut state = self.state.lock().ok()?;
        if state.closed {
            return None;
        }
        state.bucket.refill(Instant::now());
        Some(Batch {
            log: self,
            state,
            source,
            stamp: rfc3339_ms(now_ms()),
            kept: false,
        })
    }

    /// Whether the plugin has budget for a drain to read again.
    pub fn has_budget(&self) -> bool {
        self.state.lock().is_ok_and(|mut s| {
            s.bucket.refill(Instant::now());
            s.bucket.has(READ_AGAIN_BYTES)
        })
    }

    /// Counts bytes a drain discarded unread.
    pub fn discarded(&self, bytes: usize) {
        if let Ok(mut s) = self.state.lock() {
            s.dropped.unread_bytes += bytes as u64;
        }
    }

    /// The pending batch (swapped with `spare`, which must be empty) and whether the
    /// log is closed.
    fn take(&self, spare: Vec<u8>) -> (Vec<u8>, bool) {
        match self.state.lock() {
            Ok(mut s) => (std::mem::replace(&mut s.pending, spare), s.closed),
            Err(_) => (spare, true),
        }
    }

    fn write_failed(&self, failed: &WriteFailed) {
        if let Ok(mut s) = self.state.lock() {
            s.dropped
                .write_failed
                .add(failed.lost.bytes as usize, failed.lost.lines);
        }
    }

    /// Takes the drops since the last report; when there are any and `note`, notes
    /// them in the log itself too, so a reader sees where lines are missing.
    fn take_dropped(&self, note: bool) -> Dropped {
        let Ok(mut s) = self.state.lock() else {
            return Dropped::default();
        };
        let dropped = std::mem::take(&mut s.dropped);
        if note && !dropped.is_empty() {
            let note = format!(
                "{} [supervisor] dropped {} bytes ({} lines counted) of output beyond {} bytes/s (burst {})\n",
                rfc3339_ms(now_ms()),
                dropped.bytes(),
                dropped.lines(),
                self.limits.rate,
                self.limits.burst
            );
            if s.pending.len() + note.len() <= self.limits.max_pending() {
                s.pending.extend_from_slice(note.as_bytes());
            }
        }
        dropped
    }

    fn is_closed(&self) -> bool {
        self.state.lock().map_or(true, |s| s.closed)
    }

    fn close(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.closed = true;
        }
        self.wake.notify_one();
    }
}

/// What a drain cut from a pipe.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A line without its newline (or a cut piece of an overlong one).
    Line(&'a [u8]),
    /// The rest of a line whose start was discarded; `ends_line` if its newline is in it.
    Skipped { bytes: usize, ends_line: bool },
}

/// `text` with every control character (newlines, carriage returns, ESC and the
/// rest of C0, DEL, C1) written as `\u{..}`, the way Rust's `{:?}` writes them: a
/// plugin's output, whatever it holds, is one line of the log under its own stamp,
/// and no terminal sequence reaches a reader's screen.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A run of lines offered under one lock and one timestamp.
pub struct Batch<'a> {
    log: &'a PluginLog,
    state: MutexGuard<'a, State>,
    source: &'a str,
    stamp: String,
    kept: bool,
}

impl Batch<'_> {
    /// Keeps the line if the plugin's budget and the writer's buffer allow it;
    /// otherwise counts it as dropped.
    pub fn offer(&mut self, piece: Piece<'_>) {
        let text = match piece {
            Piece::Line(raw) => raw,
            Piece::Skipped { bytes, ends_line } => {
                self.state
                    .dropped
                    .over_rate
                    .add(bytes, u64::from(ends_line));
                return;
            }
        };
        let raw_len = text.len() + 1;
        let text = String::from_utf8_lossy(text);
        let text = escape_controls(&text);
        // Counted as written to disk: a flood of empty lines costs its timestamps.
        let cost = self.stamp.len() + self.source.len() + text.len() + 5;
        let s = &mut *self.state;
        if s.pending.len() + cost > self.log.limits.max_pending() {
            s.dropped.backlog.add(raw_len, 1);
            return;
        }
        if !s.bucket.take(cost) {
            s.dropped.over_rate.add(raw_len, 1);
            return;
        }
        for part in [self.stamp.as_bytes(), b" [", self.source.as_bytes(), b"] "] {
            s.pending.extend_from_slice(part);
        }
        s.pending.extend_from_slice(text.as_bytes());
        s.pending.push(b'\n');
        self.kept = true;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.kept {
            self.log.wake.notify_one();
        }
    }
}

impl LogWriter {
    /// Writes what is pending and the last drop report, then ends the writer.
    pub async fn close(mut self) {
        self.log.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Not closed explicitly (an aborted task): the writer still ends on its own.
        self.log.close();
    }
}

async fn write_loop(log: Arc<PluginLog>, rotation: Rotation, report: Reporter) {
    let mut file: Option<RotatingFile> = None;
    let mut spare = Vec::new();
    let mut failing = false;
    let mut tick = tokio::time::interval(log.limits.report_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut since = Instant::now();
    loop {
        let reporting = tokio::select! {
            _ = log.wake.notified() => false,
            _ = tick.tick() => true,
        };
        let closed = log.is_closed();
        if reporting || closed {
            // A note about drops is not written into a log that is failing.
            report_drops(&log, &report, &mut since, !failing);
        }
        let (batch, _) = log.take(std::mem::take(&mut spare));
        if batch.is_empty() {
            spare = batch;
        } else {
            let (f, b) =
                write_batch(&log, file.take(), rotation.clone(), batch, &mut failing).await;
            file = f;
            spare = b;
        }
        if closed {
            // No line is taken once closed; a failed last write still gets its record.
            report_drops(&log, &report, &mut since, false);
            return;
        }
    }
}

fn report_drops(log: &PluginLog, report: &Reporter, since: &mut Instant, note: bool) {
    let dropped = log.take_dropped(note);
    if dropped.is_empty() {
        return;
    }
    let interval = since.elapsed();
    *since = Instant::now();
    tracing::warn!(
        plugin = %log.plugin,
        bytes = dropped.bytes(),
        lines = dropped.lines(),
        "plugin output dropped"
    );
    report(DropReport {
        plugin: log.plugin.clone(),
        dropped,
        interval,
        rate: log.limits.rate,
        burst: log.limits.burst,
    });
}

/// Writes one batch on the blocking pool; returns the file (if it is open) and the
/// emptied buffer for reuse. A failure drops the batch and counts it.
async fn write_batch(
    log: &PluginLog,
    file: Option<RotatingFile>,
    rotation: Rotation,
    batch: Vec<u8>,
    failing: &mut bool,
) -> (Option<RotatingFile>, Vec<u8>) {
    let job = tokio::task::spawn_blocking(move || {
        let mut file = match file {
            Some(f) => f,
            None => match RotatingFile::open(rotation) {
                Ok(f) => f,
                Err(e) => {
                    let failed = WriteFailed::of(e, &batch);
                    return (None, batch, Err(failed));
                }
            },
        };
        let result = file.append(&batch);
        (Some(file), batch, result)
    });
    let (file, mut batch, result) = match job.await {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(plugin = %log.plugin, error = %e, "plugin log writer failed");
            return (None, Vec::new());
        }
    };
    match result {
        Ok(()) if *failing => {
            *failing = false;
            tracing::info!(plugin = %log.plugin, "plugin log writable again");
        }
        Ok(()) => {}
        Err(failed) => {
            if !*failing {
                *failing = true;
                tracing::error!(plugin = %log.plugin, error = %failed.error, "plugin log write failed; dropping its lines until it works again");
            }
            log.write_failed(&failed);
        }
    }
    batch.clear();
    (file, batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u64, burst: u64) -> OutputLimits {
        OutputLimits {
            files: 2,
            file_bytes: 1 << 20,
            rate,
            burst,
            report_every: Duration::from_millis(50),
        }
    }

    fn collecting() -> (Reporter, Arc<Mutex<Vec<DropReport>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let report: Reporter = Box::new(move |r| sink.lock().unwrap().push(r));
        (report, seen)
    }

    #[tokio::test]
    async fn lines_land_stamped_with_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let (report, seen) = collecting();
        let (log, writer) = PluginLog::start(dir.path(), "p", limits(1 << 20, 1 << 20), report);
        log.line("info", "hello\n");
        log.batch("stdout")
            .unwrap()
            .offer(Piece::Line(b"from the pipe"));
        writer.close().await;
        let text = std::fs::read_to_string(dir.path().join("plugins/p.log")).unwrap();
        assert!(text.contains(" [info] hello\n"), "{text}");
        assert!(text.contains(" [stdout] from the pipe\n"), "{text}");
        assert!(seen.lock().unwrap().is_empty(), "nothing was dropped");
        assert!(log.batch("stdout").is_none(), "closed");
    }

    #[tokio::test]
    async fn output_beyond_the_burst_is_dropped_counted_and_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let (report, seen) = collecting();
        // A rate so low nothing refills during the test.
        let (log, writer) = PluginLog::start(dir.path(), "p", limits(1, 64 << 10), report);
        let line = [b'z'; 999];
        {
            let mut batch = log.batch("stderr").unwrap();
            for _ in 0..1000 {
                batch.offer(Piece::Line(&line));
            }
        }
        log.discarded(5000);
        writer.close().await;
        let reports = seen.lock().unwrap();
        assert_eq!(reports.len(), 1, "one aggregated record");
        let d = reports[0].dropped;
        let kept = std::fs::read_to_string(dir.path().join("plugins/p.log")).unwrap();
        let kept_lines = kept.lines().filter(|l| l.contains("[stderr]")).count() as u64;
        assert!(kept_lines > 0 && kept_lines < 100, "{kept_lines} kept");
        assert_eq!(d.over_rate.lines, 1000 - kept_lines);
        assert_eq!(d.over_rate.bytes, (1000 - kept_lines) * 1000);
        assert_eq!(d.unread_bytes, 5000);
        assert!(
            kept.contains("[supervisor] dropped"),
            "the log notes the gap"
        );
    }

    #[tokio::test]
    async fn an_unwritable_log_drops_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        // `plugins` is a file: the writer cannot create its directory.
        std::fs::write(dir.path().join("plugins"), b"").unwrap();
        let (report, seen) = collecting();
        let (log, writer) = PluginLog::start(dir.path(), "p", limits(1 << 20, 1 << 20), report);
        log.line("info", "lost");
        tokio::time::sleep(Duration::from_millis(200)).await;
        log.line("info", "lost too");
        writer.close().await;
        let total: u64 = seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.dropped.write_failed.lines)
            .sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn a_writer_that_falls_behind_bounds_the_buffer() {
        // No writer task: nothing takes what is pending, as with a stalled disk.
        let log = PluginLog::new("p", limits(1 << 30, 64 << 10));
        let line = [b'q'; 1000];
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(2));
            let mut batch = log.batch("stdout").unwrap();
            for _ in 0..64 {
                batch.offer(Piece::Line(&line));
            }
        }
        let s = log.state.lock().unwrap();
        assert!(s.pending.len() <= log.limits.max_pending());
        assert!(s.pending.len() > log.limits.max_pending() - 2000);
        assert!(s.dropped.backlog.lines > 0, "{:?}", s.dropped);
    }
}
