//! The audit writer: one thread commits audit records in batches (group commit), keeps
//! a batch it could not commit and retries it, and closes the gate while it cannot.

// Why a batch: with `synchronous = FULL` every commit waits for the disk, so a commit
// per call would put an fsync on every broker call. A call queues its record; the
// writer takes everything queued, commits it as one transaction and starts over, so
// under load many records share one fsync. Durable records (denials, admin actions)
// are answered only after their commit; allowed brokered calls may trail their answer
// by one batch.
//
// Why a gate: when a commit fails (a full disk, an I/O error) the batch is kept and
// retried with backoff, and until a commit succeeds again every new call that needs a
// record is refused at `admit` with UNAVAILABLE. Those refusals are counted in memory
// (not queued one by one, which would grow without bound) and written as aggregate
// records with the first commit that succeeds. So nothing is answered as done without
// its record, and the writer's memory stays bounded while the store is unwritable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::backlog::{Backlog, Lag};
use super::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::sd_watchdog::{Heartbeat, Watched};

/// Most records committed in one transaction while the store is healthy.
const MAX_BATCH: usize = 4096;
/// Most records kept for retry while commits fail; beyond it records of the
/// supervisor's own events are dropped, counted and reported (calls are refused at
/// the gate long before: only runtime events and calls already in flight add here).
const MAX_KEPT: usize = 100_000;
/// Distinct (who, action) pairs counted while refusing; the rest share one count.
const MAX_REFUSED_KEYS: usize = 4096;
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// A batch the store could not commit, handed back so the writer can retry it.
pub struct CommitFailure {
    pub reason: String,
    pub entries: Vec<AuditEntry>,
}

/// Commits one batch; the store's `audit` in the supervisor.
pub type Commit = Box<dyn Fn(Vec<AuditEntry>) -> Result<(), CommitFailure> + Send>;

/// The audit trail cannot take records now; the call that needed one is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: the audit trail cannot be written ({reason}); the supervisor answers nothing it cannot record")]
pub struct Unavailable {
    pub reason: String,
}

impl From<Unavailable> for tonic::Status {
    fn from(e: Unavailable) -> tonic::Status {
        tonic::Status::unavailable(e.to_string())
    }
}

// Records are nearly every job; boxing them would add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Job {
    Record(AuditEntry, Option<oneshot::Sender<bool>>),
    Flush(oneshot::Sender<bool>),
    /// The systemd watchdog asks the thread to show it goes round its loop.
    Probe,
}

/// Calls refused at the gate, per (who, action), until they can be written.
#[derive(Default)]
struct Refused {
    counts: HashMap<(String, String), Tally>,
    /// Refusals beyond `MAX_REFUSED_KEYS` distinct pairs.
    other: Tally,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Tally {
    fn add(&mut self, n: u64, first_ms: i64, last_ms: i64) {
        if self.count == 0 || first_ms < self.first_ms {
            self.first_ms = first_ms;
        }
        self.last_ms = self.last_ms.max(last_ms);
        self.count += n;
    }
}

impl Refused {
    fn count(&mut self, who: &str, action: &str) {
        let now = now_ms();
        let key = (who.to_string(), action.to_string());
        if self.counts.len() < MAX_REFUSED_KEYS || self.counts.contains_key(&key) {
            self.counts.entry(key).or_default().add(1, now, now);
        } else {
            self.other.add(1, now, now);
        }
    }

    fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.other.count == 0
    }

    fn merge(&mut self, other: Refused) {
        for (key, t) in other.counts {
            self.counts
                .entry(key)
                .or_default()
                .add(t.count, t.first_ms, t.last_ms);
        }
        if other.other.count > 0 {
            let t = other.other;
            self.other.add(t.count, t.first_ms, t.last_ms);
        }
    }

    /// One `audit.refused_unrecordable` record per (who, action).
    fn entries(&self, reason: &str) -> Vec<AuditEntry> {
        let record = |who: Option<&str>, action: &str, t: &Tally| {
            let mut entry = AuditEntry::new(
                &Actor::system(),
                "audit.refused_unrecordable",
                Outcome::Denied,
            )
            .detail(serde_json::json!({
                "refused_action": action,
                "count": t.count,
                "first_ms": t.first_ms,
                "last_ms": t.last_ms,
                "reason": reason,
            }));
            if let Some(plugin) = who.and_then(|w| w.strip_prefix("plugin:")) {
                entry = entry.plugin(plugin);
            }
            if let Some(who) = who {
                entry.detail["caller"] = who.into();
            }
            entry
        };
        let mut out: Vec<AuditEntry> = self
            .counts
            .iter()
            .map(|((who, action), t)| record(Some(who), action, t))
            .collect();
        if self.other.count > 0 {
            out.push(record(None, "(other)", &self.other));
        }
        out
    }
}

