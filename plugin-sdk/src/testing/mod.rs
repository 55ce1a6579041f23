//! Test a plugin without root or a supervisor: [`TestBroker`] scripts grants, files,
//! rows, HTTP answers and config, and runs the plugin's real handlers against it in-process.
//!
//! The fake broker is a real `plexichat.broker.v1` gRPC server on a socketpair, so the
//! plugin goes through the same handshake, subscriptions, session stream and calls as
//! under the supervisor. It applies the broker's rules to what you script: a call the
//! grants do not cover fails with [`ErrorCode::PermissionDenied`] and the real broker's
//! message; `/data` is always the plugin's; paths must be absolute and normalised;
//! events on sensitive topics (`user.*`, `moderation.*`, `chat.private.*`) need a
//! `sensitive_events` grant. What it does not do: run SQL (a `SELECT` answers the rows
//! you scripted, writes are recorded), resolve hosts, enforce quotas or rate limits.
//! It needs no network and no root; it ships in the SDK itself (adding only `tokio-stream`).
//!
//! ```
//! use plexichat_plugin_sdk::testing::TestBroker;
//! use plexichat_plugin_sdk::{Plugin, PluginContext};
//!
//! fn plugin() -> Plugin {
//!     Plugin::new().on_command("weather", |ctx: PluginContext, _args: Vec<u8>| async move {
//!         let answer = ctx.http().get("https://api.example.com/oslo").await?;
//!         Ok::<Vec<u8>, String>(answer.body)
//!     })
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let running = TestBroker::new("weather")
//!     .grant("network_outbound", &["api.example.com"])
//!     .http("https://api.example.com/oslo", 200, "sunny")
//!     .start(plugin())
//!     .await
//!     .expect("the plugin starts");
//! assert_eq!(running.invoke("weather", b"").await, Ok(b"sunny".to_vec()));
//! assert_eq!(running.http_calls()[0].url, "https://api.example.com/oslo");
//!
//! // Without the grant the same call is refused, as the real broker refuses it.
//! let denied = TestBroker::new("weather").start(plugin()).await.expect("starts");
//! let err = denied.invoke("weather", b"").await.expect_err("refused");
//! assert!(err.contains("PERMISSION_DENIED"), "{err}");
//! # }
//! ```

mod fake;
mod policy;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use broker_proto::broker::v1 as pb;
use pb::host_message::Kind;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::plugin::HandlerReport;
use crate::{
    CommandOutput, ErrorCode, Event, Grant, HttpResponse, LogLevel, Plugin, PluginContext,
    QueryResult, SdkError, SqlValue,
};

#[cfg(test)]
pub(crate) use fake::{serve, Seen};
pub(crate) use fake::{Shared, State};

/// How long the harness waits for the plugin (a reply, handlers, shutdown) by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(10);

/// A line the plugin logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: LogLevel,
    /// The text.
    pub message: String,
    /// Structured fields, from [`PluginContext::log_with_fields`].
    pub fields: BTreeMap<String, String>,
}

/// An INSERT, UPDATE or DELETE the plugin ran.
#[derive(Debug, Clone, PartialEq)]
pub struct DbWrite {
    /// The statement as sent.
    pub sql: String,
    /// Its bound parameters, in order.
    pub params: Vec<SqlValue>,
}

/// A host action the plugin asked for (and its grant allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCall {
    /// `user_management`, `system_config` or `plugin_management`.
    pub permission: String,
    /// The action, key or plugin name.
    pub target: String,
    /// The action on the target; empty for [`Host::act`](crate::Host::act).
    pub action: String,
    /// What the plugin sent.
    pub payload: Vec<u8>,
}

/// An HTTP request the plugin made (and its grant allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Upper-case method.
    pub method: String,
    /// The URL as sent.
    pub url: String,
    /// The headers as sent.
    pub headers: Vec<(String, String)>,
    /// The body as sent.
    pub body: Vec<u8>,
}

