//! One handler per `plexichat` subcommand: build the request, call the admin
//! API, render the response as a table or JSON.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use broker_proto::admin::v1::{
    AuditQuery, AuditResponse, DecisionRequest, DecisionResponse, DisablePluginRequest,
    InvokeCommandRequest, ListPendingRequest, ListPendingResponse, ListPluginsRequest,
    ListPluginsResponse, Notification, PermissionRecord, PermissionStatus, PluginDetail,
    PluginEvent, PluginRef, PluginRuntime, PluginSummary, PublishEventRequest,
    PublishEventResponse, Resources, RevokeRequest, RevokeResponse, RuntimeKind, UploadIntent,
    WatchEventsRequest, WatchNotificationsRequest, WhoAmIRequest, WhoAmIResponse,
};
use broker_proto::label::label;
use serde::Serialize;

use super::client::{self, Admin};
use super::failure::{status_text, StdoutFailed};
use super::output::{
    escape_line, escape_text, format_bytes, format_ms, format_ms_precise, join_or_none, key_values,
    or_none, Table, NONE,
};
use super::OutputFormat;

/// Everything a handler needs besides its own arguments. Connecting is left
/// to the handler so local checks (e.g. the install directory) fail first.
pub struct Session {
    socket: PathBuf,
    on_behalf_of: Option<String>,
    format: OutputFormat,
}

impl Session {
    pub fn new(socket: PathBuf, on_behalf_of: Option<String>, format: OutputFormat) -> Self {
        Self {
            socket,
            on_behalf_of,
            format,
        }
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    /// The same session with a command-specific format, if one was given.
    pub fn with_format(self, format: Option<OutputFormat>) -> Self {
        Self {
            format: format.unwrap_or(self.format),
            ..self
        }
    }

    pub(super) async fn connect(&self) -> Result<Admin> {
        client::connect(&self.socket, self.on_behalf_of.as_deref()).await
    }

    /// Pretty JSON of the response message, or the table rendering of it.
    pub(super) fn render<T: Serialize>(
        &self,
        message: &T,
        table: impl FnOnce(&T) -> String,
    ) -> Result<String> {
        match self.format {
            OutputFormat::Json => Ok(super::json::render(message, true)?),
            OutputFormat::Table => Ok(table(message)),
        }
    }

    /// One line per streamed message: compact JSON, so `jq` can follow it.
    fn render_line<T: Serialize>(
        &self,
        message: &T,
        line: impl FnOnce(&T) -> String,
    ) -> Result<String> {
        match self.format {
            OutputFormat::Json => Ok(super::json::render(message, false)?),
            OutputFormat::Table => Ok(line(message)),
        }
    }
}

/// Decision expiry as the protocol carries it; 0 means "not given".
#[derive(Debug, Default, Clone, Copy)]
pub struct Expiry {
    pub at_ms: i64,
    pub in_secs: u64,
}

// ---- handlers -------------------------------------------------------------

pub async fn whoami(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .who_am_i(WhoAmIRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, whoami_text)?)
}

pub async fn install(session: &Session, package: &super::upload::Package<'_>) -> Result<()> {
    // Read here with the caller's rights and streamed: the daemon opens no path.
    let (mut admin, resp) =
        super::upload::upload(session, UploadIntent::Install, "", package).await?;
    let summary = resp.summary.unwrap_or_default();
    if session.format == OutputFormat::Json {
        return emit(&super::json::render(&summary, true)?);
    }
    // The summary carries no permission count; the detail view does.
    let detail = match admin
        .show_plugin(PluginRef {
            name: summary.name.clone(),
        })
        .await
    {
        Ok(detail) => Some(detail.into_inner()),
        Err(status) => {
            eprintln!(
                "warning: could not count pending permission requests: {}",
                status_text(&status)
            );
            None
        }
    };
    let mut text = install_text(&summary, detail.as_ref().map(pending_count));
    if let Some(d) = &detail {
        text.push_str(&super::review::package_lines(d));
    }
    emit(&text)
}

pub async fn pending(session: &Session, expiring_within_secs: u64) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .list_pending(ListPendingRequest {
            expiring_within_secs,
        })
        .await?
        .into_inner();
    if expiring_within_secs == 0 {
        emit(&session.render(&resp, pending_table)?)
    } else {
        emit(&session.render(&resp, expiring_table)?)
    }
}