/// The writer's state as callers see it.
#[derive(Default)]
struct Health {
    /// Set when a commit failed, cleared by the next one that succeeds.
    failing: AtomicBool,
    reason: Mutex<String>,
    refused: Mutex<Refused>,
    /// Records dropped because more than `MAX_KEPT` were waiting for retry.
    dropped: Mutex<u64>,
    /// Advanced on every turn of the thread's loop, a failed commit's retry included.
    beat: Heartbeat,
    backlog: Backlog,
    /// `failing` for those who wait for it to change (the admin socket's health).
    changes: Changes,
}

/// A watch channel of the failing flag; sent only by the writer thread.
struct Changes(tokio::sync::watch::Sender<bool>);

impl Default for Changes {
    fn default() -> Self {
        Changes(tokio::sync::watch::Sender::new(false))
    }
}

impl Health {
    fn unavailable(&self) -> Unavailable {
        Unavailable {
            reason: self
                .reason
                .lock()
                .map(|r| r.clone())
                .unwrap_or_else(|_| "the audit writer failed".into()),
        }
    }

    fn fail(&self, reason: &str) {
        if let Ok(mut r) = self.reason.lock() {
            reason.clone_into(&mut r);
        }
        if !self.failing.swap(true, Ordering::AcqRel) {
            tracing::error!(reason, "audit records cannot be committed: refusing every call that needs one until they can");
            self.changes.0.send_replace(true);
        }
    }

    fn recover(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::warn!("audit records are being committed again: calls are accepted");
            self.changes.0.send_replace(false);
        }
    }

    fn take_refused(&self) -> Refused {
        self.refused
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }

    fn restore_refused(&self, taken: Refused) {
        if let Ok(mut r) = self.refused.lock() {
            r.merge(taken);
        }
    }
}

/// Handle to the writer thread; the thread ends when the last handle is dropped.
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
    health: Arc<Health>,
}

/// The writer's queue before its thread runs: records sent meanwhile wait in it.
pub struct AuditQueue {
    rx: mpsc::Receiver<Job>,
    health: Arc<Health>,
}

impl AuditQueue {
    /// Starts the thread that drains the queue through `commit`.
    pub fn start(self, commit: Commit) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || Thread::new(&self.rx, &commit, &self.health).run())?;
        Ok(())
    }
}

impl AuditWriter {
    /// A writer and its queue; start the queue once `commit` can be built (the
    /// supervisor's commits go through the store that lives beside the writer).
    pub fn new() -> (AuditWriter, AuditQueue) {
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        (
            AuditWriter {
                tx,
                health: Arc::clone(&health),
            },
            AuditQueue { rx, health },
        )
    }

    /// A writer committing through `commit` from now on.
    pub fn start(commit: Commit) -> std::io::Result<AuditWriter> {
        let (writer, queue) = AuditWriter::new();
        queue.start(commit)?;
        Ok(writer)
    }

    /// The gate in front of every call that will need a record: `Err` while the
    /// writer cannot commit. The refusal is counted for `who` (an actor identity such
    /// as `plugin:hello`) and `action`, and written once records can be again.
    pub fn admit(&self, who: &str, action: &str) -> Result<(), Unavailable> {
        if !self.health.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        self.count_refusal(who, action);
        Err(self.health.unavailable())
    }

    /// Counts a refusal whose own record could not be written, for the aggregate
    /// written with the next commit that succeeds.
    pub fn count_refusal(&self, who: &str, action: &str) {
        if let Ok(mut refused) = self.health.refused.lock() {
            refused.count(who, action);
        }
    }

    /// [`AuditWriter::admit`] for a plugin's brokered call (`service` or action).
    pub fn admit_plugin(&self, plugin: &str, action: &str) -> Result<(), Unavailable> {
        if !self.health.failing.load(Ordering::Acquire) {
            return Ok(());
        }
        self.admit(&format!("plugin:{plugin}"), action)
    }

    /// The writer thread as the systemd watchdog sees it. A probe wakes the thread,
    /// which then also retries a kept batch early; at half the watchdog interval that
    /// is seldom next to the retry backoff.
    pub fn liveness(&self) -> Watched {
        let tx = self.tx.clone();
        Watched::new(
            "the audit writer thread",
            self.health.beat.clone(),
            Box::new(move || {
                let _ = tx.send(Job::Probe);
            }),
        )
    }

