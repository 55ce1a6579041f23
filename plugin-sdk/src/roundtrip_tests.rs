//! In-process round trips: the `testing` module's fake broker, served over
//! `UnixStream::pair()`, drives the real connect, handshake and dispatch code.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use broker_proto::broker::v1 as pb;
use broker_proto::BROKER_PROTOCOL_VERSIONS;
use pb::host_message::Kind;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tonic::Status;

use crate::testing::{serve, Seen, Shared, State};
use crate::{ErrorCode, Event, Grant, LogLevel, Plugin, PluginContext, SdkError, SDK_VERSION};

const WAIT: Duration = Duration::from_secs(10);

type HostTx = mpsc::Sender<Result<pb::HostMessage, Status>>;

/// The plugin the fake broker believes it talks to; its grants match `accepted_handshake`.
fn tester() -> State {
    State {
        plugin_name: "tester".into(),
        plugin_version: "1.2.3".into(),
        grants: vec![Grant {
            permission: "database_read".into(),
            scope: vec!["messages".into()],
            expires_at_ms: 0,
        }],
        ..State::default()
    }
}

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
        Harness::start_with(tester(), handshake, false)
    }

    fn start_proxied(handshake: Result<pb::HandshakeResponse, Status>) -> Harness {
        Harness::start_with(tester(), handshake, true)
    }

    fn start_with(
        state: State,
        handshake: Result<pb::HandshakeResponse, Status>,
        proxied: bool,
    ) -> Harness {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (host, host_rx) = mpsc::channel(16);
        let mut shared = Shared::new(state, host_rx);
        shared.handshake = Some(handshake);
        shared.seen = Some(seen_tx);
        let (plugin_end, proxy) = serve(Arc::new(shared), proxied).expect("socketpair");
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
    let refused = ctx.config_set("", "x").await.expect_err("refused");
    assert!(refused.is_invalid_argument(), "{refused}");

    let id = ctx.emit("greeted", b"raw").await.expect("emit");
    assert!(id.starts_with("emitted-"), "{id}");
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
        Err(SdkError::HandshakeRejected { code, message }) => {
            assert_eq!(code, ErrorCode::PermissionDenied);
            assert_eq!(message, "plugin not approved");
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
    assert!(matches!(err, SdkError::Broker { .. }));
}

#[tokio::test]
async fn database_values_survive_the_round_trip_and_refusals_keep_their_code() {
    use crate::testing::TestBroker;
    use crate::SqlValue;
    let values = vec![
        SqlValue::Null,
        SqlValue::Integer(-7),
        SqlValue::Real(1.5),
        SqlValue::Text("x'); DROP TABLE t; --".into()),
        SqlValue::Blob(vec![0, 255]),
    ];
    let running = TestBroker::new("tester")
        .grant("database_write", &["t"])
        .rows("FROM t", &["a", "b", "c", "d", "e"], vec![values.clone()])
        .start(Plugin::new())
        .await
        .expect("started");
    let db = running.ctx().db();
    // Decoding: every kind of value comes back as scripted.
    let out = db.query("SELECT * FROM t", []).await.expect("answered");
    assert_eq!(out.columns, ["a", "b", "c", "d", "e"]);
    assert_eq!(out.rows, vec![values.clone()]);
    // Encoding: every kind of parameter reaches the broker as sent.
    let n = db
        .execute("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)", values.clone())
        .await
        .expect("written");
    assert_eq!(n, 1);
    assert_eq!(running.db_writes()[0].params, values);
    let err = db
        .query("SELECT * FROM users", [])
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
    assert!(err.to_string().contains("`users`"), "{err}");
}

#[tokio::test]
async fn host_actions_carry_their_target_and_refusals_keep_their_code() {
    use crate::testing::TestBroker;
    let running = TestBroker::new("tester")
        .grant("user_management", &["ban_user:ban", "warn_user"])
        .host_answer("user_management", "ban_user", "ban", Ok(b"banned".to_vec()))
        .host_answer("user_management", "warn_user", "", Ok(b"warned".to_vec()))
        .start(Plugin::new())
        .await
        .expect("started");
    let host = running.ctx().host();
    let out = host
        .call("user_management", "ban_user", "ban", b"{}")
        .await
        .expect("answered");
    assert_eq!(out, b"banned");
    // `act` sends no action: the target alone names what the server does.
    let out = host
        .act("user_management", "warn_user", b"{}")
        .await
        .expect("answered");
    assert_eq!(out, b"warned");
    let calls = running.host_calls();
    assert_eq!(
        (
            calls[1].target.as_str(),
            calls[1].action.as_str(),
            calls[1].payload.as_slice()
        ),
        ("warn_user", "", b"{}".as_slice())
    );
    let err = host
        .call("user_management", "ban_user", "delete", b"{}")
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
    assert!(
        err.to_string().contains("action `delete` on `ban_user`"),
        "{err}"
    );
    assert_eq!(
        running.host_calls().len(),
        2,
        "a refused action reaches no server"
    );
}

#[tokio::test]
async fn http_requests_and_refusals_round_trip() {
    use crate::testing::TestBroker;
    use crate::HttpResponse;
    let answer = HttpResponse {
        status: 201,
        headers: vec![("x-answer".into(), "yes".into())],
        body: b"made".to_vec(),
        url: "https://api.example.com/x".into(),
    };
    let running = TestBroker::new("tester")
        .grant("network_outbound", &["api.example.com"])
        .http_answer(
            Some("POST"),
            "https://api.example.com/x",
            Ok(answer.clone()),
        )
        .start(Plugin::new())
        .await
        .expect("started");
    let http = running.ctx().http();
    let out = http
        .request(
            "POST",
            "https://api.example.com/x",
            &[("x-token", "t")],
            b"{}".to_vec(),
        )
        .await
        .expect("answered");
    assert_eq!(out, answer);
    let call = &running.http_calls()[0];
    assert_eq!(call.headers, [("x-token".to_string(), "t".to_string())]);
    assert_eq!(call.body, b"{}");
    // Scripted for POST only: a GET is unmatched, and says so.
    let err = http
        .get("https://api.example.com/x")
        .await
        .expect_err("unscripted");
    assert!(
        err.is_unavailable() && err.to_string().contains("GET https://api.example.com/x"),
        "{err}"
    );
    let err = http.get("https://evil.net/").await.expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
    assert!(err.to_string().contains("`evil.net:443`"), "{err}");
}

#[tokio::test]
async fn commands_round_trip_with_their_exit_status() {
    use crate::testing::TestBroker;
    use crate::CommandOutput;
    let running = TestBroker::new("tester")
        .grant("execute_commands", &["/bin/echo ..."])
        .command_output(
            &["/bin/echo", "hi", "there"],
            Ok(CommandOutput {
                exit_code: Some(0),
                stdout: b"hi there".to_vec(),
                ..CommandOutput::default()
            }),
        )
        .command_output(
            &["/bin/echo", "killed"],
            Ok(CommandOutput {
                signal: Some(9),
                ..CommandOutput::default()
            }),
        )
        .start(Plugin::new())
        .await
        .expect("started");
    let commands = running.ctx().commands();
    let out = commands
        .run(&["/bin/echo", "hi", "there"])
        .await
        .expect("ran");
    assert_eq!((out.exit_code, out.signal), (Some(0), None));
    assert_eq!(out.stdout, b"hi there");
    let out = commands.run(&["/bin/echo", "killed"]).await.expect("ran");
    assert_eq!((out.exit_code, out.signal), (None, Some(9)));
    let err = commands
        .run(&["/bin/sh", "-c", "id"])
        .await
        .expect_err("refused");
    assert!(err.is_permission_denied(), "{err}");
    assert!(err.to_string().contains("execute_commands"), "{err}");
}
