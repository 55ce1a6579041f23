//! The Prometheus text exposition (format 0.0.4) of a scrape: the build, the
//! supervisor's own process, the audit writer's lag, and each plugin's figures.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};

use broker_proto::admin::v1::{MonitorResponse, PluginUsage, RuntimePhase};
use broker_proto::label::label;

use super::histogram::Histogram;
use super::process::ProcessStats;
use super::Incidents;
use crate::audit::Lag;

/// Everything one scrape shows, gathered before it is written out.
pub struct Scrape {
    pub usage: MonitorResponse,
    pub safe_mode: bool,
    pub incidents: BTreeMap<String, Incidents>,
    pub spawns: Histogram,
    pub audit: Lag,
    /// `None` when /proc could not be read (the families are left out).
    pub process: Option<ProcessStats>,
}

/// The version this binary was built from, and its commit when the build set
/// `PLEXICHAT_GIT_COMMIT` (there is no build script to ask git).
fn build_labels() -> Vec<(&'static str, &'static str)> {
    let mut labels = vec![("version", env!("CARGO_PKG_VERSION"))];
    if let Some(commit) = option_env!("PLEXICHAT_GIT_COMMIT").filter(|c| !c.is_empty()) {
        labels.push(("commit", commit));
    }
    labels
}

/// Writes families one after another: each with its HELP and TYPE lines first.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(self.0, "{sep}{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
        self
    }

    /// A one-sample family without labels.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help).sample(name, &[], value);
    }

    /// A family with one sample per plugin.
    fn per_plugin(
        &mut self,
        m: &MonitorResponse,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&PluginUsage) -> String,
    ) {
        self.family(name, kind, help);
        for p in &m.plugins {
            self.sample(name, &[("plugin", &p.name)], value(p));
        }
    }
}

/// A label value as the text format requires: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn seconds(usec: u64) -> String {
    format!("{:.6}", usec as f64 / 1e6)
}

/// The whole exposition of `s`.
pub fn text(s: &Scrape) -> String {
    let mut t = Text::default();
    t.family(
        "plexichat_build_info",
        "gauge",
        "Always 1; the labels name the supervisor's version (and commit when built with one).",
    )
    .sample("plexichat_build_info", &build_labels(), 1);
    if let Some(p) = &s.process {
        process(&mut t, p);
    }
    supervisor(&mut t, s);
    plugins(&mut t, s);
    t.0
}

