//! The monthly audit report: per plugin, the calls it made and the permissions they
//! used, what was refused, and its incidents, folded from counted audit records.

use std::collections::BTreeMap;

use broker_proto::admin::v1::PluginReport;

use crate::store::AuditCount;

/// Runtime events that count as incidents besides every `security.*` record.
const INCIDENTS: &[&str] = &[
    "plugin.crash",
    "plugin.quarantine",
    "plugin.handshake_timeout",
    "plugin.health_failed",
];

fn is_incident(action: &str) -> bool {
    action.starts_with("security.") || INCIDENTS.contains(&action)
}

/// What a record was about: its permission, else the service or action it names.
fn subject(c: &AuditCount) -> String {
    c.permission
        .clone()
        .unwrap_or_else(|| c.action.trim_start_matches("broker.").to_string())
}

/// One report per plugin, in name order.
pub fn summarize(counts: &[AuditCount]) -> Vec<PluginReport> {
    let mut reports: BTreeMap<&str, PluginReport> = BTreeMap::new();
    for c in counts {
        let r = reports.entry(&c.plugin).or_insert_with(|| PluginReport {
            plugin: c.plugin.clone(),
            ..PluginReport::default()
        });
        let brokered = c.action.starts_with("broker.") && c.action != "broker.rate_limited";
        if brokered {
            r.calls += c.count;
            if c.outcome == "ok" {
                *r.permission_use.entry(subject(c)).or_default() += c.count;
            }
        }
        if c.outcome == "denied" {
            r.denials += c.count;
            *r.denials_by_permission.entry(subject(c)).or_default() += c.count;
        }
        if is_incident(&c.action) {
            r.incidents += c.count;
            *r.incidents_by_kind.entry(c.action.clone()).or_default() += c.count;
        }
    }
    reports.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(
        plugin: &str,
        action: &str,
        outcome: &str,
        permission: Option<&str>,
        n: u64,
    ) -> AuditCount {
        AuditCount {
            plugin: plugin.into(),
            action: action.into(),
            outcome: outcome.into(),
            permission: permission.map(str::to_string),
            count: n,
        }
    }

    #[test]
    fn calls_denials_and_incidents_are_folded_per_plugin() {
        let r = summarize(&[
            count("a", "broker.database", "ok", Some("database_read"), 10),
            count("a", "broker.database", "denied", Some("database_write"), 2),
            count("a", "broker.config_get", "ok", None, 5),
            count("a", "broker.rate_limited", "denied", None, 1),
            count("a", "security.syscall_denied", "denied", None, 3),
            count("a", "plugin.crash", "failed", None, 1),
            count("a", "plugin.start", "ok", None, 4),
            count("b", "permission.approve", "ok", Some("file_read"), 1),
        ]);
        assert_eq!(r.len(), 2);
        let a = &r[0];
        assert_eq!(
            a.calls, 17,
            "brokered calls, not rate-limit aggregates or lifecycle"
        );
        assert_eq!(a.permission_use["database_read"], 10);
        assert_eq!(a.permission_use["config_get"], 5);
        assert_eq!(a.denials, 6);
        assert_eq!(a.denials_by_permission["database_write"], 2);
        assert_eq!(a.denials_by_permission["security.syscall_denied"], 3);
        assert_eq!(a.incidents, 4);
        assert_eq!(a.incidents_by_kind["plugin.crash"], 1);
        let b = &r[1];
        assert_eq!((b.calls, b.denials, b.incidents), (0, 0, 0));
    }
}
