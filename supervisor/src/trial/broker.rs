//! The broker a plugin under trial talks to: the session calls work as usual, every
//! other call is recorded and refused (PERMISSION_DENIED) or answered from a fixture.

// A separate implementation of the Broker service rather than hooks in the real one:
// it holds no store, hub, network client or path to the plugin's real data, so no call
// can reach a real resource, whatever the real service grows. The calls that need no
// permission and touch nothing outside the trial (a plain subscription, a log line, a
// declared setting's default, has_permission) are answered; the rest are refused.

use std::path::PathBuf;
use std::sync::Arc;

use broker_proto::broker::v1::broker_server::{Broker, BrokerServer};
use broker_proto::broker::v1::*;
use broker_proto::MAX_BROKER_MESSAGE_BYTES;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use super::{HttpFixture, Recorder};
use crate::broker::database::{self, DbLimits, TableAccess};
use crate::broker::Session;
use crate::catalog::{host_action_name, Catalog, Permission};
use crate::plugin_log::PluginLog;

/// The sample database a trial answers database calls from: a private copy.
pub struct DbFixture {
    pub path: PathBuf,
    /// Every table of the copy, readable and writable.
    pub access: TableAccess,
    pub limits: DbLimits,
}

impl DbFixture {
    /// Opens the copy at `path` and lists its tables.
    pub fn open(path: PathBuf, limits: DbLimits) -> Result<DbFixture, String> {
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .map_err(|e| format!("fixture database: {e}"))?;
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type IN ('table', 'view')")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .map_err(|e| format!("fixture database: {e}"))?;
        Ok(DbFixture {
            path,
            access: TableAccess::new(&tables, &tables),
            limits,
        })
    }
}

pub struct TrialBroker {
    pub session: Arc<Session>,
    pub recorder: Arc<Recorder>,
    pub log: Arc<PluginLog>,
    pub catalog: Catalog,
    pub db: Option<Arc<DbFixture>>,
    pub http: Option<HttpFixture>,
}

/// Serves the trial broker on the plugin's connection until aborted.
pub fn serve(conn: UnixStream, broker: TrialBroker) -> JoinHandle<()> {
    let plugin = broker.session.name().to_string();
    tokio::spawn(async move {
        let server = BrokerServer::new(broker)
            .max_decoding_message_size(MAX_BROKER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_BROKER_MESSAGE_BYTES);
        let incoming = tokio_stream::StreamExt::chain(
            tokio_stream::once(Ok::<_, std::io::Error>(conn)),
            tokio_stream::pending(),
        );
        let result = crate::broker::http2::server()
            .add_service(server)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = result {
            tracing::warn!(plugin, error = %e, "trial broker connection ended with an error");
        }
    })
}

impl TrialBroker {
    fn name(&self) -> &str {
        self.session.name()
    }

    fn ready(&self) -> Result<(), Status> {
        if self.session.handshaken() {
            Ok(())
        } else {
            Err(Status::failed_precondition("call Handshake first"))
        }
    }

    /// Records the call and refuses it, after the same delay as a real refusal for
    /// being over a limit: a plugin retrying in a loop waits on its own streams.
    async fn refuse<T>(
        &self,
        permission: Option<Permission>,
        target: &str,
        call: &'static str,
    ) -> Result<T, Status> {
        self.ready()?;
        self.recorder.record(permission, target, call, false);
        tokio::time::sleep(crate::broker::REFUSAL_DELAY).await;
        let what = permission.map_or_else(|| call.to_string(), |p| p.to_string());
        Err(Status::permission_denied(format!(
            "trial run: {what} is not granted for `{}` (nothing is granted during a trial; the call was recorded)",
            crate::audit::short(target)
        )))
    }

    async fn file_call<T>(&self, path: &str, write: bool, call: &'static str) -> Result<T, Status> {
        // In a real run /data needs no grant; the trial's data dir is throwaway and the
        // broker serves nothing from it, so those calls are recorded without one.
        let in_data = path == "/data" || path.starts_with("/data/");
        let permission = match (in_data, write) {
            (true, _) => None,
            (false, false) => Some(Permission::FileRead),
            (false, true) => Some(Permission::FileWrite),
        };
        self.refuse(permission, path, call).await
    }

