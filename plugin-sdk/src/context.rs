//! `PluginContext`: the handshaken broker connection and every call a plugin can make
//! on it (permissions, config, logging, events), cheap to clone into handlers.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;
use broker_proto::{BROKER_PROTOCOL_VERSIONS, MAX_BROKER_MESSAGE_BYTES};
use serde::Serialize;
use tokio::net::UnixStream;
use tonic::transport::Channel;
use tonic::Streaming;

use crate::{connection, Files, SdkError};

/// Version of this SDK, sent in the handshake so the supervisor can log and gate on it.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Environment variable holding the plugin's name, set by the supervisor.
pub const PLUGIN_NAME_ENV: &str = "PLEXICHAT_PLUGIN_NAME";
/// Environment variable holding the plugin's version, set by the supervisor.
pub const PLUGIN_VERSION_ENV: &str = "PLEXICHAT_PLUGIN_VERSION";

/// A permission in force for this plugin when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Catalog name, e.g. `database_read`.
    pub permission: String,
    /// What the grant covers (tables, paths, hosts...); empty when the permission is unscoped.
    pub scope: Vec<String>,
    /// Unix milliseconds; 0 means no expiry.
    pub expires_at_ms: i64,
}

/// A handshake grant as the SDK's type (a function, so no broker-proto type is public).
fn grant_from_pb(g: pb::Grant) -> Grant {
    Grant {
        permission: g.permission,
        scope: g.scope,
        expires_at_ms: g.expires_at_ms,
    }
}

/// Severity of a line sent with [`PluginContext::log`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing, usually filtered out.
    Trace,
    /// Diagnostics for the plugin's author.
    Debug,
    /// Normal operation worth recording.
    Info,
    /// Something unexpected the plugin recovered from.
    Warn,
    /// A failure the operator should look at.
    Error,
}

impl LogLevel {
    fn to_pb(self) -> pb::LogLevel {
        match self {
            LogLevel::Trace => pb::LogLevel::Trace,
            LogLevel::Debug => pb::LogLevel::Debug,
            LogLevel::Info => pb::LogLevel::Info,
            LogLevel::Warn => pb::LogLevel::Warn,
            LogLevel::Error => pb::LogLevel::Error,
        }
    }
}

/// A handshaken connection to the supervisor's broker.
///
/// Cloning is cheap (a reference count); every clone shares the one connection, so
/// hand clones to handlers and tasks freely. Obtain one with [`PluginContext::connect`],
/// or let [`Plugin::run`](crate::Plugin::run) do it and pass it to your handlers.
#[derive(Clone)]
pub struct PluginContext {
    inner: Arc<Inner>,
}

struct Inner {
    /// Calls the plugin makes, within its in-flight limit.
    client: BrokerClient<connection::Limited>,
    /// The same limit, for calls that wait for their slot before copying a payload.
    limited: connection::Limited,
    /// The session stream, replies and pongs: never queued behind the plugin's own
    /// calls, or a busy plugin would miss its health checks.
    control: BrokerClient<Channel>,
    plugin_name: String,
    plugin_version: String,
    protocol_version: u32,
    grants: Vec<Grant>,
    emit_prefix: String,
    max_message_bytes: usize,
    session_opened: AtomicBool,
}

impl fmt::Debug for PluginContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginContext")
            .field("plugin_name", &self.inner.plugin_name)
            .field("plugin_version", &self.inner.plugin_version)
            .field("protocol_version", &self.inner.protocol_version)
            .field("grants", &self.inner.grants)
            .field("emit_prefix", &self.inner.emit_prefix)
            .finish_non_exhaustive()
    }
}

impl PluginContext {
    /// Connects to the broker over the fd inherited from the supervisor and performs
    /// the handshake. The fd can be taken once per process: a second call returns
    /// [`SdkError::AlreadyConnected`]; share the context by cloning it instead.
    ///
    /// Must be called from inside a Tokio runtime.
    ///
    /// # Errors
    /// [`SdkError::NoBrokerFd`] outside the supervisor (no inherited fd 3);
    /// [`SdkError::AlreadyConnected`] on a second call; [`SdkError::HandshakeRejected`] when
    /// the supervisor refuses this plugin; [`SdkError::ProtocolMismatch`]; [`SdkError::Io`]
    /// outside a Tokio runtime; [`SdkError::Transport`] if the connection fails.
    pub async fn connect() -> Result<PluginContext, SdkError> {
        PluginContext::connect_limited(connection::DEFAULT_MAX_IN_FLIGHT).await
    }

