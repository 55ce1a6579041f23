//! The operator sections of `supervisor.toml`: how many store backups are kept, the
//! optional loopback Prometheus endpoint, and the alert rules.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::{bounds, Problem};

#[derive(Debug, Clone, Deserialize, Serialize)]
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
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Below this many free bytes on either filesystem, installs, updates and backups
    /// are refused and an alert is raised, leaving the room to the audit trail.
    #[serde(with = "super::bytes")]
    pub min_free: u64,
    /// How often free space is measured for the alert.
    #[serde(with = "super::duration")]
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Serve the `plexichat monitor` figures for Prometheus at
    /// `http://<addr>/metrics`. Loopback addresses only; unset = no endpoint.
    pub prometheus_listen: Option<SocketAddr>,
}

/// What an alert rule counts, per plugin, over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    pub threshold: u64,
    #[serde(with = "super::duration")]
    pub window: Duration,
    #[serde(default)]
    pub quarantine: bool,
}

/// Checks what serde cannot: simple unique names, thresholds and windows within
/// bounds, a loopback-only metrics endpoint with a port, and at least one backup kept.
pub fn validate(
    alerts: &[AlertRule],
    monitor: &MonitorConfig,
    backup: &BackupConfig,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut refuse = |key: String, message: String| problems.push(Problem::new(key, message));
    for (i, rule) in alerts.iter().enumerate() {
        let key = format!("alert[{i}]");
        if crate::manifest::PluginName::new(&rule.name).is_err() {
            refuse(
                format!("{key}.name"),
                format!("`{}` must be a simple name (a-z, 0-9, _ or -)", rule.name),
            );
        }
        if alerts[..i].iter().any(|r| r.name == rule.name) {
            refuse(
                format!("{key}.name"),
                format!("`{}` is defined twice", rule.name),
            );
        }
        if rule.threshold == 0 {
            refuse(
                format!("{key}.threshold"),
                "must be greater than zero (got 0)".into(),
            );
        } else if rule.threshold > bounds::ALERT_THRESHOLD_MAX {
            refuse(
                format!("{key}.threshold"),
                format!(
                    "must be at most {} (got {})",
                    bounds::ALERT_THRESHOLD_MAX,
                    rule.threshold
                ),
            );
        }
        if rule.window.is_zero() {
            refuse(
                format!("{key}.window"),
                "must be greater than zero (got \"0s\")".into(),
            );
        }
        if rule.window > bounds::WINDOW_MAX {
            refuse(
                format!("{key}.window"),
                format!(
                    "must be at most {} (got \"{}\")",
                    humantime::format_duration(bounds::WINDOW_MAX),
                    humantime::format_duration(rule.window)
                ),
            );
        }
    }
    if let Some(addr) = monitor.prometheus_listen {
        if !addr.ip().is_loopback() {
            refuse(
                "monitor.prometheus_listen".into(),
                format!(
                    "{addr}: only loopback addresses are served (the figures name every plugin)"
                ),
            );
        } else if addr.port() == 0 {
            refuse(
                "monitor.prometheus_listen".into(),
                format!("{addr}: needs a port (0 would pick one nobody knows)"),
            );
        }
    }
    if !(1..=bounds::BACKUP_KEEP_MAX).contains(&backup.keep) {
        refuse(
            "backup.keep".into(),
            format!(
                "must be in 1..={} (got {}): the backup just taken is always kept",
                bounds::BACKUP_KEEP_MAX,
                backup.keep
            ),
        );
    }
    problems
}