pub async fn list(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .list_plugins(ListPluginsRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, plugins_table)?)
}

pub async fn show(session: &Session, name: String) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .show_plugin(PluginRef { name })
        .await?
        .into_inner();
    emit(&session.render(&resp, detail_text)?)
}

pub async fn approve(session: &Session, request: DecisionRequest) -> Result<()> {
    let name = request.name.clone();
    let resp = session
        .connect()
        .await?
        .approve(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, |r| decision_text("approved", &name, r))?)
}

pub async fn deny(session: &Session, request: DecisionRequest) -> Result<()> {
    let name = request.name.clone();
    let resp = session.connect().await?.deny(request).await?.into_inner();
    emit(&session.render(&resp, |r| decision_text("denied", &name, r))?)
}

pub async fn revoke(
    session: &Session,
    permission: String,
    plugin: Option<String>,
    all: bool,
    comment: String,
) -> Result<()> {
    let request = RevokeRequest {
        permission,
        plugin: plugin.unwrap_or_default(),
        all,
        comment,
    };
    let resp = session
        .connect()
        .await?
        .revoke_permission(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, revoke_text)?)
}

pub(super) fn revoke_text(r: &RevokeResponse) -> String {
    if r.revoked.is_empty() {
        return "nothing to revoke: no plugin holds or requests that permission\n".to_string();
    }
    let mut table = Table::new(&["PLUGIN", "PERMISSION", "STATUS"]);
    for g in &r.revoked {
        let p = g.permission.clone().unwrap_or_default();
        table.row([
            escape_line(&g.plugin),
            p.permission.clone(),
            label(p.status()),
        ]);
    }
    format!("revoked {} grant(s):\n{}", r.revoked.len(), table.render())
}

pub async fn request_changes(session: &Session, name: String, comment: String) -> Result<()> {
    let request = broker_proto::admin::v1::DecisionRequest {
        name,
        comment,
        ..Default::default()
    };
    let resp = session
        .connect()
        .await?
        .request_changes(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, |s| state_change_text("sent back to its author", s))?)
}

pub async fn repin_runtime(session: &Session, name: String, comment: String) -> Result<()> {
    let request = broker_proto::admin::v1::RepinRuntimeRequest { name, comment };
    let resp = session
        .connect()
        .await?
        .repin_runtime(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, |d| {
        let r = d.plugin_runtime.clone().unwrap_or_default();
        format!(
            "{} now runs on {} (Python {}, sha256 {}) with SDK bundle {}; state {}\n",
            d.summary.as_ref().map_or("", |s| s.name.as_str()),
            r.interpreter,
            r.interpreter_version,
            r.interpreter_sha256,
            r.sdk_digest,
            d.summary
                .as_ref()
                .map_or(NONE.to_string(), |s| label(s.state()))
        )
    })?)
}

pub async fn disable(session: &Session, name: String, force: bool) -> Result<()> {
    let request = DisablePluginRequest { name, force };
    let resp = session
        .connect()
        .await?
        .disable_plugin(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, |s| state_change_text("disabled", s))?)
}

pub async fn remove(session: &Session, name: String) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .remove_plugin(PluginRef { name })
        .await?
        .into_inner();
    emit(&session.render(&resp, |r| format!("removed {}", r.name))?)
}

pub async fn invoke(
    session: &Session,
    plugin: String,
    command: String,
    args: String,
    timeout: Option<Duration>,
) -> Result<()> {
    let request = InvokeCommandRequest {
        plugin,
        command,
        args: args.into_bytes(),
        // Saturates rather than wraps for absurd values; 0 is refused by the parser.
        timeout_ms: timeout.map_or(0, |t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
    };
    let resp = session
        .connect()
        .await?
        .invoke_command(request)
        .await?
        .into_inner();
    // Plugin output is untrusted: keep its lines, drop its escape sequences. In JSON
    // the bytes are base64, as the protobuf mapping has them.
    emit(&session.render(&resp, |r| escape_text(&String::from_utf8_lossy(&r.output)))?)
}

pub async fn publish(session: &Session, topic: String, payload: String) -> Result<()> {
    let request = PublishEventRequest {
        topic,
        payload: payload.into_bytes().into(),
    };
    let resp = session
        .connect()
        .await?
        .publish_event(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, publish_text)?)
}

