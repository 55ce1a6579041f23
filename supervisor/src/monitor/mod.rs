//! Per-plugin figures for `plexichat monitor` and Prometheus: brokered calls by
//! service, refusals, crashes, OOM kills and spawn latency, counted from the committed
//! audit stream, beside what the runtime and each plugin's cgroup report now.

mod histogram;
mod http;
mod process;
mod prometheus;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use broker_proto::admin::v1::{self as api, MonitorResponse, PluginUsage};

pub use histogram::Histogram;
pub use http::serve_prometheus;

use crate::audit::{AuditEntry, Committed, Outcome, Role};
use crate::clock::now_ms;
use crate::context::Shared;
use crate::runtime::Runtime;
use crate::store::StoreError;

/// Brokered calls of one plugin since the supervisor started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub by_service: BTreeMap<String, u64>,
    pub denials: u64,
}

/// Incidents of one plugin recorded since the supervisor started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Incidents {
    pub crashes: u64,
    pub oom_kills: u64,
}

#[derive(Default)]
pub struct Counters {
    plugins: Mutex<BTreeMap<String, CallCounts>>,
    /// Supervisor CPU time spent on each plugin's blocking broker work.
    cpu: Mutex<BTreeMap<String, Duration>>,
    incidents: Mutex<BTreeMap<String, Incidents>>,
    /// Start request to completed handshake, from each `plugin.start` record.
    spawns: Mutex<Histogram>,
}

impl Counters {
    /// Counts what committed records show (runs under the store's lock).
    pub fn observe(&self, records: &[Committed]) {
        self.observe_calls(records);
        for c in records {
            let e = &c.entry;
            match e.action.as_str() {
                "plugin.start" => self.observe_start(e),
                "plugin.crash" | "security.oom_kill" => self.observe_incident(e),
                _ => {}
            }
        }
    }

    fn observe_start(&self, e: &AuditEntry) {
        let Some(us) = e.detail.get("spawn_to_ready_us").and_then(|v| v.as_u64()) else {
            return;
        };
        if let Ok(mut h) = self.spawns.lock() {
            h.observe(us as f64 / 1e6);
        }
    }

    fn observe_incident(&self, e: &AuditEntry) {
        let (Some(plugin), Ok(mut all)) = (&e.plugin, self.incidents.lock()) else {
            return;
        };
        let i = all.entry(plugin.clone()).or_default();
        if e.action == "plugin.crash" {
            i.crashes += 1;
        } else {
            // One record may stand for several kills seen since the last look.
            i.oom_kills += e.detail.get("kills").and_then(|v| v.as_u64()).unwrap_or(1);
        }
    }

    pub fn incidents(&self) -> BTreeMap<String, Incidents> {
        self.incidents.lock().map(|i| i.clone()).unwrap_or_default()
    }

