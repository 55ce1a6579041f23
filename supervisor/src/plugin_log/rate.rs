//! The byte budget of one plugin's output: a token bucket counted in bytes, and the
//! tally of what was dropped, and why, since it was last reported.

use std::time::Instant;

/// Bytes per second with a burst; all-or-nothing takes, so a line is kept whole or
/// dropped whole.
#[derive(Debug, Clone)]
pub struct ByteBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl ByteBucket {
    /// A full bucket: a plugin's first burst of output is kept.
    pub fn new(rate_per_sec: u64, burst: u64, now: Instant) -> ByteBucket {
        let burst = burst.max(1) as f64;
        ByteBucket {
            rate: rate_per_sec as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `bytes` if they are all there.
    pub fn take(&mut self, bytes: usize) -> bool {
        let want = bytes as f64;
        if self.tokens >= want {
            self.tokens -= want;
            true
        } else {
            false
        }
    }

    pub fn has(&self, bytes: usize) -> bool {
        self.tokens >= bytes as f64
    }
}

/// Bytes and whole lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub bytes: u64,
    pub lines: u64,
}

impl Tally {
    pub fn add(&mut self, bytes: usize, lines: u64) {
        self.bytes += bytes as u64;
        self.lines += lines;
    }

    pub fn is_empty(&self) -> bool {
        self.bytes == 0 && self.lines == 0
    }
}

/// Output dropped since the last report, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Lines read and refused by the rate (bytes as the plugin wrote them).
    pub over_rate: Tally,
    /// Bytes discarded unread while the plugin had no budget left (never split into
    /// lines: that is what keeps a flood cheap).
    pub unread_bytes: u64,
    /// Lines refused because the writer was behind (a slow or stalled disk).
    pub backlog: Tally,
    /// Log lines whose write failed (disk full, I/O error), as formatted.
    pub write_failed: Tally,
}

impl Dropped {
    pub fn is_empty(&self) -> bool {
        *self == Dropped::default()
    }

    pub fn bytes(&self) -> u64 {
        self.over_rate.bytes + self.unread_bytes + self.backlog.bytes + self.write_failed.bytes
    }

    /// Whole lines counted among them (bytes discarded unread are not split).
    pub fn lines(&self) -> u64 {
        self.over_rate.lines + self.backlog.lines + self.write_failed.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_keeps_the_burst_then_only_the_rate() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(1000, 4000, t0);
        assert!(b.take(4000));
        assert!(!b.take(1), "the burst is spent");
        b.refill(t0 + Duration::from_millis(500));
        assert!(!b.take(501));
        assert!(b.take(500));
        b.refill(t0 + Duration::from_secs(3600));
        assert!(b.has(4000) && !b.has(4001), "never more than the burst");
    }

    #[test]
    fn a_take_is_all_or_nothing() {
        let t0 = Instant::now();
        let mut b = ByteBucket::new(10, 100, t0);
        assert!(!b.take(101));
        assert!(b.take(100));
    }

    #[test]
    fn dropped_sums_its_reasons() {
        let mut d = Dropped::default();
        assert!(d.is_empty());
        d.over_rate.add(100, 2);
        d.unread_bytes = 1000;
        d.write_failed.add(50, 1);
        assert_eq!(d.bytes(), 1150);
        assert_eq!(d.lines(), 3);
        assert!(!d.is_empty());
    }
}
