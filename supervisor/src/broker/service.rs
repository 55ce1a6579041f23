//! The `plexichat.broker.v1.Broker` service for one plugin connection: every call
//! is answered for the plugin that owns the connection, after the handshake, with
//! the live grant read from the store.

use std::pin::Pin;
use std::sync::Arc;

use broker_proto::broker::v1::broker_server::Broker;
use broker_proto::broker::v1::*;
use broker_proto::{BROKER_PROTOCOL_VERSIONS, MAX_BROKER_MESSAGE_BYTES};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::database::{self, DbError};
use super::files::{self, Beneath, FileError, Target};
use super::network;
use super::ratelimit::{Refusal, Service};
use super::session::Session;
use crate::audit::{short, Actor, AuditEntry, Outcome};
use crate::catalog::{host_action_name, validate_config_key, Permission, ScopeShape};
use crate::clock::now_ms;
use crate::context::Shared;
use crate::manifest::validate_topic_pattern;
use crate::plugin_log::PluginLog;
use crate::store;

const MAX_CONFIG_VALUE_BYTES: usize = 64 * 1024;
const MAX_CONFIG_KEYS: u32 = 1024;
const MAX_TOPICS_PER_SUBSCRIBE: usize = 64;
const MAX_HOST_PAYLOAD_BYTES: usize = 64 * 1024;

/// The permissions whose actions the PlexiChat server executes.
fn host_permission(name: &str) -> Result<Permission, Status> {
    let permission: Permission = name
        .parse()
        .map_err(|e: crate::catalog::UnknownPermission| Status::invalid_argument(e.to_string()))?;
    match permission {
        Permission::UserManagement | Permission::SystemConfig | Permission::PluginManagement => {
            Ok(permission)
        }
        other => Err(Status::invalid_argument(format!(
            "{other} is not a host action; host actions are user_management, system_config and plugin_management"
        ))),
    }
}

/// Why a host action was refused: the whole name the grant did not cover.
fn host_action_denial(permission: Permission, name: &str) -> String {
    if let Some((target, action)) = name.split_once(':') {
        format!(
            "{permission} is not granted for action `{action}` on `{target}` (a scope entry `{target}` covers the target with no action; `{target}:{action}` covers that action)"
        )
    } else {
        format!("{permission} is not granted for `{name}`")
    }
}

