//! The trial report: what the plugin tried set against what its manifest requests,
//! one line per permission target, with the refused syscalls, peaks and its end.

use std::collections::BTreeMap;
use std::time::Duration;

use broker_proto::admin::v1::{
    TrialAttempt, TrialInvocationResult, TrialLine, TrialPeaks, TrialReport, TrialSyscall,
};

use super::Recorded;
use crate::catalog::{Catalog, Permission, ScopeShape};
use crate::manifest::Manifest;

/// Longest invocation output kept in the report.
const MAX_OUTPUT_BYTES: usize = 4096;

/// The trial cgroup's peaks, and which files said so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peaks {
    pub cpu_usec: u64,
    pub cpu_peak_millicores: u32,
    pub memory_bytes: u64,
    pub pids: u64,
    pub source: String,
}

/// What a trial run saw, for [`build`].
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub version: String,
    pub ran: Duration,
    pub exit: String,
    pub crashed: bool,
    pub confined: bool,
    pub peaks: Peaks,
    pub recorded: Recorded,
    pub invocations: Vec<(String, Result<String, String>)>,
    pub events_delivered: u32,
    pub log_tail: Vec<String>,
}

fn covers(catalog: &Catalog, p: Permission, entry: &str, target: &str) -> bool {
    entry.is_empty() || catalog.spec(p).scope.covers(entry, target)
}

/// Whether the manifest requests a scope of `p` covering `target`.
fn requested(manifest: &Manifest, catalog: &Catalog, p: Permission, target: &str) -> bool {
    manifest.permissions.iter().any(|r| {
        r.permission == p
            && (r.scope.is_empty() || r.scope.iter().any(|e| covers(catalog, p, e, target)))
    })
}

fn phrase(catalog: &Catalog, p: Permission, target: &str) -> String {
    match (target, catalog.spec(p).scope) {
        ("", _) => p.to_string(),
        (t, ScopeShape::Hosts) => format!("{p} {t}"),
        (t, _) => format!("{p} on {t}"),
    }
}

/// The comparison: each target tried (requested or not), then each requested scope
/// entry nothing tried.
pub fn lines(manifest: &Manifest, catalog: &Catalog, recorded: &Recorded) -> Vec<TrialLine> {
    // One line per (permission, target) whatever the calls: (from fixture, calls).
    let mut tried: BTreeMap<(Permission, &str), (bool, u64)> = BTreeMap::new();
    for a in &recorded.attempts {
        if let Some(p) = a.permission {
            let e = tried.entry((p, a.target.as_str())).or_default();
            e.0 |= a.from_fixture;
            e.1 += a.count;
        }
    }
    let mut out = Vec::new();
    for ((p, target), (fixture, _)) in &tried {
        let asked = requested(manifest, catalog, *p, target);
        let mut text = format!(
            "tried {} — {}",
            phrase(catalog, *p, target),
            if asked { "requested" } else { "NOT requested" }
        );
        if *fixture {
            text.push_str(" (answered from the fixture)");
        }
        out.push(TrialLine {
            permission: p.to_string(),
            target: target.to_string(),
            verdict: if asked { "requested" } else { "not_requested" }.into(),
            text,
        });
    }
    for r in &manifest.permissions {
        let entries: Vec<&str> = if r.scope.is_empty() {
            vec![""]
        } else {
            r.scope.iter().map(String::as_str).collect()
        };
        for entry in entries {
            let used = tried
                .keys()
                .any(|(p, t)| *p == r.permission && covers(catalog, *p, entry, t));
            if !used {
                out.push(TrialLine {
                    permission: r.permission.to_string(),
                    target: entry.to_string(),
                    verdict: "never_tried".into(),
                    text: format!(
                        "requested {} — never tried",
                        phrase(catalog, r.permission, entry)
                    ),
                });
            }
        }
    }
    out
}

/// The report the admin API answers.
pub fn build(manifest: &Manifest, catalog: &Catalog, o: Outcome) -> TrialReport {
    let lines = lines(manifest, catalog, &o.recorded);
    let attempts = o
        .recorded
        .attempts
        .iter()
        .map(|a| TrialAttempt {
            permission: a.permission.map(|p| p.to_string()).unwrap_or_default(),
            target: a.target.clone(),
            call: a.call.to_string(),
            requested: a
                .permission
                .is_some_and(|p| requested(manifest, catalog, p, &a.target)),
            from_fixture: a.from_fixture,
            count: a.count,
        })
        .collect();
    TrialReport {
        plugin: manifest.name.to_string(),
        version: o.version,
        ran_ms: u64::try_from(o.ran.as_millis()).unwrap_or(u64::MAX),
        lines,
        attempts,
        attempts_dropped: o.recorded.dropped,
        syscalls: o
            .recorded
            .syscalls
            .iter()
            .map(|(name, count)| TrialSyscall {
                name: name.clone(),
                count: *count,
            })
            .collect(),
        peaks: Some(TrialPeaks {
            cpu_usec: o.peaks.cpu_usec,
            cpu_peak_millicores: o.peaks.cpu_peak_millicores,
            memory_bytes: o.peaks.memory_bytes,
            pids: o.peaks.pids,
            source: o.peaks.source,
        }),
        exit: o.exit,
        crashed: o.crashed,
        log_tail: o.log_tail,
        invocations: o
            .invocations
            .into_iter()
            .map(|(command, result)| {
                let (ok, output) = match result {
                    Ok(out) => (true, out),
                    Err(e) => (false, e),
                };
                TrialInvocationResult {
                    command,
                    ok,
                    output: crate::text::prefix(&output, MAX_OUTPUT_BYTES).to_string(),
                }
            })
            .collect(),
        events_delivered: o.events_delivered,
        confined: o.confined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::Recorder;

    fn manifest(catalog: &Catalog) -> Manifest {
        let text = r#"name = "t"
version = "1.0.0"
entry = "t"

[[permissions]]
name = "file_write"
justification = "writes reports"
scope = ["/srv/reports"]

[[permissions]]
name = "network_outbound"
justification = "calls its API"
scope = ["api.example.com"]
"#;
        Manifest::parse(text, catalog).unwrap()
    }

    #[test]
    fn sets_what_was_tried_against_what_was_requested() {
        let catalog =
            Catalog::parse(include_str!("../../../policies/permissions.toml"), "test").unwrap();
        let m = manifest(&catalog);
        let r = Recorder::default();
        r.record(
            Some(Permission::NetworkOutbound),
            "api.example.com:443",
            "http",
            false,
        );
        r.record(
            Some(Permission::NetworkOutbound),
            "evil.test:443",
            "http",
            false,
        );
        r.record(Some(Permission::DatabaseRead), "users", "query", true);
        r.record(None, "chat.*", "subscribe", false);
        let texts: Vec<String> = lines(&m, &catalog, &r.snapshot())
            .into_iter()
            .map(|l| l.text)
            .collect();
        assert_eq!(
            texts,
            [
                "tried network_outbound api.example.com:443 — requested",
                "tried network_outbound evil.test:443 — NOT requested",
                "tried database_read on users — NOT requested (answered from the fixture)",
                "requested file_write on /srv/reports — never tried",
            ]
        );
    }
}