pub async fn watch_events(session: &Session, topics: Vec<String>) -> Result<()> {
    let request = WatchEventsRequest { topics };
    let mut stream = session
        .connect()
        .await?
        .watch_events(request)
        .await?
        .into_inner();
    while let Some(event) = stream.message().await? {
        emit(&session.render_line(&event, event_line)?)?;
    }
    // The daemon only ends a watch when it shuts down; scripts should notice.
    bail!("the supervisor closed the event stream")
}

pub async fn watch_notifications(session: &Session) -> Result<()> {
    let request = WatchNotificationsRequest {};
    let mut stream = session
        .connect()
        .await?
        .watch_notifications(request)
        .await?
        .into_inner();
    while let Some(notification) = stream.message().await? {
        emit(&session.render_line(&notification, notification_line)?)?;
    }
    bail!("the supervisor closed the notification stream")
}

/// Records `audit plugins` shows without `--limit`.
pub const DEFAULT_AUDIT_LIMIT: u32 = 1000;

/// Most records `audit plugins --limit` takes: they are held in memory to be printed.
pub const MAX_AUDIT_LIMIT: u32 = 1_000_000;

/// The newest `limit` matching records, fetched page by page (each page fits the
/// admin message limit) and printed oldest first.
pub async fn audit(
    session: &Session,
    plugin: Option<String>,
    since_ms: Option<i64>,
    limit: Option<u32>,
) -> Result<()> {
    let want = limit.unwrap_or(DEFAULT_AUDIT_LIMIT);
    let mut client = session.connect().await?;
    let mut pages = Vec::new();
    let (mut got, mut before_id) = (0u32, 0i64);
    while got < want {
        let size = (want - got).min(broker_proto::MAX_AUDIT_PAGE_RECORDS);
        let page = client
            .query_audit(AuditQuery {
                plugin: plugin.clone().unwrap_or_default(),
                since_ms: since_ms.unwrap_or(0),
                // A supervisor from before paging reads only `limit`.
                limit: size,
                before_id,
                page_size: size,
            })
            .await?
            .into_inner();
        got += u32::try_from(page.records.len()).unwrap_or(u32::MAX);
        pages.push(page.records);
        let next = page.next_before_id;
        if next == 0 {
            break;
        }
        if before_id != 0 && next >= before_id {
            bail!("the supervisor's audit cursor did not move back ({before_id} then {next})");
        }
        before_id = next;
    }
    let mut records: Vec<_> = pages.into_iter().rev().flatten().collect();
    // The last page may hold a few more than asked for; keep the newest.
    let extra = records.len().saturating_sub(want as usize);
    records.drain(..extra);
    let resp = AuditResponse {
        records,
        next_before_id: 0,
    };
    emit(&session.render(&resp, audit_table)?)
}

pub async fn verify_integrity(session: &Session) -> Result<()> {
    let resp = session
        .connect()
        .await?
        .verify_integrity(broker_proto::admin::v1::VerifyIntegrityRequest {})
        .await?
        .into_inner();
    emit(&session.render(&resp, |r| {
        let mut table = Table::new(&["CHECK", "RESULT", "DETAIL"]);
        for c in &r.checks {
            table.row([
                c.name.clone(),
                if c.ok { "ok" } else { "FAILED" }.to_string(),
                c.detail.clone(),
            ]);
        }
        table.render()
    })?)?;
    if !resp.ok {
        let failed: Vec<&str> = resp
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        bail!("system integrity check failed: {}", failed.join(", "));
    }
    Ok(())
}

pub async fn audit_report(session: &Session, month: String, plugin: Option<String>) -> Result<()> {
    let request = broker_proto::admin::v1::AuditReportRequest {
        month,
        plugin: plugin.unwrap_or_default(),
    };
    let resp = session
        .connect()
        .await?
        .audit_report(request)
        .await?
        .into_inner();
    emit(&session.render(&resp, report_table)?)
}

/// `k=v, k=v` of a count map, largest first.
pub(super) fn top(counts: &std::collections::BTreeMap<String, u64>) -> String {
    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let text: Vec<String> = v.iter().map(|(k, n)| format!("{k}={n}")).collect();
    if text.is_empty() {
        "-".into()
    } else {
        text.join(", ")
    }
}

