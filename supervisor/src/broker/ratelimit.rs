//! Per-plugin, per-service token buckets for broker calls: a plugin that floods one
//! service gets RESOURCE_EXHAUSTED there, recorded in aggregate, and nobody else
//! waits for it (each plugin has its own buckets and its own connection).

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

pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Service, Bucket>>,
}

/// At most one aggregate audit record per service per plugin this often.
const REPORT_EVERY: Duration = Duration::from_secs(1);

impl RateLimiter {
    pub fn new(rate_per_sec: f64, burst: u32) -> RateLimiter {
        RateLimiter {
            rate: rate_per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    pub fn burst(&self) -> u32 {
        self.burst as u32
    }

    /// Takes one token for `service` at `now`; `Err` says how to record a refusal.
    pub fn admit(&self, service: Service, now: Instant) -> Result<(), Refusal> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let b = buckets.entry(service).or_insert(Bucket {
            tokens: self.burst,
            last: now,
            refused: 0,
            last_report: None,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
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
        let l = RateLimiter::new(10.0, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(l.admit(Service::Config, t0).is_ok());
        }
        assert_eq!(
            l.admit(Service::Config, t0),
            Err(Refusal::Report { count: 1 })
        );
        assert_eq!(l.admit(Service::Config, t0), Err(Refusal::Counted));
        // Another service still has its burst.
        assert!(l.admit(Service::Files, t0).is_ok());
        // 100 ms at 10/s refills one token.
        assert!(l
            .admit(Service::Config, t0 + Duration::from_millis(100))
            .is_ok());
        assert!(l
            .admit(Service::Config, t0 + Duration::from_millis(100))
            .is_err());
        // Past a second, the refusals since the last report are reported together.
        let later = t0 + Duration::from_millis(1001);
        let results: Vec<_> = (0..12).map(|_| l.admit(Service::Config, later)).collect();
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
}
