//! Runtime security events of a running plugin: syscalls its seccomp policy denied
//! (answered EPERM by the supervisor, recorded by name, aggregated per second), and
//! OOM kills, pids.max hits and CPU throttling read from its cgroup counters.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::context::Shared;
use crate::sandbox::cgroup::{Events, PluginCgroup};
use crate::sandbox::seccomp::{self, Denial};

const POLL: Duration = Duration::from_millis(500);
/// Throttled periods within one poll that count as throttling beyond policy.
const THROTTLE_EVENT_PERIODS: u64 = 3;
/// At most one CPU-throttling event per plugin this often.
const THROTTLE_EVENT_EVERY: Duration = Duration::from_secs(10);

/// Background tasks watching one plugin instance. Dropped once the process is
/// gone: the tasks stop and the cgroup counters get a last look, so an OOM kill
/// that ended the process is recorded even if it fell between two polls.
pub struct Watchers {
    tasks: Vec<JoinHandle<()>>,
    cgroup: Option<CgroupWatch>,
}

struct CgroupWatch {
    shared: Arc<Shared>,
    plugin: String,
    cg: PluginCgroup,
    seen: Arc<Mutex<Events>>,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some(w) = &self.cgroup {
            let seen = w.seen.lock().map(|e| *e).unwrap_or_default();
            report(&w.shared, &w.plugin, &w.cg, seen, w.cg.events(), false);
        }
    }
}

impl Watchers {
    pub fn start(
        shared: Arc<Shared>,
        plugin: &str,
        listener: Option<OwnedFd>,
        cgroup: Option<PluginCgroup>,
    ) -> Watchers {
        let mut tasks = Vec::new();
        if let Some(listener) = listener {
            let (tx, rx) = mpsc::unbounded_channel::<Denial>();
            let name = plugin.to_string();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = seccomp::serve_notifications(listener, move |d| {
                    let _ = tx.send(d);
                })
                .await
                {
                    tracing::error!(plugin = %name, error = %e, "seccomp notification listener failed");
                }
            }));
            tasks.push(tokio::spawn(aggregate_denials(
                Arc::clone(&shared),
                plugin.to_string(),
                rx,
            )));
        }
        let cgroup = cgroup.map(|cg| {
            let watch = CgroupWatch {
                shared: Arc::clone(&shared),
                plugin: plugin.to_string(),
                seen: Arc::new(Mutex::new(cg.events())),
                cg,
            };
            tasks.push(tokio::spawn(watch_cgroup(
                Arc::clone(&shared),
                plugin.to_string(),
                watch.cg.clone(),
                Arc::clone(&watch.seen),
            )));
            watch
        });
        Watchers { tasks, cgroup }
    }
}

/// One audit record per denied syscall name per second, with the count, so a
/// plugin hammering a denied call cannot flood the store.
async fn aggregate_denials(
    shared: Arc<Shared>,
    plugin: String,
    mut rx: mpsc::UnboundedReceiver<Denial>,
) {
    let mut pending: BTreeMap<String, (u64, Denial)> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            d = rx.recv() => match d {
                Some(d) => {
                    let entry = pending.entry(d.name.clone()).or_insert((0, d));
                    entry.0 += 1;
                }
                None => {
                    flush(&shared, &plugin, &mut pending);
                    return;
                }
            },
            _ = tick.tick() => flush(&shared, &plugin, &mut pending),
        }
    }
}

fn flush(shared: &Shared, plugin: &str, pending: &mut BTreeMap<String, (u64, Denial)>) {
    if pending.is_empty() {
        return;
    }
    let entries: Vec<AuditEntry> = std::mem::take(pending)
        .into_iter()
        .map(|(name, (count, d))| {
            tracing::warn!(
                plugin,
                action = "security.syscall_denied",
                outcome = "denied",
                syscall = %name,
                count,
                "seccomp denied a syscall"
            );
            AuditEntry::new(&Actor::system(), "security.syscall_denied", Outcome::Denied)
                .plugin(plugin)
                .detail(serde_json::json!({
                    "syscall": name,
                    "nr": d.nr,
                    "count": count,
                    "pid": d.pid,
                    "args": d.args.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
                }))
        })
        .collect();
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.detail["syscall"].as_str().map(String::from))
        .collect();
    for entry in entries {
        shared.audit.record(entry);
    }
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::SeccompViolation,
        plugin,
        format!("denied syscalls: {}", names.join(", ")),
    );
}

async fn watch_cgroup(
    shared: Arc<Shared>,
    plugin: String,
    cg: PluginCgroup,
    seen: Arc<Mutex<Events>>,
) {
    let mut last_throttle_event: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(POLL);
    loop {
        tick.tick().await;
        let now = cg.events();
        let last = seen.lock().map(|e| *e).unwrap_or(now);
        let throttle_due = last_throttle_event.is_none_or(|t| t.elapsed() >= THROTTLE_EVENT_EVERY);
        if report(&shared, &plugin, &cg, last, now, throttle_due) {
            last_throttle_event = Some(tokio::time::Instant::now());
        }
        if let Ok(mut s) = seen.lock() {
            *s = now;
        }
    }
}

/// Records what grew between two readings; true if a throttling event was recorded.
fn report(
    shared: &Shared,
    plugin: &str,
    cg: &PluginCgroup,
    before: Events,
    now: Events,
    throttle_due: bool,
) -> bool {
    let mut entries = Vec::new();
    let base = |action: &str, detail: serde_json::Value| {
        AuditEntry::new(&Actor::system(), action, Outcome::Denied)
            .plugin(plugin)
            .detail(detail)
    };
    if now.oom_kills > before.oom_kills {
        entries.push(base(
            "security.oom_kill",
            serde_json::json!({ "kills": now.oom_kills - before.oom_kills, "memory_limit": cg.enforced().memory_bytes, "cgroup": cg.version() }),
        ));
        shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::OomKill,
            plugin,
            "killed for exceeding its memory limit",
        );
    }
    if now.pids_max_hits > before.pids_max_hits {
        entries.push(base(
            "security.pids_max",
            serde_json::json!({ "refused_forks": now.pids_max_hits - before.pids_max_hits, "pids_limit": cg.enforced().pids }),
        ));
        shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::PidsMax,
            plugin,
            "hit its process limit",
        );
    }
    let throttled = now
        .throttled_periods
        .saturating_sub(before.throttled_periods);
    let mut throttle_recorded = false;
    if throttle_due && throttled >= THROTTLE_EVENT_PERIODS {
        entries.push(base(
            "security.cpu_throttled",
            serde_json::json!({ "throttled_periods": throttled, "window_ms": POLL.as_millis() as u64, "cpu_limit": cg.enforced().cpu }),
        ));
        throttle_recorded = true;
    }
    for entry in entries {
        tracing::warn!(
            plugin,
            action = %entry.action,
            outcome = entry.outcome.as_str(),
            detail = %entry.detail,
            "cgroup limit enforced"
        );
        shared.audit.record(entry);
    }
    throttle_recorded
}
