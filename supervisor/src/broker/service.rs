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

use super::session::Session;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::catalog::{validate_scope_entry, Permission, ScopeShape};
use crate::clock::now_ms;
use crate::context::Shared;
use crate::manifest::validate_topic_pattern;
use crate::plugin_log::PluginLog;
use crate::store;

const MAX_CONFIG_VALUE_BYTES: usize = 64 * 1024;
const MAX_CONFIG_KEYS: u32 = 1024;
const MAX_TOPICS_PER_SUBSCRIBE: usize = 64;

pub struct BrokerService {
    pub shared: Arc<Shared>,
    pub session: Arc<Session>,
    pub log: Arc<PluginLog>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

impl BrokerService {
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

    fn emit_prefix(&self) -> String {
        format!("plugin.{}.", self.name())
    }
}

type HostStream = Pin<Box<dyn Stream<Item = Result<HostMessage, Status>> + Send>>;

#[tonic::async_trait]
impl Broker for BrokerService {
    async fn handshake(
        &self,
        request: Request<HandshakeRequest>,
    ) -> Result<Response<HandshakeResponse>, Status> {
        let req = request.into_inner();
        if req.plugin_name != self.name() {
            return Err(Status::permission_denied(format!(
                "this connection belongs to plugin `{}`, not `{}`",
                self.name(),
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
        if !self.session.complete_handshake() {
            return Err(Status::already_exists(
                "handshake already done on this connection",
            ));
        }
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
        let rx = self
            .session
            .open_stream()
            .ok_or_else(|| Status::already_exists("session stream already open"))?;
        let stream = tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok);
        Ok(Response::new(Box::pin(stream)))
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
        self.ready()?;
        let topics = request.into_inner().topics;
        if topics.len() > MAX_TOPICS_PER_SUBSCRIBE {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_TOPICS_PER_SUBSCRIBE} topics per call"
            )));
        }
        for t in &topics {
            validate_topic_pattern(t).map_err(Status::invalid_argument)?;
        }
        let topics = self.session.set_subscriptions(topics);
        Ok(Response::new(SubscribeResponse { topics }))
    }

    async fn emit_event(
        &self,
        request: Request<EmitEventRequest>,
    ) -> Result<Response<EmitEventResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        validate_topic_pattern(&req.topic).map_err(Status::invalid_argument)?;
        let prefix = self.emit_prefix();
        if !req.topic.starts_with(&prefix) || req.topic.ends_with(".*") {
            let entry = AuditEntry::new(&Actor::plugin(self.name()), "broker.emit", Outcome::Denied)
                .plugin(self.name())
                .detail(serde_json::json!({ "topic": req.topic, "reason": "outside the plugin's namespace" }));
            let _ = self.shared.store.audit(vec![entry]);
            return Err(Status::permission_denied(format!(
                "a plugin may only emit topics under `{prefix}*`, not `{}`",
                req.topic
            )));
        }
        let id = self.shared.hub.event_id();
        let ts = now_ms();
        self.shared
            .hub
            .publish_plugin_event(broker_proto::admin::v1::PluginEvent {
                id: id.clone(),
                topic: req.topic.clone(),
                payload: req.payload.clone(),
                plugin: self.name().to_string(),
                timestamp_ms: ts,
            });
        let event = Event {
            id: id.clone(),
            topic: req.topic,
            payload: req.payload,
            source: format!("plugin:{}", self.name()),
            timestamp_ms: ts,
        };
        self.shared.hub.deliver(&event, Some(self.name()));
        Ok(Response::new(EmitEventResponse { id }))
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        self.ready()?;
        let key = request.into_inner().key;
        validate_scope_entry(ScopeShape::Keys, &key).map_err(Status::invalid_argument)?;
        let value = self
            .shared
            .store
            .config_get(self.name(), &key)
            .map_err(internal)?;
        Ok(Response::new(GetConfigResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn set_config(
        &self,
        request: Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        validate_scope_entry(ScopeShape::Keys, &req.key).map_err(Status::invalid_argument)?;
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
        if !exists && store.config_count(self.name()).map_err(internal)? >= MAX_CONFIG_KEYS {
            return Err(Status::resource_exhausted(format!(
                "a plugin keeps at most {MAX_CONFIG_KEYS} config keys"
            )));
        }
        store
            .write(|tx| store::config_set(&tx.sql, self.name(), &req.key, &req.value))
            .map_err(internal)?;
        Ok(Response::new(SetConfigResponse {}))
    }

    async fn log(&self, request: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        let level = match LogLevel::try_from(req.level).unwrap_or(LogLevel::Info) {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
            LogLevel::Info | LogLevel::Unspecified => "info",
        };
        let mut fields: Vec<_> = req.fields.into_iter().collect();
        fields.sort();
        let mut line = req.message.replace(['\n', '\r'], " ");
        for (k, v) in fields {
            line.push_str(&format!(" {k}={v:?}"));
        }
        self.log.line(level, &line);
        Ok(Response::new(LogResponse {}))
    }

    async fn has_permission(
        &self,
        request: Request<HasPermissionRequest>,
    ) -> Result<Response<HasPermissionResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
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
    }
}