fn process(t: &mut Text, p: &ProcessStats) {
    t.single(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        p.cpu_seconds,
    );
    t.single(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        p.resident_bytes,
    );
    t.single(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        p.virtual_bytes,
    );
    t.single(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        p.open_fds,
    );
    if let Some(max) = p.max_fds {
        t.single(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
    t.single(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds,
    );
    t.single(
        "process_threads",
        "gauge",
        "Number of OS threads in the process.",
        p.threads,
    );
}

fn supervisor(t: &mut Text, s: &Scrape) {
    t.single(
        "plexichat_safe_mode",
        "gauge",
        "1 while safe mode keeps every plugin from starting.",
        u8::from(s.safe_mode),
    );
    t.single(
        "plexichat_audit_queue_entries",
        "gauge",
        "Audit records queued or kept for retry, not yet committed.",
        s.audit.entries,
    );
    t.single(
        "plexichat_audit_commit_lag_seconds",
        "gauge",
        "Age of the oldest audit record not yet committed; 0 when none waits.",
        format!("{:.6}", s.audit.oldest.as_secs_f64()),
    );
    let name = "plexichat_plugin_spawn_seconds";
    t.family(
        name,
        "histogram",
        "Time from a plugin's start request to its completed handshake (the plugin.start record).",
    );
    let bucket = format!("{name}_bucket");
    for (le, n) in s.spawns.cumulative() {
        t.sample(&bucket, &[("le", &le)], n);
    }
    t.sample(
        &format!("{name}_sum"),
        &[],
        format!("{:.6}", s.spawns.sum()),
    )
    .sample(&format!("{name}_count"), &[], s.spawns.count());
}

fn plugins(t: &mut Text, s: &Scrape) {
    let m = &s.usage;
    t.family(
        "plexichat_plugin_info",
        "gauge",
        "Always 1; the labels give the plugin's stored state and its runtime phase.",
    );
    for p in &m.plugins {
        let (state, runtime) = (label(p.state()), label(p.runtime()));
        let labels = [
            ("plugin", p.name.as_str()),
            ("state", &state),
            ("runtime", &runtime),
        ];
        t.sample("plexichat_plugin_info", &labels, 1);
    }
    t.per_plugin(
        m,
        "plexichat_plugin_up",
        "gauge",
        "1 while the plugin's process runs.",
        |p| u8::from(p.runtime() == RuntimePhase::Running).to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_cpu_seconds_total",
        "counter",
        "CPU time used by the plugin's cgroup.",
        |p| seconds(p.cpu_usec),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_broker_cpu_seconds_total",
        "counter",
        "CPU time the supervisor spent on the plugin's blocking broker work.",
        |p| seconds(p.broker_cpu_usec),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_memory_bytes",
        "gauge",
        "Memory charged to the plugin's cgroup.",
        |p| p.memory_bytes.to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_memory_limit_bytes",
        "gauge",
        "The plugin's memory limit.",
        |p| p.memory_limit.to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_pids",
        "gauge",
        "Processes and threads in the plugin's cgroup.",
        |p| p.pids.to_string(),
    );
    let calls = "plexichat_plugin_broker_calls_total";
    t.family(
        calls,
        "counter",
        "Brokered calls since the supervisor started, by service.",
    );
    for p in &m.plugins {
        for (service, n) in &p.calls {
            t.sample(calls, &[("plugin", &p.name), ("service", service)], n);
        }
    }
    t.per_plugin(
        m,
        "plexichat_plugin_denials_total",
        "counter",
        "Brokered calls refused since the supervisor started.",
        |p| p.denials.to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_restarts_total",
        "counter",
        "Restarts after crashes of the current run.",
        |p| p.restarts.to_string(),
    );
    let incidents = |p: &PluginUsage| s.incidents.get(&p.name).copied().unwrap_or_default();
    t.per_plugin(
        m,
        "plexichat_plugin_crashes_total",
        "counter",
        "Crashes recorded (plugin.crash) since the supervisor started.",
        |p| incidents(p).crashes.to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_oom_kills_total",
        "counter",
        "Kills for exceeding the memory limit recorded (security.oom_kill) since the supervisor started.",
        |p| incidents(p).oom_kills.to_string(),
    );
    t.per_plugin(
        m,
        "plexichat_plugin_open_alerts",
        "gauge",
        "Alerts raised and not yet acknowledged.",
        |p| p.open_alerts.to_string(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scrape() -> Scrape {
        let mut spawns = Histogram::default();
        spawns.observe(0.02);
        Scrape {
            usage: MonitorResponse {
                ts_ms: 0,
                plugins: vec![PluginUsage {
                    name: "echo".into(),
                    state: broker_proto::admin::v1::PluginState::Enabled.into(),
                    runtime: RuntimePhase::Running.into(),
                    cpu_usec: 1_500_000,
                    calls: [("file_read".to_string(), 3)].into_iter().collect(),
                    denials: 1,
                    ..PluginUsage::default()
                }],
            },
            safe_mode: true,
            incidents: [(
                "echo".to_string(),
                Incidents {
                    crashes: 2,
                    oom_kills: 1,
                },
            )]
            .into_iter()
            .collect(),
            spawns,
            audit: Lag {
                entries: 3,
                oldest: Duration::from_millis(1500),
            },
            process: None,
        }
    }

    #[test]
    fn the_exposition_names_each_plugin_and_service() {
        let text = text(&scrape());
        for want in [
            "plexichat_plugin_up{plugin=\"echo\"} 1\n",
            "plexichat_plugin_cpu_seconds_total{plugin=\"echo\"} 1.500000\n",
            "plexichat_plugin_broker_calls_total{plugin=\"echo\",service=\"file_read\"} 3\n",
            "plexichat_plugin_info{plugin=\"echo\",state=\"enabled\",runtime=\"running\"} 1\n",
            "plexichat_plugin_crashes_total{plugin=\"echo\"} 2\n",
            "plexichat_plugin_oom_kills_total{plugin=\"echo\"} 1\n",
            "plexichat_safe_mode 1\n",
            "# TYPE plexichat_plugin_denials_total counter\n",
            "plexichat_audit_queue_entries 3\n",
            "plexichat_audit_commit_lag_seconds 1.500000\n",
            "plexichat_plugin_spawn_seconds_bucket{le=\"0.01\"} 0\n",
            "plexichat_plugin_spawn_seconds_bucket{le=\"0.025\"} 1\n",
            "plexichat_plugin_spawn_seconds_bucket{le=\"+Inf\"} 1\n",
            "plexichat_plugin_spawn_seconds_count 1\n",
        ] {
            assert!(text.contains(want), "{want} in:\n{text}");
        }
        assert!(text.contains(&format!(
            "plexichat_build_info{{version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(!text.contains("process_"), "no /proc figures, no families");
    }

    #[test]
    fn every_sample_follows_its_help_and_type() {
        let mut s = scrape();
        s.process = super::super::process::read_self().ok();
        let text = text(&s);
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap_or_default().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap_or_default();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{line} has no TYPE before it");
            }
        }
        assert!(text.contains("# TYPE process_open_fds gauge\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