    pub fn spawns(&self) -> Histogram {
        self.spawns.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Counts the brokered calls among committed records.
    fn observe_calls(&self, records: &[Committed]) {
        let Ok(mut plugins) = self.plugins.lock() else {
            return;
        };
        for c in records {
            let e = &c.entry;
            let (Some(plugin), Some(service)) = (&e.plugin, e.action.strip_prefix("broker."))
            else {
                continue;
            };
            if e.role != Role::Plugin.as_str() {
                continue;
            }
            let counts = plugins.entry(plugin.clone()).or_default();
            *counts.by_service.entry(service.to_string()).or_default() += 1;
            if e.outcome == Outcome::Denied {
                counts.denials += 1;
            }
        }
    }

    /// Adds `cpu` to what the supervisor spent on `plugin`'s broker work.
    pub fn charge_cpu(&self, plugin: &str, cpu: Duration) {
        if let Ok(mut all) = self.cpu.lock() {
            match all.get_mut(plugin) {
                Some(total) => *total += cpu,
                None => {
                    all.insert(plugin.to_string(), cpu);
                }
            }
        }
    }

    pub fn cpu(&self, plugin: &str) -> Duration {
        self.cpu
            .lock()
            .ok()
            .and_then(|all| all.get(plugin).copied())
            .unwrap_or_default()
    }

    pub fn get(&self, plugin: &str) -> CallCounts {
        self.plugins
            .lock()
            .ok()
            .and_then(|p| p.get(plugin).cloned())
            .unwrap_or_default()
    }
}

/// The figures of every installed plugin (or just `only`), now.
pub fn usage(
    shared: &Shared,
    runtime: &Runtime,
    only: Option<&str>,
) -> Result<MonitorResponse, StoreError> {
    let rows = shared.store.plugins()?;
    if let Some(name) = only {
        if !rows.iter().any(|r| r.name == name) {
            return Err(StoreError::NoSuchPlugin(name.to_string()));
        }
    }
    let mut open_alerts: BTreeMap<String, u32> = BTreeMap::new();
    for a in shared.store.alerts(false)? {
        *open_alerts.entry(a.plugin).or_default() += 1;
    }
    let plugins = rows
        .iter()
        .filter(|r| only.is_none_or(|n| n == r.name))
        .map(|row| {
            let status = runtime.status(&row.name);
            let counts = shared.counters.get(&row.name);
            let mut u = PluginUsage {
                name: row.name.clone(),
                state: api::PluginState::from(row.state).into(),
                runtime: api::RuntimePhase::from(status.phase).into(),
                pid: status.pid.unwrap_or_default(),
                calls: counts.by_service,
                denials: counts.denials,
                restarts: status.restarts,
                open_alerts: open_alerts.get(&row.name).copied().unwrap_or_default(),
                broker_cpu_usec: u64::try_from(shared.counters.cpu(&row.name).as_micros())
                    .unwrap_or(u64::MAX),
                ..PluginUsage::default()
            };
            if let Some(cg) = &status.cgroup {
                let (limits, now) = (cg.enforced(), cg.usage());
                u.cpu_usec = now.cpu_usec;
                u.cpu_limit = limits.cpu;
                u.memory_bytes = now.memory_bytes;
                u.memory_limit = limits.memory_bytes;
                u.pids = now.pids;
                u.pids_limit = limits.pids;
            }
            u
        })
        .collect();
    Ok(MonitorResponse {
        ts_ms: now_ms(),
        plugins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Actor;

    #[test]
    fn only_brokered_calls_of_plugins_are_counted() {
        let counters = Counters::default();
        let plugin = Actor::plugin("a");
        let committed = |e: AuditEntry| Committed {
            id: 0,
            entry: e,
            detail: None,
        };
        counters.observe(&[
            committed(AuditEntry::new(&plugin, "broker.file_read", Outcome::Ok).plugin("a")),
            committed(AuditEntry::new(&plugin, "broker.file_read", Outcome::Denied).plugin("a")),
            committed(AuditEntry::new(&plugin, "broker.http", Outcome::Ok).plugin("a")),
            committed(AuditEntry::new(&Actor::system(), "plugin.start", Outcome::Ok).plugin("a")),
        ]);
        let a = counters.get("a");
        assert_eq!(a.by_service.get("file_read"), Some(&2));
        assert_eq!(a.by_service.get("http"), Some(&1));
        assert_eq!(a.by_service.len(), 2);
        assert_eq!(a.denials, 1);
        assert_eq!(counters.get("b"), CallCounts::default());
    }

    #[test]
    fn starts_crashes_and_oom_kills_are_counted_from_their_records() {
        let counters = Counters::default();
        let system = Actor::system();
        let record = |action: &str, detail: serde_json::Value| Committed {
            id: 0,
            entry: AuditEntry::new(&system, action, Outcome::Ok)
                .plugin("a")
                .detail(detail),
            detail: None,
        };
        counters.observe(&[
            record(
                "plugin.start",
                serde_json::json!({ "spawn_to_ready_us": 30_000 }),
            ),
            record(
                "plugin.start",
                serde_json::json!({ "spawn_to_ready_us": 700 }),
            ),
            record("plugin.start", serde_json::json!({})),
            record("plugin.crash", serde_json::json!({ "reason": "exit 1" })),
            record("security.oom_kill", serde_json::json!({ "kills": 2 })),
        ]);
        let spawns = counters.spawns();
        assert_eq!(
            spawns.count(),
            2,
            "a start without its latency is not observed"
        );
        assert!((spawns.sum() - 0.0307).abs() < 1e-9);
        let a = counters.incidents()["a"];
        assert_eq!((a.crashes, a.oom_kills), (1, 2));
    }
}