pub struct BrokerService {
    pub shared: Arc<Shared>,
    /// Held across a write into the data dir, so the quota check and the write are one
    /// step for this plugin (its concurrent writes cannot both pass the same check).
    pub data_writes: tokio::sync::Mutex<()>,
    /// Runs the plugin's host commands (execute_commands) the way plugins are run.
    pub launcher: crate::launcher::Launcher,
    pub session: Arc<Session>,
    pub log: Arc<PluginLog>,
    pub limits: super::RateLimiter,
    /// What the plugin's calls may cost the supervisor (concurrency, queue, CPU).
    pub costs: Arc<super::Costs>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl BrokerService {
    /// What GetConfig answers for `key`: a declared setting's stored value, else its
    /// default; any other key from the plugin's own config.
    fn config_value(&self, key: &str) -> Result<Option<String>, store::StoreError> {
        let store = &self.shared.store;
        match self.session.declared.setting(key) {
            Some(setting) => Ok(store
                .setting_value(self.name(), key)?
                .or_else(|| setting.default.clone())),
            None => store.config_get(self.name(), key),
        }
    }

    /// Handshake done and within this plugin's rate for `service`; a refusal is
    /// RESOURCE_EXHAUSTED, audited once a second per service with the count, and
    /// answered after [`super::REFUSAL_DELAY`].
    async fn admit(&self, service: Service) -> Result<(), Status> {
        self.ready()?;
        self.shared
            .audit
            .admit_plugin(self.name(), service.as_str())?;
        let rate = self.broker(super::Rate::of);
        match self.limits.admit(service, std::time::Instant::now(), rate) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                if let Refusal::Report { count } = refusal {
                    let entry = AuditEntry::new(
                        &Actor::plugin(self.name()),
                        "broker.rate_limited",
                        Outcome::Denied,
                    )
                    .plugin(self.name())
                    .detail(serde_json::json!({
                        "service": service.as_str(),
                        "refused": count,
                        "rate_per_sec": rate.per_sec,
                        "burst": rate.burst,
                    }));
                    self.shared.audit.submit(entry).await?;
                }
                tokio::time::sleep(super::REFUSAL_DELAY).await;
                Err(Status::resource_exhausted(format!(
                    "rate limit: the {} service allows {} calls/s (burst {}) per plugin",
                    service.as_str(),
                    rate.per_sec,
                    rate.burst
                )))
            }
        }
    }

    /// `f` on the `[broker]` limits in force now (a reload changes them for the next
    /// call): a cheap per-thread snapshot, see `live`.
    fn broker<R>(&self, f: impl FnOnce(&crate::config::BrokerConfig) -> R) -> R {
        self.shared.live.with(|s| f(&s.broker))
    }

    fn ready(&self) -> Result<(), Status> {
        if self.session.handshaken() {
            Ok(())
        } else {
            Err(Status::failed_precondition("call Handshake first"))
        }
    }

    fn name(&self) -> &str {
        self.session.name()
    }

    fn grants(&self) -> Result<Vec<Grant>, Status> {
        let now = now_ms();
        Ok(self
            .shared
            .store
            .permissions(self.name())
            .map_err(internal)?
            .into_iter()
            .filter(|p| p.is_live(now))
            .map(|p| Grant {
                permission: p.permission.to_string(),
                scope: p.granted_scope,
                expires_at_ms: p.expires_at.unwrap_or(0),
            })
            .collect())
    }

    /// Runs one brokered call and audits it as `action`: ok, denied (the call was
    /// refused for want of a permission) or failed (any other error).
    async fn audited<T>(
        &self,
        action: &'static str,
        mut detail: serde_json::Value,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let result = self.within_deadline(call).await;
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(s) if s.code() == tonic::Code::PermissionDenied => Outcome::Denied,
            Err(_) => Outcome::Failed,
        };
        if let Err(status) = &result {
            detail["error"] = status.message().into();
        }
        let entry = AuditEntry::new(&Actor::plugin(self.name()), action, outcome)
            .plugin(self.name())
            .detail(detail);
        self.shared.audit.submit(entry).await?;
        result
    }

    /// Every brokered call's backstop deadline: `[broker] call_timeout`, behind each
    /// service's own (shorter) limit. gRPC semantics: the caller learns the call did
    /// not finish in time; an atomic operation still running may complete.
    async fn within_deadline<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let limit = self.broker(|b| b.call_timeout);
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(Status::deadline_exceeded(format!(
                "the call was not answered within {} ms (broker.call_timeout)",
                limit.as_millis()
            )))
        })
    }

    /// A pattern entirely within a sensitive topic needs a live `sensitive_events`
    /// grant covering it. Broader patterns are accepted; their sensitive events are
    /// filtered at delivery.
    fn check_sensitive_subscription(&self, pattern: &str) -> Result<(), Status> {
        let Some(sensitive) = self.shared.catalog.sensitive_containing(pattern) else {
            return Ok(());
        };
        let entries = self
            .shared
            .store
            .live_grant(self.name(), Permission::SensitiveEvents)
            .map_err(internal)?
            .map(|g| g.granted_scope)
            .unwrap_or_default();
        if entries
            .iter()
            .any(|e| ScopeShape::Topics.entry_within(pattern, e))
        {
            return Ok(());
        }
        Err(Status::permission_denied(format!(
            "`{}` is a sensitive topic (policy: `{sensitive}`); sensitive_events is not granted for it",
            short(pattern)
        )))
    }

    /// Refuses (and audits) a payload over `[broker] event_max_payload`.
    async fn check_payload(&self, topic: &str, len: usize) -> Result<(), Status> {
        let max = self.shared.hub.limits().max_payload;
        if len <= max {
            return Ok(());
        }
        let entry = AuditEntry::new(&Actor::plugin(self.name()), "broker.emit", Outcome::Failed)
            .plugin(self.name())
            .detail(
                serde_json::json!({ "topic": topic, "bytes": len, "reason": "payload too large" }),
            );
        self.shared.audit.submit(entry).await?;
        Err(Status::invalid_argument(format!(
            "event payloads are at most {max} bytes (broker.event_max_payload); this one has {len}"
        )))
    }

    fn emit_prefix(&self) -> String {
        format!("plugin.{}.", self.name())
    }
}

/// Which grant a file call needs outside the data dir.
#[derive(Clone, Copy)]
enum FileAccess {
    Read,
    Write,
}

impl FileAccess {
    fn permission(self) -> Permission {
        match self {
            FileAccess::Read => Permission::FileRead,
            FileAccess::Write => Permission::FileWrite,
        }
    }
}

/// Outcome of one file call, for its audit record.
struct FileCall<T> {
    access: FileAccess,
    op: &'static str,
    path: String,
    /// Set once the path was found outside the data dir (a grant was needed).
    permission: Option<Permission>,
    result: Result<(T, u64), FileError>,
}