fn report_table(r: &broker_proto::admin::v1::AuditReportResponse) -> String {
    let mut out = format!("audit report for {} (UTC)\n", r.month);
    if r.plugins.is_empty() {
        out.push_str("no plugin activity recorded\n");
        return out;
    }
    let mut table = Table::new(&[
        "PLUGIN",
        "CALLS",
        "PERMISSION USE",
        "DENIALS",
        "DENIED",
        "INCIDENTS",
        "KINDS",
    ]);
    for p in &r.plugins {
        table.row([
            p.plugin.clone(),
            p.calls.to_string(),
            top(&p.permission_use),
            p.denials.to_string(),
            top(&p.denials_by_permission),
            p.incidents.to_string(),
            top(&p.incidents_by_kind),
        ]);
    }
    out.push_str(&table.render());
    out
}

pub(super) fn plugin_dir(dir: &Path) -> Result<String> {
    let path = std::fs::canonicalize(dir)
        .with_context(|| format!("plugin directory {}", dir.display()))?;
    if !path.is_dir() {
        bail!("plugin directory {}: not a directory", dir.display());
    }
    path.into_os_string().into_string().map_err(|p| {
        anyhow!(
            "plugin directory {}: path is not valid UTF-8",
            Path::new(&p).display()
        )
    })
}

// ---- rendering ------------------------------------------------------------

fn whoami_text(r: &WhoAmIResponse) -> String {
    let mut pairs = vec![
        ("identity", r.identity.clone()),
        ("role", label(r.role())),
        ("uid", opt_text(r.uid)),
        ("gid", opt_text(r.gid)),
        ("pid", r.pid.to_string()),
    ];
    if !r.on_behalf_of.is_empty() {
        pairs.push(("on behalf of", r.on_behalf_of.clone()));
    }
    key_values(&pairs)
}

fn pending_count(detail: &PluginDetail) -> usize {
    detail
        .permissions
        .iter()
        .filter(|p| p.status() == PermissionStatus::Pending)
        .count()
}

fn install_text(s: &PluginSummary, pending: Option<usize>) -> String {
    let head = format!("installed {} {} ({})", s.name, s.version, label(s.state()));
    let head = match pending {
        Some(n) => format!("{head}; {n} permission request(s) pending review"),
        None => head,
    };
    format!(
        "{}\nsha256: {}\n",
        escape_line(&head),
        escape_line(&s.sha256)
    )
}

fn pending_table(r: &ListPendingResponse) -> String {
    if r.pending.is_empty() {
        return "no permission requests pending review\n".to_string();
    }
    let mut table = Table::new(&[
        "PLUGIN",
        "VERSION",
        "PERMISSION",
        "RISK",
        "SCOPE",
        "APPROVALS",
        "SIGNED BY",
        "JUSTIFICATION",
    ]);
    for p in &r.pending {
        let perm = p.permission.clone().unwrap_or_default();
        table.row([
            p.plugin.clone(),
            p.plugin_version.clone(),
            perm.permission.clone(),
            label(perm.risk()),
            join_or_none(&perm.requested_scope),
            approvals(&perm),
            super::output::signer_text(p.signer.as_ref()),
            or_none(&perm.justification),
        ]);
    }
    table.render()
}

fn expiring_table(r: &ListPendingResponse) -> String {
    if r.pending.is_empty() {
        return "no grants expire within that window\n".to_string();
    }
    let mut table = Table::new(&["PLUGIN", "PERMISSION", "RISK", "SCOPE", "EXPIRES"]);
    for p in &r.pending {
        let perm = p.permission.clone().unwrap_or_default();
        table.row([
            p.plugin.clone(),
            perm.permission.clone(),
            label(perm.risk()),
            join_or_none(&perm.granted_scope),
            format_ms(perm.expires_at_ms),
        ]);
    }
    table.render()
}

fn plugins_table(r: &ListPluginsResponse) -> String {
    if r.plugins.is_empty() {
        return "no plugins installed\n".to_string();
    }
    let mut table = Table::new(&[
        "NAME", "VERSION", "STATE", "RUNTIME", "PID", "RESTARTS", "CORE",
    ]);
    for p in &r.plugins {
        table.row([
            p.name.clone(),
            p.version.clone(),
            label(p.state()),
            label(p.runtime()),
            pid_text(p.pid),
            p.restarts.to_string(),
            yes_no(p.core).to_string(),
        ]);
    }
    table.render()
}