    /// Whether commits are failing now, and why.
    pub fn failing(&self) -> Option<String> {
        self.health
            .failing
            .load(Ordering::Acquire)
            .then(|| self.health.unavailable().reason)
    }

    /// Whether commits are failing (`true`), seeing each change as it happens.
    pub fn watch_failing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.health.changes.0.subscribe()
    }

    /// Queues `entry` (within the caps of `bounded`) and returns at once (a call that
    /// passed [`AuditWriter::admit`]).
    pub fn record(&self, entry: AuditEntry) {
        self.health.backlog.queued();
        if self.tx.send(Job::Record(entry.bounded(), None)).is_err() {
            self.health.backlog.lost();
            tracing::error!("audit writer is gone; a record was lost");
        }
    }

    /// Queues `entry` and returns once it is committed. If the commit failed the record
    /// stays queued and is retried, and the caller must not answer as if it were done.
    pub async fn record_durable(&self, entry: AuditEntry) -> Result<(), Unavailable> {
        let (done, committed) = oneshot::channel();
        self.health.backlog.queued();
        if self
            .tx
            .send(Job::Record(entry.bounded(), Some(done)))
            .is_err()
        {
            self.health.backlog.lost();
            return Err(Unavailable {
                reason: "the audit writer has stopped".into(),
            });
        }
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(self.health.unavailable()),
        }
    }

    /// Records a brokered call: a denial durably before the caller answers, anything
    /// else queued.
    pub async fn submit(&self, entry: AuditEntry) -> Result<(), Unavailable> {
        if entry.outcome == Outcome::Denied {
            self.record_durable(entry).await
        } else {
            self.record(entry);
            Ok(())
        }
    }

    /// How many records wait for a commit, and for how long the oldest has.
    pub fn lag(&self) -> Lag {
        self.health.backlog.lag()
    }

    /// Returns once everything queued before the call is committed.
    pub async fn flush(&self) -> bool {
        let (done, flushed) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).is_err() {
            return false;
        }
        flushed.await.unwrap_or(false)
    }
}

/// The writer thread: what is waiting for a commit, and who waits for it.
struct Thread<'a> {
    rx: &'a mpsc::Receiver<Job>,
    commit: &'a Commit,
    health: &'a Health,
    kept: Vec<AuditEntry>,
    waiting: Vec<oneshot::Sender<bool>>,
    retry: Duration,
}

impl<'a> Thread<'a> {
    fn new(rx: &'a mpsc::Receiver<Job>, commit: &'a Commit, health: &'a Health) -> Self {
        Thread {
            rx,
            commit,
            health,
            kept: Vec::new(),
            waiting: Vec::new(),
            retry: RETRY_MIN,
        }
    }

    fn run(mut self) {
        loop {
            let first = if self.kept.is_empty() && self.waiting.is_empty() {
                match self.rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                }
            } else {
                // Something waits for a retry: take new jobs meanwhile, but not forever.
                match self.rx.recv_timeout(self.retry) {
                    Ok(job) => Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.last_attempt();
                        return;
                    }
                }
            };
            self.health.beat.beat();
            if let Some(job) = first {
                self.take(job);
            }
            let limit = MAX_BATCH.max(self.kept.len() + 1);
            while self.kept.len() < limit {
                match self.rx.try_recv() {
                    Ok(job) => self.take(job),
                    Err(_) => break,
                }
            }
            let taken = self.health.backlog.now();
            self.attempt(taken);
        }
    }

    fn take(&mut self, job: Job) {
        match job {
            Job::Record(entry, done) => {
                if self.kept.len() < MAX_KEPT {
                    self.kept.push(entry);
                } else {
                    self.health.backlog.lost();
                    if let Ok(mut dropped) = self.health.dropped.lock() {
                        *dropped += 1;
                    }
                }
                self.waiting.extend(done);
            }
            Job::Flush(done) => self.waiting.push(done),
            Job::Probe => {}
        }
    }

    /// Commits what is kept plus the refusals counted meanwhile; on failure keeps it
    /// all for the next attempt and tells whoever waits.
    fn attempt(&mut self, taken: u64) {
        let refused = self.health.take_refused();
        let dropped = self
            .health
            .dropped
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or(0);
        let mut batch = std::mem::take(&mut self.kept);
        let mut extra = 0;
        if !refused.is_empty() {
            let reason = self.health.unavailable().reason;
            let aggregates = refused.entries(&reason);
            extra = aggregates.len();
            batch.extend(aggregates);
        }
        if dropped > 0 {
            batch.push(dropped_record(dropped));
            extra += 1;
        }
        let records = (batch.len() - extra) as u64;
        let ok = if batch.is_empty() {
            true
        } else {
            match (self.commit)(batch) {
                Ok(()) => {
                    self.health.backlog.done(records, taken);
                    true
                }
                Err(failure) => {
                    let mut entries = failure.entries;
                    if entries.len() > extra {
                        // Counted again and rewritten with the next attempt.
                        entries.truncate(entries.len() - extra);
                        self.health.restore_refused(refused);
                        if let Ok(mut d) = self.health.dropped.lock() {
                            *d += dropped;
                        }
                    }
                    // Never empty after a failure, so the thread keeps retrying: an
                    // empty commit proves nothing about the disk.
                    self.kept = entries;
                    self.health.fail(&failure.reason);
                    false
                }
            }
        };
        if ok {
            self.health.recover();
            self.retry = RETRY_MIN;
        } else {
            self.retry = (self.retry * 2).min(RETRY_MAX);
        }
        for done in self.waiting.drain(..) {
            let _ = done.send(ok);
        }
    }

    /// The last handle is gone (the supervisor is stopping): one more try.
    fn last_attempt(&mut self) {
        self.attempt(self.health.backlog.now());
        if !self.kept.is_empty() {
            tracing::error!(
                records = self.kept.len(),
                "audit records could not be committed before the writer stopped"
            );
        }
    }
}