impl BrokerService {
    /// Where `path` lands for this plugin: the data dir, or the granted scope entry
    /// covering it. Returns the permission that was needed, if any, with the answer.
    fn file_target(
        &self,
        path: &str,
        access: FileAccess,
    ) -> (Option<Permission>, Result<Target, FileError>) {
        if let Err(e) = files::validate_path(path) {
            return (None, Err(e));
        }
        let data_dir = self.shared.cfg.data_root().join(self.name());
        if let Some(target) = files::data_target(path, &data_dir) {
            return (None, Ok(target));
        }
        let permission = access.permission();
        let grant = self
            .shared
            .store
            .check_grant(&self.shared.catalog, self.name(), permission, Some(path))
            .map_err(|e| {
                FileError::Io(format!("checking {permission} for `{}`: {e}", short(path)))
            });
        let target = grant.and_then(|g| {
            g.and_then(|g| files::granted_target(path, &g.granted_scope))
                .ok_or_else(|| {
                    FileError::Denied(format!(
                        "{permission} is not granted for `{}` (paths outside /data need a grant whose scope covers them)",
                        short(path)
                    ))
                })
        });
        (Some(permission), target)
    }

    /// Authorises `path`, runs `op` on it off the async runtime (the quota check first
    /// for writes into the data dir) and audits the call, allowed or not.
    async fn file_call<T: Send + 'static>(
        &self,
        access: FileAccess,
        op: &'static str,
        path: String,
        new_bytes: Option<(u64, bool)>,
        run: impl FnOnce(&Beneath) -> Result<(T, u64), FileError> + Send + 'static,
    ) -> Result<T, Status> {
        let (permission, target) = self.file_target(&path, access);
        let quota = self.broker(|b| b.data_quota);
        let task_path = path.clone();
        let quota_applies = new_bytes.is_some() && target.as_ref().is_ok_and(|t| t.in_data);
        let _writing = if quota_applies {
            Some(self.data_writes.lock().await)
        } else {
            None
        };
        let result = match target {
            Err(e) => Err(e),
            Ok(target) => self
                .within_deadline(async {
                    self.costs
                        .blocking(move || {
                            let beneath = Beneath::open(&target, &task_path)?;
                            if let (true, Some((len, append))) = (target.in_data, new_bytes) {
                                let used = files::usage(&target.root).map_err(|e| {
                                    FileError::Io(format!("measuring the data directory: {e}"))
                                })?;
                                let old = if append { 0 } else { beneath.existing_size() };
                                files::check_quota(used, old, len, quota)?;
                            }
                            run(&beneath)
                        })
                        .await
                })
                .await
                .unwrap_or_else(|status| {
                    let message = status.message().to_string();
                    Err(match status.code() {
                        tonic::Code::DeadlineExceeded => FileError::Deadline(message),
                        tonic::Code::ResourceExhausted => FileError::Exhausted(message),
                        _ => FileError::Io(message),
                    })
                }),
        };
        self.audit_file_call(FileCall {
            access,
            op,
            path,
            permission,
            result,
        })
        .await
    }

    async fn audit_file_call<T>(&self, call: FileCall<T>) -> Result<T, Status> {
        let action = match call.access {
            FileAccess::Read => "broker.file_read",
            FileAccess::Write => "broker.file_write",
        };
        let (outcome, mut detail) = match &call.result {
            Ok((_, bytes)) => (Outcome::Ok, serde_json::json!({ "bytes": bytes })),
            Err(FileError::Denied(m)) => (Outcome::Denied, serde_json::json!({ "error": m })),
            Err(e) => (
                Outcome::Failed,
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        detail["op"] = call.op.into();
        detail["path"] = call.path.into();
        let mut entry = AuditEntry::new(&Actor::plugin(self.name()), action, outcome)
            .plugin(self.name())
            .detail(detail);
        if let Some(p) = call.permission {
            entry = entry.permission(p.to_string());
        }
        self.shared.audit.submit(entry).await?;
        call.result.map(|(value, _)| value).map_err(Status::from)
    }
}

impl BrokerService {
    /// The tables this plugin may read and write now: its live database grants, plus
    /// the tables the policy marks public for reading.
    fn table_access(&self) -> Result<database::TableAccess, Status> {
        let scope = |p: Permission| -> Result<Vec<String>, Status> {
            Ok(self
                .shared
                .store
                .live_grant(self.name(), p)
                .map_err(internal)?
                .map(|g| g.granted_scope)
                .unwrap_or_default())
        };
        let mut read = scope(Permission::DatabaseRead)?;
        read.extend(
            self.shared
                .catalog
                .spec(Permission::DatabaseRead)
                .public_scope
                .iter()
                .cloned(),
        );
        Ok(database::TableAccess::new(
            &read,
            &scope(Permission::DatabaseWrite)?,
        ))
    }

    async fn audit_query(
        &self,
        sql: &str,
        result: &Result<database::QueryOutput, DbError>,
    ) -> Result<(), Status> {
        const SHOWN_SQL: usize = 512;
        let mut shown: String = sql.chars().take(SHOWN_SQL).collect();
        if shown.len() < sql.len() {
            shown.push('…');
        }
        let (outcome, permission, mut detail) = match result {
            Ok(out) => (
                Outcome::Ok,
                if out.wrote {
                    Permission::DatabaseWrite
                } else {
                    Permission::DatabaseRead
                },
                serde_json::json!({ "rows": out.rows.len(), "rows_affected": out.rows_affected }),
            ),
            Err(e) => (
                if matches!(e, DbError::Denied(_)) {
                    Outcome::Denied
                } else {
                    Outcome::Failed
                },
                if e.to_string().contains("database_write") {
                    Permission::DatabaseWrite
                } else {
                    Permission::DatabaseRead
                },
                serde_json::json!({ "error": e.to_string() }),
            ),
        };
        detail["sql"] = shown.into();
        let entry = AuditEntry::new(&Actor::plugin(self.name()), "broker.database", outcome)
            .plugin(self.name())
            .permission(permission.to_string())
            .detail(detail);
        Ok(self.shared.audit.submit(entry).await?)
    }
}

impl BrokerService {
    /// One record per request: host, method, status and bytes (the query string is
    /// left out: it may carry credentials).
    async fn audit_http(
        &self,
        method: &str,
        url: &str,
        result: &Result<network::HttpAnswer, network::NetError>,
    ) -> Result<(), Status> {
        let parsed = reqwest::Url::parse(url).ok();
        let host = parsed
            .as_ref()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)));
        let path = parsed.as_ref().map(|u| u.path().to_string());
        let mut detail = serde_json::json!({ "method": method, "host": host, "path": path });
        let outcome = match result {
            Ok(a) => {
                detail["status"] = a.status.into();
                detail["bytes"] = a.body.len().into();
                Outcome::Ok
            }
            Err(e) => {
                detail["error"] = e.to_string().into();
                if matches!(e, network::NetError::Denied(_)) {
                    Outcome::Denied
                } else {
                    Outcome::Failed
                }
            }
        };
        let entry = AuditEntry::new(&Actor::plugin(self.name()), "broker.http", outcome)
            .plugin(self.name())
            .permission(Permission::NetworkOutbound.to_string())
            .detail(detail);
        Ok(self.shared.audit.submit(entry).await?)
    }
}

