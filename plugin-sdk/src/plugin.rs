//! The `Plugin` builder and its dispatch loop: registers command/event/shutdown handlers,
//! then serves the session stream, running handlers and pongs as tasks so pings never wait.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::host_message::Kind;
use tokio::task::{JoinError, JoinHandle, JoinSet};

use crate::context::is_connection_failure;
use crate::event::{topic_matches, validate_pattern};
use crate::{Event, PluginContext, SdkError};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type CommandHandler =
    Arc<dyn Fn(PluginContext, Vec<u8>) -> BoxFuture<Result<Vec<u8>, String>> + Send + Sync>;
type EventHandler =
    Arc<dyn Fn(PluginContext, Event) -> BoxFuture<Result<(), String>> + Send + Sync>;
type ShutdownHook = Box<dyn FnOnce(PluginContext) -> BoxFuture<Result<(), String>> + Send>;

/// Bytes a `CommandReply` adds around its output (ids, tags, gRPC framing), with room
/// to spare; used to refuse oversized outputs with a readable error instead of a
/// failed `Reply` call that would leave the invoker waiting for its deadline.
const REPLY_OVERHEAD_BYTES: usize = 1024;

/// What the dispatch loop tells the in-process [`testing`](crate::testing) broker, so
/// a test can wait until an event's handlers have finished.
pub(crate) enum HandlerReport {
    /// Event `event_id` started this many handlers (possibly none).
    Dispatched { event_id: String, handlers: usize },
    /// One of its handlers ended.
    Finished {
        event_id: String,
        outcome: Result<(), String>,
    },
}

pub(crate) type Observer = tokio::sync::mpsc::UnboundedSender<HandlerReport>;

/// What an event or shutdown handler may return: `()`, or a `Result` whose error is
/// logged to the supervisor.
pub trait HandlerOutcome: Send + 'static {
    /// The outcome as `Err(message)` on failure.
    ///
    /// # Errors
    /// `Err(message)` when the handler failed.
    fn into_outcome(self) -> Result<(), String>;
}

impl HandlerOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: fmt::Display + Send + 'static> HandlerOutcome for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// A plugin under construction: register handlers, then [`run`](Plugin::run) it.
///
/// Handlers receive a clone of the [`PluginContext`] and run as their own Tokio tasks,
/// so a slow handler never delays health pings or other handlers.
#[must_use = "a Plugin does nothing until `.run().await`"]
pub struct Plugin {
    commands: HashMap<String, CommandHandler>,
    events: Vec<(String, EventHandler)>,
    shutdown: Option<ShutdownHook>,
    max_in_flight: usize,
    /// Registration mistakes, reported by `run` so builder calls stay chainable.
    problems: Vec<String>,
    /// Told about event handlers' ends; only the testing harness sets it.
    observer: Option<Observer>,
}

impl Default for Plugin {
    fn default() -> Self {
        Plugin::new()
    }
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut commands: Vec<&String> = self.commands.keys().collect();
        commands.sort();
        f.debug_struct("Plugin")
            .field("commands", &commands)
            .field(
                "events",
                &self.events.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .field("on_shutdown", &self.shutdown.is_some())
            .finish()
    }
}

impl Plugin {
    /// A plugin with no handlers yet.
    pub fn new() -> Plugin {
        Plugin {
            commands: HashMap::new(),
            events: Vec::new(),
            shutdown: None,
            max_in_flight: crate::DEFAULT_MAX_IN_FLIGHT,
            problems: Vec::new(),
            observer: None,
        }
    }

    /// Reports event handlers' ends to `observer` (the testing harness).
    pub(crate) fn observed(mut self, observer: Observer) -> Plugin {
        self.observer = Some(observer);
        self
    }

    /// Keeps at most `n` broker calls in flight (at least 1; default
    /// [`DEFAULT_MAX_IN_FLIGHT`](crate::DEFAULT_MAX_IN_FLIGHT)): calls beyond it wait in
    /// the plugin, so a burst from many tasks is served in turn instead of flooding
    /// the connection.
    pub fn max_in_flight(mut self, n: usize) -> Plugin {
        self.max_in_flight = n.max(1);
        self
    }

