//! Per-plugin figures for `plexichat monitor` and Prometheus: brokered calls by
//! service and refusals, counted from the committed audit stream, beside what the
//! runtime and each plugin's cgroup report now; and the loopback metrics endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_proto::admin::v1::{MonitorResponse, PluginUsage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::audit::{Committed, Outcome, Role};
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

#[derive(Default)]
pub struct Counters {
    plugins: Mutex<BTreeMap<String, CallCounts>>,
    /// Supervisor CPU time spent on each plugin's blocking broker work.
    cpu: Mutex<BTreeMap<String, Duration>>,
}

impl Counters {
    /// Counts the brokered calls among committed records (runs under the store's lock).
    pub fn observe(&self, records: &[Committed]) {
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
                state: row.state.as_str().into(),
                runtime: status.phase.as_str().into(),
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

/// The Prometheus text exposition (format 0.0.4) of `m`.
pub fn prometheus_text(m: &MonitorResponse, safe_mode: bool) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let label = |p: &PluginUsage| format!("plugin=\"{}\"", p.name);
    let per = |f: &dyn Fn(&PluginUsage) -> String| -> Vec<(String, String)> {
        m.plugins.iter().map(|p| (label(p), f(p))).collect()
    };
    family(
        "plexichat_plugin_up",
        "gauge",
        "1 while the plugin's process runs.",
        per(&|p| u8::from(p.runtime == "running").to_string()),
    );
    family(
        "plexichat_plugin_cpu_seconds_total",
        "counter",
        "CPU time used by the plugin's cgroup.",
        per(&|p| format!("{:.6}", p.cpu_usec as f64 / 1e6)),
    );
    family(
        "plexichat_plugin_broker_cpu_seconds_total",
        "counter",
        "CPU time the supervisor spent on the plugin's blocking broker work.",
        per(&|p| format!("{:.6}", p.broker_cpu_usec as f64 / 1e6)),
    );
    family(
        "plexichat_plugin_memory_bytes",
        "gauge",
        "Memory charged to the plugin's cgroup.",
        per(&|p| p.memory_bytes.to_string()),
    );
    family(
        "plexichat_plugin_memory_limit_bytes",
        "gauge",
        "The plugin's memory limit.",
        per(&|p| p.memory_limit.to_string()),
    );
    family(
        "plexichat_plugin_pids",
        "gauge",
        "Processes and threads in the plugin's cgroup.",
        per(&|p| p.pids.to_string()),
    );
    family(
        "plexichat_plugin_broker_calls_total",
        "counter",
        "Brokered calls since the supervisor started, by service.",
        m.plugins
            .iter()
            .flat_map(|p| {
                p.calls.iter().map(move |(service, n)| {
                    (format!("{},service=\"{service}\"", label(p)), n.to_string())
                })
            })
            .collect(),
    );
    family(
        "plexichat_plugin_denials_total",
        "counter",
        "Brokered calls refused since the supervisor started.",
        per(&|p| p.denials.to_string()),
    );
    family(
        "plexichat_plugin_restarts_total",
        "counter",
        "Restarts after crashes of the current run.",
        per(&|p| p.restarts.to_string()),
    );
    family(
        "plexichat_plugin_open_alerts",
        "gauge",
        "Alerts raised and not yet acknowledged.",
        per(&|p| p.open_alerts.to_string()),
    );
    let _ = writeln!(
        out,
        "# HELP plexichat_safe_mode 1 while safe mode keeps every plugin from starting.\n# TYPE plexichat_safe_mode gauge\nplexichat_safe_mode {}",
        u8::from(safe_mode)
    );
    out
}

/// Largest request head read from a metrics client.
const MAX_REQUEST: usize = 8192;

/// Serves `GET /metrics` on `addr` (loopback, checked by the config) until the
/// process ends. One short-lived connection per scrape; anything else gets 404/400.
pub async fn serve_prometheus(
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let (shared, runtime) = (Arc::clone(&shared), Arc::clone(&runtime));
            tokio::spawn(async move {
                let answered =
                    tokio::time::timeout(Duration::from_secs(5), scrape(conn, &shared, &runtime));
                if let Ok(Err(e)) = answered.await {
                    tracing::debug!(error = %e, "metrics client");
                }
            });
        }
    });
    Ok(())
}

async fn scrape(
    mut conn: tokio::net::TcpStream,
    shared: &Shared,
    runtime: &Runtime,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return respond(&mut conn, "400 Bad Request", "bad request\n").await;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next();
    // A query string (`/metrics?x=1`, as some scrapers add) selects nothing here.
    let path = parts.next().and_then(|p| p.split(|b| *b == b'?').next());
    if method != Some(b"GET") || path != Some(b"/metrics") {
        return respond(&mut conn, "404 Not Found", "only GET /metrics is served\n").await;
    }
    let safe_mode = shared.store.safe_mode().is_ok_and(|m| m.enabled);
    match usage(shared, runtime, None) {
        Ok(m) => respond(&mut conn, "200 OK", &prometheus_text(&m, safe_mode)).await,
        Err(e) => respond(&mut conn, "500 Internal Server Error", &format!("{e}\n")).await,
    }
}

async fn respond(
    conn: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditEntry};

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
    fn the_exposition_names_each_plugin_and_service() {
        let m = MonitorResponse {
            ts_ms: 0,
            plugins: vec![PluginUsage {
                name: "echo".into(),
                runtime: "running".into(),
                cpu_usec: 1_500_000,
                calls: [("file_read".to_string(), 3)].into_iter().collect(),
                denials: 1,
                ..PluginUsage::default()
            }],
        };
        let text = prometheus_text(&m, true);
        assert!(
            text.contains("plexichat_plugin_up{plugin=\"echo\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("plexichat_plugin_cpu_seconds_total{plugin=\"echo\"} 1.500000\n"));
        assert!(text.contains(
            "plexichat_plugin_broker_calls_total{plugin=\"echo\",service=\"file_read\"} 3\n"
        ));
        assert!(text.contains("plexichat_safe_mode 1\n"));
        assert!(text.contains("# TYPE plexichat_plugin_denials_total counter\n"));
    }
}