    /// [`connect`](Self::connect) keeping at most `max_in_flight` broker calls in
    /// flight (at least 1): calls beyond it wait in the plugin for a free slot. The
    /// default is [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT).
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_limited(max_in_flight: usize) -> Result<PluginContext, SdkError> {
        let stream = connection::take_inherited_stream()?;
        PluginContext::connect_stream_limited(stream, max_in_flight).await
    }

    /// Connects over an already-open stream instead of the inherited fd: the
    /// [`testing`](crate::testing) broker's socketpair; plugins use [`PluginContext::connect`].
    pub(crate) async fn connect_stream(stream: UnixStream) -> Result<PluginContext, SdkError> {
        PluginContext::connect_stream_limited(stream, connection::DEFAULT_MAX_IN_FLIGHT).await
    }

    async fn connect_stream_limited(
        stream: UnixStream,
        max_in_flight: usize,
    ) -> Result<PluginContext, SdkError> {
        let channel = connection::channel_over(stream).await?;
        let request = pb::HandshakeRequest {
            protocol_versions: BROKER_PROTOCOL_VERSIONS.to_vec(),
            plugin_name: std::env::var(PLUGIN_NAME_ENV).unwrap_or_default(),
            plugin_version: std::env::var(PLUGIN_VERSION_ENV).unwrap_or_default(),
            sdk_version: SDK_VERSION.to_string(),
        };
        PluginContext::handshake(channel, request, max_in_flight).await
    }

    async fn handshake(
        channel: Channel,
        request: pb::HandshakeRequest,
        max_in_flight: usize,
    ) -> Result<PluginContext, SdkError> {
        let mut client = limited_client(channel.clone(), MAX_BROKER_MESSAGE_BYTES);
        let response = client
            .handshake(request.clone())
            .await
            .map_err(|status| {
                if is_connection_failure(&status) {
                    crate::error::from_status(status)
                } else {
                    crate::error::handshake_rejected(status)
                }
            })?
            .into_inner();
        if !BROKER_PROTOCOL_VERSIONS.contains(&response.protocol_version) {
            return Err(SdkError::ProtocolMismatch {
                offered: BROKER_PROTOCOL_VERSIONS.to_vec(),
                chosen: response.protocol_version,
            });
        }
        // The broker may ask for less than our compile-time ceiling, never more.
        let max_message_bytes = match usize::try_from(response.max_message_bytes) {
            Ok(0) | Err(_) => MAX_BROKER_MESSAGE_BYTES,
            Ok(n) => n.min(MAX_BROKER_MESSAGE_BYTES),
        };
        // The broker's answer is authoritative: it knows who is on this connection.
        let or_requested = |given: String, requested: String| {
            if given.is_empty() {
                requested
            } else {
                given
            }
        };
        let limited = connection::limit(channel.clone(), max_in_flight);
        Ok(PluginContext {
            inner: Arc::new(Inner {
                client: limited_client(limited.clone(), max_message_bytes),
                limited,
                control: limited_client(channel, max_message_bytes),
                plugin_name: or_requested(response.plugin_name, request.plugin_name),
                plugin_version: or_requested(response.plugin_version, request.plugin_version),
                protocol_version: response.protocol_version,
                grants: response.grants.into_iter().map(grant_from_pb).collect(),
                emit_prefix: response.emit_prefix,
                max_message_bytes,
                session_opened: AtomicBool::new(false),
            }),
        })
    }

    /// The plugin's name as the supervisor knows it.
    pub fn plugin_name(&self) -> &str {
        &self.inner.plugin_name
    }

    /// The plugin's version as the supervisor knows it.
    pub fn plugin_version(&self) -> &str {
        &self.inner.plugin_version
    }

    /// The broker protocol version negotiated in the handshake.
    pub fn protocol_version(&self) -> u32 {
        self.inner.protocol_version
    }

    /// Permissions in force at handshake time. Grants can be revoked or expire later;
    /// ask [`has_permission`](Self::has_permission) for the current answer.
    pub fn grants(&self) -> &[Grant] {
        &self.inner.grants
    }

    /// Topic prefix this plugin emits under, e.g. `plugin.hello.`.
    pub fn emit_prefix(&self) -> &str {
        &self.inner.emit_prefix
    }

    /// Largest message the broker accepts from or sends to this plugin.
    pub fn max_message_bytes(&self) -> usize {
        self.inner.max_message_bytes
    }

