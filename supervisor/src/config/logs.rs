//! `[logs]` in `supervisor.toml`: how much of each plugin's own output is kept (the
//! size cap across its rotated files) and how fast it may arrive before it is dropped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Smallest file a plugin's log is rotated at: a few of the longest lines must fit.
pub const MIN_LOG_FILE_BYTES: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Most bytes one plugin's own log takes on disk, its live file and the rotated
    /// ones together.
    #[serde(with = "super::bytes")]
    pub plugin_log_max_bytes: u64,
    /// Files that cap is split across (`<name>.log`, `<name>.log.1`, ...): the live
    /// file is rotated at `plugin_log_max_bytes / plugin_log_files`.
    pub plugin_log_files: u32,
    /// Bytes per second of output (stdout, stderr and broker log lines) kept per
    /// plugin; more is dropped and counted...
    #[serde(with = "super::bytes")]
    pub plugin_output_rate: u64,
    /// ...after a burst of up to this many bytes.
    #[serde(with = "super::bytes")]
    pub plugin_output_burst: u64,
    /// Dropped output is audited (`plugin.output_dropped`) at most this often per plugin.
    #[serde(with = "super::duration")]
    pub output_dropped_interval: Duration,
    /// Each JSON-line audit mirror (`system/`, `audit/`, `security/`,
    /// `plugins/activity.log`) is rotated once it would pass this many bytes...
    #[serde(with = "super::bytes")]
    pub audit_log_max_bytes: u64,
    /// ...and this many of its files are kept, the live one included.
    pub audit_log_files: u32,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            plugin_log_max_bytes: 64 << 20,
            plugin_log_files: 4,
            plugin_output_rate: 256 << 10,
            plugin_output_burst: 1 << 20,
            output_dropped_interval: Duration::from_secs(10),
            audit_log_max_bytes: 64 << 20,
            audit_log_files: 8,
        }
    }
}

impl LogsConfig {
    /// How the audit mirrors rotate.
    pub fn audit_rotation(&self) -> crate::audit::Rotation {
        crate::audit::Rotation {
            max_bytes: self.audit_log_max_bytes,
            files: self.audit_log_files,
        }
    }

    /// The size each file is rotated at.
    pub fn file_bytes(&self) -> u64 {
        self.plugin_log_max_bytes / u64::from(self.plugin_log_files.max(1))
    }

    /// Checks what serde cannot; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.plugin_log_files) {
            return Err(format!(
                "logs.plugin_log_files = {} must be between 1 and 64",
                self.plugin_log_files
            ));
        }
        if self.plugin_log_max_bytes > 64 << 30 {
            return Err("logs.plugin_log_max_bytes must be at most 64GiB".into());
        }
        if self.file_bytes() < MIN_LOG_FILE_BYTES {
            return Err(format!(
                "logs.plugin_log_max_bytes ({} bytes) split across logs.plugin_log_files ({}) must leave at least 64KiB per file",
                self.plugin_log_max_bytes, self.plugin_log_files
            ));
        }
        if self.plugin_output_rate == 0 || self.plugin_output_rate > 1 << 30 {
            return Err("logs.plugin_output_rate must be between 1B and 1GiB (per second)".into());
        }
        if !(MIN_LOG_FILE_BYTES..=64 << 20).contains(&self.plugin_output_burst) {
            return Err("logs.plugin_output_burst must be between 64KiB and 64MiB".into());
        }
        if self.output_dropped_interval.is_zero()
            || self.output_dropped_interval > Duration::from_secs(3600)
        {
            return Err("logs.output_dropped_interval must be between 1ms and 1h".into());
        }
        if !(MIN_LOG_FILE_BYTES..=64 << 30).contains(&self.audit_log_max_bytes) {
            return Err("logs.audit_log_max_bytes must be between 64KiB and 64GiB".into());
        }
        if !(1..=64).contains(&self.audit_log_files) {
            return Err(format!(
                "logs.audit_log_files = {} must be between 1 and 64",
                self.audit_log_files
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LogsConfig, String> {
        let cfg: LogsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn defaults_cap_a_plugin_at_64_mib() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.plugin_log_max_bytes, 64 << 20);
        assert_eq!(cfg.file_bytes() * u64::from(cfg.plugin_log_files), 64 << 20);
    }

    #[test]
    fn sizes_and_rates_parse() {
        let cfg = parse(
            "plugin_log_max_bytes = \"4MiB\"\nplugin_log_files = 2\nplugin_output_rate = \"1MiB\"\nplugin_output_burst = \"2MiB\"\noutput_dropped_interval = \"1s\"",
        )
        .unwrap();
        assert_eq!(cfg.file_bytes(), 2 << 20);
        assert_eq!(cfg.plugin_output_rate, 1 << 20);
    }

    #[test]
    fn bad_values_are_refused_naming_the_key() {
        for (text, key) in [
            ("plugin_log_files = 0", "logs.plugin_log_files"),
            ("plugin_log_files = 65", "logs.plugin_log_files"),
            (
                "plugin_log_max_bytes = \"100KiB\"",
                "logs.plugin_log_max_bytes",
            ),
            ("plugin_output_rate = \"0\"", "logs.plugin_output_rate"),
            ("plugin_output_burst = \"1KiB\"", "logs.plugin_output_burst"),
            (
                "output_dropped_interval = \"0s\"",
                "logs.output_dropped_interval",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
