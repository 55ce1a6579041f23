//! Alert rules over the committed audit stream: per plugin and rule, a sliding
//! window of event counts. Reaching a threshold raises an alert (stored, sent to the
//! admin notification stream, written to the security log) and may quarantine.

// Why windows are kept by rule name across a reload: an operator tuning a threshold
// should not give a noisy plugin a clean slate. A rule that keeps its name and kind
// keeps its counts, which then count against its new threshold and window (a lowered
// threshold already reached fires on the next event); a rule removed, or whose kind
// changed, loses its counts. Open alerts are stored rows and stay open either way.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::Instrument;

use crate::audit::{Actor, AuditEntry, Committed, Outcome};
use crate::clock::now_ms;
use crate::config::{AlertKind, AlertRule};
use crate::context::Shared;
use crate::live::{Live, Settings};
use crate::runtime::Runtime;
use crate::store::{self, AlertRow, PluginState, StoreError};

/// A rule's threshold was reached.
#[derive(Debug, PartialEq)]
struct Raise {
    plugin: String,
    /// The rule as it was when it fired (a reload may change it before it is recorded).
    rule: AlertRule,
    count: u64,
}

/// When each counted record arrived and how many events it stood for.
type Window = VecDeque<(Instant, u64)>;

/// Which rule a window counts for: its name and kind.
type WindowKey = (String, String, AlertKind);

/// The windows, and the settings generation whose rules they were last pruned to.
#[derive(Default)]
struct Windows {
    generation: u64,
    /// Event counts per (plugin, rule name, kind), oldest first.
    counts: HashMap<WindowKey, Window>,
}

pub struct Alerts {
    live: Arc<Live>,
    windows: Mutex<Windows>,
    raise: mpsc::UnboundedSender<Raise>,
    raised: Mutex<Option<mpsc::UnboundedReceiver<Raise>>>,
}

/// What an audit record counts for, and how many events it stands for.
fn classify(entry: &AuditEntry) -> Option<(AlertKind, u64)> {
    let count = |key: &str| entry.detail.get(key).and_then(|v| v.as_u64()).unwrap_or(1);
    match entry.action.as_str() {
        "security.syscall_denied" => Some((AlertKind::SeccompViolations, count("count"))),
        "security.oom_kill" => Some((AlertKind::OomKills, count("kills"))),
        "plugin.crash" => Some((AlertKind::Crashes, 1)),
        a if a.starts_with("broker.") && entry.outcome == Outcome::Denied => {
            Some((AlertKind::Denials, 1))
        }
        _ => None,
    }
}

impl Alerts {
    /// Rules come from `live` at every count, so a reload takes effect at once.
    pub fn new(live: Arc<Live>) -> Alerts {
        let (raise, raised) = mpsc::unbounded_channel();
        Alerts {
            live,
            windows: Mutex::default(),
            raise,
            raised: Mutex::new(Some(raised)),
        }
    }

    /// Counts committed records into the windows. Runs under the store's lock: it
    /// only counts and hands raised alerts to the task started by [`Alerts::spawn`].
    pub fn observe(&self, records: &[Committed]) {
        let settings = self.live.load();
        if settings.alerts.is_empty() {
            return;
        }
        let now = Instant::now();
        for c in records {
            let (Some(plugin), Some((kind, n))) = (&c.entry.plugin, classify(&c.entry)) else {
                continue;
            };
            for raise in self.count(&settings, plugin, kind, n, now) {
                let _ = self.raise.send(raise);
            }
        }
    }

    fn count(
        &self,
        settings: &Settings,
        plugin: &str,
        kind: AlertKind,
        n: u64,
        now: Instant,
    ) -> Vec<Raise> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        if windows.generation != settings.generation {
            windows.prune(&settings.alerts);
            windows.generation = settings.generation;
        }
        let mut raised = Vec::new();
        for rule in settings.alerts.iter().filter(|r| r.kind == kind) {
            let key = (plugin.to_string(), rule.name.clone(), kind);
            let window = windows.counts.entry(key).or_default();
            window.push_back((now, n));
            while window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > rule.window)
            {
                window.pop_front();
            }
            let total: u64 = window.iter().map(|(_, n)| n).sum();
            if total >= rule.threshold {
                // Re-armed: the next alert needs a full threshold of new events.
                window.clear();
                raised.push(Raise {
                    plugin: plugin.to_string(),
                    rule: rule.clone(),
                    count: total,
                });
            }
        }
        raised
    }

    /// Starts the task that records raised alerts and quarantines where a rule says so.
    pub fn spawn(shared: Arc<Shared>, runtime: Arc<Runtime>) {
        let Some(mut raised) = shared.alerts.raised.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        tokio::spawn(async move {
            while let Some(raise) = raised.recv().await {
                // Error level: recorded at any `--log` level (see `Runtime::start`).
                let span = tracing::error_span!("alert", plugin = %raise.plugin);
                if let Err(e) = act(&shared, &runtime, &raise).instrument(span).await {
                    tracing::error!(error = %e, "could not record an alert");
                }
            }
        });
    }
}