/// Why [`TestPlugin::event`] did not end with every handler succeeding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFailure {
    /// The broker would not deliver the event: no subscription matches the topic, or
    /// the topic is sensitive and not covered by a `sensitive_events` grant.
    NotDelivered(String),
    /// Delivered, but at least one handler returned an error or panicked.
    HandlerFailed(Vec<String>),
    /// The handlers did not finish within the harness's wait.
    TimedOut,
}

impl fmt::Display for EventFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventFailure::NotDelivered(why) => write!(f, "event not delivered: {why}"),
            EventFailure::HandlerFailed(errors) => {
                write!(f, "event handler failed: {}", errors.join("; "))
            }
            EventFailure::TimedOut => write!(f, "event handlers did not finish in time"),
        }
    }
}

impl std::error::Error for EventFailure {}

/// A scripted broker for one plugin. Build it up, then [`start`](TestBroker::start)
/// the plugin against it. See the [module docs](self).
#[must_use = "a TestBroker does nothing until `.start(plugin).await`"]
pub struct TestBroker {
    state: State,
    wait: Duration,
}

impl TestBroker {
    /// A broker for plugin `name` (version `0.0.0`) with no grants, no config and an
    /// empty `/data`. It emits under `plugin.<name>.`.
    pub fn new(name: &str) -> TestBroker {
        TestBroker {
            state: State {
                plugin_name: name.to_string(),
                plugin_version: "0.0.0".to_string(),
                sensitive: policy::DEFAULT_SENSITIVE_TOPICS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                ..State::default()
            },
            wait: DEFAULT_WAIT,
        }
    }

    /// The plugin version the handshake reports.
    pub fn version(mut self, version: &str) -> TestBroker {
        self.state.plugin_version = version.to_string();
        self
    }

