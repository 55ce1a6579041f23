//! In-process round trips: a fake broker served over `UnixStream::pair()` drives the
//! real connect, handshake and dispatch code, standing in for the supervisor.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_server::{Broker, BrokerServer};
use broker_proto::BROKER_PROTOCOL_VERSIONS;
use pb::host_message::Kind;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::{Event, LogLevel, Plugin, PluginContext, SdkError, SDK_VERSION};

const WAIT: Duration = Duration::from_secs(10);

/// Everything the fake broker was asked, in arrival order.
#[derive(Debug)]
enum Seen {
    Handshake(pb::HandshakeRequest),
    Subscribe(Vec<String>),
    SessionOpened,
    Reply(pb::CommandReply),
    Pong(u64),
    Emit(pb::EmitEventRequest),
    Log(pb::LogRequest),
}

type HostTx = mpsc::Sender<Result<pb::HostMessage, Status>>;
type HostRx = mpsc::Receiver<Result<pb::HostMessage, Status>>;

struct FakeBroker {
    handshake: Result<pb::HandshakeResponse, Status>,
    seen: mpsc::UnboundedSender<Seen>,
    session: Mutex<Option<HostRx>>,
    config: Mutex<HashMap<String, String>>,
    /// In-memory `/data` files, enough to exercise the SDK's chunking.
    files: Mutex<HashMap<String, Vec<u8>>>,
}

impl FakeBroker {
    fn record(&self, seen: Seen) {
        // The test may have stopped listening; that is not the broker's problem.
        let _ = self.seen.send(seen);
    }
}

#[tonic::async_trait]
impl Broker for FakeBroker {
    async fn handshake(
        &self,
        request: Request<pb::HandshakeRequest>,
    ) -> Result<Response<pb::HandshakeResponse>, Status> {
        self.record(Seen::Handshake(request.into_inner()));
        self.handshake.clone().map(Response::new)
    }

    type SessionStream = ReceiverStream<Result<pb::HostMessage, Status>>;

