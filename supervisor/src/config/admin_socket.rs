//! `[access.connections]`: how many admin-socket connections each uid and everyone
//! together may hold, the share kept for admins, and when an idle one is closed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Caps on the admin socket's connections, enforced at accept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Connections one uid may hold at once (every role, admins included).
    pub max_per_uid: usize,
    /// Connections of all callers together...
    pub max_total: usize,
    /// ...of which this many only admin-role callers may use, so admins get in
    /// while the other roles hold everything else.
    pub admin_reserve: usize,
    /// A connection with no call in flight for this long is closed (an open
    /// stream such as `event watch` is a call in flight).
    #[serde(with = "super::duration")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_per_uid: 64,
            max_total: 512,
            admin_reserve: 32,
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Beyond this many connections the fd reserve alone would dwarf most hosts' limits.
const MAX_CONNECTIONS: usize = 65_536;
const MAX_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

impl ConnectionLimits {
    /// Checks every key; the error names the key and what it must be.
    pub fn validate(&self) -> Result<(), String> {
        let key = |k: &str| format!("access.connections.{k}");
        for (name, value) in [
            ("max_per_uid", self.max_per_uid),
            ("max_total", self.max_total),
            ("admin_reserve", self.admin_reserve),
        ] {
            if value == 0 || value > MAX_CONNECTIONS {
                return Err(format!(
                    "{} = {value} must be between 1 and {MAX_CONNECTIONS}",
                    key(name)
                ));
            }
        }
        if self.admin_reserve >= self.max_total {
            return Err(format!(
                "{} ({}) must be smaller than {} ({}): other roles need room too",
                key("admin_reserve"),
                self.admin_reserve,
                key("max_total"),
                self.max_total
            ));
        }
        if self.max_per_uid > self.max_total {
            return Err(format!(
                "{} ({}) must not exceed {} ({})",
                key("max_per_uid"),
                self.max_per_uid,
                key("max_total"),
                self.max_total
            ));
        }
        if self.idle_timeout.is_zero() || self.idle_timeout > MAX_IDLE_TIMEOUT {
            return Err(format!(
                "{} = {} must be more than 0 and at most 24h",
                key("idle_timeout"),
                humantime::format_duration(self.idle_timeout)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        ConnectionLimits::default().validate().unwrap();
        let bad = |f: fn(&mut ConnectionLimits), needle: &str| {
            let mut l = ConnectionLimits::default();
            f(&mut l);
            let err = l.validate().unwrap_err();
            assert!(err.contains(needle), "{err}");
        };
        bad(|l| l.max_per_uid = 0, "access.connections.max_per_uid = 0");
        bad(|l| l.max_total = 1 << 20, "access.connections.max_total");
        bad(
            |l| l.admin_reserve = 512,
            "admin_reserve (512) must be smaller",
        );
        bad(|l| l.max_per_uid = 600, "max_per_uid (600) must not exceed");
        bad(|l| l.idle_timeout = Duration::ZERO, "idle_timeout = 0s");
        bad(
            |l| l.idle_timeout = Duration::from_secs(90_000),
            "at most 24h",
        );
    }
}