fn dropped_record(count: u64) -> AuditEntry {
    AuditEntry::new(&Actor::system(), "audit.records_dropped", Outcome::Failed).detail(
        serde_json::json!({
            "count": count,
            "reason": format!("more than {MAX_KEPT} records waited for a commit"),
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn entry(outcome: Outcome) -> AuditEntry {
        AuditEntry::new(&Actor::plugin("p"), "broker.test", outcome)
    }

    /// A commit that records batch sizes and takes `delay` like a disk would.
    fn recording(delay: Duration) -> (Commit, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&batches);
        let commit: Commit = Box::new(move |batch: Vec<AuditEntry>| {
            std::thread::sleep(delay);
            seen.lock().expect("lock").push(batch.len());
            Ok(())
        });
        (commit, batches)
    }

    /// A store whose disk is full while `full` is set; what it committed, by action.
    fn flaky() -> (Commit, Arc<AtomicBool>, Arc<Mutex<Vec<AuditEntry>>>) {
        let full = Arc::new(AtomicBool::new(false));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let (f, s) = (Arc::clone(&full), Arc::clone(&stored));
        let commit: Commit = Box::new(move |batch: Vec<AuditEntry>| {
            if f.load(Ordering::SeqCst) {
                return Err(CommitFailure {
                    reason: "database or disk is full".into(),
                    entries: batch,
                });
            }
            s.lock().expect("lock").extend(batch);
            Ok(())
        });
        (commit, full, stored)
    }

    #[tokio::test]
    async fn a_denial_returns_only_after_its_commit() {
        let (commit, batches) = recording(Duration::from_millis(20));
        let w = AuditWriter::start(commit).expect("thread");
        w.submit(entry(Outcome::Denied)).await.expect("committed");
        assert_eq!(*batches.lock().expect("lock"), [1]);
    }

    #[tokio::test]
    async fn queued_records_share_commits_and_flush_waits_for_them() {
        let (commit, batches) = recording(Duration::from_millis(5));
        let w = AuditWriter::start(commit).expect("thread");
        for _ in 0..1000 {
            w.submit(entry(Outcome::Ok)).await.expect("queued");
        }
        assert!(w.flush().await);
        let b = batches.lock().expect("lock").clone();
        assert_eq!(b.iter().sum::<usize>(), 1000);
        assert!(b.len() < 100, "1000 records in {} commits", b.len());
    }

    #[tokio::test]
    async fn a_failed_commit_closes_the_gate_keeps_the_batch_and_recovers() {
        let (commit, full, stored) = flaky();
        let w = AuditWriter::start(commit).expect("thread");
        assert!(
            w.admit("plugin:p", "broker.test").is_ok(),
            "open while healthy"
        );
        full.store(true, Ordering::SeqCst);
        w.record(entry(Outcome::Ok));
        let denied = w.record_durable(entry(Outcome::Denied)).await;
        let err = denied.expect_err("a denial is not durable while the disk is full");
        assert!(err.reason.contains("disk is full"), "{err}");
        assert!(w.failing().is_some());
        // Refused at the gate: counted, not queued.
        for _ in 0..500 {
            assert_eq!(w.admit("plugin:p", "broker.config_get"), Err(err.clone()));
        }
        assert!(w.admit("uid=0(root)", "install").is_err());
        assert!(stored.lock().expect("lock").is_empty());
        full.store(false, Ordering::SeqCst);
        // The kept batch is retried on its own; the next flush sees it committed.
        assert!(w.flush().await);
        assert!(w.failing().is_none());
        assert!(w.admit("plugin:p", "broker.test").is_ok(), "open again");
        let stored = stored.lock().expect("lock").clone();
        let tests = stored.iter().filter(|e| e.action == "broker.test").count();
        assert_eq!(tests, 2, "the allowed and the denied record both landed");
        let refused: Vec<_> = stored
            .iter()
            .filter(|e| e.action == "audit.refused_unrecordable")
            .collect();
        assert_eq!(refused.len(), 2, "one aggregate per caller and action");
        let config = refused
            .iter()
            .find(|e| e.detail["refused_action"] == "broker.config_get")
            .expect("the plugin's refusals");
        assert_eq!(config.detail["count"], 500);
        assert_eq!(config.plugin.as_deref(), Some("p"));
        assert!(config.detail["reason"]
            .as_str()
            .is_some_and(|r| r.contains("disk is full")));
    }

    #[tokio::test]
    async fn watchers_see_the_gate_close_and_open_again() {
        let (commit, full, _) = flaky();
        let w = AuditWriter::start(commit).expect("thread");
        let mut failing = w.watch_failing();
        assert!(!*failing.borrow_and_update());
        full.store(true, Ordering::SeqCst);
        let _ = w.record_durable(entry(Outcome::Denied)).await;
        failing.changed().await.expect("writer alive");
        assert!(*failing.borrow_and_update(), "closed");
        full.store(false, Ordering::SeqCst);
        assert!(w.flush().await);
        failing.changed().await.expect("writer alive");
        assert!(!*failing.borrow_and_update(), "open again");
    }

    #[tokio::test]
    async fn refusal_counts_survive_a_failed_retry() {
        let (commit, full, stored) = flaky();
        let attempts = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&attempts);
        let counting: Commit = Box::new(move |b| {
            seen.fetch_add(1, Ordering::SeqCst);
            commit(b)
        });
        let w = AuditWriter::start(counting).expect("thread");
        full.store(true, Ordering::SeqCst);
        assert!(w.record_durable(entry(Outcome::Ok)).await.is_err());
        for _ in 0..3 {
            let _ = w.admit("plugin:p", "broker.emit");
        }
        // Let at least one retry fail with the aggregate in its batch.
        let before = attempts.load(Ordering::SeqCst);
        while attempts.load(Ordering::SeqCst) < before + 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = w.admit("plugin:p", "broker.emit");
        full.store(false, Ordering::SeqCst);
        assert!(w.flush().await);
        let stored = stored.lock().expect("lock");
        let counts: Vec<u64> = stored
            .iter()
            .filter(|e| e.action == "audit.refused_unrecordable")
            .filter_map(|e| e.detail["count"].as_u64())
            .collect();
        assert_eq!(counts, [4], "one record with every refusal, none twice");
    }

    #[tokio::test]
    async fn the_writer_beats_for_the_watchdog_while_it_retries_a_failing_commit() {
        let (commit, full, _) = flaky();
        let w = AuditWriter::start(commit).expect("thread");
        let beats = || w.health.beat.count();
        // Idle, it answers a probe.
        let idle = beats();
        w.tx.send(Job::Probe).expect("probe");
        assert!(w.flush().await);
        assert!(beats() > idle, "a probe is answered");
        // A full disk is the gate's business: the loop keeps going round.
        full.store(true, Ordering::SeqCst);
        w.record(entry(Outcome::Ok));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let failing = beats();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(w.failing().is_some());
        assert!(
            beats() >= failing + 2,
            "the retries 200 and 400 ms apart beat too"
        );
    }

    #[tokio::test]
    async fn the_lag_counts_what_waits_and_ages_while_commits_fail() {
        let (commit, full, stored) = flaky();
        let w = AuditWriter::start(commit).expect("thread");
        assert!(w.flush().await);
        assert_eq!(w.lag(), Lag::default(), "nothing waits when idle");
        full.store(true, Ordering::SeqCst);
        for _ in 0..5 {
            w.record(entry(Outcome::Ok));
        }
        assert!(!w.flush().await, "the disk is full");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lag = w.lag();
        assert_eq!(lag.entries, 5, "{lag:?}");
        assert!(lag.oldest >= Duration::from_millis(300), "{lag:?}");
        full.store(false, Ordering::SeqCst);
        assert!(w.flush().await);
        assert_eq!(w.lag(), Lag::default(), "{:?}", w.lag());
        assert_eq!(stored.lock().expect("lock").len(), 5);
    }
}