    /// Tonic clients need `&mut self` per call; clones share the underlying channel.
    fn client(&self) -> BrokerClient<connection::Limited> {
        self.inner.client.clone()
    }

    /// A client already holding one of the in-flight slots: a call that copies a
    /// large payload into its request waits here first, so calls queued behind the
    /// limit hold no copies (600 queued 1 MB emits would otherwise hold 600 MB).
    async fn client_with_slot(&self) -> Result<BrokerClient<connection::Limited>, SdkError> {
        let mut service = self.inner.limited.clone();
        tower::ServiceExt::ready(&mut service)
            .await
            .map_err(crate::error::from_transport)?;
        Ok(limited_client(service, self.inner.max_message_bytes))
    }

    /// File access through the broker: the plugin's `/data` directory, and granted
    /// paths elsewhere. See [`Files`].
    pub fn files(&self) -> Files {
        Files::new(self.client())
    }

    /// The application database through the broker: one statement per call, checked
    /// table by table against the plugin's grants. See [`Db`](crate::Db).
    pub fn db(&self) -> crate::Db {
        crate::Db::new(self.client())
    }

    /// Host actions the PlexiChat server performs for the plugin, within its
    /// `user_management`, `system_config` and `plugin_management` grants. See
    /// [`Host`](crate::Host).
    pub fn host(&self) -> crate::Host {
        crate::Host::new(self.client())
    }

    /// Outbound HTTP(S) made by the supervisor within the plugin's
    /// `network_outbound` grant. See [`Http`](crate::Http).
    pub fn http(&self) -> crate::Http {
        crate::Http::new(self.client())
    }

    /// Events: emit under the plugin's namespace, subscribe by hand. See
    /// [`Events`](crate::Events).
    pub fn events(&self) -> crate::Events {
        crate::Events::new(self.clone())
    }

    /// Host commands the supervisor runs, confined, within the plugin's
    /// `execute_commands` grant. See [`Commands`](crate::Commands).
    pub fn commands(&self) -> crate::Commands {
        crate::Commands::new(self.client())
    }

    /// Whether the plugin currently holds `permission` (any scope).
    ///
    /// # Errors
    /// Only when the broker cannot answer ([`SdkError::Broker`]) or is gone; a missing
    /// permission is `Ok(false)`.
    pub async fn has_permission(&self, permission: &str) -> Result<bool, SdkError> {
        self.has_permission_for(permission, "").await
    }

    /// Whether the plugin currently holds `permission` with a scope covering `scope`
    /// (a table, path, `host:port`... depending on the permission).
    ///
    /// # Errors
    /// As [`has_permission`](Self::has_permission).
    pub async fn has_permission_for(
        &self,
        permission: &str,
        scope: &str,
    ) -> Result<bool, SdkError> {
        let response = self
            .client()
            .has_permission(pb::HasPermissionRequest {
                permission: permission.to_string(),
                scope: scope.to_string(),
            })
            .await
            .map_err(crate::error::from_status)?;
        Ok(response.into_inner().granted)
    }

    /// Reads one of the plugin's config values; `None` when the key is unset.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for a malformed key;
    /// [`ErrorCode::Unavailable`](crate::ErrorCode::Unavailable) when the config store cannot be read.
    pub async fn config_get(&self, key: &str) -> Result<Option<String>, SdkError> {
        let response = self
            .client()
            .get_config(pb::GetConfigRequest {
                key: key.to_string(),
            })
            .await
            .map_err(crate::error::from_status)?
            .into_inner();
        Ok(response.found.then_some(response.value))
    }

