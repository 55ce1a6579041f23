//! Per-plugin, per-service token buckets for broker calls: a plugin that floods one
//! service gets RESOURCE_EXHAUSTED there, recorded in aggregate, and nobody else
//! waits for it (each plugin has its own buckets and its own connection).

// The rate is the caller's, given at every call rather than fixed at start: a reload
// of `broker.rate_per_sec`/`burst` applies to running plugins' next call. A bucket
// keeps its tokens, capped at a lowered burst.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The rate-limited families of broker calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Events,
    Config,
    Log,
    Permissions,
    Files,
    Database,
    Host,
    Network,
    Commands,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Events => "events",
            Service::Config => "config",
            Service::Log => "log",
            Service::Permissions => "permissions",
            Service::Files => "files",
            Service::Database => "database",
            Service::Host => "host",
            Service::Network => "network",
            Service::Commands => "commands",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Calls refused since the last aggregate audit record.
    refused: u64,
    last_report: Option<Instant>,
}

/// What a refused call should do about the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Write an aggregate record covering `count` refusals now.
    Report { count: u64 },
    /// Counted; reported with a later refusal.
    Counted,
}

/// Calls per second, refilled continuously, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_sec: f64,
    pub burst: u32,
}

impl Rate {
    pub fn of(broker: &crate::config::BrokerConfig) -> Rate {
        Rate {
            per_sec: broker.rate_per_sec.max(0.0),
            burst: broker.burst.max(1),
        }
    }
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<Service, Bucket>>,
}

/// At most one aggregate audit record per service per plugin this often.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl RateLimiter {
    /// Takes one token for `service` at `now` at `rate`; `Err` says how to record a
    /// refusal.
    pub fn admit(&self, service: Service, now: Instant, rate: Rate) -> Result<(), Refusal> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let burst = f64::from(rate.burst.max(1));
        let b = buckets.entry(service).or_insert(Bucket {
            tokens: burst,
            last: now,
            refused: 0,
            last_report: None,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate.per_sec.max(0.0)).min(burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        b.refused += 1;
        let due = b
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY);
        if due {
            let count = std::mem::take(&mut b.refused);
            b.last_report = Some(now);
            Err(Refusal::Report { count })
        } else {
            Err(Refusal::Counted)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate_and_services_are_independent() {
        let l = RateLimiter::default();
        let r = Rate {
            per_sec: 10.0,
            burst: 5,
        };
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.admit(Service::Config, t0, r).is_ok());
        }
        assert_eq!(
            l.admit(Service::Config, t0, r),
            Err(Refusal::Report { count: 1 })
        );
        assert_eq!(l.admit(Service::Config, t0, r), Err(Refusal::Counted));
        // Another service still has its burst.
        assert!(l.admit(Service::Files, t0, r).is_ok());
        // 100 ms at 10/s refills one token.
        assert!(l
            .admit(Service::Config, t0 + Duration::from_millis(100), r)
            .is_ok());
        assert!(l
            .admit(Service::Config, t0 + Duration::from_millis(100), r)
            .is_err());
        // Past a second, the refusals since the last report are reported together.
        let later = t0 + Duration::from_millis(1001);
        let results: Vec<_> = (0..12)
            .map(|_| l.admit(Service::Config, later, r))
            .collect();
        // A second refills far more than the burst: the bucket caps at 5.
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            5,
            "{results:?}"
        );
        // The refusals counted at t0 and t0+100ms come out with the first one after.
        assert_eq!(results[5], Err(Refusal::Report { count: 3 }), "{results:?}");
        assert_eq!(results[6], Err(Refusal::Counted));
    }

    #[test]
    fn a_new_rate_applies_to_the_next_call_and_a_lower_burst_caps_the_tokens() {
        let l = RateLimiter::default();
        let fast = Rate {
            per_sec: 1000.0,
            burst: 100,
        };
        let slow = Rate {
            per_sec: 1.0,
            burst: 3,
        };
        let t0 = Instant::now();
        assert!(l.admit(Service::Files, t0, fast).is_ok());
        // 99 tokens left, but the burst is now 3: three calls, then refused.
        for _ in 0..3 {
            assert!(l.admit(Service::Files, t0, slow).is_ok());
        }
        assert!(l.admit(Service::Files, t0, slow).is_err());
        // One second at the new rate refills one token, not a thousand.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.admit(Service::Files, t1, slow).is_ok());
        assert!(l.admit(Service::Files, t1, slow).is_err());
    }
}
