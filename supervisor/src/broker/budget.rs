//! Byte budgets for events held in memory: what one emitter has in flight across all
//! queues, and what one queue holds. A charge is released when the event leaves.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A limit on bytes held at once, shared by everything charged against it.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    /// Changed by a reload; bytes already held above a lowered limit stay until they
    /// are released, and nothing new is charged meanwhile.
    limit: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        })
    }

    /// Charges `bytes` if they fit; `None` (nothing charged) if they do not.
    pub fn try_charge(self: &Arc<Self>, bytes: usize) -> Option<Charge> {
        let limit = self.limit();
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .ok()?;
        Some(Charge {
            budget: Arc::clone(self),
            bytes,
        })
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Release);
    }
}

/// Bytes held against a [`Budget`] until this is dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_releases_on_drop() {
        let b = Budget::new(100);
        let a = b.try_charge(60).expect("fits");
        assert!(b.try_charge(41).is_none(), "over the limit");
        let c = b.try_charge(40).expect("exactly the limit");
        assert_eq!(b.used(), 100);
        drop(a);
        assert_eq!(b.used(), 40);
        drop(c);
        assert_eq!(b.used(), 0);
        assert!(b.try_charge(101).is_none());
        assert_eq!(b.used(), 0, "a refused charge holds nothing");
    }

    #[test]
    fn a_lowered_limit_refuses_new_charges_until_the_held_ones_are_released() {
        let b = Budget::new(100);
        let held = b.try_charge(80).expect("fits");
        b.set_limit(50);
        assert!(b.try_charge(1).is_none(), "80 held, 50 allowed");
        drop(held);
        assert!(b.try_charge(50).is_some());
        b.set_limit(200);
        assert!(
            b.try_charge(150).is_some(),
            "a raised limit applies at once"
        );
    }
}