    /// Stores one of the plugin's config values.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for a malformed key or
    /// a value the setting's declared type refuses;
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) over the size limits.
    pub async fn config_set(&self, key: &str, value: &str) -> Result<(), SdkError> {
        self.client()
            .set_config(pb::SetConfigRequest {
                key: key.to_string(),
                value: value.to_string(),
            })
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }

    /// Writes a line to the plugin's supervisor-side log.
    ///
    /// # Errors
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) when the plugin logs
    /// faster than its rate limit; [`SdkError::Transport`] if the supervisor went away.
    pub async fn log(&self, level: LogLevel, message: &str) -> Result<(), SdkError> {
        self.log_with_fields(level, message, &[]).await
    }

    /// Writes a line with structured `key = value` fields to the supervisor-side log.
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub async fn log_with_fields(
        &self,
        level: LogLevel,
        message: &str,
        fields: &[(&str, &str)],
    ) -> Result<(), SdkError> {
        self.client()
            .log(pb::LogRequest {
                level: i32::from(level.to_pb()),
                message: message.to_string(),
                fields: fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }

    /// [`log`](Self::log) at [`LogLevel::Debug`].
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub async fn debug(&self, message: &str) -> Result<(), SdkError> {
        self.log(LogLevel::Debug, message).await
    }

    /// [`log`](Self::log) at [`LogLevel::Info`].
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub async fn info(&self, message: &str) -> Result<(), SdkError> {
        self.log(LogLevel::Info, message).await
    }

    /// [`log`](Self::log) at [`LogLevel::Warn`].
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub async fn warn(&self, message: &str) -> Result<(), SdkError> {
        self.log(LogLevel::Warn, message).await
    }

    /// [`log`](Self::log) at [`LogLevel::Error`].
    ///
    /// # Errors
    /// As [`log`](Self::log).
    pub async fn error(&self, message: &str) -> Result<(), SdkError> {
        self.log(LogLevel::Error, message).await
    }

    /// Publishes an event on topic `<emit prefix><name>` (e.g. `greeted` becomes
    /// `plugin.hello.greeted`) and returns the id the supervisor assigned to it.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for a malformed name or a
    /// payload over the broker's limit; [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted)
    /// over the emit rate limit.
    pub async fn emit(&self, name: &str, payload: &[u8]) -> Result<String, SdkError> {
        let response = self
            .client_with_slot()
            .await?
            .emit_event(pb::EmitEventRequest {
                topic: format!("{}{name}", self.inner.emit_prefix),
                payload: payload.to_vec().into(),
            })
            .await
            .map_err(crate::error::from_status)?;
        Ok(response.into_inner().id)
    }

    /// [`emit`](Self::emit) with `value` encoded as JSON.
    ///
    /// # Errors
    /// [`SdkError::Json`] if `value` cannot be encoded; otherwise as [`emit`](Self::emit).
    pub async fn emit_json<T: Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<String, SdkError> {
        let payload = serde_json::to_vec(value)?;
        self.emit(name, &payload).await
    }

    /// Subscribes to more topics (exact, or `prefix.*`); returns the topics the
    /// broker now delivers. [`Plugin`](crate::Plugin) subscribes its handlers'
    /// patterns itself, so this is for plugins that manage subscriptions by hand.
    ///
    /// # Errors
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for a malformed pattern;
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) for a pattern entirely
    /// inside a sensitive topic without a `sensitive_events` grant covering it.
    pub async fn subscribe(&self, topics: &[&str]) -> Result<Vec<String>, SdkError> {
        let response = self
            .client()
            .subscribe(pb::SubscribeRequest {
                topics: topics.iter().map(|t| t.to_string()).collect(),
            })
            .await
            .map_err(crate::error::from_status)?;
        Ok(response.into_inner().topics)
    }

    /// Opens the session stream. The broker allows one per connection, so a second
    /// attempt through any clone fails locally instead of confusing the supervisor.
    pub(crate) async fn open_session(&self) -> Result<Streaming<pb::HostMessage>, SdkError> {
        if self.inner.session_opened.swap(true, Ordering::AcqRel) {
            return Err(SdkError::SessionAlreadyOpen);
        }
        Ok(self
            .inner
            .control
            .clone()
            .session(pb::SessionRequest {})
            .await
            .map_err(crate::error::from_status)?
            .into_inner())
    }

    pub(crate) async fn reply(&self, reply: pb::CommandReply) -> Result<(), SdkError> {
        self.inner
            .control
            .clone()
            .reply(reply)
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }

    pub(crate) async fn pong(&self, id: u64) -> Result<(), SdkError> {
        self.inner
            .control
            .clone()
            .pong(pb::PongRequest { id })
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }
}

fn limited_client<T>(service: T, max_message_bytes: usize) -> BrokerClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    BrokerClient::new(service)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// Whether `status` was synthesised by tonic because the connection itself failed,
/// as opposed to sent by the supervisor: only local statuses carry a source error
/// (the hyper/h2/io failure), and those come with a transport-level code.
pub(crate) fn is_connection_failure(status: &tonic::Status) -> bool {
    std::error::Error::source(status).is_some()
        && matches!(
            status.code(),
            tonic::Code::Unavailable
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
                | tonic::Code::Internal
        )
}
