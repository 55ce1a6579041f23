//! What a plugin under trial tried: each distinct broker call and target, counted,
//! and the syscalls seccomp refused, in bounded memory (a cap, the rest counted).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::catalog::Permission;

/// Distinct (permission, target, call) kept; calls beyond are only counted.
pub const MAX_ATTEMPTS: usize = 256;
/// Distinct syscall names kept.
const MAX_SYSCALLS: usize = 64;
/// Longest target kept (a plugin chooses them).
const MAX_TARGET_CHARS: usize = 256;

/// One distinct call the plugin made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The permission it needs; `None` for a call that needs none.
    pub permission: Option<Permission>,
    pub target: String,
    pub call: &'static str,
    pub from_fixture: bool,
    pub count: u64,
}

type Key = (Option<Permission>, String, &'static str);

#[derive(Default)]
struct Inner {
    attempts: BTreeMap<Key, (bool, u64)>,
    dropped: u64,
    syscalls: BTreeMap<String, u64>,
    syscalls_dropped: u64,
}

/// Shared by the trial broker and the seccomp listener of one trial.
#[derive(Default)]
pub struct Recorder(Mutex<Inner>);

/// A copy of what was recorded, for the report.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub attempts: Vec<Attempt>,
    pub dropped: u64,
    pub syscalls: Vec<(String, u64)>,
    pub syscalls_dropped: u64,
}

impl Recorder {
    pub fn record(
        &self,
        permission: Option<Permission>,
        target: &str,
        call: &'static str,
        from_fixture: bool,
    ) {
        // Control characters become spaces: the target is the plugin's text.
        let target: String = target
            .chars()
            .take(MAX_TARGET_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let full = inner.attempts.len() >= MAX_ATTEMPTS;
        let key = (permission, target, call);
        match inner.attempts.get_mut(&key) {
            Some((fixture, count)) => {
                *fixture |= from_fixture;
                *count += 1;
            }
            None if full => inner.dropped += 1,
            None => {
                inner.attempts.insert(key, (from_fixture, 1));
            }
        }
    }

    pub fn syscall(&self, name: &str) {
        let mut inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let full = inner.syscalls.len() >= MAX_SYSCALLS;
        match inner.syscalls.get_mut(name) {
            Some(count) => *count += 1,
            None if full => inner.syscalls_dropped += 1,
            None => {
                inner.syscalls.insert(name.to_string(), 1);
            }
        }
    }

    pub fn snapshot(&self) -> Recorded {
        let inner = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Recorded {
            attempts: inner
                .attempts
                .iter()
                .map(
                    |((permission, target, call), (from_fixture, count))| Attempt {
                        permission: *permission,
                        target: target.clone(),
                        call,
                        from_fixture: *from_fixture,
                        count: *count,
                    },
                )
                .collect(),
            dropped: inner.dropped,
            syscalls: inner
                .syscalls
                .iter()
                .map(|(n, c)| (n.clone(), *c))
                .collect(),
            syscalls_dropped: inner.syscalls_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_repeats_and_caps_distinct_attempts() {
        let r = Recorder::default();
        r.record(Some(Permission::DatabaseRead), "users", "query", false);
        r.record(Some(Permission::DatabaseRead), "users", "query", true);
        for i in 0..MAX_ATTEMPTS + 10 {
            r.record(None, &format!("t{i}"), "emit_event", false);
        }
        r.syscall("bpf");
        r.syscall("bpf");
        let s = r.snapshot();
        assert_eq!(s.attempts.len(), MAX_ATTEMPTS);
        assert_eq!(s.dropped, 11);
        let users = s.attempts.iter().find(|a| a.target == "users").unwrap();
        assert_eq!((users.count, users.from_fixture), (2, true));
        assert_eq!(s.syscalls, vec![("bpf".to_string(), 2)]);
    }
}