    /// Handles command `name`. The handler gets the invocation's raw args; `Ok(output)`
    /// becomes a successful reply, `Err(e)` a failed one carrying `e.to_string()`.
    /// If the invocation carries a deadline, the handler is cancelled when it passes.
    ///
    /// Registering the same name twice makes [`run`](Plugin::run) fail.
    pub fn on_command<F, Fut, O, E>(mut self, name: impl Into<String>, handler: F) -> Plugin
    where
        F: Fn(PluginContext, Vec<u8>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        O: Into<Vec<u8>> + 'static,
        E: fmt::Display + 'static,
    {
        let name = name.into();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.problems
                .push(format!("command name {name:?} is empty or has whitespace"));
            return self;
        }
        if self.commands.contains_key(&name) {
            self.problems
                .push(format!("command `{name}` is registered twice"));
            return self;
        }
        let handler: CommandHandler = Arc::new(move |ctx, args| {
            let fut = handler(ctx, args);
            Box::pin(async move { fut.await.map(Into::into).map_err(|e| e.to_string()) })
        });
        self.commands.insert(name, handler);
        self
    }

    /// Handles events whose topic matches `pattern`: an exact topic, or `prefix.*`
    /// for every topic under `prefix.`. Every matching handler runs, each in its own
    /// task. The patterns are subscribed automatically before the session opens.
    /// A handler's `Err` is logged to the supervisor.
    pub fn on_event<F, Fut>(mut self, pattern: impl Into<String>, handler: F) -> Plugin
    where
        F: Fn(PluginContext, Event) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        let pattern = pattern.into();
        if let Err(problem) = validate_pattern(&pattern) {
            self.problems.push(problem);
            return self;
        }
        let handler: EventHandler = Arc::new(move |ctx, event| {
            let fut = handler(ctx, event);
            Box::pin(async move { fut.await.into_outcome() })
        });
        self.events.push((pattern, handler));
        self
    }

    /// Runs `hook` when the supervisor asks the plugin to shut down, after in-flight
    /// handlers had a chance to finish (bounded by half the shutdown grace period).
    /// It does not run when the connection is simply lost: the broker is gone then.
    pub fn on_shutdown<F, Fut>(mut self, hook: F) -> Plugin
    where
        F: FnOnce(PluginContext) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        if self.shutdown.is_some() {
            self.problems
                .push("on_shutdown is registered twice".to_string());
            return self;
        }
        self.shutdown = Some(Box::new(move |ctx| {
            let fut = hook(ctx);
            Box::pin(async move { fut.await.into_outcome() })
        }));
        self
    }

    /// Connects to the supervisor over the inherited fd, handshakes, subscribes the
    /// event patterns and serves the session until the supervisor asks for shutdown
    /// (returns `Ok` after the shutdown hook) or goes away (returns `Ok`).
    ///
    /// # Errors
    /// [`SdkError::InvalidPlugin`] for a bad registration (before connecting); what
    /// [`PluginContext::connect`] returns; a broker refusal of a subscription; an error status
    /// the supervisor ends the session with.
    pub async fn run(self) -> Result<(), SdkError> {
        // Checked before connecting so a broken plugin fails without consuming the fd.
        self.check()?;
        let ctx = PluginContext::connect_limited(self.max_in_flight).await?;
        self.run_with(ctx).await
    }

    /// [`run`](Plugin::run) on a context you already connected, e.g. to read config
    /// before deciding which handlers to register.
    ///
    /// # Errors
    /// As [`run`](Plugin::run), except the connect errors; [`SdkError::SessionAlreadyOpen`]
    /// if this context already served a session.
    pub async fn run_with(self, ctx: PluginContext) -> Result<(), SdkError> {
        self.check()?;
        let Plugin {
            commands,
            events,
            shutdown,
            max_in_flight: _,
            problems: _,
            observer,
        } = self;

        let mut patterns: Vec<&str> = Vec::new();
        for (pattern, _) in &events {
            if !patterns.contains(&pattern.as_str()) {
                patterns.push(pattern);
            }
        }
        if !patterns.is_empty() {
            ctx.subscribe(&patterns).await?;
        }

        let mut session = ctx.open_session().await?;
        let dispatcher = Dispatcher {
            ctx: ctx.clone(),
            commands,
            events,
            observer,
        };
        let mut tasks = JoinSet::new();
        let ending = loop {
            let message = session.message().await;
            // Outer tasks never panic (handlers run in inner tasks), so reaping only frees them.
            while tasks.try_join_next().is_some() {}
            match message {
                Ok(Some(pb::HostMessage { kind: Some(kind) })) => match kind {
                    Kind::Event(event) => dispatcher.event(Event::from_pb(event), &mut tasks),
                    Kind::Invoke(invocation) => dispatcher.invoke(invocation, &mut tasks),
                    Kind::Ping(ping) => dispatcher.ping(ping.id, &mut tasks),
                    Kind::Shutdown(shutdown) => break Ending::Shutdown(shutdown),
                },
                // A message kind from a newer protocol revision: nothing to do with it.
                Ok(Some(pb::HostMessage { kind: None })) => {}
                Ok(None) => break Ending::Closed,
                Err(status) => break Ending::Failed(status),
            }
        };

        match ending {
            Ending::Shutdown(request) => {
                let drain = Duration::from_millis(request.grace_ms / 2);
                if tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} })
                    .await
                    .is_err()
                {
                    diagnostic(&format!(
                        "{} handler(s) still running at shutdown; cancelling them",
                        tasks.len()
                    ));
                }
                tasks.shutdown().await;
                if let Some(hook) = shutdown {
                    let hook_ctx = ctx.clone();
                    match isolated(async move { hook(hook_ctx).await }).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => report(&ctx, &format!("shutdown hook failed: {e}")).await,
                        Err(e) => {
                            report(&ctx, &format!("shutdown hook {}", join_failure(&e))).await
                        }
                    }
                }
                Ok(())
            }
            Ending::Closed => Ok(()),
            // The supervisor going away mid-stream surfaces as a transport status; that
            // is the same "session over" as a clean close. A status the supervisor chose
            // to send is an answer, and is returned.
            Ending::Failed(status) if is_connection_failure(&status) => {
                diagnostic(&format!("broker connection lost: {}", status.message()));
                Ok(())
            }
            Ending::Failed(status) => Err(crate::error::from_status(status)),
        }
    }

    fn check(&self) -> Result<(), SdkError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(SdkError::InvalidPlugin(self.problems.join("; ")))
        }
    }
}

