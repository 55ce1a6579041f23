//! The in-process fake broker: a real `plexichat.broker.v1.Broker` gRPC server over a
//! socketpair, answering from scripted state and refusing what the grants do not cover.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_server::{Broker, BrokerServer};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::policy::{self, FileAccess};
use super::{DbWrite, HostCall, HttpCall, LogLine};
use crate::{CommandOutput, ErrorCode, Event, Grant, LogLevel, QueryResult, SqlValue};

/// Most bytes one file call moves, like the real broker.
const CHUNK: usize = crate::FILE_CHUNK_BYTES;

/// Everything the fake broker was asked, in arrival order (for the SDK's own tests).
#[derive(Debug)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) enum Seen {
    Handshake(pb::HandshakeRequest),
    Subscribe(Vec<String>),
    SessionOpened,
    Reply(pb::CommandReply),
    Pong(u64),
    Emit(pb::EmitEventRequest),
    Log(pb::LogRequest),
}

pub(crate) type HostTx = mpsc::Sender<Result<pb::HostMessage, Status>>;
type HostRx = mpsc::Receiver<Result<pb::HostMessage, Status>>;

/// A scripted answer: bytes, or the error the broker (or server) gives.
pub(crate) type Scripted<T> = Result<T, (ErrorCode, String)>;

/// The scripted world and what the plugin did to it.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) plugin_name: String,
    pub(crate) plugin_version: String,
    pub(crate) grants: Vec<Grant>,
    pub(crate) sensitive: Vec<String>,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    pub(crate) dirs: BTreeSet<String>,
    /// `(SQL fragment, answer)`: the first whose fragment the statement contains answers.
    pub(crate) queries: Vec<(String, Scripted<QueryResult>)>,
    pub(crate) db_writes: Vec<DbWrite>,
    /// `(method or None for any, URL, answer)`.
    pub(crate) http: Vec<(Option<String>, String, Scripted<crate::HttpResponse>)>,
    pub(crate) http_calls: Vec<HttpCall>,
    /// `(permission, target[:action], answer)`.
    pub(crate) host: Vec<(String, String, Scripted<Vec<u8>>)>,
    pub(crate) host_calls: Vec<HostCall>,
    pub(crate) exec: Vec<(Vec<String>, Scripted<CommandOutput>)>,
    pub(crate) exec_calls: Vec<Vec<String>>,
    pub(crate) subscriptions: Vec<String>,
    pub(crate) emitted: Vec<Event>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) next_id: u64,
}

impl State {
    pub(crate) fn emit_prefix(&self) -> String {
        format!("plugin.{}.", self.plugin_name)
    }

    pub(crate) fn next_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{}", self.next_id)
    }

    fn dir_exists(&self, path: &str) -> bool {
        let below = format!("{path}/");
        path == "/data"
            || self.dirs.contains(path)
            || self.files.keys().any(|f| f.starts_with(&below))
            || self.dirs.iter().any(|d| d.starts_with(&below))
            || self.grants.iter().any(|g| {
                (g.permission == "file_read" || g.permission == "file_write")
                    && g.scope.iter().any(|s| s == path)
            })
    }
}

/// The server side: scripted state, the session stream and the pending invocations.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Replaces the handshake answer built from the state (the SDK's own tests).
    pub(crate) handshake: Option<Result<pb::HandshakeResponse, Status>>,
    pub(crate) max_message_bytes: u32,
    pub(crate) seen: Option<mpsc::UnboundedSender<Seen>>,
    pub(crate) session: Mutex<Option<HostRx>>,
    pub(crate) session_opened: Notify,
    pub(crate) replies: Mutex<HashMap<String, oneshot::Sender<pb::CommandReply>>>,
}

impl Shared {
    pub(crate) fn new(state: State, host_rx: HostRx) -> Shared {
        Shared {
            state: Mutex::new(state),
            handshake: None,
            max_message_bytes: 0,
            seen: None,
            session: Mutex::new(Some(host_rx)),
            session_opened: Notify::new(),
            replies: Mutex::new(HashMap::new()),
        }
    }

    /// The state, even if a panicking test thread poisoned the lock: it is plain data.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, seen: Seen) {
        if let Some(tx) = &self.seen {
            // The test may have stopped listening; that is not the broker's problem.
            let _ = tx.send(seen);
        }
    }
}