/// A handshake's checks, the real broker's and the trial's: the plugin names itself as
/// the one this connection belongs to, speaks a protocol version the supervisor does,
/// and shakes hands once. Returns the version agreed.
pub(crate) fn accept_handshake(
    session: &Session,
    name: &str,
    req: &HandshakeRequest,
) -> Result<u32, Status> {
    if req.plugin_name != name {
        return Err(Status::permission_denied(format!(
            "this connection belongs to plugin `{name}`, not `{}`",
            req.plugin_name
        )));
    }
    let version = req
        .protocol_versions
        .iter()
        .filter(|v| BROKER_PROTOCOL_VERSIONS.contains(v))
        .max()
        .copied()
        .ok_or_else(|| {
            Status::failed_precondition(format!(
                "no common protocol version: plugin speaks {:?}, supervisor speaks {:?}",
                req.protocol_versions, BROKER_PROTOCOL_VERSIONS
            ))
        })?;
    if !session.complete_handshake() {
        return Err(Status::already_exists(
            "handshake already done on this connection",
        ));
    }
    Ok(version)
}

/// The one host-to-plugin stream of a connection (events, invocations, pings), the
/// real broker's and the trial's.
pub(crate) fn open_session_stream(session: &Session) -> Result<HostStream, Status> {
    let rx = session
        .open_stream()
        .ok_or_else(|| Status::already_exists("session stream already open"))?;
    let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), |o| Ok(o.into_message()));
    Ok(Box::pin(stream))
}

pub(crate) fn from_sql_value(v: SqlValue) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v.kind {
        None | Some(sql_value::Kind::Null(_)) => Value::Null,
        Some(sql_value::Kind::Integer(i)) => Value::Integer(i),
        Some(sql_value::Kind::Real(r)) => Value::Real(r),
        Some(sql_value::Kind::Text(t)) => Value::Text(t),
        Some(sql_value::Kind::Blob(b)) => Value::Blob(b),
    }
}

pub(crate) fn to_sql_value(v: rusqlite::types::Value) -> SqlValue {
    use rusqlite::types::Value;
    let kind = match v {
        Value::Null => sql_value::Kind::Null(true),
        Value::Integer(i) => sql_value::Kind::Integer(i),
        Value::Real(r) => sql_value::Kind::Real(r),
        Value::Text(t) => sql_value::Kind::Text(t),
        Value::Blob(b) => sql_value::Kind::Blob(b),
    };
    SqlValue { kind: Some(kind) }
}

