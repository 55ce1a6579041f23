//! Operator subcommands: `plugin update`, `plugin enable [--verify-security]`,
//! `plugin disable-all`, `emergency ...`, `backup ...`, `restore` and the alert
//! commands under `security`, each rendered as text or JSON.

use anyhow::{bail, Result};
use broker_proto::admin::v1::{
    AcknowledgeAlertRequest, Alert, BackupInfo, CreateBackupRequest, DisableAllRequest,
    DisableAllResponse, EnablePluginRequest, EnablePluginResponse, ListAlertsRequest,
    ListAlertsResponse, ListBackupsRequest, ListBackupsResponse, ReloadConfigRequest,
    ReloadConfigResponse, RestoreBackupRequest, RestoreBackupResponse, RevokeAllRequest,
    SafeModeStatus, SecurityReportRequest, SecurityReportResponse, SetSafeModeRequest,
    UpdatePluginResponse, UploadIntent,
};
use broker_proto::label::label;

use super::commands::{audit_table, emit, revoke_text, state_change_text, top, Session};
use super::output::{
    escape_line, format_bytes, format_ms, join_or_none, key_values, or_none, Table,
};

pub async fn update(
    session: &Session,
    name: String,
    package: &super::upload::Package<'_>,
) -> Result<()> {
    // Read here with the caller's rights and streamed: the daemon opens no path.
    let (_, resp) = super::upload::upload(session, UploadIntent::Update, &name, package).await?;
    let resp = resp.update.unwrap_or_default();
    emit(&session.render(&resp, update_text)?)
}

fn update_text(r: &UpdatePluginResponse) -> String {
    let s = r.summary.clone().unwrap_or_default();
    let mut out = escape_line(&format!(
        "updated {} {} -> {} (backup {} taken first)",
        s.name, r.previous_version, s.version, r.backup_id
    ));
    out.push('\n');
    out.push_str(&key_values(&[
        ("carried over", join_or_none(&r.carried_over)),
        ("to review", join_or_none(&r.to_review)),
        ("dropped", join_or_none(&r.dropped)),
        (
            "state",
            format!("{} ({})", label(s.state()), or_none(&s.state_reason)),
        ),
        ("runtime", label(s.runtime())),
    ]));
    if !r.to_review.is_empty() {
        out.push_str(&format!(
            "\nthe new version asks for more: review with `plexichat plugin pending`, then `plexichat plugin enable {}`\n",
            s.name
        ));
    }
    out
}

pub async fn enable(session: &Session, name: String, verify_security: bool) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .enable_plugin(EnablePluginRequest {
            name,
            verify_security,
        })
        .await?
        .into_inner();
    emit(&session.render(&resp, enable_text)?)
}

fn enable_text(r: &EnablePluginResponse) -> String {
    let mut out = state_change_text("enabled", &r.summary.clone().unwrap_or_default());
    out.push('\n');
    if !r.verified.is_empty() {
        let mut table = Table::new(&["VERIFIED", "RESULT", "DETAIL"]);
        for c in &r.verified {
            table.row([
                c.name.clone(),
                if c.ok { "ok" } else { "FAILED" }.to_string(),
                c.detail.clone(),
            ]);
        }
        out.push_str(&table.render());
    }
    out
}

pub async fn disable_all(
    session: &Session,
    except_core: bool,
    force: bool,
    comment: String,
) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .disable_all(DisableAllRequest {
            except_core,
            force,
            comment,
        })
        .await?
        .into_inner();
    emit(&session.render(&resp, disable_all_text)?)
}

fn disable_all_text(r: &DisableAllResponse) -> String {
    key_values(&[
        ("disabled", join_or_none(&r.disabled)),
        ("kept (core)", join_or_none(&r.kept)),
    ])
}

pub async fn revoke_all(session: &Session, comment: String) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .revoke_all(RevokeAllRequest { comment })
        .await?
        .into_inner();
    emit(&session.render(&resp, revoke_text)?)
}

pub async fn safe_mode(session: &Session, enabled: bool, comment: String) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .set_safe_mode(SetSafeModeRequest { enabled, comment })
        .await?
        .into_inner();
    emit(&session.render(&resp, safe_mode_text)?)
}

fn safe_mode_text(m: &SafeModeStatus) -> String {
    let (state, verb) = if m.enabled {
        ("ON: no plugin starts", "stopped")
    } else {
        ("off", "started")
    };
    key_values(&[
        ("safe mode", state.to_string()),
        ("since", format_ms(m.since_ms)),
        ("by", or_none(&m.by)),
        ("comment", or_none(&m.comment)),
        (verb, join_or_none(&m.plugins)),
    ])
}

pub async fn security_report(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .security_report(SecurityReportRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, report_text)?)
}

