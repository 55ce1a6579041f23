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
