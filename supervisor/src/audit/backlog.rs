//! The audit writer's backlog for monitoring: how many records wait for a commit
//! and how long the oldest has waited, kept in two atomics beside the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What waits for a commit, for monitoring: how many records, and since when.
pub(super) struct Backlog {
    /// Records queued or kept for retry (refusal aggregates are not counted).
    entries: AtomicU64,
    /// Microseconds after `epoch` plus one when the oldest waiting record was queued;
    /// 0 while nothing waits.
    since: AtomicU64,
    epoch: Instant,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog {
            entries: AtomicU64::new(0),
            since: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// The audit writer's backlog as Prometheus shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Records waiting to be committed.
    pub entries: u64,
    /// How long the oldest of them has waited; zero when none does.
    pub oldest: Duration,
}

impl Backlog {
    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(super) fn queued(&self) {
        // Counted before `since` is set, so the writer never sees a clock without
        // the record it stands for.
        self.entries.fetch_add(1, Ordering::AcqRel);
        let _ = self
            .since
            .compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// `n` records left the backlog (committed or dropped); `taken` is when the
    /// writer took its batch: whatever is still queued came after it (or was beyond
    /// the batch limit, and is then at most one batch older than shown).
    pub(super) fn done(&self, n: u64, taken: u64) {
        let left = self
            .entries
            .fetch_sub(n, Ordering::AcqRel)
            .saturating_sub(n);
        if left == 0 {
            self.since.store(0, Ordering::Release);
            // A record queued between the two steps keeps its clock.
            if self.entries.load(Ordering::Acquire) > 0 {
                let _ =
                    self.since
                        .compare_exchange(0, self.now(), Ordering::AcqRel, Ordering::Acquire);
            }
        } else {
            self.since.store(taken, Ordering::Release);
        }
    }

    /// A record that will never be committed (dropped, or the writer is gone).
    pub(super) fn lost(&self) {
        let _ = self
            .entries
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub(super) fn lag(&self) -> Lag {
        let entries = self.entries.load(Ordering::Acquire);
        let since = self.since.load(Ordering::Acquire);
        let oldest = if entries == 0 || since == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(self.now().saturating_sub(since))
        };
        Lag { entries, oldest }
    }
}