    async fn session(
        &self,
        _request: Request<pb::SessionRequest>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let rx = self
            .session
            .lock()
            .expect("session lock")
            .take()
            .ok_or_else(|| Status::failed_precondition("session already open"))?;
        self.record(Seen::SessionOpened);
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn reply(
        &self,
        request: Request<pb::CommandReply>,
    ) -> Result<Response<pb::ReplyAck>, Status> {
        self.record(Seen::Reply(request.into_inner()));
        Ok(Response::new(pb::ReplyAck {}))
    }

    async fn pong(
        &self,
        request: Request<pb::PongRequest>,
    ) -> Result<Response<pb::PongAck>, Status> {
        self.record(Seen::Pong(request.into_inner().id));
        Ok(Response::new(pb::PongAck {}))
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<pb::SubscribeResponse>, Status> {
        let topics = request.into_inner().topics;
        self.record(Seen::Subscribe(topics.clone()));
        Ok(Response::new(pb::SubscribeResponse { topics }))
    }

    async fn emit_event(
        &self,
        request: Request<pb::EmitEventRequest>,
    ) -> Result<Response<pb::EmitEventResponse>, Status> {
        let request = request.into_inner();
        let id = format!("ev-{}", request.topic);
        self.record(Seen::Emit(request));
        Ok(Response::new(pb::EmitEventResponse { id }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let key = request.into_inner().key;
        if key == "secret" {
            return Err(Status::permission_denied(
                "config key `secret` is not yours",
            ));
        }
        let value = self.config.lock().expect("config lock").get(&key).cloned();
        Ok(Response::new(pb::GetConfigResponse {
            found: value.is_some(),
            value: value.unwrap_or_default(),
        }))
    }

    async fn set_config(
        &self,
        request: Request<pb::SetConfigRequest>,
    ) -> Result<Response<pb::SetConfigResponse>, Status> {
        let request = request.into_inner();
        self.config
            .lock()
            .expect("config lock")
            .insert(request.key, request.value);
        Ok(Response::new(pb::SetConfigResponse {}))
    }

    async fn log(
        &self,
        request: Request<pb::LogRequest>,
    ) -> Result<Response<pb::LogResponse>, Status> {
        self.record(Seen::Log(request.into_inner()));
        Ok(Response::new(pb::LogResponse {}))
    }

    async fn has_permission(
        &self,
        request: Request<pb::HasPermissionRequest>,
    ) -> Result<Response<pb::HasPermissionResponse>, Status> {
        let request = request.into_inner();
        let granted = request.permission == "database_read"
            && (request.scope.is_empty() || request.scope == "messages");
        Ok(Response::new(pb::HasPermissionResponse {
            granted,
            expires_at_ms: 0,
        }))
    }

    async fn read_file(
        &self,
        request: Request<pb::ReadFileRequest>,
    ) -> Result<Response<pb::ReadFileResponse>, Status> {
        let r = request.into_inner();
        fake_data_path(&r.path)?;
        let files = self.files.lock().expect("files lock");
        let data = files
            .get(&r.path)
            .ok_or_else(|| Status::not_found(r.path.clone()))?;
        let start = (r.offset as usize).min(data.len());
        let max = if r.max_bytes == 0 {
            FAKE_CHUNK
        } else {
            (r.max_bytes as usize).min(FAKE_CHUNK)
        };
        let end = (start + max).min(data.len());
        Ok(Response::new(pb::ReadFileResponse {
            data: data[start..end].to_vec(),
            eof: end == data.len(),
            size: data.len() as u64,
        }))
    }

    async fn write_file(
        &self,
        request: Request<pb::WriteFileRequest>,
    ) -> Result<Response<pb::WriteFileResponse>, Status> {
        let r = request.into_inner();
        fake_data_path(&r.path)?;
        if r.data.len() > FAKE_CHUNK {
            return Err(Status::invalid_argument("write too large"));
        }
        let mut files = self.files.lock().expect("files lock");
        let file = files.entry(r.path).or_default();
        if !r.append {
            file.clear();
        }
        file.extend_from_slice(&r.data);
        Ok(Response::new(pb::WriteFileResponse {
            size: file.len() as u64,
        }))
    }

    async fn list_dir(
        &self,
        request: Request<pb::ListDirRequest>,
    ) -> Result<Response<pb::ListDirResponse>, Status> {
        let r = request.into_inner();
        fake_data_path(&format!("{}/", r.path))?;
        let prefix = format!("{}/", r.path);
        let files = self.files.lock().expect("files lock");
        let mut entries: Vec<pb::DirEntry> = files
            .iter()
            .filter_map(|(p, d)| {
                let name = p.strip_prefix(&prefix)?;
                Some(pb::DirEntry {
                    name: name.to_string(),
                    kind: "file".into(),
                    size: d.len() as u64,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Response::new(pb::ListDirResponse { entries }))
    }

    async fn stat_path(
        &self,
        request: Request<pb::StatRequest>,
    ) -> Result<Response<pb::StatResponse>, Status> {
        let r = request.into_inner();
        fake_data_path(&r.path)?;
        let files = self.files.lock().expect("files lock");
        let data = files
            .get(&r.path)
            .ok_or_else(|| Status::not_found(r.path.clone()))?;
        Ok(Response::new(pb::StatResponse {
            kind: "file".into(),
            size: data.len() as u64,
            modified_ms: 1,
        }))
    }

    async fn remove_path(
        &self,
        request: Request<pb::RemoveRequest>,
    ) -> Result<Response<pb::RemoveResponse>, Status> {
        let r = request.into_inner();
        fake_data_path(&r.path)?;
        self.files.lock().expect("files lock").remove(&r.path);
        Ok(Response::new(pb::RemoveResponse {}))
    }

    async fn make_dir(
        &self,
        request: Request<pb::MakeDirRequest>,
    ) -> Result<Response<pb::MakeDirResponse>, Status> {
        fake_data_path(&request.into_inner().path)?;
        Ok(Response::new(pb::MakeDirResponse {}))
    }

    /// Echoes argv as stdout; anything but /bin/echo is not granted.
    async fn execute(
        &self,
        request: Request<pb::ExecuteRequest>,
    ) -> Result<Response<pb::ExecuteResponse>, Status> {
        let argv = request.into_inner().argv;
        if argv.first().map(String::as_str) != Some("/bin/echo") {
            return Err(Status::permission_denied("execute_commands is not granted"));
        }
        Ok(Response::new(pb::ExecuteResponse {
            exited: true,
            exit_code: 0,
            stdout: argv[1..].join(" ").into_bytes(),
            ..Default::default()
        }))
    }

    /// Answers with the method and URL it got; other hosts are not granted.
    async fn http(
        &self,
        request: Request<pb::HttpRequest>,
    ) -> Result<Response<pb::HttpResponse>, Status> {
        let req = request.into_inner();
        if !req.url.starts_with("https://api.example.com/") {
            return Err(Status::permission_denied(
                "network_outbound is not granted for `evil.net:443`",
            ));
        }
        Ok(Response::new(pb::HttpResponse {
            status: 200,
            headers: req.headers,
            body: format!("{} {}", req.method, req.url).into_bytes(),
            url: req.url,
        }))
    }

    /// Echoes the action back; `delete_user` is not granted.
    async fn host_action(
        &self,
        request: Request<pb::HostActionRequest>,
    ) -> Result<Response<pb::HostActionResponse>, Status> {
        let req = request.into_inner();
        if req.target == "delete_user" {
            return Err(Status::permission_denied(
                "user_management is not granted for `delete_user`",
            ));
        }
        Ok(Response::new(pb::HostActionResponse {
            result: format!("{} {} {}", req.permission, req.target, req.action).into_bytes(),
        }))
    }

    /// Answers one row holding the parameters it was sent; `users` is not granted.
    async fn query(
        &self,
        request: Request<pb::QueryRequest>,
    ) -> Result<Response<pb::QueryResponse>, Status> {
        let req = request.into_inner();
        if req.sql.contains("users") {
            return Err(Status::permission_denied(
                "database_read is not granted for table `users`",
            ));
        }
        Ok(Response::new(pb::QueryResponse {
            columns: (1..=req.params.len()).map(|i| format!("p{i}")).collect(),
            rows: vec![pb::SqlRow { values: req.params }],
            rows_affected: 0,
        }))
    }
}

/// Like the real broker: only `/data/...` without a grant, 512 KiB per call.
fn fake_data_path(path: &str) -> Result<(), Status> {
    if path.starts_with("/data/") {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "file_read is not granted for `{path}`"
        )))
    }
}

const FAKE_CHUNK: usize = 512 * 1024;

fn accepted_handshake() -> pb::HandshakeResponse {
    pb::HandshakeResponse {
        protocol_version: 1,
        plugin_name: "tester".into(),
        plugin_version: "1.2.3".into(),
        grants: vec![pb::Grant {
            permission: "database_read".into(),
            scope: vec!["messages".into()],
            expires_at_ms: 0,
        }],
        emit_prefix: "plugin.tester.".into(),
        max_message_bytes: 0,
    }
}

/// A fake broker serving one connection, and the test's handles on it.
struct Harness {
    /// The plugin's end of the connection, until `connect` takes it.
    plugin_end: Option<UnixStream>,
    host: Option<HostTx>,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// When the broker sits behind a byte-copying proxy: aborting it cuts the wire.
    proxy: Option<JoinHandle<()>>,
}

impl Harness {
    fn start(handshake: Result<pb::HandshakeResponse, Status>) -> Harness {
        Harness::start_inner(handshake, false)
    }

    fn start_proxied(handshake: Result<pb::HandshakeResponse, Status>) -> Harness {
        Harness::start_inner(handshake, true)
    }

    fn start_inner(handshake: Result<pb::HandshakeResponse, Status>, proxied: bool) -> Harness {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (host, host_rx) = mpsc::channel(16);
        let broker = FakeBroker {
            handshake,
            seen: seen_tx,
            session: Mutex::new(Some(host_rx)),
            config: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        };
        let (plugin_end, broker_end, proxy) = if proxied {
            let (plugin_end, proxy_a) = UnixStream::pair().expect("socketpair");
            let (mut proxy_b, broker_end) = UnixStream::pair().expect("socketpair");
            let proxy = tokio::spawn(async move {
                let mut proxy_a = proxy_a;
                let _ = tokio::io::copy_bidirectional(&mut proxy_a, &mut proxy_b).await;
            });
            (plugin_end, broker_end, Some(proxy))
        } else {
            let (plugin_end, broker_end) = UnixStream::pair().expect("socketpair");
            (plugin_end, broker_end, None)
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(BrokerServer::new(broker))
                .serve_with_incoming(tokio_stream::once(Ok::<_, std::io::Error>(broker_end))),
        );
        Harness {
            plugin_end: Some(plugin_end),
            host: Some(host),
            seen,
            proxy,
        }
    }

    async fn connect(&mut self) -> Result<PluginContext, SdkError> {
        let stream = self.plugin_end.take().expect("connect once per harness");
        within(PluginContext::connect_stream(stream)).await
    }

    async fn send(&self, kind: Kind) {
        self.host
            .as_ref()
            .expect("session still open")
            .send(Ok(pb::HostMessage { kind: Some(kind) }))
            .await
            .expect("plugin still listening");
    }

    async fn invoke(&self, id: &str, command: &str, args: &[u8]) {
        self.send(Kind::Invoke(pb::CommandInvocation {
            invocation_id: id.into(),
            command: command.into(),
            args: args.to_vec(),
            deadline_ms: 0,
        }))
        .await;
    }

    async fn event(&self, id: &str, topic: &str) {
        self.send(Kind::Event(pb::Event {
            id: id.into(),
            topic: topic.into(),
            payload: br#"{"text":"hi"}"#.to_vec().into(),
            source: "server".into(),
            timestamp_ms: 1_700_000_000_000,
        }))
        .await;
    }

    /// The next thing the broker saw that `pick` cares about; others are skipped.
    async fn next<T>(&mut self, mut pick: impl FnMut(Seen) -> Option<T>) -> T {
        within(async {
            loop {
                let seen = self.seen.recv().await.expect("broker alive");
                if let Some(found) = pick(seen) {
                    return found;
                }
            }
        })
        .await
    }

    async fn reply(&mut self) -> pb::CommandReply {
        self.next(|s| match s {
            Seen::Reply(r) => Some(r),
            _ => None,
        })
        .await
    }
}

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .expect("timed out waiting for the plugin")
}

#[tokio::test]
async fn context_calls_round_trip() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");

    let hello = h
        .next(|s| match s {
            Seen::Handshake(r) => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(hello.protocol_versions, BROKER_PROTOCOL_VERSIONS);
    assert_eq!(hello.sdk_version, SDK_VERSION);

    assert_eq!(ctx.plugin_name(), "tester");
    assert_eq!(ctx.plugin_version(), "1.2.3");
    assert_eq!(ctx.protocol_version(), 1);
    assert_eq!(ctx.emit_prefix(), "plugin.tester.");
    assert_eq!(ctx.grants().len(), 1);
    assert_eq!(ctx.grants()[0].permission, "database_read");
    assert_eq!(ctx.grants()[0].scope, vec!["messages".to_string()]);

    assert!(ctx.has_permission("database_read").await.expect("call"));
    assert!(!ctx.has_permission("network").await.expect("call"));
    assert!(ctx
        .has_permission_for("database_read", "messages")
        .await
        .expect("call"));
    assert!(!ctx
        .has_permission_for("database_read", "users")
        .await
        .expect("call"));

    assert_eq!(ctx.config_get("greeting").await.expect("call"), None);
    ctx.config_set("greeting", "hi").await.expect("call");
    assert_eq!(
        ctx.config_get("greeting").await.expect("call").as_deref(),
        Some("hi")
    );
    let denied = ctx.config_get("secret").await.expect_err("denied");
    assert!(denied.is_permission_denied(), "{denied}");

    let id = ctx.emit("greeted", b"raw").await.expect("emit");
    assert_eq!(id, "ev-plugin.tester.greeted");
    let emitted = h
        .next(|s| match s {
            Seen::Emit(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!(emitted.topic, "plugin.tester.greeted");
    assert_eq!(emitted.payload[..], b"raw"[..]);

    ctx.emit_json("json", &serde_json::json!({"n": 1}))
        .await
        .expect("emit_json");
    let emitted = h
        .next(|s| match s {
            Seen::Emit(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!(emitted.topic, "plugin.tester.json");
    assert_eq!(emitted.payload[..], br#"{"n":1}"#[..]);

    ctx.log_with_fields(LogLevel::Warn, "careful", &[("k", "v")])
        .await
        .expect("log");
    let logged = h
        .next(|s| match s {
            Seen::Log(l) => Some(l),
            _ => None,
        })
        .await;
    assert_eq!(logged.level, i32::from(pb::LogLevel::Warn));
    assert_eq!(logged.message, "careful");
    assert_eq!(logged.fields.get("k").map(String::as_str), Some("v"));

    let topics = ctx.subscribe(&["a.b", "c.*"]).await.expect("subscribe");
    assert_eq!(topics, vec!["a.b".to_string(), "c.*".to_string()]);
}

#[tokio::test]
async fn plugin_dispatch_round_trip() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");

    let release = Arc::new(Notify::new());
    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let plugin = {
        let release = release.clone();
        let chat_events = events_tx.clone();
        Plugin::new()
            .on_command("echo", |_ctx: PluginContext, args: Vec<u8>| async move {
                Ok::<Vec<u8>, String>(args)
            })
            .on_command("fail", |_ctx, _args| async move {
                Err::<Vec<u8>, String>("bad input".into())
            })
            .on_command("panic", |_ctx, _args| async move {
                if true {
                    panic!("handler bug");
                }
                Ok::<Vec<u8>, String>(Vec::new())
            })
            .on_command("wait", move |_ctx, _args| {
                let release = release.clone();
                async move {
                    release.notified().await;
                    Ok::<&str, String>("released")
                }
            })
            .on_event("chat.*", move |ctx: PluginContext, event: Event| {
                let chat_events = chat_events.clone();
                async move {
                    ctx.emit("seen", event.id.as_bytes()).await?;
                    let _ = chat_events.send(event);
                    Ok::<(), SdkError>(())
                }
            })
            .on_event("sys.alert", move |_ctx, event: Event| {
                let events_tx = events_tx.clone();
                async move {
                    let _ = events_tx.send(event);
                    Err::<(), String>("alert handler failed".into())
                }
            })
            .on_shutdown(|ctx: PluginContext| async move { ctx.info("bye").await })
    };
    let run = tokio::spawn(plugin.run_with(ctx));

    let subscribed = h
        .next(|s| match s {
            Seen::Subscribe(t) => Some(t),
            _ => None,
        })
        .await;
    assert_eq!(
        subscribed,
        vec!["chat.*".to_string(), "sys.alert".to_string()]
    );
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;

    h.invoke("i1", "echo", b"abc").await;
    let reply = h.reply().await;
    assert_eq!(
        (
            reply.invocation_id.as_str(),
            reply.ok,
            reply.output.as_slice()
        ),
        ("i1", true, b"abc".as_slice())
    );

    h.invoke("i2", "nope", b"").await;
    let reply = h.reply().await;
    assert_eq!(reply.invocation_id, "i2");
    assert!(!reply.ok);
    assert_eq!(reply.error, "unknown command `nope`");

    h.invoke("i3", "fail", b"").await;
    let reply = h.reply().await;
    assert_eq!((reply.ok, reply.error.as_str()), (false, "bad input"));

    h.invoke("i4", "panic", b"").await;
    let reply = h.reply().await;
    assert_eq!(
        (reply.ok, reply.error.as_str()),
        (false, "command `panic` panicked")
    );

    // A handler stuck on something must not hold up the health check.
    h.invoke("w", "wait", b"").await;
    h.send(Kind::Ping(pb::Ping { id: 7 })).await;
    let first = h
        .next(|s| match s {
            Seen::Pong(id) => Some(format!("pong {id}")),
            Seen::Reply(r) => Some(format!("reply {}", r.invocation_id)),
            _ => None,
        })
        .await;
    assert_eq!(first, "pong 7");
    release.notify_one();
    let reply = h.reply().await;
    assert_eq!(
        (
            reply.invocation_id.as_str(),
            reply.ok,
            reply.output.as_slice()
        ),
        ("w", true, b"released".as_slice())
    );

    h.event("e1", "chat.message").await;
    let emitted = h
        .next(|s| match s {
            Seen::Emit(e) => Some(e),
            _ => None,
        })
        .await;
    assert_eq!(emitted.topic, "plugin.tester.seen");
    assert_eq!(emitted.payload[..], b"e1"[..]);
    let got = within(events.recv()).await.expect("handler ran");
    assert_eq!(
        (got.id.as_str(), got.topic.as_str()),
        ("e1", "chat.message")
    );
    assert_eq!(got.json::<serde_json::Value>().expect("json")["text"], "hi");

    h.event("e2", "other.topic").await;
    h.event("e3", "sys.alert").await;
    // `other.topic` matches no handler, so the next delivery is the alert.
    let got = within(events.recv()).await.expect("handler ran");
    assert_eq!(got.id, "e3");
    let logged = h
        .next(|s| match s {
            Seen::Log(l) => Some(l),
            _ => None,
        })
        .await;
    assert_eq!(logged.level, i32::from(pb::LogLevel::Error));
    assert!(
        logged.message.contains("alert handler failed"),
        "{logged:?}"
    );

    h.send(Kind::Shutdown(pb::Shutdown {
        grace_ms: 2_000,
        reason: "test over".into(),
    }))
    .await;
    let logged = h
        .next(|s| match s {
            Seen::Log(l) => Some(l),
            _ => None,
        })
        .await;
    assert_eq!(
        (logged.level, logged.message.as_str()),
        (i32::from(pb::LogLevel::Info), "bye")
    );
    within(run)
        .await
        .expect("run task")
        .expect("run returns Ok after Shutdown");
}

#[tokio::test]
async fn end_of_session_stream_ends_run_cleanly() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let run = tokio::spawn(Plugin::new().run_with(ctx));
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    h.host = None;
    within(run)
        .await
        .expect("run task")
        .expect("Ok when the stream ends");
}

#[tokio::test]
async fn losing_the_supervisor_ends_run_cleanly() {
    let mut h = Harness::start_proxied(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let hook_ran = Arc::new(AtomicBool::new(false));
    let flag = hook_ran.clone();
    let run = tokio::spawn(
        Plugin::new()
            .on_shutdown(move |_ctx| async move { flag.store(true, Ordering::SeqCst) })
            .run_with(ctx),
    );
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    // A pong proves the session stream is established on the plugin's side too.
    h.send(Kind::Ping(pb::Ping { id: 1 })).await;
    h.next(|s| matches!(s, Seen::Pong(1)).then_some(())).await;
    h.proxy.take().expect("proxied").abort();
    within(run)
        .await
        .expect("run task")
        .expect("Ok when the connection drops");
    // The hook is for requested shutdowns; with the broker gone it could do nothing.
    assert!(!hook_ran.load(Ordering::SeqCst));
}

#[tokio::test]
async fn an_error_status_on_the_session_is_returned() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let run = tokio::spawn(Plugin::new().run_with(ctx));
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    h.host
        .as_ref()
        .expect("open")
        .send(Err(Status::permission_denied("approval revoked")))
        .await
        .expect("send");
    let err = within(run).await.expect("run task").expect_err("status");
    assert!(err.is_permission_denied(), "{err}");
}

#[tokio::test]
async fn handshake_rejection_is_typed() {
    let mut h = Harness::start(Err(Status::permission_denied("plugin not approved")));
    match h.connect().await {
        Err(SdkError::HandshakeRejected(status)) => {
            assert_eq!(status.code(), tonic::Code::PermissionDenied);
            assert_eq!(status.message(), "plugin not approved");
        }
        other => panic!("expected HandshakeRejected, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_protocol_version_is_refused() {
    let mut h = Harness::start(Ok(pb::HandshakeResponse {
        protocol_version: 99,
        ..accepted_handshake()
    }));
    match h.connect().await {
        Err(SdkError::ProtocolMismatch { offered, chosen }) => {
            assert_eq!(offered, BROKER_PROTOCOL_VERSIONS);
            assert_eq!(chosen, 99);
        }
        other => panic!("expected ProtocolMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn the_session_opens_once() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let first = ctx.clone().open_session().await;
    assert!(first.is_ok());
    let second = Plugin::new().run_with(ctx).await;
    assert!(
        matches!(second, Err(SdkError::SessionAlreadyOpen)),
        "{second:?}"
    );
}

#[tokio::test]
async fn an_invalid_plugin_fails_before_any_broker_call() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let res = Plugin::new()
        .on_event("chat.*.bad", |_ctx, _event| async {})
        .run_with(ctx.clone())
        .await;
    assert!(matches!(res, Err(SdkError::InvalidPlugin(_))), "{res:?}");
    // The session was not consumed by the failed attempt.
    let run = tokio::spawn(Plugin::new().run_with(ctx));
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    h.host = None;
    within(run).await.expect("run task").expect("clean end");
}

#[tokio::test]
async fn the_brokers_message_limit_is_respected() {
    let mut h = Harness::start(Ok(pb::HandshakeResponse {
        max_message_bytes: 4096,
        ..accepted_handshake()
    }));
    let ctx = h.connect().await.expect("handshake accepted");
    assert_eq!(ctx.max_message_bytes(), 4096);

    let too_big = ctx.emit("big", &[0u8; 8192]).await.expect_err("too large");
    assert!(too_big.code().is_some(), "{too_big}");

    let run = tokio::spawn(
        Plugin::new()
            .on_command("big", |_ctx, _args| async {
                Ok::<_, String>(vec![0u8; 8192])
            })
            .run_with(ctx),
    );
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    h.invoke("b", "big", b"").await;
    let reply = h.reply().await;
    assert!(!reply.ok);
    assert!(reply.error.contains("over the"), "{}", reply.error);
    h.host = None;
    within(run).await.expect("run task").expect("clean end");
}

/// Set in the child process spawned by `inherited_fd_round_trip`.
const CHILD_ENV: &str = "PLEXICHAT_SDK_TEST_CHILD";

/// The plugin side of `inherited_fd_round_trip`, run in a child process that got the
/// broker connection as fd 3 exactly like a supervised plugin. A no-op otherwise.
#[tokio::test]
#[ignore = "run by inherited_fd_round_trip in a child process"]
async fn child_plugin_over_fd3() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    Plugin::new()
        .on_command("echo", |_ctx, args: Vec<u8>| async move {
            Ok::<Vec<u8>, String>(args)
        })
        .run()
        .await
        .expect("run returns Ok after Shutdown");
    let again = PluginContext::connect().await;
    assert!(
        matches!(again, Err(SdkError::AlreadyConnected)),
        "{again:?}"
    );
}

#[tokio::test]
async fn inherited_fd_round_trip() {
    use std::os::fd::{AsRawFd, OwnedFd};

    let mut h = Harness::start(Ok(accepted_handshake()));
    let plugin_end: OwnedFd = h
        .plugin_end
        .take()
        .expect("unused")
        .into_std()
        .expect("into_std")
        .into();
    let source_fd = plugin_end.as_raw_fd();
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([
            "--exact",
            "roundtrip_tests::child_plugin_over_fd3",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env(crate::PLUGIN_NAME_ENV, "child")
        .env(crate::PLUGIN_VERSION_ENV, "0.0.1")
        .env_remove(crate::BROKER_FD_ENV)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: the closure only calls dup2 and fcntl, which are async-signal-safe.
    unsafe {
        child.pre_exec(move || {
            if libc::dup2(source_fd, 3) < 0 || libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = child.spawn().expect("spawn child plugin");
    drop(plugin_end);

    let hello = h
        .next(|s| match s {
            Seen::Handshake(r) => Some(r),
            _ => None,
        })
        .await;
    assert_eq!(
        (hello.plugin_name.as_str(), hello.plugin_version.as_str()),
        ("child", "0.0.1")
    );
    h.next(|s| matches!(s, Seen::SessionOpened).then_some(()))
        .await;
    h.invoke("c1", "echo", b"over fd 3").await;
    let reply = h.reply().await;
    assert_eq!(
        (reply.ok, reply.output.as_slice()),
        (true, b"over fd 3".as_slice())
    );
    h.send(Kind::Shutdown(pb::Shutdown {
        grace_ms: 1_000,
        reason: "done".into(),
    }))
    .await;
    let out = within(child.wait_with_output()).await.expect("child exit");
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "the child test did not run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn files_move_large_contents_in_chunks_and_keep_the_grpc_code() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let files = ctx.files();
    // Three chunks and a bit: the SDK must split the write and loop the read.
    let big: Vec<u8> = (0..(3 * crate::FILE_CHUNK_BYTES + 17))
        .map(|i| i as u8)
        .collect();
    assert_eq!(
        within(files.write("/data/big", &big)).await.unwrap(),
        big.len() as u64
    );
    assert_eq!(within(files.read("/data/big")).await.unwrap(), big);
    assert_eq!(
        within(files.append("/data/big", b"!")).await.unwrap(),
        big.len() as u64 + 1
    );
    let (head, eof) = within(files.read_at("/data/big", 0, 4)).await.unwrap();
    assert_eq!((head.as_slice(), eof), (&big[..4], false));
    let listed = within(files.list("/data")).await.unwrap();
    assert_eq!(listed[0].name, "big");
    assert_eq!(listed[0].kind, crate::FileKind::File);
    let stat = within(files.stat("/data/big")).await.unwrap();
    assert_eq!(stat.size, big.len() as u64 + 1);
    within(files.remove("/data/big")).await.unwrap();
    let err = within(files.read("/etc/passwd")).await.unwrap_err();
    assert!(err.is_permission_denied(), "{err}");
    assert!(matches!(err, SdkError::Status(_)));
}

#[tokio::test]
async fn database_values_survive_the_round_trip_and_refusals_keep_their_code() {
    use crate::SqlValue;
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let sent = vec![
        SqlValue::Null,
        SqlValue::Integer(-7),
        SqlValue::Real(1.5),
        SqlValue::Text("x'); DROP TABLE t; --".into()),
        SqlValue::Blob(vec![0, 255]),
    ];
    let out = ctx
        .db()
        .query("SELECT ?1, ?2, ?3, ?4, ?5", sent.clone())
        .await
        .expect("answered");
    assert_eq!(out.columns, ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(out.rows, vec![sent]);
    let err = ctx
        .db()
        .query("SELECT * FROM users", [])
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
    assert!(err.to_string().contains("`users`"), "{err}");
}

#[tokio::test]
async fn host_actions_carry_their_target_and_refusals_keep_their_code() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let out = ctx
        .host()
        .call("user_management", "ban_user", "ban", b"{}")
        .await
        .expect("answered");
    assert_eq!(out, b"user_management ban_user ban");
    // `act` sends no action: the target alone names what the server does.
    let out = ctx
        .host()
        .act("user_management", "warn_user", b"{}")
        .await
        .expect("answered");
    assert_eq!(out, b"user_management warn_user ");
    let err = ctx
        .host()
        .call("user_management", "delete_user", "delete", b"{}")
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
}

#[tokio::test]
async fn http_requests_and_refusals_round_trip() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let out = ctx
        .http()
        .request(
            "POST",
            "https://api.example.com/x",
            &[("x-token", "t")],
            b"{}".to_vec(),
        )
        .await
        .expect("answered");
    assert_eq!(out.status, 200);
    assert_eq!(out.body, b"POST https://api.example.com/x");
    assert_eq!(out.headers, [("x-token".to_string(), "t".to_string())]);
    let err = ctx
        .http()
        .get("https://evil.net/")
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
}

#[tokio::test]
async fn commands_round_trip_with_their_exit_status() {
    let mut h = Harness::start(Ok(accepted_handshake()));
    let ctx = h.connect().await.expect("handshake accepted");
    let out = ctx
        .commands()
        .run(&["/bin/echo", "hi", "there"])
        .await
        .expect("ran");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.signal, None);
    assert_eq!(out.stdout, b"hi there");
    let err = ctx
        .commands()
        .run(&["/bin/sh", "-c", "id"])
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
}