    /// Grants `permission` with `scope` (tables, paths, hosts, topics, actions or argv
    /// entries, as in the manifest); an empty scope grants it unscoped. Granting the
    /// same permission again replaces its scope.
    pub fn grant(mut self, permission: &str, scope: &[&str]) -> TestBroker {
        self.state.grants.retain(|g| g.permission != permission);
        self.state.grants.push(Grant {
            permission: permission.to_string(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            expires_at_ms: 0,
        });
        self
    }

    /// Replaces the sensitive topic patterns (default `user.*`, `moderation.*`,
    /// `chat.private.*`).
    pub fn sensitive_topics(mut self, patterns: &[&str]) -> TestBroker {
        self.state.sensitive = patterns.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Sets one of the plugin's config values.
    pub fn config(mut self, key: &str, value: &str) -> TestBroker {
        self.state.config.insert(key.to_string(), value.to_string());
        self
    }

    /// Puts a file at `path` (`/data/...`, or a path a file grant covers). Its parent
    /// directories exist implicitly.
    pub fn file(mut self, path: &str, contents: impl Into<Vec<u8>>) -> TestBroker {
        self.state.files.insert(path.to_string(), contents.into());
        self
    }

    /// Answers statements containing `sql_fragment` with these columns and rows
    /// (checked after the table grants). The first matching script answers; an
    /// unscripted SELECT returns no rows, an unscripted write changes one row.
    pub fn rows(
        self,
        sql_fragment: &str,
        columns: &[&str],
        rows: Vec<Vec<SqlValue>>,
    ) -> TestBroker {
        self.query_result(
            sql_fragment,
            Ok(QueryResult {
                columns: columns.iter().map(|c| c.to_string()).collect(),
                rows,
                rows_affected: 0,
            }),
        )
    }

    /// Answers statements containing `sql_fragment` with `answer`: a result, or an
    /// error such as `(ErrorCode::DeadlineExceeded, "statement timed out")`.
    pub fn query_result(
        mut self,
        sql_fragment: &str,
        answer: Result<QueryResult, (ErrorCode, String)>,
    ) -> TestBroker {
        self.state.queries.push((sql_fragment.to_string(), answer));
        self
    }

    /// Answers any method on exactly `url` with `status` and `body`. The URL's host
    /// still needs a `network_outbound` grant; a URL nobody scripted is refused with
    /// [`ErrorCode::Unavailable`] and a message naming it.
    pub fn http(self, url: &str, status: u16, body: impl Into<Vec<u8>>) -> TestBroker {
        let response = HttpResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
            url: url.to_string(),
        };
        self.http_answer(None, url, Ok(response))
    }

    /// Answers `method` (any method when `None`) on exactly `url` with `answer`: a
    /// full response, or an error such as `(ErrorCode::DeadlineExceeded, "timed out")`.
    pub fn http_answer(
        mut self,
        method: Option<&str>,
        url: &str,
        answer: Result<HttpResponse, (ErrorCode, String)>,
    ) -> TestBroker {
        self.state.http.push((
            method.map(|m| m.to_ascii_uppercase()),
            url.to_string(),
            answer,
        ));
        self
    }

    /// Answers the host action `target` (with `action`, or none when empty) under
    /// `permission`. The grant must still cover it; an unscripted allowed action is
    /// [`ErrorCode::Unavailable`], like a broker with no PlexiChat server connected.
    pub fn host_answer(
        mut self,
        permission: &str,
        target: &str,
        action: &str,
        answer: Result<Vec<u8>, (ErrorCode, String)>,
    ) -> TestBroker {
        let name = policy::host_action_name(target, action);
        self.state.host.push((permission.to_string(), name, answer));
        self
    }

    /// What running exactly `argv` through [`Commands::run`](crate::Commands::run)
    /// returns (an `execute_commands` grant must still allow it).
    pub fn command_output(
        mut self,
        argv: &[&str],
        answer: Result<CommandOutput, (ErrorCode, String)>,
    ) -> TestBroker {
        let argv = argv.iter().map(|a| a.to_string()).collect();
        self.state.exec.push((argv, answer));
        self
    }

    /// How long the harness waits for replies, handlers and shutdown (default
    /// [`DEFAULT_WAIT`]).
    pub fn wait(mut self, wait: Duration) -> TestBroker {
        self.wait = wait;
        self
    }

    /// Connects `plugin` to this broker and runs it: the handshake, its subscriptions,
    /// the session. Returns once the session is open, so events and invocations
    /// reach the handlers. Must be called inside a Tokio runtime (`#[tokio::test]`).
    ///
    /// # Errors
    /// What [`Plugin::run`] would return before serving: an invalid registration
    /// ([`SdkError::InvalidPlugin`]), or a subscription the broker refuses (e.g.
    /// [`ErrorCode::PermissionDenied`] for a sensitive topic without its grant).
    pub async fn start(self, plugin: Plugin) -> Result<TestPlugin, SdkError> {
        let wait = self.wait;
        let (host_tx, host_rx) = mpsc::channel(64);
        let shared = Arc::new(Shared::new(self.state, host_rx));
        let (plugin_end, _) = fake::serve(shared.clone(), false)?;
        let ctx = within(wait, PluginContext::connect_stream(plugin_end))
            .await
            .ok_or_else(|| timed_out("the handshake"))??;
        let (report_tx, reports) = mpsc::unbounded_channel();
        let mut run = tokio::spawn(plugin.observed(report_tx).run_with(ctx.clone()));
        tokio::select! {
            _ = shared.session_opened.notified() => {}
            ended = &mut run => {
                return Err(match ended {
                    Ok(Err(e)) => e,
                    Ok(Ok(())) => SdkError::InvalidPlugin("the plugin ended before opening its session".into()),
                    Err(e) => SdkError::InvalidPlugin(format!("the plugin task failed: {e}")),
                });
            }
            _ = tokio::time::sleep(wait) => return Err(timed_out("the session")),
        }
        Ok(TestPlugin {
            shared,
            ctx,
            host: host_tx,
            run,
            reports: tokio::sync::Mutex::new(reports),
            wait,
        })
    }
}

fn timed_out(what: &str) -> SdkError {
    SdkError::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("testing: {what} did not complete in time"),
    ))
}

async fn within<T>(wait: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(wait, fut).await.ok()
}

