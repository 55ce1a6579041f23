//! A fixed-bucket histogram of durations for the Prometheus exposition (the spawn
//! latency): counts per bucket, the total count and the sum in seconds.

/// Upper bounds in seconds, 1 ms to 5 s: a confined start is tens of milliseconds
/// when warm and can take seconds on a loaded host; slower starts land in `+Inf`.
pub const SPAWN_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); beyond the last bound they are
    /// counted only in `count`.
    per_bucket: [u64; SPAWN_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            per_bucket: [0; SPAWN_BUCKETS.len()],
            count: 0,
            sum: 0.0,
        }
    }
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        if let Some(i) = SPAWN_BUCKETS.iter().position(|le| seconds <= *le) {
            self.per_bucket[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// `(upper bound, observations at or below it)` for each bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(String, u64)> {
        let mut running = 0;
        let mut out: Vec<(String, u64)> = SPAWN_BUCKETS
            .iter()
            .zip(self.per_bucket)
            .map(|(le, n)| {
                running += n;
                (le.to_string(), running)
            })
            .collect();
        out.push(("+Inf".into(), self.count));
        out
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_slow_observations_count_only_in_inf() {
        let mut h = Histogram::default();
        for s in [0.0005, 0.001, 0.03, 0.03, 7.0, f64::NAN, -1.0] {
            h.observe(s);
        }
        let c = h.cumulative();
        assert_eq!(c[0], ("0.001".into(), 2), "le is inclusive");
        assert_eq!(c[4], ("0.025".into(), 2));
        assert_eq!(c[5], ("0.05".into(), 4));
        assert_eq!(c[11], ("5".into(), 4));
        assert_eq!(c[12], ("+Inf".into(), 5));
        assert_eq!(
            h.count(),
            5,
            "NaN and negative figures are not observations"
        );
        assert!((h.sum() - 7.0615).abs() < 1e-9);
    }
}