fn detail_text(d: &PluginDetail) -> String {
    let s = d.summary.clone().unwrap_or_default();
    let (state, runtime) = (label(s.state()), label(s.runtime()));
    let mut pairs = vec![
        ("name", s.name),
        ("version", s.version),
        ("description", or_none(&d.description)),
        ("author", or_none(&d.author)),
        ("entry", or_none(&d.entry)),
        ("state", state),
    ];
    if !s.state_reason.is_empty() {
        pairs.push(("state reason", s.state_reason));
    }
    pairs.extend([
        ("runtime", runtime),
        ("pid", pid_text(s.pid)),
        ("restarts", s.restarts.to_string()),
        ("core", yes_no(s.core).to_string()),
        ("sha256", or_none(&s.sha256)),
        ("signed by", super::output::signer_text(s.signer.as_ref())),
        ("installed", format_ms(s.installed_at_ms)),
        ("last exit", or_none(&d.last_exit)),
        (
            "resources",
            d.resources
                .as_ref()
                .map_or(NONE.to_string(), resources_text),
        ),
        ("topics", join_or_none(&d.topics)),
    ]);
    if let Some(r) = &d.plugin_runtime {
        pairs.extend(runtime_pairs(r));
    }
    format!(
        "{}{}\n{}\n{}{}{}",
        key_values(&pairs),
        super::review::package_lines(d),
        permissions_table(&d.permissions),
        commands_table(d),
        package_files_table(d),
        imports_text(d)
    )
}

/// A Python plugin's pins, as the reviewer checks them against the package.
fn runtime_pairs(r: &PluginRuntime) -> Vec<(&'static str, String)> {
    if r.kind() != RuntimeKind::Python3 {
        return vec![("runs", label(r.kind()))];
    }
    vec![
        (
            "runs",
            format!(
                "python3 (interpreter {} {}, sha256 {})",
                r.interpreter, r.interpreter_version, r.interpreter_sha256
            ),
        ),
        ("package digest", r.package_digest.clone()),
        ("sdk digest", r.sdk_digest.clone()),
    ]
}

/// Every file of a Python package as pinned: what the reviewer reads is what runs.
fn package_files_table(d: &PluginDetail) -> String {
    let Some(r) = d.plugin_runtime.as_ref().filter(|r| !r.files.is_empty()) else {
        return String::new();
    };
    let mut table = Table::new(&["FILE", "MODE", "BYTES", "SHA256"]);
    for f in &r.files {
        table.row([
            f.path.clone(),
            format!("{:o}", f.mode),
            f.size.to_string(),
            f.sha256.clone(),
        ]);
    }
    format!("\npackage files (pinned):\n{}", table.render())
}

/// Modules the plugin's runtime reported importing: observation, not a boundary.
fn imports_text(d: &PluginDetail) -> String {
    if d.imports.is_empty() && d.imports_over_cap == 0 {
        return String::new();
    }
    let names: Vec<String> = d.imports.iter().map(|i| i.name.clone()).collect();
    let mut out = format!(
        "\nimports reported by the plugin ({}, observation only): {}\n",
        names.len(),
        names.join(", ")
    );
    if d.imports_over_cap > 0 {
        out.push_str(&format!(
            "  and {} more past the per-run cap\n",
            d.imports_over_cap
        ));
    }
    out
}

/// The declared commands: the only ones `plugin invoke` can run.
fn commands_table(d: &PluginDetail) -> String {
    if d.commands.is_empty() {
        return "commands: none declared (nothing can be invoked)\n".into();
    }
    let mut table = Table::new(&["COMMAND", "ARGUMENTS", "DESCRIPTION"]);
    for c in &d.commands {
        let args: Vec<String> = c
            .arguments
            .iter()
            .map(|a| {
                if a.required {
                    a.name.clone()
                } else {
                    format!("[{}]", a.name)
                }
            })
            .collect();
        table.row([c.name.clone(), join_or_none(&args), or_none(&c.description)]);
    }
    table.render()
}