enum Ending {
    Shutdown(pb::Shutdown),
    Closed,
    Failed(tonic::Status),
}

struct Dispatcher {
    ctx: PluginContext,
    commands: HashMap<String, CommandHandler>,
    events: Vec<(String, EventHandler)>,
    observer: Option<Observer>,
}

impl Dispatcher {
    fn event(&self, event: Event, tasks: &mut JoinSet<()>) {
        if let Some(observer) = &self.observer {
            let handlers = self
                .events
                .iter()
                .filter(|(pattern, _)| topic_matches(pattern, &event.topic))
                .count();
            let _ = observer.send(HandlerReport::Dispatched {
                event_id: event.id.clone(),
                handlers,
            });
        }
        for (pattern, handler) in self.events.iter() {
            if !topic_matches(pattern, &event.topic) {
                continue;
            }
            let observer = self.observer.clone();
            let ctx = self.ctx.clone();
            let handler = handler.clone();
            let event = event.clone();
            let topic = event.topic.clone();
            let event_id = event.id.clone();
            tasks.spawn(async move {
                // The handler is called inside the isolated task, so even a panic in
                // the closure itself (before its future exists) is contained.
                let run = isolated({
                    let ctx = ctx.clone();
                    async move { handler(ctx, event).await }
                });
                let id = event_id;
                let problem = match run.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("handler for event `{topic}` failed: {e}")),
                    Err(e) => Some(format!("handler for event `{topic}` {}", join_failure(&e))),
                };
                if let Some(problem) = &problem {
                    report(&ctx, problem).await;
                }
                if let Some(observer) = observer {
                    let outcome = problem.map_or(Ok(()), Err);
                    let _ = observer.send(HandlerReport::Finished {
                        event_id: id,
                        outcome,
                    });
                }
            });
        }
    }

    fn invoke(&self, invocation: pb::CommandInvocation, tasks: &mut JoinSet<()>) {
        let ctx = self.ctx.clone();
        let pb::CommandInvocation {
            invocation_id,
            command,
            args,
            deadline_ms,
        } = invocation;
        let handler = self.commands.get(&command).cloned();
        tasks.spawn(async move {
            let result = match handler {
                None => Err(format!("unknown command `{command}`")),
                Some(handler) => {
                    let ctx = ctx.clone();
                    let run = Box::pin(async move { handler(ctx, args).await });
                    run_command(&command, run, deadline_ms).await
                }
            };
            let limit = ctx.max_message_bytes().saturating_sub(REPLY_OVERHEAD_BYTES);
            let result = result.and_then(|output| {
                if output.len() > limit {
                    Err(format!(
                        "command `{command}` output is {} bytes, over the {limit}-byte limit",
                        output.len()
                    ))
                } else {
                    Ok(output)
                }
            });
            let reply = match result {
                Ok(output) => pb::CommandReply {
                    invocation_id,
                    ok: true,
                    output,
                    error: String::new(),
                },
                Err(error) => pb::CommandReply {
                    invocation_id,
                    ok: false,
                    output: Vec::new(),
                    error,
                },
            };
            if let Err(e) = ctx.reply(reply).await {
                diagnostic(&format!("could not reply to command `{command}`: {e}"));
            }
        });
    }

    fn ping(&self, id: u64, tasks: &mut JoinSet<()>) {
        let ctx = self.ctx.clone();
        // A task, so the next session message is read while the Pong call is in flight.
        tasks.spawn(async move {
            if let Err(e) = ctx.pong(id).await {
                diagnostic(&format!("could not answer ping {id}: {e}"));
            }
        });
    }
}