/// Serves the fake broker on one end of a fresh socketpair and returns the plugin's
/// end. With `proxied`, bytes pass through a copying task; aborting it cuts the wire.
pub(crate) fn serve(
    shared: Arc<Shared>,
    proxied: bool,
) -> std::io::Result<(UnixStream, Option<JoinHandle<()>>)> {
    let (plugin_end, broker_end, proxy) = if proxied {
        let (plugin_end, mut proxy_a) = UnixStream::pair()?;
        let (mut proxy_b, broker_end) = UnixStream::pair()?;
        let proxy = tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut proxy_a, &mut proxy_b).await;
        });
        (plugin_end, broker_end, Some(proxy))
    } else {
        let (plugin_end, broker_end) = UnixStream::pair()?;
        (plugin_end, broker_end, None)
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(BrokerServer::new(FakeBroker(shared)))
            .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(broker_end))),
    );
    Ok((plugin_end, proxy))
}

fn status((code, message): (ErrorCode, String)) -> Status {
    Status::new(code.to_tonic(), message)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn path_check(state: &State, path: &str, access: FileAccess) -> Result<(), Status> {
    policy::check_path(&state.grants, path, access).map_err(|(invalid, message)| {
        if invalid {
            Status::invalid_argument(message)
        } else {
            Status::permission_denied(message)
        }
    })
}

fn not_found(op: &str, path: &str) -> Status {
    Status::not_found(format!("{op} `{path}`: no such file or directory"))
}

struct FakeBroker(Arc<Shared>);

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl Broker for FakeBroker {
    async fn handshake(
        &self,
        request: Request<pb::HandshakeRequest>,
    ) -> Answer<pb::HandshakeResponse> {
        self.0.record(Seen::Handshake(request.into_inner()));
        if let Some(answer) = &self.0.handshake {
            return answer.clone().map(Response::new);
        }
        let state = self.0.state();
        Ok(Response::new(pb::HandshakeResponse {
            protocol_version: 1,
            plugin_name: state.plugin_name.clone(),
            plugin_version: state.plugin_version.clone(),
            grants: state
                .grants
                .iter()
                .map(|g| pb::Grant {
                    permission: g.permission.clone(),
                    scope: g.scope.clone(),
                    expires_at_ms: g.expires_at_ms,
                })
                .collect(),
            emit_prefix: state.emit_prefix(),
            max_message_bytes: self.0.max_message_bytes,
        }))
    }

    type SessionStream = ReceiverStream<Result<pb::HostMessage, Status>>;

    async fn session(&self, _request: Request<pb::SessionRequest>) -> Answer<Self::SessionStream> {
        let rx = self
            .0
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| Status::failed_precondition("the session is already open"))?;
        self.0.record(Seen::SessionOpened);
        self.0.session_opened.notify_one();
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn reply(&self, request: Request<pb::CommandReply>) -> Answer<pb::ReplyAck> {
        let reply = request.into_inner();
        let waiter = self
            .0
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&reply.invocation_id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(reply);
            }
            None => self.0.record(Seen::Reply(reply)),
        }
        Ok(Response::new(pb::ReplyAck {}))
    }

    async fn pong(&self, request: Request<pb::PongRequest>) -> Answer<pb::PongAck> {
        self.0.record(Seen::Pong(request.into_inner().id));
        Ok(Response::new(pb::PongAck {}))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Answer<pb::SubscribeResponse> {
        let topics = request.into_inner().topics;
        self.0.record(Seen::Subscribe(topics.clone()));
        let mut state = self.0.state();
        for topic in &topics {
            crate::event::validate_pattern(topic).map_err(Status::invalid_argument)?;
            policy::sensitive_subscription(&state.grants, &state.sensitive, topic)
                .map_err(Status::permission_denied)?;
        }
        for topic in topics {
            if !state.subscriptions.contains(&topic) {
                state.subscriptions.push(topic);
            }
        }
        Ok(Response::new(pb::SubscribeResponse {
            topics: state.subscriptions.clone(),
        }))
    }

    async fn emit_event(
        &self,
        request: Request<pb::EmitEventRequest>,
    ) -> Answer<pb::EmitEventResponse> {
        let request = request.into_inner();
        let mut state = self.0.state();
        let prefix = state.emit_prefix();
        crate::event::validate_pattern(&request.topic).map_err(Status::invalid_argument)?;
        if !request.topic.starts_with(&prefix) || request.topic.ends_with(".*") {
            return Err(Status::permission_denied(format!(
                "a plugin may only emit topics under `{prefix}*`, not `{}`",
                request.topic
            )));
        }
        let id = state.next_id("emitted");
        let event = Event {
            id: id.clone(),
            topic: request.topic.clone(),
            payload: request.payload.to_vec(),
            source: format!("plugin:{}", state.plugin_name),
            timestamp_ms: now_ms(),
        };
        state.emitted.push(event);
        drop(state);
        self.0.record(Seen::Emit(request));
        Ok(Response::new(pb::EmitEventResponse { id }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Answer<pb::GetConfigResponse> {
        let key = request.into_inner().key;
        let value = self.0.state().config.get(&key).cloned();
        Ok(Response::new(pb::GetConfigResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn set_config(
        &self,
        request: Request<pb::SetConfigRequest>,
    ) -> Answer<pb::SetConfigResponse> {
        let request = request.into_inner();
        if request.key.is_empty() {
            return Err(Status::invalid_argument("config key must not be empty"));
        }
        self.0.state().config.insert(request.key, request.value);
        Ok(Response::new(pb::SetConfigResponse {}))
    }

    /// Native plugins have no import hook; a test broker accepts reports and keeps none.
    async fn report_imports(
        &self,
        request: Request<pb::ReportImportsRequest>,
    ) -> Answer<pb::ReportImportsResponse> {
        let recorded = u32::try_from(request.into_inner().modules.len()).unwrap_or(u32::MAX);
        Ok(Response::new(pb::ReportImportsResponse {
            recorded,
            over_cap: 0,
        }))
    }

    async fn log(&self, request: Request<pb::LogRequest>) -> Answer<pb::LogResponse> {
        let request = request.into_inner();
        let level = match pb::LogLevel::try_from(request.level) {
            Ok(pb::LogLevel::Trace) => LogLevel::Trace,
            Ok(pb::LogLevel::Debug) => LogLevel::Debug,
            Ok(pb::LogLevel::Warn) => LogLevel::Warn,
            Ok(pb::LogLevel::Error) => LogLevel::Error,
            _ => LogLevel::Info,
        };
        self.0.state().logs.push(LogLine {
            level,
            message: request.message.clone(),
            fields: request.fields.clone(),
        });
        self.0.record(Seen::Log(request));
        Ok(Response::new(pb::LogResponse {}))
    }

    async fn has_permission(
        &self,
        request: Request<pb::HasPermissionRequest>,
    ) -> Answer<pb::HasPermissionResponse> {
        let request = request.into_inner();
        let state = self.0.state();
        let granted = policy::holds(&state.grants, &request.permission, &request.scope);
        let expires_at_ms = policy::grant(&state.grants, &request.permission)
            .filter(|_| granted)
            .map_or(0, |g| g.expires_at_ms);
        Ok(Response::new(pb::HasPermissionResponse {
            granted,
            expires_at_ms,
        }))
    }

    async fn read_file(
        &self,
        request: Request<pb::ReadFileRequest>,
    ) -> Answer<pb::ReadFileResponse> {
        let r = request.into_inner();
        let state = self.0.state();
        path_check(&state, &r.path, FileAccess::Read)?;
        let data = state
            .files
            .get(&r.path)
            .ok_or_else(|| not_found("read", &r.path))?;
        let start = usize::try_from(r.offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let max = match usize::try_from(r.max_bytes) {
            Ok(0) | Err(_) => CHUNK,
            Ok(n) => n.min(CHUNK),
        };
        let end = start.saturating_add(max).min(data.len());
        Ok(Response::new(pb::ReadFileResponse {
            data: data[start..end].to_vec(),
            eof: end == data.len(),
            size: data.len() as u64,
        }))
    }

    async fn write_file(
        &self,
        request: Request<pb::WriteFileRequest>,
    ) -> Answer<pb::WriteFileResponse> {
        let r = request.into_inner();
        let mut state = self.0.state();
        path_check(&state, &r.path, FileAccess::Write)?;
        if r.data.len() > CHUNK {
            return Err(Status::invalid_argument(format!(
                "a write moves at most {CHUNK} bytes, not {}",
                r.data.len()
            )));
        }
        if state.dir_exists(&r.path) {
            return Err(Status::invalid_argument(format!(
                "write `{}`: is a directory",
                r.path
            )));
        }
        let file = state.files.entry(r.path).or_default();
        if !r.append {
            file.clear();
        }
        file.extend_from_slice(&r.data);
        Ok(Response::new(pb::WriteFileResponse {
            size: file.len() as u64,
        }))
    }

    async fn list_dir(&self, request: Request<pb::ListDirRequest>) -> Answer<pb::ListDirResponse> {
        let path = request.into_inner().path;
        let state = self.0.state();
        path_check(&state, &path, FileAccess::Read)?;
        if !state.dir_exists(&path) {
            return Err(not_found("list", &path));
        }
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let mut entries: BTreeMap<String, pb::DirEntry> = BTreeMap::new();
        let mut add = |full: &str, size: Option<u64>| {
            let Some(rest) = full.strip_prefix(&prefix) else {
                return;
            };
            let (name, is_dir) = match rest.split_once('/') {
                Some((name, _)) => (name, true),
                None => (rest, size.is_none()),
            };
            entries.entry(name.to_string()).or_insert(pb::DirEntry {
                name: name.to_string(),
                kind: if is_dir { "dir" } else { "file" }.into(),
                size: if is_dir { 0 } else { size.unwrap_or(0) },
            });
        };
        for (file, data) in &state.files {
            add(file, Some(data.len() as u64));
        }
        for dir in &state.dirs {
            add(dir, None);
        }
        Ok(Response::new(pb::ListDirResponse {
            entries: entries.into_values().collect(),
        }))
    }

    async fn stat_path(&self, request: Request<pb::StatRequest>) -> Answer<pb::StatResponse> {
        let path = request.into_inner().path;
        let state = self.0.state();
        path_check(&state, &path, FileAccess::Read)?;
        let (kind, size) = match state.files.get(&path) {
            Some(data) => ("file", data.len() as u64),
            None if state.dir_exists(&path) => ("dir", 0),
            None => return Err(not_found("stat", &path)),
        };
        Ok(Response::new(pb::StatResponse {
            kind: kind.into(),
            size,
            modified_ms: now_ms(),
        }))
    }

    async fn remove_path(&self, request: Request<pb::RemoveRequest>) -> Answer<pb::RemoveResponse> {
        let path = request.into_inner().path;
        let mut state = self.0.state();
        path_check(&state, &path, FileAccess::Write)?;
        if state.files.remove(&path).is_some() {
            return Ok(Response::new(pb::RemoveResponse {}));
        }
        let below = format!("{path}/");
        if state
            .files
            .keys()
            .chain(state.dirs.iter())
            .any(|p| p.starts_with(&below))
        {
            return Err(Status::failed_precondition(format!(
                "remove `{path}`: directory not empty"
            )));
        }
        if !state.dirs.remove(&path) {
            return Err(not_found("remove", &path));
        }
        Ok(Response::new(pb::RemoveResponse {}))
    }

    async fn make_dir(&self, request: Request<pb::MakeDirRequest>) -> Answer<pb::MakeDirResponse> {
        let path = request.into_inner().path;
        let mut state = self.0.state();
        path_check(&state, &path, FileAccess::Write)?;
        if state.files.contains_key(&path) || state.dir_exists(&path) {
            return Err(Status::already_exists(format!(
                "mkdir `{path}`: already exists"
            )));
        }
        let parent = path.rsplit_once('/').map_or("/", |(p, _)| p);
        if !state.dir_exists(parent) {
            return Err(not_found("mkdir", parent));
        }
        state.dirs.insert(path);
        Ok(Response::new(pb::MakeDirResponse {}))
    }

    async fn execute(&self, request: Request<pb::ExecuteRequest>) -> Answer<pb::ExecuteResponse> {
        let argv = request.into_inner().argv;
        let mut state = self.0.state();
        if !policy::argv_allowed(&state.grants, &argv) {
            return Err(Status::permission_denied(format!(
                "execute_commands is not granted for {argv:?} (an approved entry must match the argv exactly, or end in ` ...` to allow more arguments)"
            )));
        }
        state.exec_calls.push(argv.clone());
        let answer = state
            .exec
            .iter()
            .find(|(want, _)| *want == argv)
            .map(|(_, answer)| answer.clone())
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "testing: no scripted output for the command {argv:?} (script one with TestBroker::command_output)"
                ))
            })?;
        let out = answer.map_err(status)?;
        Ok(Response::new(pb::ExecuteResponse {
            exited: out.exit_code.is_some(),
            exit_code: out.exit_code.unwrap_or(0),
            signal: out.signal.unwrap_or(0),
            stdout: out.stdout,
            stderr: out.stderr,
            truncated: out.truncated,
        }))
    }

    async fn http(&self, request: Request<pb::HttpRequest>) -> Answer<pb::HttpResponse> {
        let req = request.into_inner();
        let mut state = self.0.state();
        let method = if req.method.is_empty() {
            "GET".to_string()
        } else {
            req.method.to_ascii_uppercase()
        };
        let (host, port) = policy::host_port(&req.url).map_err(Status::invalid_argument)?;
        if !policy::host_allowed(&state.grants, &host, port) {
            return Err(Status::permission_denied(format!(
                "network_outbound is not granted for `{host}:{port}`"
            )));
        }
        state.http_calls.push(HttpCall {
            method: method.clone(),
            url: req.url.clone(),
            headers: req
                .headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
            body: req.body.clone(),
        });
        let answer = state
            .http
            .iter()
            .find(|(m, url, _)| *url == req.url && m.as_ref().is_none_or(|m| *m == method))
            .map(|(_, _, answer)| answer.clone())
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "testing: no scripted answer for {method} {} (script one with TestBroker::http)",
                    req.url
                ))
            })?;
        let answer = answer.map_err(status)?;
        Ok(Response::new(pb::HttpResponse {
            status: u32::from(answer.status),
            headers: answer
                .headers
                .into_iter()
                .map(|(name, value)| pb::HttpHeader { name, value })
                .collect(),
            body: answer.body,
            url: if answer.url.is_empty() {
                req.url
            } else {
                answer.url
            },
        }))
    }

    async fn host_action(
        &self,
        request: Request<pb::HostActionRequest>,
    ) -> Answer<pb::HostActionResponse> {
        let req = request.into_inner();
        if !matches!(
            req.permission.as_str(),
            "user_management" | "system_config" | "plugin_management"
        ) {
            return Err(Status::invalid_argument(format!(
                "`{}` is not a host-action permission (user_management, system_config or plugin_management)",
                req.permission
            )));
        }
        let mut state = self.0.state();
        let name = policy::host_action_name(&req.target, &req.action);
        if !policy::host_action_allowed(&state.grants, &req.permission, &name) {
            return Err(Status::permission_denied(policy::host_action_denial(
                &req.permission,
                &name,
            )));
        }
        state.host_calls.push(HostCall {
            permission: req.permission.clone(),
            target: req.target.clone(),
            action: req.action.clone(),
            payload: req.payload.clone(),
        });
        let answer = state
            .host
            .iter()
            .find(|(p, n, _)| *p == req.permission && *n == name)
            .map(|(_, _, answer)| answer.clone())
            .ok_or_else(|| {
                Status::unavailable(format!(
                    "testing: no scripted answer for {} `{name}` (script one with TestBroker::host_answer)",
                    req.permission
                ))
            })?;
        Ok(Response::new(pb::HostActionResponse {
            result: answer.map_err(status)?,
        }))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Answer<pb::QueryResponse> {
        let req = request.into_inner();
        let mut state = self.0.state();
        let statement = policy::parse_statement(&req.sql).map_err(Status::invalid_argument)?;
        policy::check_tables(&state.grants, &statement).map_err(Status::permission_denied)?;
        let scripted = state
            .queries
            .iter()
            .find(|(fragment, _)| req.sql.contains(fragment.as_str()))
            .map(|(_, answer)| answer.clone());
        let params: Vec<SqlValue> = req.params.into_iter().map(SqlValue::from_pb).collect();
        let answer = match scripted {
            Some(answer) => answer.map_err(status)?,
            None if statement.writes => QueryResult {
                rows_affected: 1,
                ..QueryResult::default()
            },
            None => QueryResult::default(),
        };
        if statement.writes {
            state.db_writes.push(DbWrite {
                sql: req.sql,
                params,
            });
        }
        Ok(Response::new(pb::QueryResponse {
            columns: answer.columns,
            rows: answer
                .rows
                .into_iter()
                .map(|row| pb::SqlRow {
                    values: row.into_iter().map(SqlValue::into_pb).collect(),
                })
                .collect(),
            rows_affected: answer.rows_affected,
        }))
    }
}