pub(crate) type HostStream = Pin<Box<dyn Stream<Item = Result<HostMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Broker for BrokerService {
    async fn handshake(
        &self,
        request: Request<HandshakeRequest>,
    ) -> Result<Response<HandshakeResponse>, Status> {
        let req = request.into_inner();
        let version = accept_handshake(&self.session, self.name(), &req)?;
        tracing::info!(plugin = self.name(), protocol = version, sdk = %req.sdk_version, "handshake");
        Ok(Response::new(HandshakeResponse {
            protocol_version: version,
            plugin_name: self.name().to_string(),
            plugin_version: self.session.version.clone(),
            grants: self.grants()?,
            emit_prefix: self.emit_prefix(),
            max_message_bytes: MAX_BROKER_MESSAGE_BYTES as u32,
        }))
    }

    type SessionStream = HostStream;

    async fn session(
        &self,
        _request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        self.ready()?;
        open_session_stream(&self.session).map(Response::new)
    }

    async fn reply(&self, request: Request<CommandReply>) -> Result<Response<ReplyAck>, Status> {
        self.ready()?;
        let r = request.into_inner();
        let result = if r.ok { Ok(r.output) } else { Err(r.error) };
        if !self.session.complete_invocation(&r.invocation_id, result) {
            tracing::debug!(plugin = self.name(), id = %r.invocation_id, "late or unknown reply dropped");
        }
        Ok(Response::new(ReplyAck {}))
    }

    async fn pong(&self, request: Request<PongRequest>) -> Result<Response<PongAck>, Status> {
        self.ready()?;
        self.session.complete_ping(request.into_inner().id);
        Ok(Response::new(PongAck {}))
    }

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<SubscribeResponse>, Status> {
        self.admit(Service::Events).await?;
        let topics = request.into_inner().topics;
        self.audited(
            "broker.subscribe",
            serde_json::json!({ "topics": topics.len() }),
            async {
                if topics.len() > MAX_TOPICS_PER_SUBSCRIBE {
                    return Err(Status::invalid_argument(format!(
                        "at most {MAX_TOPICS_PER_SUBSCRIBE} topics per call"
                    )));
                }
                for t in &topics {
                    validate_topic_pattern(t).map_err(Status::invalid_argument)?;
                    self.check_sensitive_subscription(t)?;
                }
                let max = self.broker(|b| b.max_subscriptions);
                let topics = self
                    .session
                    .add_subscriptions(&topics, max)
                    .map_err(|e| Status::resource_exhausted(e.to_string()))?;
                Ok(Response::new(SubscribeResponse { topics }))
            },
        )
        .await
    }

    async fn emit_event(
        &self,
        request: Request<EmitEventRequest>,
    ) -> Result<Response<EmitEventResponse>, Status> {
        self.admit(Service::Events).await?;
        let req = request.into_inner();
        validate_topic_pattern(&req.topic).map_err(Status::invalid_argument)?;
        let prefix = self.emit_prefix();
        if !req.topic.starts_with(&prefix) || req.topic.ends_with(".*") {
            let entry = AuditEntry::new(&Actor::plugin(self.name()), "broker.emit", Outcome::Denied)
                .plugin(self.name())
                .detail(serde_json::json!({ "topic": req.topic, "reason": "outside the plugin's namespace" }));
            self.shared.audit.submit(entry).await?;
            return Err(Status::permission_denied(format!(
                "a plugin may only emit topics under `{prefix}*`, not `{}`",
                short(&req.topic)
            )));
        }
        self.check_payload(&req.topic, req.payload.len()).await?;
        let id = self.shared.hub.event_id();
        let topic = req.topic;
        let event = Event {
            id: id.clone(),
            topic: topic.clone(),
            payload: req.payload,
            source: format!("plugin:{}", self.name()),
            timestamp_ms: now_ms(),
        };
        let audience = super::event_audience(&self.shared, &topic);
        // Refusals for a full budget are counted and audited in aggregate by the hub.
        let delivered = self
            .shared
            .hub
            .publish(super::Emitter::Plugin(self.name()), event, &audience)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        self.shared.audit.record(
            AuditEntry::new(&Actor::plugin(self.name()), "broker.emit", Outcome::Ok)
                .plugin(self.name())
                .detail(serde_json::json!({
                    "topic": topic,
                    "id": id,
                    "delivered_to": delivered.len(),
                })),
        );
        Ok(Response::new(EmitEventResponse { id }))
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        self.admit(Service::Config).await?;
        let key = request.into_inner().key;
        self.audited(
            "broker.config_get",
            serde_json::json!({ "key": key.clone() }),
            async {
                validate_config_key(&key).map_err(Status::invalid_argument)?;
                let value = self.config_value(&key).map_err(internal)?;
                Ok(Response::new(GetConfigResponse {
                    found: value.is_some(),
                    value: value.unwrap_or_default(),
                }))
            },
        )
        .await
    }

    async fn set_config(
        &self,
        request: Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        self.admit(Service::Config).await?;
        let req = request.into_inner();
        self.audited(
            "broker.config_set",
            serde_json::json!({ "key": req.key.clone(), "bytes": req.value.len() }),
            async {
                validate_config_key(&req.key).map_err(Status::invalid_argument)?;
                if self.session.declared.setting(&req.key).is_some() {
                    return Err(Status::permission_denied(format!(
                        "`{}` is a declared setting: the operator sets it (plexichat plugin config set {} {})",
                        req.key,
                        self.name(),
                        req.key
                    )));
                }
                if req.value.len() > MAX_CONFIG_VALUE_BYTES {
                    return Err(Status::invalid_argument(format!(
                        "config values are at most {MAX_CONFIG_VALUE_BYTES} bytes"
                    )));
                }
                let store = &self.shared.store;
                let exists = store
                    .config_get(self.name(), &req.key)
                    .map_err(internal)?
                    .is_some();
                if !exists && store.config_count(self.name()).map_err(internal)? >= MAX_CONFIG_KEYS
                {
                    return Err(Status::resource_exhausted(format!(
                        "a plugin keeps at most {MAX_CONFIG_KEYS} config keys"
                    )));
                }
                store
                    .write(|tx| store::config_set(&tx.sql, self.name(), &req.key, &req.value))
                    .map_err(internal)?;
                Ok(Response::new(SetConfigResponse {}))
            },
        )
        .await
    }

    async fn log(&self, request: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        self.admit(Service::Log).await?;
        let req = request.into_inner();
        self.audited(
            "broker.log",
            serde_json::json!({ "bytes": req.message.len() }),
            async {
                let level = match LogLevel::try_from(req.level).unwrap_or(LogLevel::Info) {
                    LogLevel::Trace => "trace",
                    LogLevel::Debug => "debug",
                    LogLevel::Warn => "warn",
                    LogLevel::Error => "error",
                    LogLevel::Info | LogLevel::Unspecified => "info",
                };
                let mut fields: Vec<_> = req.fields.into_iter().collect();
                fields.sort();
                // The log escapes control characters in the whole line; a key that is
                // not a plain word is quoted like a value, so no field can pose as two.
                let mut line = req.message;
                for (k, v) in fields {
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if plain {
                        line.push_str(&format!(" {k}={v:?}"));
                    } else {
                        line.push_str(&format!(" {k:?}={v:?}"));
                    }
                }
                self.log.line(level, &line);
                Ok(Response::new(LogResponse {}))
            },
        )
        .await
    }

    async fn report_imports(
        &self,
        request: Request<ReportImportsRequest>,
    ) -> Result<Response<ReportImportsResponse>, Status> {
        self.admit(Service::Log).await?;
        let modules = request.into_inner().modules;
        super::imports::validate(&modules).map_err(Status::invalid_argument)?;
        let recorded = self.session.imports.fresh(modules, now_ms());
        // Audited before they are kept: a name whose record could not be written is
        // still fresh at the next report, and this call fails UNAVAILABLE.
        for import in &recorded.new {
            let entry = AuditEntry::new(&Actor::plugin(self.name()), "plugin.import", Outcome::Ok)
                .plugin(self.name())
                .detail(serde_json::json!({ "module": import.name, "origin": import.origin }));
            self.shared.audit.submit(entry).await?;
        }
        self.session.imports.commit(&recorded);
        Ok(Response::new(ReportImportsResponse {
            recorded: u32::try_from(recorded.new.len()).unwrap_or(u32::MAX),
            over_cap: recorded.over_cap,
        }))
    }

    async fn has_permission(
        &self,
        request: Request<HasPermissionRequest>,
    ) -> Result<Response<HasPermissionResponse>, Status> {
        self.admit(Service::Permissions).await?;
        let req = request.into_inner();
        self.audited(
            "broker.has_permission",
            serde_json::json!({ "permission": req.permission.clone(), "scope": req.scope.clone() }),
            async {
                let permission: Permission =
                    req.permission
                        .parse()
                        .map_err(|e: crate::catalog::UnknownPermission| {
                            Status::invalid_argument(e.to_string())
                        })?;
                let target = (!req.scope.is_empty()).then_some(req.scope.as_str());
                let grant = self
                    .shared
                    .store
                    .check_grant(&self.shared.catalog, self.name(), permission, target)
                    .map_err(internal)?;
                Ok(Response::new(HasPermissionResponse {
                    granted: grant.is_some(),
                    expires_at_ms: grant.and_then(|g| g.expires_at).unwrap_or(0),
                }))
            },
        )
        .await
    }

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        self.admit(Service::Files).await?;
        let req = request.into_inner();
        let chunk = self
            .file_call(FileAccess::Read, "read", req.path, None, move |b| {
                let chunk = b.read(req.offset, req.max_bytes)?;
                let n = chunk.data.len() as u64;
                Ok((chunk, n))
            })
            .await?;
        Ok(Response::new(ReadFileResponse {
            data: chunk.data,
            eof: chunk.eof,
            size: chunk.size,
        }))
    }

    async fn write_file(
        &self,
        request: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        self.admit(Service::Files).await?;
        let req = request.into_inner();
        // Checked before anything else so an oversized write never touches the disk.
        if req.data.len() > files::MAX_CHUNK_BYTES {
            return Err(Status::invalid_argument(format!(
                "at most {} bytes per write; append the rest in chunks",
                files::MAX_CHUNK_BYTES
            )));
        }
        let len = req.data.len() as u64;
        let op = if req.append { "append" } else { "write" };
        let size = self
            .file_call(
                FileAccess::Write,
                op,
                req.path,
                Some((len, req.append)),
                move |b| Ok((b.write(&req.data, req.append)?, len)),
            )
            .await?;
        Ok(Response::new(WriteFileResponse { size }))
    }

    async fn list_dir(
        &self,
        request: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        self.admit(Service::Files).await?;
        let path = request.into_inner().path;
        let entries = self
            .file_call(FileAccess::Read, "list", path, None, |b| Ok((b.list()?, 0)))
            .await?;
        Ok(Response::new(ListDirResponse {
            entries: entries
                .into_iter()
                .map(|e| DirEntry {
                    name: e.name,
                    kind: e.kind.to_string(),
                    size: e.size,
                })
                .collect(),
        }))
    }

    async fn stat_path(
        &self,
        request: Request<StatRequest>,
    ) -> Result<Response<StatResponse>, Status> {
        self.admit(Service::Files).await?;
        let path = request.into_inner().path;
        let stat = self
            .file_call(FileAccess::Read, "stat", path, None, |b| Ok((b.stat()?, 0)))
            .await?;
        Ok(Response::new(StatResponse {
            kind: stat.kind.to_string(),
            size: stat.size,
            modified_ms: stat.modified_ms,
        }))
    }

    async fn remove_path(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        self.admit(Service::Files).await?;
        let path = request.into_inner().path;
        self.file_call(FileAccess::Write, "remove", path, None, |b| {
            Ok((b.remove()?, 0))
        })
        .await?;
        Ok(Response::new(RemoveResponse {}))
    }

    async fn make_dir(
        &self,
        request: Request<MakeDirRequest>,
    ) -> Result<Response<MakeDirResponse>, Status> {
        self.admit(Service::Files).await?;
        let path = request.into_inner().path;
        self.file_call(FileAccess::Write, "mkdir", path, None, |b| {
            Ok((b.mkdir()?, 0))
        })
        .await?;
        Ok(Response::new(MakeDirResponse {}))
    }

    async fn query(
        &self,
        request: Request<QueryRequest>,
    ) -> Result<Response<QueryResponse>, Status> {
        self.admit(Service::Database).await?;
        let req = request.into_inner();
        let params: Vec<_> = req.params.into_iter().map(from_sql_value).collect();
        let access = self.table_access()?;
        // Which database is fixed at start (`broker.database` needs a restart).
        let path = self.shared.cfg.app_database();
        let limits = self.broker(|b| database::DbLimits {
            statement_time: b.db_statement_time,
            max_rows: b.db_max_rows,
            max_bytes: usize::try_from(b.db_max_bytes).unwrap_or(usize::MAX),
            max_value_bytes: usize::try_from(b.db_max_value_bytes).unwrap_or(usize::MAX),
        });
        let sql = req.sql.clone();
        let result = self
            .within_deadline(async {
                self.costs
                    .blocking(move || database::run(&path, &sql, &params, &access, limits))
                    .await
            })
            .await
            .unwrap_or_else(|status| {
                let message = status.message().to_string();
                Err(match status.code() {
                    tonic::Code::ResourceExhausted => DbError::Exhausted(message),
                    tonic::Code::DeadlineExceeded => DbError::DeadlineExceeded(message),
                    _ => DbError::Failed(message),
                })
            });
        self.audit_query(&req.sql, &result).await?;
        let out = result?;
        Ok(Response::new(QueryResponse {
            columns: out.columns,
            rows: out
                .rows
                .into_iter()
                .map(|r| SqlRow {
                    values: r.into_iter().map(to_sql_value).collect(),
                })
                .collect(),
            rows_affected: out.rows_affected,
        }))
    }

    async fn host_action(
        &self,
        request: Request<HostActionRequest>,
    ) -> Result<Response<HostActionResponse>, Status> {
        self.admit(Service::Host).await?;
        let req = request.into_inner();
        let detail = serde_json::json!({
            "permission": req.permission,
            "target": req.target,
            "action": req.action,
            "bytes": req.payload.len(),
        });
        self.audited("broker.host_action", detail, async {
            let permission = host_permission(&req.permission)?;
            if req.payload.len() > MAX_HOST_PAYLOAD_BYTES {
                return Err(Status::invalid_argument(format!(
                    "host action payloads are at most {MAX_HOST_PAYLOAD_BYTES} bytes"
                )));
            }
            // The grant covers what the server will execute: the target and the action.
            let shape = self.shared.catalog.spec(permission).scope;
            let name = host_action_name(shape, &req.target, &req.action)
                .map_err(Status::invalid_argument)?;
            let grant = self
                .shared
                .store
                .check_grant(&self.shared.catalog, self.name(), permission, Some(&name))
                .map_err(internal)?;
            if grant.is_none() {
                return Err(Status::permission_denied(host_action_denial(
                    permission, &name,
                )));
            }
            let call = broker_proto::admin::v1::HostActionCall {
                plugin: self.name().to_string(),
                permission: permission.to_string(),
                target: req.target.clone(),
                action: req.action.clone(),
                payload: req.payload.clone(),
                ..Default::default()
            };
            let result = self
                .shared
                .host_actions
                .call(call, self.shared.cfg.runtime.command_timeout)
                .await?;
            Ok(Response::new(HostActionResponse { result }))
        })
        .await
    }

    async fn http(&self, request: Request<HttpRequest>) -> Result<Response<HttpResponse>, Status> {
        self.admit(Service::Network).await?;
        let req = request.into_inner();
        let grant = network::Grant {
            entries: self
                .shared
                .store
                .live_grant(self.name(), Permission::NetworkOutbound)
                .map_err(internal)?
                .map(|g| g.granted_scope)
                .unwrap_or_default(),
        };
        let limits = self.broker(|b| network::HttpLimits {
            timeout: b.http_timeout,
            max_response_bytes: usize::try_from(b.http_max_response_bytes).unwrap_or(usize::MAX),
            max_redirects: b.http_max_redirects,
        });
        let call = network::HttpCall {
            method: req.method.clone(),
            url: req.url.clone(),
            headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: req.body,
        };
        let result = self
            .within_deadline(async {
                let _slot = self.costs.slot().await?;
                Ok(network::fetch(&grant, call, limits).await)
            })
            .await
            .unwrap_or_else(|status| {
                Err(network::NetError::DeadlineExceeded(
                    status.message().to_string(),
                ))
            });
        self.audit_http(&req.method, &req.url, &result).await?;
        let answer = result?;
        Ok(Response::new(HttpResponse {
            status: u32::from(answer.status),
            headers: answer
                .headers
                .into_iter()
                .map(|(name, value)| HttpHeader { name, value })
                .collect(),
            body: answer.body,
            url: answer.url,
        }))
    }

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        self.admit(Service::Commands).await?;
        let argv = request.into_inner().argv;
        self.audited("broker.execute", serde_json::json!({ "argv": argv }), async {
            if argv.is_empty() || argv.len() > 256 || argv.iter().map(String::len).sum::<usize>() > 64 * 1024 {
                return Err(Status::invalid_argument("argv needs 1 to 256 arguments, at most 64 KiB in all"));
            }
            if argv.iter().any(|a| a.contains('\0')) {
                return Err(Status::invalid_argument("arguments cannot contain NUL"));
            }
            let entries = self
                .shared
                .store
                .live_grant(self.name(), Permission::ExecuteCommands)
                .map_err(internal)?
                .map(|g| g.granted_scope)
                .unwrap_or_default();
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            if !entries.iter().any(|e| crate::catalog::argv_allowed(e, &words)) {
                return Err(Status::permission_denied(format!(
                    "execute_commands is not granted for {} (an approved entry must match the argv exactly, or end in ` ...` to allow more arguments)",
                    short(&format!("{words:?}"))
                )));
            }
            let limits = self.broker(|b| crate::runtime::commands::CommandLimits {
                timeout: b.exec_timeout,
                max_output_bytes: usize::try_from(b.exec_max_output_bytes).unwrap_or(usize::MAX),
            });
            let _slot = self.costs.slot().await?;
            let out =
                crate::runtime::commands::run(&self.shared, &self.launcher, self.name(), &argv, limits)
                    .await?;
            Ok(Response::new(ExecuteResponse {
                exited: out.exit_code.is_some(),
                exit_code: out.exit_code.unwrap_or(0),
                signal: out.signal.unwrap_or(0),
                stdout: out.stdout,
                stderr: out.stderr,
                truncated: out.truncated,
            }))
        })
        .await
    }
}
