//! SDK for writing PlexiChat plugins: connect to the supervisor's broker over the
//! inherited fd 3, register command and event handlers, and run.
//!
//! A plugin is an ordinary Rust binary started by the PlexiChat supervisor. The
//! supervisor hands it one end of a socketpair as fd 3 and speaks gRPC
//! (`plexichat.broker.v1.Broker`) over it; the plugin is the client. This crate owns
//! that whole conversation: the handshake, subscribing to the topics your handlers
//! want, answering health pings, replying to command invocations, and a clean exit
//! when the supervisor asks for one.
//!
//! # Example
//!
//! ```no_run
//! use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct ChatMessage {
//!     text: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Greeting<'a> {
//!     reply_to: &'a str,
//!     text: String,
//! }
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> Result<(), SdkError> {
//!     Plugin::new()
//!         // Invoking `greet` with args `Ada` replies `Hello, Ada!`.
//!         .on_command("greet", |_ctx: PluginContext, args: Vec<u8>| async move {
//!             let name = String::from_utf8(args).map_err(|_| "args must be UTF-8")?;
//!             Ok::<String, &str>(format!("Hello, {name}!"))
//!         })
//!         // Errors from SDK calls convert into the `String` a failed reply carries.
//!         .on_command("visits", |ctx: PluginContext, _args: Vec<u8>| async move {
//!             let visits: u64 = ctx
//!                 .config_get("visits")
//!                 .await?
//!                 .and_then(|v| v.parse().ok())
//!                 .unwrap_or(0)
//!                 + 1;
//!             ctx.config_set("visits", &visits.to_string()).await?;
//!             Ok::<Vec<u8>, String>(visits.to_string().into_bytes())
//!         })
//!         // Subscribed automatically; `chat.*` would match every `chat.<x>` topic.
//!         .on_event("chat.message", |ctx: PluginContext, event: Event| async move {
//!             let message: ChatMessage = event.json()?;
//!             let greeting = Greeting {
//!                 reply_to: &event.id,
//!                 text: format!("you said {:?}", message.text),
//!             };
//!             // Published as `<emit prefix>greeted`, e.g. `plugin.hello.greeted`.
//!             ctx.emit_json("greeted", &greeting).await?;
//!             if !ctx.has_permission("database_read").await? {
//!                 ctx.warn("database_read was revoked").await?;
//!             }
//!             Ok::<(), SdkError>(())
//!         })
//!         .on_shutdown(|ctx: PluginContext| async move {
//!             ctx.info("bye").await
//!         })
//!         .run()
//!         .await
//! }
//! ```
//!
//! # Behaviour worth knowing
//!
//! - Handlers run as separate Tokio tasks; a panicking command handler produces a
//!   failed reply, not a dead plugin. They must not block the thread (use
//!   `tokio::task::spawn_blocking`), or health pings go unanswered and the supervisor
//!   restarts the plugin.
//! - A command whose invocation carries a deadline is cancelled when it passes.
//! - [`Plugin::run`] returns `Ok(())` after a supervisor-requested shutdown (once the
//!   [`on_shutdown`](Plugin::on_shutdown) hook has run) and when the supervisor goes away.
//! - The broker fd can be taken once per process. Use [`PluginContext::connect`] and
//!   [`Plugin::run_with`] if you need the context before registering handlers.
//! - Outside the supervisor there is no fd 3, and connecting fails with
//!   [`SdkError::NoBrokerFd`]. To run handlers in tests, use [`testing::TestBroker`]:
//!   an in-process fake broker with scripted grants, files, rows and HTTP answers.
//! - A broker refusal is [`SdkError::Broker`] with an [`ErrorCode`] (the SDK's own
//!   enum of gRPC's codes): match [`SdkError::code`] or the `is_*` helpers.

#![deny(missing_docs)]
#![warn(clippy::missing_errors_doc)]

mod commands;
mod connection;
mod context;
mod db;
mod error;
mod event;
mod files;
mod host;
mod http;
mod plugin;
pub mod testing;

#[cfg(test)]
mod roundtrip_tests;

pub use commands::{CommandOutput, Commands};
pub use connection::{BROKER_FD_ENV, DEFAULT_BROKER_FD, DEFAULT_MAX_IN_FLIGHT};
pub use context::{
    Grant, LogLevel, PluginContext, PLUGIN_NAME_ENV, PLUGIN_VERSION_ENV, SDK_VERSION,
};
pub use db::{Db, QueryResult, SqlValue};
pub use error::{ErrorCode, SdkError};
pub use event::{topic_matches, Event, Events};
pub use files::{DirEntry, FileKind, FileStat, Files, FILE_CHUNK_BYTES};
pub use host::Host;
pub use http::{Http, HttpResponse};
pub use plugin::{HandlerOutcome, Plugin};