fn permissions_table(perms: &[PermissionRecord]) -> String {
    if perms.is_empty() {
        return "permissions: none\n".to_string();
    }
    let mut table = Table::new(&[
        "PERMISSION",
        "RISK",
        "STATUS",
        "SCOPE",
        "EXPIRES",
        "APPROVERS",
        "COMMENT",
    ]);
    for p in perms {
        table.row([
            p.permission.clone(),
            label(p.risk()),
            label(p.status()),
            join_or_none(effective_scope(p)),
            format_ms(p.expires_at_ms),
            join_or_none(&p.approvers),
            or_none(&p.comment),
        ]);
    }
    table.render()
}

/// What was granted once decided, what is asked for until then.
fn effective_scope(p: &PermissionRecord) -> &[String] {
    if p.granted_scope.is_empty() {
        &p.requested_scope
    } else {
        &p.granted_scope
    }
}

fn resources_text(r: &Resources) -> String {
    // Zero means "not set" in proto3; listing it as a limit would mislead.
    let mut parts = Vec::new();
    if r.cpu > 0.0 {
        parts.push(format!("cpu {}", r.cpu));
    }
    if r.memory_bytes > 0 {
        parts.push(format!("memory {}", format_bytes(r.memory_bytes)));
    }
    if r.pids > 0 {
        parts.push(format!("pids {}", r.pids));
    }
    or_none(&parts.join(", "))
}

fn decision_text(verb: &str, name: &str, r: &DecisionResponse) -> String {
    let head = format!(
        "{verb} {} permission(s) of {}",
        r.decided.len(),
        escape_line(name)
    );
    if r.decided.is_empty() {
        return format!("{head}\n");
    }
    let mut table = Table::new(&["PERMISSION", "STATUS", "SCOPE", "EXPIRES"]);
    for p in &r.decided {
        table.row([
            p.permission.clone(),
            label(p.status()),
            join_or_none(effective_scope(p)),
            format_ms(p.expires_at_ms),
        ]);
    }
    format!("{head}:\n{}", table.render())
}

pub(super) fn state_change_text(verb: &str, s: &PluginSummary) -> String {
    let mut text = format!(
        "{verb} {}: state {}, runtime {}",
        s.name,
        label(s.state()),
        label(s.runtime())
    );
    if !s.state_reason.is_empty() {
        text.push_str(&format!(" ({})", s.state_reason));
    }
    escape_line(&text)
}

fn publish_text(r: &PublishEventResponse) -> String {
    let text = match r.delivered_to.len() {
        0 => format!("published {}; no plugin is subscribed", r.id),
        n => format!(
            "published {} to {n} plugin(s): {}",
            r.id,
            r.delivered_to.join(", ")
        ),
    };
    escape_line(&text)
}

fn event_line(e: &PluginEvent) -> String {
    let payload = String::from_utf8_lossy(&e.payload);
    [
        format_ms_precise(e.timestamp_ms),
        or_none(&e.plugin),
        e.topic.clone(),
        or_none(&e.id),
        or_none(&payload),
    ]
    .map(|field| escape_line(&field))
    .join(" ")
}

fn notification_line(n: &Notification) -> String {
    let text = format!(
        "{} {} {}: {}",
        format_ms_precise(n.ts_ms),
        label(n.kind()),
        or_none(&n.plugin),
        n.message
    );
    escape_line(&text)
}

pub(super) fn audit_table(r: &AuditResponse) -> String {
    if r.records.is_empty() {
        return "no audit records\n".to_string();
    }
    let mut table = Table::new(&[
        "TIME",
        "ACTOR",
        "ON_BEHALF_OF",
        "ACTION",
        "PLUGIN",
        "PERMISSION",
        "OUTCOME",
    ]);
    for a in &r.records {
        table.row([
            format_ms_precise(a.ts_ms),
            or_none(&a.actor),
            or_none(&a.on_behalf_of),
            a.action.clone(),
            or_none(&a.plugin),
            or_none(&a.permission),
            label(a.outcome()),
        ]);
    }
    table.render()
}

/// A value the daemon may leave unset (uid 0 is root, so unset is not 0).
fn opt_text(value: Option<u32>) -> String {
    value.map_or_else(|| NONE.to_string(), |v| v.to_string())
}