impl Windows {
    /// Keeps the counts of rules still configured with the same name and kind.
    fn prune(&mut self, rules: &[AlertRule]) {
        self.counts
            .retain(|(_, name, kind), _| rules.iter().any(|r| &r.name == name && r.kind == *kind));
    }
}

async fn act(shared: &Shared, runtime: &Runtime, raise: &Raise) -> Result<(), StoreError> {
    let rule = &raise.rule;
    let plugin = &raise.plugin;
    let quarantine = rule.quarantine
        && shared
            .store
            .plugin(plugin)?
            .is_some_and(|p| p.state != PluginState::Quarantined);
    let message = format!(
        "{} {} within {} (threshold {}){}",
        raise.count,
        rule.kind.as_str().replace('_', " "),
        humantime::format_duration(rule.window),
        rule.threshold,
        if quarantine { "; quarantined" } else { "" }
    );
    let id = shared.store.write(|tx| {
        let id = match store::open_alert(&tx.sql, plugin, &rule.name)? {
            Some(open) => {
                store::bump_alert(&tx.sql, open.id, raise.count, quarantine)?;
                open.id
            }
            None => store::insert_alert(
                &tx.sql,
                &AlertRow {
                    id: 0,
                    plugin: plugin.clone(),
                    rule: rule.name.clone(),
                    kind: rule.kind.as_str().into(),
                    count: raise.count,
                    threshold: rule.threshold,
                    window_secs: rule.window.as_secs(),
                    raised_at: now_ms(),
                    quarantined: quarantine,
                    message: message.clone(),
                    acknowledged_at: None,
                    acknowledged_by: None,
                },
            )?,
        };
        tx.audit(
            AuditEntry::new(&Actor::system(), "security.alert", Outcome::Failed)
                .plugin(plugin)
                .detail(serde_json::json!({
                    "alert": id, "rule": rule.name, "kind": rule.kind.as_str(),
                    "count": raise.count, "threshold": rule.threshold,
                    "window_secs": rule.window.as_secs(), "quarantine": quarantine,
                })),
        );
        Ok::<_, StoreError>(id)
    })?;
    tracing::warn!(rule = %rule.name, id, "{message}");
    shared.hub.notify(
        broker_proto::admin::v1::NotificationKind::Alert,
        plugin,
        format!("alert {id} ({}): {message}", rule.name),
    );
    if quarantine {
        runtime
            .quarantine_now(plugin, &format!("alert {id} ({}): {message}", rule.name))
            .await;
    }
    Ok(())
}