    async fn query_fixture(
        &self,
        fixture: Arc<DbFixture>,
        req: QueryRequest,
    ) -> Result<QueryResponse, Status> {
        let params: Vec<_> = req
            .params
            .into_iter()
            .map(crate::broker::from_sql_value)
            .collect();
        let out = tokio::task::spawn_blocking(move || {
            database::run(
                &fixture.path,
                &req.sql,
                &params,
                &fixture.access,
                fixture.limits,
            )
        })
        .await
        .map_err(|e| Status::internal(format!("fixture query: {e}")))??;
        Ok(QueryResponse {
            columns: out.columns,
            rows: out
                .rows
                .into_iter()
                .map(|r| SqlRow {
                    values: r.into_iter().map(crate::broker::to_sql_value).collect(),
                })
                .collect(),
            rows_affected: out.rows_affected,
        })
    }
}

/// `host:port` of a URL, as a network_outbound scope names it.
fn host_port(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| url.to_string())
}

use crate::broker::HostStream;

#[tonic::async_trait]
impl Broker for TrialBroker {
    async fn handshake(
        &self,
        request: Request<HandshakeRequest>,
    ) -> Result<Response<HandshakeResponse>, Status> {
        let req = request.into_inner();
        let version = crate::broker::accept_handshake(&self.session, self.name(), &req)?;
        Ok(Response::new(HandshakeResponse {
            protocol_version: version,
            plugin_name: self.name().to_string(),
            plugin_version: self.session.version.clone(),
            grants: Vec::new(),
            emit_prefix: format!("plugin.{}.", self.name()),
            max_message_bytes: MAX_BROKER_MESSAGE_BYTES as u32,
        }))
    }

    type SessionStream = HostStream;

    async fn session(
        &self,
        _request: Request<SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        self.ready()?;
        crate::broker::open_session_stream(&self.session).map(Response::new)
    }

    async fn reply(&self, request: Request<CommandReply>) -> Result<Response<ReplyAck>, Status> {
        self.ready()?;
        let r = request.into_inner();
        let result = if r.ok { Ok(r.output) } else { Err(r.error) };
        self.session.complete_invocation(&r.invocation_id, result);
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
        if topics.len() > 64 {
            return Err(Status::invalid_argument("at most 64 topics per call"));
        }
        for t in &topics {
            crate::manifest::validate_topic_pattern(t).map_err(Status::invalid_argument)?;
            if self.catalog.sensitive_containing(t).is_some() {
                return self
                    .refuse(Some(Permission::SensitiveEvents), t, "subscribe")
                    .await;
            }
        }
        for t in &topics {
            self.recorder.record(None, t, "subscribe", false);
        }
        let topics = self
            .session
            .add_subscriptions(&topics, 256)
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        Ok(Response::new(SubscribeResponse { topics }))
    }

    async fn emit_event(
        &self,
        request: Request<EmitEventRequest>,
    ) -> Result<Response<EmitEventResponse>, Status> {
        let topic = request.into_inner().topic;
        self.refuse(None, &topic, "emit_event").await
    }