async fn run_command(
    command: &str,
    run: BoxFuture<Result<Vec<u8>, String>>,
    deadline_ms: i64,
) -> Result<Vec<u8>, String> {
    let joined = match remaining_until(deadline_ms) {
        None => isolated(run).await,
        Some(left) => match tokio::time::timeout(left, isolated(run)).await {
            Ok(joined) => joined,
            // Dropping the `isolated` future aborts the handler task.
            Err(_) => return Err(format!("command `{command}` timed out")),
        },
    };
    match joined {
        Ok(result) => result,
        Err(e) => Err(format!("command `{command}` {}", join_failure(&e))),
    }
}

/// Time left until a Unix-millisecond deadline; `None` when there is no deadline.
fn remaining_until(deadline_ms: i64) -> Option<Duration> {
    if deadline_ms <= 0 {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Some(Duration::from_millis(
        u64::try_from(deadline_ms.saturating_sub(now_ms)).unwrap_or(0),
    ))
}

/// Runs `fut` as its own task so a panicking handler becomes an error value rather
/// than taking down the dispatch loop; dropping the returned future aborts the task.
async fn isolated<T: Send + 'static>(
    fut: impl Future<Output = T> + Send + 'static,
) -> Result<T, JoinError> {
    struct AbortOnDrop<T>(JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(tokio::spawn(fut));
    (&mut task.0).await
}

fn join_failure(e: &JoinError) -> &'static str {
    if e.is_panic() {
        "panicked"
    } else {
        "was cancelled"
    }
}

/// Reports a handler failure to the supervisor log, falling back to stderr (which
/// the supervisor also captures) if the broker cannot take it.
async fn report(ctx: &PluginContext, message: &str) {
    if ctx.error(message).await.is_err() {
        diagnostic(message);
    }
}

fn diagnostic(message: &str) {
    eprintln!("plexichat-plugin-sdk: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        assert_eq!(remaining_until(0), None);
        assert_eq!(remaining_until(-5), None);
        assert_eq!(remaining_until(1), Some(Duration::ZERO));
        let far = remaining_until(i64::MAX).expect("has a deadline");
        assert!(far > Duration::from_secs(3600));
    }

    #[test]
    fn registration_problems_surface_in_check() {
        let plugin = Plugin::new()
            .on_command("a", |_, _| async { Ok::<_, String>(Vec::new()) })
            .on_command("a", |_, _| async { Ok::<_, String>(Vec::new()) })
            .on_command("", |_, _| async { Ok::<_, String>(Vec::new()) })
            .on_event("chat.*", |_, _| async {})
            .on_event("chat*", |_, _| async {})
            .on_shutdown(|_| async {})
            .on_shutdown(|_| async {});
        let err = plugin.check().expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("`a` is registered twice"), "{text}");
        assert!(text.contains("command name \"\""), "{text}");
        assert!(text.contains("`chat*` is not a topic pattern"), "{text}");
        assert!(text.contains("on_shutdown is registered twice"), "{text}");
        assert!(!text.contains("chat.*`"), "{text}");
    }

    #[test]
    fn a_valid_plugin_checks_out() {
        let plugin = Plugin::new()
            .on_command("greet", |_, args| async move {
                Ok::<_, String>(format!("Hello, {}!", String::from_utf8_lossy(&args)))
            })
            .on_event("chat.message", |_, _| async { Ok::<(), String>(()) });
        assert!(plugin.check().is_ok());
        assert!(format!("{plugin:?}").contains("greet"));
    }

    #[tokio::test]
    async fn isolated_turns_panics_into_errors() {
        let res = isolated(async { panic!("boom") }).await;
        let err: JoinError = match res {
            Ok(()) => panic!("should have panicked"),
            Err(e) => e,
        };
        assert_eq!(join_failure(&err), "panicked");
    }

    #[tokio::test]
    async fn commands_time_out_at_their_deadline() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let slow: BoxFuture<Result<Vec<u8>, String>> = Box::pin(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Vec::new())
        });
        let res = run_command("slow", slow, now_ms + 50).await;
        assert_eq!(res, Err("command `slow` timed out".to_string()));
    }
}
