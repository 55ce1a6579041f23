//! The statement watchdog: one timer thread for every running database statement,
//! which interrupts a statement (`sqlite3_interrupt`) the moment its deadline passes.

// Why one thread and a map instead of a thread or a tokio timer per statement: a
// statement is armed and disarmed on every database call, so arming must cost a map
// insert, not a thread spawn, and must not depend on the async runtime that the
// blocking statement may be starving. The thread sleeps until the earliest deadline
// (or until a statement with an earlier one is armed) and interrupts what has expired.
// An interrupt stops the statement at its next VM step, whatever it was doing; how long
// one step may take is bounded by the connection's limits (value length, LIKE pattern
// length), so a statement ends within its time plus one short step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use rusqlite::InterruptHandle;

/// Statements armed now, by (deadline, id).
#[derive(Default)]
struct Registry {
    statements: Mutex<BTreeMap<(Instant, u64), InterruptHandle>>,
    wake: Condvar,
    next: AtomicU64,
}

/// The shared watchdog (started on first use).
pub struct Watchdog {
    armed: Arc<Registry>,
}

/// While held, the statement is interrupted at its deadline; dropping it disarms.
pub struct Armed {
    armed: Arc<Registry>,
    key: (Instant, u64),
}

impl Watchdog {
    /// The process's watchdog; `None` if its thread cannot be started (the caller
    /// then refuses the statement: it would run unbounded).
    pub fn shared() -> Option<&'static Watchdog> {
        static WATCHDOG: OnceLock<Option<Watchdog>> = OnceLock::new();
        WATCHDOG.get_or_init(Watchdog::start).as_ref()
    }

    fn start() -> Option<Watchdog> {
        let armed = Arc::new(Registry::default());
        let thread_armed = Arc::clone(&armed);
        std::thread::Builder::new()
            .name("db-watchdog".into())
            .spawn(move || run(&thread_armed))
            .inspect_err(
                |e| tracing::error!(error = %e, "database watchdog thread failed to start"),
            )
            .ok()?;
        Some(Watchdog { armed })
    }

    /// Interrupts the statement behind `handle` at `deadline` unless disarmed first.
    pub fn arm(&self, deadline: Instant, handle: InterruptHandle) -> Armed {
        let key = (deadline, self.armed.next.fetch_add(1, Ordering::Relaxed));
        if let Ok(mut s) = self.armed.statements.lock() {
            let earliest = s.keys().next().is_none_or(|first| key < *first);
            s.insert(key, handle);
            if earliest {
                self.armed.wake.notify_one();
            }
        }
        Armed {
            armed: Arc::clone(&self.armed),
            key,
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Ok(mut s) = self.armed.statements.lock() {
            s.remove(&self.key);
        }
    }
}

fn run(armed: &Registry) {
    let Ok(mut statements) = armed.statements.lock() else {
        return;
    };
    loop {
        let now = Instant::now();
        while let Some(entry) = statements.first_entry() {
            if entry.key().0 > now {
                break;
            }
            entry.remove().interrupt();
        }
        let next = statements.keys().next().map(|(deadline, _)| *deadline);
        let woke = match next {
            Some(deadline) => armed
                .wake
                .wait_timeout(statements, deadline.saturating_duration_since(now))
                .map(|(guard, _)| guard)
                .ok(),
            None => armed.wake.wait(statements).ok(),
        };
        match woke {
            Some(guard) => statements = guard,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_slow_statement_is_interrupted_at_its_deadline_and_a_disarmed_one_is_not() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let dog = Watchdog::shared().expect("watchdog");
        // Disarmed before its deadline: the next statement runs to its end.
        drop(dog.arm(
            Instant::now() + Duration::from_millis(20),
            conn.get_interrupt_handle(),
        ));
        std::thread::sleep(Duration::from_millis(60));
        let n: i64 = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )
            .expect("runs");
        assert_eq!(n, 1000);
        let started = Instant::now();
        let _armed = dog.arm(
            started + Duration::from_millis(200),
            conn.get_interrupt_handle(),
        );
        let err = conn
            .query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
                [],
                |r| r.get::<_, i64>(0),
            )
            .expect_err("interrupted");
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::OperationInterrupted)
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