/// A plugin running against a [`TestBroker`]: drive it (invoke commands, send events)
/// and inspect what it did (emitted events, logs, writes, calls, files, config).
pub struct TestPlugin {
    shared: Arc<Shared>,
    ctx: PluginContext,
    host: fake::HostTx,
    run: JoinHandle<Result<(), SdkError>>,
    /// One event at a time reads the handler reports, so each sees its own.
    reports: tokio::sync::Mutex<mpsc::UnboundedReceiver<HandlerReport>>,
    wait: Duration,
}

impl fmt::Debug for TestPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPlugin")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}

impl TestPlugin {
    /// The plugin's own context, to call SDK functions directly from a test.
    pub fn ctx(&self) -> &PluginContext {
        &self.ctx
    }

    /// Invokes `command` with `args` as the supervisor would and returns the reply:
    /// `Ok(output)`, or `Err(error)` with the handler's error text (`unknown command
    /// `x`` for a command the plugin does not handle). A reply not received within the
    /// wait is `Err` saying so.
    ///
    /// # Errors
    /// The failed reply's error text, or the harness's own `testing: ...` message when no
    /// reply came within the wait.
    pub async fn invoke(&self, command: &str, args: &[u8]) -> Result<Vec<u8>, String> {
        let id = self.shared.state().next_id("invocation");
        let (tx, rx) = oneshot::channel();
        self.shared
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let sent = self
            .send(Kind::Invoke(pb::CommandInvocation {
                invocation_id: id,
                command: command.to_string(),
                args: args.to_vec(),
                deadline_ms: 0,
            }))
            .await;
        if !sent {
            return Err("testing: the plugin is no longer running".into());
        }
        match within(self.wait, rx).await {
            Some(Ok(reply)) if reply.ok => Ok(reply.output),
            Some(Ok(reply)) => Err(reply.error),
            Some(Err(_)) => Err("testing: the broker dropped the invocation".into()),
            None => Err(format!(
                "testing: no reply to `{command}` within {:?}",
                self.wait
            )),
        }
    }

    /// [`invoke`](Self::invoke) with text args, and the output as (lossy) text.
    ///
    /// # Errors
    /// As [`invoke`](Self::invoke).
    pub async fn invoke_text(&self, command: &str, args: &str) -> Result<String, String> {
        self.invoke(command, args.as_bytes())
            .await
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    /// Publishes an event from the PlexiChat server (`source` `"server"`) and waits
    /// until every handler it reaches has finished.
    ///
    /// # Errors
    /// [`EventFailure::NotDelivered`] when the broker would not deliver it (no matching
    /// subscription, or a sensitive topic without the grant); `HandlerFailed` with the
    /// handlers' errors; `TimedOut` when they run past the wait.
    pub async fn event(
        &self,
        topic: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), EventFailure> {
        let event = {
            let mut state = self.shared.state();
            if !state
                .subscriptions
                .iter()
                .any(|p| crate::topic_matches(p, topic))
            {
                return Err(EventFailure::NotDelivered(format!(
                    "the plugin has no subscription matching `{topic}` (it has {:?})",
                    state.subscriptions
                )));
            }
            if !policy::may_receive(&state.grants, &state.sensitive, topic) {
                return Err(EventFailure::NotDelivered(format!(
                    "`{topic}` is a sensitive topic and sensitive_events is not granted for it"
                )));
            }
            pb::Event {
                id: state.next_id("event"),
                topic: topic.to_string(),
                payload: payload.into().into(),
                source: "server".to_string(),
                timestamp_ms: fake_now_ms(),
            }
        };
        let id = event.id.clone();
        let mut reports = self.reports.lock().await;
        if !self.send(Kind::Event(event)).await {
            return Err(EventFailure::NotDelivered(
                "the plugin is no longer running".into(),
            ));
        }
        within(self.wait, collect(&mut reports, &id))
            .await
            .unwrap_or(Err(EventFailure::TimedOut))
    }

    /// [`event`](Self::event) with `value` encoded as JSON.
    ///
    /// # Errors
    /// As [`event`](Self::event); a value that cannot be encoded is `HandlerFailed`
    /// naming the JSON error.
    pub async fn event_json<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<(), EventFailure> {
        let payload = serde_json::to_vec(value).map_err(|e| {
            EventFailure::HandlerFailed(vec![format!("cannot encode the event: {e}")])
        })?;
        self.event(topic, payload).await
    }

    async fn send(&self, kind: Kind) -> bool {
        self.host
            .send(Ok(pb::HostMessage { kind: Some(kind) }))
            .await
            .is_ok()
    }

    /// Events the plugin emitted, in order, with their full topics.
    pub fn emitted(&self) -> Vec<Event> {
        self.shared.state().emitted.clone()
    }

    /// Lines the plugin logged (handler failures are logged at `Error` by the SDK).
    pub fn logs(&self) -> Vec<LogLine> {
        self.shared.state().logs.clone()
    }

    /// The INSERT, UPDATE and DELETE statements the plugin ran.
    pub fn db_writes(&self) -> Vec<DbWrite> {
        self.shared.state().db_writes.clone()
    }

    /// The host actions the plugin performed.
    pub fn host_calls(&self) -> Vec<HostCall> {
        self.shared.state().host_calls.clone()
    }

    /// The HTTP requests the plugin made.
    pub fn http_calls(&self) -> Vec<HttpCall> {
        self.shared.state().http_calls.clone()
    }

    /// The host commands the plugin ran.
    pub fn command_calls(&self) -> Vec<Vec<String>> {
        self.shared.state().exec_calls.clone()
    }

    /// The topics the plugin is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.shared.state().subscriptions.clone()
    }