fn pid_text(pid: i32) -> String {
    if pid > 0 {
        pid.to_string()
    } else {
        NONE.to_string()
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

// ---- output and errors ----------------------------------------------------

/// Writes `text` to stdout, newline-terminated. Errors (notably a closed pipe
/// under `plexichat event watch | head`) propagate, marked as the CLI's own
/// output failing, so the caller can stop and tell them from the transport's.
pub(super) fn emit(text: &str) -> Result<()> {
    let write = || -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().map_err(|e| anyhow::Error::new(StdoutFailed(e)))
}

/// "1 of 2" while a dual approval is half done; the bare count otherwise.
fn approvals(perm: &PermissionRecord) -> String {
    match perm.required_approvals {
        0 => perm.approvers.len().to_string(),
        n => format!("{} of {n}", perm.approvers.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker_proto::admin::v1::{
        AuditRecord, Outcome, PendingRequest, PluginState, Risk, RuntimePhase,
    };

    fn perm(name: &str, status: PermissionStatus) -> PermissionRecord {
        PermissionRecord {
            permission: name.into(),
            risk: Risk::High.into(),
            requested_scope: vec!["api.example.org".into(), "cdn.example.org".into()],
            justification: "fetch previews".into(),
            status: status.into(),
            ..Default::default()
        }
    }

    #[test]
    fn pending_table_counts_approvals() {
        let mut granted_once = perm("net.http", PermissionStatus::Pending);
        granted_once.approvers = vec!["alice".into()];
        granted_once.required_approvals = 2;
        let resp = ListPendingResponse {
            pending: vec![PendingRequest {
                plugin: "echo".into(),
                plugin_version: "1.0.0".into(),
                permission: Some(granted_once),
                signer: None,
            }],
        };
        assert_eq!(
            pending_table(&resp),
            "PLUGIN  VERSION  PERMISSION  RISK  SCOPE                            APPROVALS  SIGNED BY  JUSTIFICATION\n\
             echo    1.0.0    net.http    high  api.example.org,cdn.example.org  1 of 2     unsigned   fetch previews\n"
        );
    }

    #[test]
    fn plugins_table_shows_dash_for_no_pid() {
        let resp = ListPluginsResponse {
            plugins: vec![PluginSummary {
                name: "echo".into(),
                version: "1.0.0".into(),
                state: PluginState::Disabled.into(),
                runtime: RuntimePhase::Stopped.into(),
                ..Default::default()
            }],
        };
        let text = plugins_table(&resp);
        assert!(
            text.starts_with("NAME  VERSION  STATE     RUNTIME  PID  RESTARTS  CORE\n"),
            "{text}"
        );
        assert!(
            text.contains("echo  1.0.0    disabled  stopped  -    0         no\n"),
            "{text}"
        );
    }

    #[test]
    fn install_text_reports_state_pending_and_hash() {
        let summary = PluginSummary {
            name: "echo".into(),
            version: "1.0.0".into(),
            state: PluginState::Disabled.into(),
            sha256: "ab12".into(),
            ..Default::default()
        };
        assert_eq!(
            install_text(&summary, Some(2)),
            "installed echo 1.0.0 (disabled); 2 permission request(s) pending review\nsha256: ab12\n"
        );
    }

    #[test]
    fn detail_text_includes_reason_and_permissions() {
        let mut granted = perm("net.http", PermissionStatus::Granted);
        granted.granted_scope = vec!["api.example.org".into()];
        granted.expires_at_ms = 1_801_353_600_000;
        granted.approvers = vec!["alice".into(), "bob".into()];
        granted.comment = "ok".into();
        let detail = PluginDetail {
            summary: Some(PluginSummary {
                name: "echo".into(),
                state: PluginState::Quarantined.into(),
                state_reason: "crashed 5 times in 5m".into(),
                ..Default::default()
            }),
            permissions: vec![granted, perm("fs.read", PermissionStatus::Pending)],
            resources: Some(Resources {
                cpu: 0.5,
                memory_bytes: 256 << 20,
                pids: 0,
            }),
            ..Default::default()
        };
        let text = detail_text(&detail);
        assert!(
            text.contains("state reason: crashed 5 times in 5m\n"),
            "{text}"
        );
        assert!(
            text.contains("resources:    cpu 0.5, memory 256 MiB\n"),
            "{text}"
        );
        assert!(text.contains("last exit:    -\n"), "{text}");
        assert!(
            text.contains("net.http    high  granted  api.example.org                  2027-01-31T00:00:00Z  alice,bob  ok\n"),
            "{text}"
        );
        assert!(
            text.contains("fs.read     high  pending  api.example.org,cdn.example.org  -"),
            "{text}"
        );
    }

    #[test]
    fn decision_text_lists_status_and_expiry() {
        let mut granted = perm("net.http", PermissionStatus::Granted);
        granted.expires_at_ms = 1_801_353_600_000;
        let text = decision_text(
            "approved",
            "echo",
            &DecisionResponse {
                decided: vec![granted],
            },
        );
        assert_eq!(
            text,
            "approved 1 permission(s) of echo:\n\
             PERMISSION  STATUS   SCOPE                            EXPIRES\n\
             net.http    granted  api.example.org,cdn.example.org  2027-01-31T00:00:00Z\n"
        );
    }

    #[test]
    fn audit_table_uses_millisecond_times() {
        let resp = AuditResponse {
            records: vec![AuditRecord {
                ts_ms: 1_801_353_600_042,
                actor: "uid:0".into(),
                action: "approve".into(),
                plugin: "echo".into(),
                permission: "net.http".into(),
                outcome: Outcome::Ok.into(),
                ..Default::default()
            }],
            next_before_id: 0,
        };
        assert_eq!(
            audit_table(&resp),
            "TIME                      ACTOR  ON_BEHALF_OF  ACTION   PLUGIN  PERMISSION  OUTCOME\n\
             2027-01-31T00:00:00.042Z  uid:0  -             approve  echo    net.http    ok\n"
        );
    }

    #[test]
    fn audit_json_is_the_response_message() {
        let resp = AuditResponse {
            records: vec![AuditRecord {
                id: 7,
                action: "install".into(),
                ..Default::default()
            }],
            next_before_id: 0,
        };
        let session = Session::new("/x".into(), None, OutputFormat::Json);
        let json: serde_json::Value =
            serde_json::from_str(&session.render(&resp, audit_table).unwrap()).unwrap();
        // Canonical protobuf JSON: int64 as a string, defaults left out.
        assert_eq!(json["records"][0]["id"], "7");
        assert_eq!(json["records"][0]["action"], "install");
        assert!(json["records"][0].get("outcome").is_none(), "{json}");
        assert!(json.get("next_before_id").is_none(), "{json}");
    }

    #[test]
    fn stream_lines_are_single_line() {
        let event = PluginEvent {
            id: "e1".into(),
            topic: "chat.message".into(),
            payload: b"hi\nthere".to_vec().into(),
            plugin: "echo".into(),
            timestamp_ms: 1_801_353_600_000,
        };
        assert_eq!(
            event_line(&event),
            "2027-01-31T00:00:00.000Z echo chat.message e1 hi\\nthere"
        );
        let session = Session::new("/x".into(), None, OutputFormat::Json);
        let line = session.render_line(&event, event_line).unwrap();
        assert!(!line.contains('\n') && line.starts_with('{'), "{line}");
        // Bytes in base64, as the JSON mapping has them.
        assert!(line.contains(r#""payload":"aGkKdGhlcmU=""#), "{line}");
    }

    #[test]
    fn empty_listings_say_so() {
        assert_eq!(
            plugins_table(&ListPluginsResponse::default()),
            "no plugins installed\n"
        );
        assert_eq!(audit_table(&AuditResponse::default()), "no audit records\n");
    }

    #[test]
    fn plugin_dir_must_exist_and_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            plugin_dir(dir.path()).unwrap(),
            dir.path().canonicalize().unwrap().to_str().unwrap()
        );
        let missing = dir.path().join("nope");
        let err = format!("{:#}", plugin_dir(&missing).unwrap_err());
        assert!(
            err.contains("nope") && err.contains("No such file"),
            "{err}"
        );
        let file = dir.path().join("plugin.toml");
        std::fs::write(&file, "").unwrap();
        assert!(plugin_dir(&file)
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
    }

    #[test]
    fn with_format_overrides_only_when_given() {
        let session = Session::new("/x".into(), None, OutputFormat::Table);
        assert_eq!(session.with_format(None).format, OutputFormat::Table);
        let session = Session::new("/x".into(), None, OutputFormat::Table);
        assert_eq!(
            session.with_format(Some(OutputFormat::Json)).format,
            OutputFormat::Json
        );
    }
}
