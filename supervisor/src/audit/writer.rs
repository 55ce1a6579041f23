//! The broker's audit writer: one thread commits the records of brokered calls in
//! batches (group commit), and a denial is answered only after its batch committed.

// Why: with `synchronous = FULL` every commit waits for the disk, so a commit per call
// would put an fsync on every broker call. Here a call only queues its record; the
// writer takes everything queued, commits it as one transaction and starts over, so
// under load many records share one fsync. Denials wait for their commit (they share
// it too), so no denial the supervisor has answered can be lost; records of allowed
// calls may trail their answer by one batch, and only those of the last unfinished
// batch can be lost if the supervisor is killed.

use std::sync::mpsc;

use tokio::sync::oneshot;

use super::{AuditEntry, Outcome};

/// Most records committed in one transaction.
const MAX_BATCH: usize = 4096;

/// Commits one batch; the store's `audit` in the supervisor.
pub type Commit = Box<dyn Fn(Vec<AuditEntry>) -> Result<(), String> + Send>;

// Records are nearly every job; boxing them would add an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Job {
    Record(AuditEntry, Option<oneshot::Sender<bool>>),
    Flush(oneshot::Sender<bool>),
}

/// Handle to the writer thread; the thread ends when the last handle is dropped.
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
}

/// The writer's queue before its thread runs: records sent meanwhile wait in it.
pub struct AuditQueue {
    rx: mpsc::Receiver<Job>,
}

impl AuditQueue {
    /// Starts the thread that drains the queue through `commit`.
    pub fn start(self, commit: Commit) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(&self.rx, &commit))?;
        Ok(())
    }
}

impl AuditWriter {
    /// A writer and its queue; start the queue once `commit` can be built (the
    /// supervisor's commits go through the store that lives beside the writer).
    pub fn new() -> (AuditWriter, AuditQueue) {
        let (tx, rx) = mpsc::channel();
        (AuditWriter { tx }, AuditQueue { rx })
    }

    /// A writer committing through `commit` from now on.
    pub fn start(commit: Commit) -> std::io::Result<AuditWriter> {
        let (writer, queue) = AuditWriter::new();
        queue.start(commit)?;
        Ok(writer)
    }

    /// Queues `entry` and returns at once.
    pub fn record(&self, entry: AuditEntry) {
        if self.tx.send(Job::Record(entry, None)).is_err() {
            tracing::error!("audit writer is gone; a broker call went unrecorded");
        }
    }

    /// Queues `entry` and returns once it is committed; false if that failed.
    pub async fn record_durable(&self, entry: AuditEntry) -> bool {
        let (done, committed) = oneshot::channel();
        if self.tx.send(Job::Record(entry, Some(done))).is_err() {
            tracing::error!("audit writer is gone; a broker call went unrecorded");
            return false;
        }
        committed.await.unwrap_or(false)
    }

    /// Records a brokered call: a denial durably before the caller answers, anything
    /// else queued.
    pub async fn submit(&self, entry: AuditEntry) {
        if entry.outcome == Outcome::Denied {
            self.record_durable(entry).await;
        } else {
            self.record(entry);
        }
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

fn run(rx: &mpsc::Receiver<Job>, commit: &Commit) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut entries = Vec::with_capacity(jobs.len());
        let mut waiting = Vec::new();
        for job in jobs {
            match job {
                Job::Record(entry, done) => {
                    entries.push(entry);
                    waiting.extend(done);
                }
                Job::Flush(done) => waiting.push(done),
            }
        }
        let count = entries.len();
        let ok = entries.is_empty()
            || match commit(entries) {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(records = count, error = %e, "audit batch could not be committed");
                    false
                }
            };
        for done in waiting {
            let _ = done.send(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;
    use std::sync::{Arc, Mutex};

    fn entry(outcome: Outcome) -> AuditEntry {
        AuditEntry::new(&Actor::plugin("p"), "broker.test", outcome)
    }

    /// A commit that records batch sizes and takes `delay` like a disk would.
    fn recording(delay: std::time::Duration) -> (Commit, Arc<Mutex<Vec<usize>>>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&batches);
        let commit: Commit = Box::new(move |batch: Vec<AuditEntry>| {
            std::thread::sleep(delay);
            seen.lock().expect("lock").push(batch.len());
            Ok(())
        });
        (commit, batches)
    }

    #[tokio::test]
    async fn a_denial_returns_only_after_its_commit() {
        let (commit, batches) = recording(std::time::Duration::from_millis(20));
        let w = AuditWriter::start(commit).expect("thread");
        w.submit(entry(Outcome::Denied)).await;
        assert_eq!(*batches.lock().expect("lock"), [1]);
    }

    #[tokio::test]
    async fn queued_records_share_commits_and_flush_waits_for_them() {
        let (commit, batches) = recording(std::time::Duration::from_millis(5));
        let w = AuditWriter::start(commit).expect("thread");
        for _ in 0..1000 {
            w.submit(entry(Outcome::Ok)).await;
        }
        assert!(w.flush().await);
        let b = batches.lock().expect("lock").clone();
        assert_eq!(b.iter().sum::<usize>(), 1000);
        assert!(b.len() < 100, "1000 records in {} commits", b.len());
    }

    #[tokio::test]
    async fn a_failed_commit_is_reported_to_who_waits() {
        let w = AuditWriter::start(Box::new(|_| Err("disk full".into()))).expect("thread");
        assert!(!w.record_durable(entry(Outcome::Denied)).await);
    }
}
