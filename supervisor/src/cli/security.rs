//! `plexichat security ...`: what confinement the supervisor enforces, for the host
//! and per plugin, rendered as a table or JSON.

use anyhow::Result;
use broker_proto::admin::v1::{
    FdBudget, PluginSecurity, RuntimeKind, SecurityStatusRequest, SecurityStatusResponse,
};
use broker_proto::label::{label, NONE};

use super::commands::{emit, Session};
use super::output::{format_bytes, join_or_none, key_values, or_none, signer_text, Table};

pub async fn plugin_status(session: &Session, plugin: Option<String>) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .security_status(SecurityStatusRequest {
            plugin: plugin.unwrap_or_default(),
        })
        .await?
        .into_inner();
    emit(&session.render(&resp, status_text)?)
}

fn status_text(r: &SecurityStatusResponse) -> String {
    let mut out = String::new();
    if let Some(h) = &r.host {
        let confinement = if h.confinement {
            "on".to_string()
        } else {
            "OFF (sandbox.confine = false): plugins run unconfined".to_string()
        };
        let mut pairs = vec![
            ("confinement", confinement),
            ("cgroups", or_none(&h.cgroup_version)),
            (
                "landlock",
                format!("ABI {} (minimum {})", h.landlock_abi, h.landlock_minimum),
            ),
            (
                "seccomp",
                format!(
                    "{} ({} syscalls allowed, from {})",
                    or_none(&h.seccomp_policy),
                    h.seccomp_syscalls,
                    or_none(&h.seccomp_source)
                ),
            ),
        ];
        pairs.push((
            "packages",
            if h.require_signature {
                format!(
                    "signed by a trusted publisher key only ({} trusted)",
                    h.trusted_keys
                )
            } else {
                format!(
                    "UNSIGNED ACCEPTED ([install] require_signature = false; {} keys trusted)",
                    h.trusted_keys
                )
            },
        ));
        if h.inherited_seccomp_filters > 0 {
            pairs.push((
                "inherited seccomp",
                format!(
                    "{} filter(s) from the supervisor's own service: syscalls they refuse \
                     fail in plugins without a seccomp-violation report",
                    h.inherited_seccomp_filters
                ),
            ));
        }
        if !h.refusal.is_empty() {
            pairs.push(("refused", h.refusal.clone()));
        }
        if h.safe_mode {
            pairs.push(("safe mode", "ON: no plugin starts".to_string()));
        }
        if let Some(b) = &r.fd_budget {
            pairs.push(("file descriptors", fd_budget_text(b)));
        }
        out.push_str(&key_values(&pairs));
        out.push('\n');
    }
    if r.plugins.is_empty() {
        out.push_str("no plugins installed\n");
        return out;
    }
    let mut table = Table::new(&[
        "PLUGIN",
        "RUNTIME",
        "RUNS",
        "SIGNED BY",
        "NAMESPACES",
        "UID",
        "CAPS",
        "NNP",
        "LANDLOCK",
        "SECCOMP",
        "CGROUP",
        "CPU",
        "MEMORY",
        "PIDS",
    ]);
    for p in &r.plugins {
        table.row(row(p));
    }
    out.push_str(&table.render());
    if !r.open_alerts.is_empty() {
        out.push_str("\nopen alerts:\n");
        out.push_str(&super::operations::alerts_table(&r.open_alerts));
    }
    out
}

fn fd_budget_text(b: &FdBudget) -> String {
    format!(
        "{} of {} in use (RLIMIT_NOFILE); {} per plugin, {} kept for the admin socket, store and logs; {} plugins running or starting of {} affordable",
        b.in_use, b.limit, b.per_plugin, b.reserved, b.plugins, b.affordable
    )
}

/// What the plugin runs on: `native`, or `python3 3.11.2` (the pinned interpreter).
fn runs(p: &PluginSecurity) -> String {
    match &p.plugin_runtime {
        Some(r) if r.kind() == RuntimeKind::Python3 => format!("python3 {}", r.interpreter_version),
        Some(r) => label(r.kind()),
        None => NONE.into(),
    }
}

fn row(p: &PluginSecurity) -> Vec<String> {
    if !p.confined {
        return vec![
            p.name.clone(),
            label(p.runtime()),
            runs(p),
            signer_text(p.signer.as_ref()),
            "-".into(),
            p.uid.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    }
    let landlock = format!(
        "ABI {} {}",
        p.landlock_abi,
        p.landlock_status.replace('_', " ")
    );
    let caps = if p.capabilities.starts_with("none") {
        "none"
    } else {
        "SOME"
    };
    vec![
        p.name.clone(),
        label(p.runtime()),
        runs(p),
        signer_text(p.signer.as_ref()),
        join_or_none(&p.namespaces),
        p.uid.to_string(),
        caps.into(),
        if p.no_new_privs { "yes" } else { "NO" }.into(),
        landlock,
        format!("{} ({})", p.seccomp_policy, p.seccomp_syscalls),
        or_none(&p.cgroup_version),
        format!(
            "{:.0}ms/{:.2} cores",
            p.cpu_usec as f64 / 1000.0,
            p.cpu_limit
        ),
        format!(
            "{} / {}",
            format_bytes(p.memory_bytes),
            format_bytes(p.memory_limit)
        ),
        format!("{} / {}", p.pids, p.pids_limit),
    ]
}
