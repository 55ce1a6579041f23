//! The operator sections of `supervisor.toml`: how many store backups are kept, the
//! optional loopback Prometheus endpoint, and the alert rules.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Backups kept under `<state>/backups/`; the oldest beyond this are deleted
    /// when a new one is taken.
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig { keep: 50 }
    }
}

/// `[storage]`: the free-space watermark on the state and log filesystems.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Below this many free bytes on either filesystem, installs, updates and backups
    /// are refused and an alert is raised, leaving the room to the audit trail.
    #[serde(deserialize_with = "super::bytes")]
    pub min_free: u64,
    /// How often free space is measured for the alert.
    #[serde(deserialize_with = "super::duration")]
    pub check_interval: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            min_free: crate::diskspace::DEFAULT_MIN_FREE,
            check_interval: crate::diskspace::DEFAULT_CHECK_INTERVAL,
        }
    }
}

impl StorageConfig {
    /// The interval must be positive and at most an hour.
    pub fn validate(&self) -> Result<(), String> {
        let hour = Duration::from_secs(3600);
        if self.check_interval.is_zero() || self.check_interval > hour {
            return Err(format!(
                "storage.check_interval must be greater than 0 and at most 1h (got {})",
                humantime::format_duration(self.check_interval)
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Serve the `plexichat monitor` figures for Prometheus at
    /// `http://<addr>/metrics`. Loopback addresses only; unset = no endpoint.
    pub prometheus_listen: Option<SocketAddr>,
}

/// What an alert rule counts, per plugin, over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Brokered calls refused (permission, scope, rate limit, size).
    Denials,
    /// Processes killed for exceeding memory.max.
    OomKills,
    /// Syscalls the seccomp policy refused.
    SeccompViolations,
    /// Crashes (exits the supervisor did not ask for).
    Crashes,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Denials => "denials",
            AlertKind::OomKills => "oom_kills",
            AlertKind::SeccompViolations => "seccomp_violations",
            AlertKind::Crashes => "crashes",
        }
    }
}

/// `[[alert]]`: raise an alert when a plugin reaches `threshold` events of `kind`
/// within `window`; with `quarantine`, also stop and quarantine the plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    pub threshold: u64,
    #[serde(deserialize_with = "super::duration")]
    pub window: Duration,
    #[serde(default)]
    pub quarantine: bool,
}

/// Checks what serde cannot: unique names, positive thresholds and windows, and a
/// loopback-only metrics endpoint.
pub fn validate(alerts: &[AlertRule], monitor: &MonitorConfig) -> Result<(), String> {
    for (i, rule) in alerts.iter().enumerate() {
        if crate::manifest::PluginName::new(&rule.name).is_err() {
            return Err(format!(
                "alert `{}`: the name must be a simple name (a-z, 0-9, _ or -)",
                rule.name
            ));
        }
        if alerts[..i].iter().any(|r| r.name == rule.name) {
            return Err(format!("alert `{}` is defined twice", rule.name));
        }
        if rule.threshold == 0 || rule.window.is_zero() {
            return Err(format!(
                "alert `{}`: threshold and window must be greater than zero",
                rule.name
            ));
        }
    }
    if let Some(addr) = monitor.prometheus_listen {
        if !addr.ip().is_loopback() {
            return Err(format!(
                "monitor.prometheus_listen {addr}: only loopback addresses are served (the figures name every plugin)"
            ));
        }
    }
    Ok(())
}