/// Records an alert raised by one event rather than a counted rule (a revoked signing
/// key, a matching advisory): the plugin's open alert of `rule` is bumped, else one is
/// opened, with its `security.alert` record, in the caller's transaction.
pub fn raise_event(
    tx: &mut store::Tx<'_>,
    plugin: &str,
    rule: &str,
    message: String,
    mut detail: serde_json::Value,
) -> Result<i64, StoreError> {
    let id = match store::open_alert(&tx.sql, plugin, rule)? {
        Some(open) => {
            store::bump_alert(&tx.sql, open.id, 1, false)?;
            open.id
        }
        None => store::insert_alert(
            &tx.sql,
            &AlertRow {
                id: 0,
                plugin: plugin.to_string(),
                rule: rule.into(),
                kind: rule.into(),
                count: 1,
                threshold: 1,
                window_secs: 0,
                raised_at: now_ms(),
                quarantined: false,
                message: message.clone(),
                acknowledged_at: None,
                acknowledged_by: None,
            },
        )?,
    };
    detail["alert"] = id.into();
    detail["rule"] = rule.into();
    detail["kind"] = rule.into();
    detail["message"] = message.into();
    tx.audit(
        AuditEntry::new(&Actor::system(), "security.alert", Outcome::Failed)
            .plugin(plugin)
            .detail(detail),
    );
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(name: &str, kind: AlertKind, threshold: u64, window_secs: u64) -> AlertRule {
        AlertRule {
            name: name.into(),
            kind,
            threshold,
            window: Duration::from_secs(window_secs),
            quarantine: false,
        }
    }

    fn alerts(rules: Vec<AlertRule>) -> (Arc<Live>, Alerts) {
        let live = Live::new(Settings {
            alerts: rules,
            ..Settings::default()
        });
        (Arc::clone(&live), Alerts::new(live))
    }

    /// One count against the rules in force now.
    fn count(a: &Alerts, plugin: &str, kind: AlertKind, n: u64, at: Instant) -> Vec<Raise> {
        a.count(&a.live.load(), plugin, kind, n, at)
    }

    fn reload(live: &Live, rules: Vec<AlertRule>) {
        live.store(Settings {
            alerts: rules,
            ..Settings::default()
        });
    }

    #[test]
    fn a_threshold_within_the_window_raises_once_then_rearms() {
        let (_, alerts) = alerts(vec![
            rule("denials", AlertKind::Denials, 3, 60),
            rule("seccomp", AlertKind::SeccompViolations, 10, 60),
        ]);
        let t0 = Instant::now();
        assert!(count(&alerts, "a", AlertKind::Denials, 1, t0).is_empty());
        assert!(count(&alerts, "b", AlertKind::Denials, 1, t0).is_empty());
        assert!(count(&alerts, "a", AlertKind::Denials, 1, t0).is_empty());
        let raised = count(
            &alerts,
            "a",
            AlertKind::Denials,
            1,
            t0 + Duration::from_secs(1),
        );
        assert_eq!(
            raised,
            [Raise {
                plugin: "a".into(),
                rule: rule("denials", AlertKind::Denials, 3, 60),
                count: 3
            }]
        );
        assert!(count(
            &alerts,
            "a",
            AlertKind::Denials,
            1,
            t0 + Duration::from_secs(2)
        )
        .is_empty());
        // One record can stand for many events (aggregated seccomp denials).
        assert_eq!(
            count(&alerts, "a", AlertKind::SeccompViolations, 12, t0).len(),
            1
        );
    }

    #[test]
    fn events_older_than_the_window_do_not_count() {
        let (_, alerts) = alerts(vec![rule("crashes", AlertKind::Crashes, 2, 10)]);
        let t0 = Instant::now();
        assert!(count(&alerts, "a", AlertKind::Crashes, 1, t0).is_empty());
        let later = t0 + Duration::from_secs(11);
        assert!(count(&alerts, "a", AlertKind::Crashes, 1, later).is_empty());
        assert_eq!(count(&alerts, "a", AlertKind::Crashes, 1, later).len(), 1);
    }

    #[test]
    fn a_reload_keeps_the_counts_of_a_rule_kept_by_name_and_drops_the_others() {
        let (live, alerts) = alerts(vec![
            rule("flood", AlertKind::Denials, 100, 60),
            rule("gone", AlertKind::Denials, 100, 60),
            rule("retyped", AlertKind::Denials, 100, 60),
        ]);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(count(&alerts, "a", AlertKind::Denials, 1, t0).is_empty());
        }
        // `flood` lowered to 5 keeps its 4; `retyped` now counts crashes, from zero.
        reload(
            &live,
            vec![
                rule("flood", AlertKind::Denials, 5, 60),
                rule("retyped", AlertKind::Crashes, 1, 60),
                rule("new", AlertKind::Denials, 2, 60),
            ],
        );
        let raised = count(&alerts, "a", AlertKind::Denials, 1, t0);
        let names: Vec<&str> = raised.iter().map(|r| r.rule.name.as_str()).collect();
        assert_eq!(names, ["flood"], "4 kept + 1 reach the new threshold of 5");
        assert_eq!(
            raised[0].rule.threshold, 5,
            "recorded with the rule in force"
        );
        let windows = alerts.windows.lock().unwrap();
        assert!(
            windows
                .counts
                .keys()
                .all(|(_, name, _)| name != "gone" && name != "retyped"),
            "removed and re-kinded rules lose their counts"
        );
    }

    #[test]
    fn records_are_classified_by_what_they_say() {
        let plugin = Actor::plugin("a");
        let denied = AuditEntry::new(&plugin, "broker.file_read", Outcome::Denied).plugin("a");
        let allowed = AuditEntry::new(&plugin, "broker.file_read", Outcome::Ok).plugin("a");
        let seccomp = AuditEntry::new(&Actor::system(), "security.syscall_denied", Outcome::Denied)
            .detail(serde_json::json!({ "count": 7 }));
        let approve = AuditEntry::new(&Actor::system(), "permission.approve", Outcome::Denied);
        assert_eq!(classify(&denied), Some((AlertKind::Denials, 1)));
        assert_eq!(classify(&allowed), None);
        assert_eq!(classify(&seccomp), Some((AlertKind::SeccompViolations, 7)));
        assert_eq!(
            classify(&approve),
            None,
            "an admin's refused approval is no plugin denial"
        );
    }
}