fn report_text(r: &SecurityReportResponse) -> String {
    let mode = r.safe_mode.clone().unwrap_or_default();
    let host = r.host.clone().unwrap_or_default();
    let mut out = format!("security report, {}\n\n", format_ms(r.generated_at_ms));
    out.push_str(&key_values(&[
        (
            "safe mode",
            if mode.enabled {
                format!("ON since {} by {}", format_ms(mode.since_ms), mode.by)
            } else {
                "off".into()
            },
        ),
        (
            "confinement",
            if host.confinement { "on" } else { "OFF" }.to_string(),
        ),
        ("cgroups", or_none(&host.cgroup_version)),
        (
            "landlock",
            format!(
                "ABI {} (minimum {})",
                host.landlock_abi, host.landlock_minimum
            ),
        ),
        (
            "seccomp",
            format!(
                "{} ({} syscalls)",
                or_none(&host.seccomp_policy),
                host.seccomp_syscalls
            ),
        ),
        (
            "integrity",
            if r.integrity_ok { "ok" } else { "FAILED" }.to_string(),
        ),
        ("security events (24h)", top(&r.security_events_24h)),
        ("denials (24h)", top(&r.denials_24h)),
    ]));
    for c in r.integrity.iter().filter(|c| !c.ok) {
        out.push_str(&escape_line(&format!("  FAILED {}: {}", c.name, c.detail)));
        out.push('\n');
    }
    out.push_str("\nplugins:\n");
    let mut plugins = Table::new(&["PLUGIN", "VERSION", "STATE", "RUNTIME", "CORE", "REASON"]);
    for p in &r.plugins {
        plugins.row([
            p.name.clone(),
            p.version.clone(),
            label(p.state()),
            label(p.runtime()),
            if p.core { "yes" } else { "no" }.to_string(),
            or_none(&p.state_reason),
        ]);
    }
    out.push_str(&plugins.render());
    out.push_str("\nopen alerts:\n");
    out.push_str(&alerts_table(&r.open_alerts));
    out.push_str("\nrecent incidents:\n");
    out.push_str(&audit_table(&broker_proto::admin::v1::AuditResponse {
        records: r.recent_incidents.clone(),
        next_before_id: 0,
    }));
    out
}

pub async fn backup_create(session: &Session, comment: String) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .create_backup(CreateBackupRequest { comment })
        .await?
        .into_inner();
    emit(&session.render(&resp, |b| {
        escape_line(&format!(
            "backup {} taken: {} plugin(s), {}, sha256 {}",
            b.id,
            b.plugins,
            format_bytes(b.bytes),
            b.sha256
        ))
    })?)
}

pub async fn backup_list(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .list_backups(ListBackupsRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, backups_table)?)
}

fn backups_table(r: &ListBackupsResponse) -> String {
    if r.backups.is_empty() {
        return "no backups\n".into();
    }
    let mut table = Table::new(&["ID", "TAKEN", "REASON", "BY", "PLUGINS", "SIZE", "COMMENT"]);
    for b in &r.backups {
        table.row(backup_row(b));
    }
    table.render()
}

fn backup_row(b: &BackupInfo) -> Vec<String> {
    vec![
        b.id.clone(),
        format_ms(b.created_at_ms),
        b.reason.clone(),
        or_none(&b.created_by),
        b.plugins.to_string(),
        format_bytes(b.bytes),
        or_none(&b.comment),
    ]
}

pub async fn restore(
    session: &Session,
    backup_id: String,
    exclude_plugins: bool,
    comment: String,
) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .restore_backup(RestoreBackupRequest {
            backup_id,
            exclude_plugins,
            comment,
        })
        .await?
        .into_inner();
    emit(&session.render(&resp, restore_text)?)
}

fn restore_text(r: &RestoreBackupResponse) -> String {
    let b = r.restored.clone().unwrap_or_default();
    let mut out = escape_line(&format!(
        "restored backup {} ({}); the state before it is backup {}",
        b.id,
        format_ms(b.created_at_ms),
        r.safety_backup_id
    ));
    out.push('\n');
    out.push_str(&key_values(&[
        ("plugins", join_or_none(&r.plugins)),
        ("started", join_or_none(&r.started)),
    ]));
    out
}

pub async fn alerts(session: &Session, all: bool) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .list_alerts(ListAlertsRequest { all })
        .await?
        .into_inner();
    emit(&session.render(&resp, |r: &ListAlertsResponse| alerts_table(&r.alerts))?)
}

pub async fn acknowledge_alert(session: &Session, id: i64, comment: String) -> Result<()> {
    if id <= 0 {
        bail!("alert ids are positive (see `plexichat security alerts`)");
    }
    let resp = session
        .connect()
        .await?
        .acknowledge_alert(AcknowledgeAlertRequest { id, comment })
        .await?
        .into_inner();
    emit(&session.render(&resp, |a| {
        escape_line(&format!(
            "alert {} ({} on {}) acknowledged by {}",
            a.id, a.rule, a.plugin, a.acknowledged_by
        ))
    })?)
}

pub fn alerts_table(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alerts\n".into();
    }
    let mut table = Table::new(&[
        "ID",
        "PLUGIN",
        "RULE",
        "COUNT",
        "RAISED",
        "QUARANTINED",
        "ACKED",
        "MESSAGE",
    ]);
    for a in alerts {
        table.row([
            a.id.to_string(),
            a.plugin.clone(),
            a.rule.clone(),
            format!("{}/{} in {}s", a.count, a.threshold, a.window_secs),
            format_ms(a.raised_at_ms),
            if a.quarantined { "yes" } else { "no" }.to_string(),
            if a.acknowledged_at_ms > 0 {
                format!(
                    "{} by {}",
                    format_ms(a.acknowledged_at_ms),
                    a.acknowledged_by
                )
            } else {
                "-".to_string()
            },
            a.message.clone(),
        ]);
    }
    table.render()
}

pub async fn config_reload(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .reload_config(ReloadConfigRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, reload_text)?)
}

fn reload_text(r: &ReloadConfigResponse) -> String {
    let list = |keys: &[String]| {
        if keys.is_empty() {
            " none\n".to_string()
        } else {
            keys.iter().map(|k| format!("\n  {k}")).collect::<String>() + "\n"
        }
    };
    let mut out = format!(
        "applied:{}needs restart:{}",
        list(&r.applied),
        list(&r.needs_restart)
    );
    if !r.logs_reopened {
        out.push_str(&format!("audit logs NOT reopened: {}\n", r.logs_error));
    }
    out
}