    /// A file's current contents.
    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.shared.state().files.get(path).cloned()
    }

    /// A config value as the plugin last left it.
    pub fn config(&self, key: &str) -> Option<String> {
        self.shared.state().config.get(key).cloned()
    }

    /// Revokes `permission` from now on, as an operator would; later calls needing it
    /// are refused.
    pub fn revoke(&self, permission: &str) {
        self.shared
            .state()
            .grants
            .retain(|g| g.permission != permission);
    }

    /// Asks the plugin to shut down (its `on_shutdown` hook runs) and waits for it.
    ///
    /// # Errors
    /// What [`Plugin::run`] returned, or a timeout if it did not end within the wait.
    pub async fn shutdown(self) -> Result<(), SdkError> {
        let grace_ms = u64::try_from(self.wait.as_millis()).unwrap_or(u64::MAX);
        // A plugin that already ended simply is not listening any more.
        let _ = self
            .send(Kind::Shutdown(pb::Shutdown {
                grace_ms,
                reason: "test over".into(),
            }))
            .await;
        match within(self.wait, self.run).await {
            Some(Ok(result)) => result,
            Some(Err(e)) => Err(SdkError::InvalidPlugin(format!(
                "the plugin task failed: {e}"
            ))),
            None => Err(timed_out("shutdown")),
        }
    }
}

/// Waits for event `id`'s handlers: first how many the dispatcher started, then each one's end.
async fn collect(
    reports: &mut mpsc::UnboundedReceiver<HandlerReport>,
    id: &str,
) -> Result<(), EventFailure> {
    let mut pending = None;
    let mut failures = Vec::new();
    loop {
        if pending == Some(0) {
            return if failures.is_empty() {
                Ok(())
            } else {
                Err(EventFailure::HandlerFailed(failures))
            };
        }
        match reports.recv().await {
            None => return Err(EventFailure::NotDelivered("the plugin stopped".into())),
            Some(HandlerReport::Dispatched { event_id, handlers }) if event_id == id => {
                pending = Some(handlers);
            }
            Some(HandlerReport::Finished { event_id, outcome }) if event_id == id => {
                pending = pending.map(|n: usize| n.saturating_sub(1));
                if let Err(e) = outcome {
                    failures.push(e);
                }
            }
            // A report for an earlier event that timed out.
            Some(_) => {}
        }
    }
}

fn fake_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