    async fn get_config(
        &self,
        request: Request<GetConfigRequest>,
    ) -> Result<Response<GetConfigResponse>, Status> {
        self.ready()?;
        let key = request.into_inner().key;
        crate::catalog::validate_config_key(&key).map_err(Status::invalid_argument)?;
        self.recorder.record(None, &key, "get_config", false);
        // A declared setting reads as its manifest default; the stored values are
        // the real instance's.
        let value = self
            .session
            .declared
            .setting(&key)
            .and_then(|s| s.default.clone());
        Ok(Response::new(GetConfigResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn set_config(
        &self,
        request: Request<SetConfigRequest>,
    ) -> Result<Response<SetConfigResponse>, Status> {
        let key = request.into_inner().key;
        self.refuse(None, &key, "set_config").await
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
        self.log.line(level, &req.message);
        Ok(Response::new(LogResponse {}))
    }

    async fn report_imports(
        &self,
        request: Request<ReportImportsRequest>,
    ) -> Result<Response<ReportImportsResponse>, Status> {
        self.ready()?;
        let modules = request.into_inner().modules;
        crate::broker::imports::validate(&modules).map_err(Status::invalid_argument)?;
        for m in &modules {
            self.recorder.record(None, &m.name, "report_imports", false);
        }
        Ok(Response::new(ReportImportsResponse {
            recorded: 0,
            over_cap: 0,
        }))
    }

    async fn has_permission(
        &self,
        request: Request<HasPermissionRequest>,
    ) -> Result<Response<HasPermissionResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        let target = format!("{} {}", req.permission, req.scope);
        self.recorder
            .record(None, target.trim(), "has_permission", false);
        Ok(Response::new(HasPermissionResponse {
            granted: false,
            expires_at_ms: 0,
        }))
    }

    async fn read_file(
        &self,
        request: Request<ReadFileRequest>,
    ) -> Result<Response<ReadFileResponse>, Status> {
        self.file_call(&request.into_inner().path, false, "read_file")
            .await
    }

    async fn write_file(
        &self,
        request: Request<WriteFileRequest>,
    ) -> Result<Response<WriteFileResponse>, Status> {
        self.file_call(&request.into_inner().path, true, "write_file")
            .await
    }

    async fn list_dir(
        &self,
        request: Request<ListDirRequest>,
    ) -> Result<Response<ListDirResponse>, Status> {
        self.file_call(&request.into_inner().path, false, "list_dir")
            .await
    }

    async fn stat_path(
        &self,
        request: Request<StatRequest>,
    ) -> Result<Response<StatResponse>, Status> {
        self.file_call(&request.into_inner().path, false, "stat_path")
            .await
    }

    async fn remove_path(
        &self,
        request: Request<RemoveRequest>,
    ) -> Result<Response<RemoveResponse>, Status> {
        self.file_call(&request.into_inner().path, true, "remove_path")
            .await
    }

    async fn make_dir(
        &self,
        request: Request<MakeDirRequest>,
    ) -> Result<Response<MakeDirResponse>, Status> {
        self.file_call(&request.into_inner().path, true, "make_dir")
            .await
    }

    async fn query(
        &self,
        request: Request<QueryRequest>,
    ) -> Result<Response<QueryResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        let tables = super::sql::tables(&req.sql);
        let Some(fixture) = self.db.clone() else {
            return match tables.split_first() {
                None => {
                    self.refuse(Some(Permission::DatabaseRead), &req.sql, "query")
                        .await
                }
                Some(((permission, table), rest)) => {
                    for (p, t) in rest {
                        self.recorder.record(Some(*p), t, "query", false);
                    }
                    self.refuse(Some(*permission), table, "query").await
                }
            };
        };
        if tables.is_empty() {
            self.recorder
                .record(Some(Permission::DatabaseRead), &req.sql, "query", true);
        }
        for (p, t) in &tables {
            self.recorder.record(Some(*p), t, "query", true);
        }
        Ok(Response::new(self.query_fixture(fixture, req).await?))
    }

    async fn host_action(
        &self,
        request: Request<HostActionRequest>,
    ) -> Result<Response<HostActionResponse>, Status> {
        let req = request.into_inner();
        // Only the permissions whose actions the server executes name a host action.
        let permission = req.permission.parse().ok().filter(|p| {
            matches!(
                p,
                Permission::UserManagement
                    | Permission::SystemConfig
                    | Permission::PluginManagement
            )
        });
        let target = permission
            .and_then(|p| {
                host_action_name(self.catalog.spec(p).scope, &req.target, &req.action).ok()
            })
            .unwrap_or_else(|| format!("{} {}:{}", req.permission, req.target, req.action));
        self.refuse(permission, &target, "host_action").await
    }

    async fn http(&self, request: Request<HttpRequest>) -> Result<Response<HttpResponse>, Status> {
        self.ready()?;
        let req = request.into_inner();
        let target = host_port(&req.url);
        let Some(canned) = self.http.as_ref().and_then(|f| f.answer(&req.url)) else {
            return self
                .refuse(Some(Permission::NetworkOutbound), &target, "http")
                .await;
        };
        self.recorder
            .record(Some(Permission::NetworkOutbound), &target, "http", true);
        Ok(Response::new(HttpResponse {
            status: u32::from(canned.status),
            headers: canned
                .headers
                .iter()
                .map(|(name, value)| HttpHeader {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body: canned.body.clone().into_bytes(),
            url: req.url,
        }))
    }

    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let argv = request.into_inner().argv;
        self.refuse(
            Some(Permission::ExecuteCommands),
            &argv.join(" "),
            "execute",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_targets_are_host_and_port() {
        assert_eq!(
            host_port("https://api.example.com/v1?k=1"),
            "api.example.com:443"
        );
        assert_eq!(host_port("http://127.0.0.1:8080/"), "127.0.0.1:8080");
        assert_eq!(host_port("not a url"), "not a url");
    }
}
