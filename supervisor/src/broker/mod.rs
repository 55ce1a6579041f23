//! The data plane: a tonic `Broker` server over each plugin's socketpair, with the
//! connection as the plugin's identity, and the hub that routes events between
//! plugins and the PlexiChat server. May call the store and catalog; never spawns.

mod cost;
pub mod database;
mod files;
pub mod host_actions;
mod hub;
pub mod network;
mod ratelimit;
mod service;
mod session;
mod sql_functions;
mod watchdog;

use std::sync::Arc;

use broker_proto::broker::v1::broker_server::BrokerServer;
use broker_proto::MAX_BROKER_MESSAGE_BYTES;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

pub use cost::{CostLimits, Costs};
pub use hub::Hub;
pub use ratelimit::RateLimiter;
pub use service::BrokerService;
pub use session::{InvokeError, Session};

/// How long a refusal for being over a limit (rate, concurrency, CPU budget) waits
/// before it is answered. Why: answering at once lets a plugin that retries in a loop
/// make the supervisor spend its CPU on refusals (10 000 a second were seen); a
/// delayed refusal holds one of the connection's streams, so a flooding plugin soon
/// waits on its own stream limit instead, at no cost to anyone else.
pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

/// Serves the broker on one plugin connection until the task is aborted or the
/// plugin hangs up.
pub fn serve_connection(conn: UnixStream, service: BrokerService) -> JoinHandle<()> {
    let plugin = service.session.name().to_string();
    tokio::spawn(async move {
        let server = BrokerServer::new(service)
            .max_decoding_message_size(MAX_BROKER_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_BROKER_MESSAGE_BYTES);
        // A single connection, then nothing: the stream stays open so tonic keeps
        // serving it until the plugin goes away.
        let incoming = tokio_stream::StreamExt::chain(
            tokio_stream::once(Ok::<_, std::io::Error>(conn)),
            tokio_stream::pending(),
        );
        let result = tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = result {
            tracing::warn!(plugin, error = %e, "broker connection ended with an error");
        }
    })
}

pub fn shared_session(plugin: crate::manifest::PluginName, version: String) -> Arc<Session> {
    Arc::new(Session::new(plugin, version))
}

/// Who may receive an event on `topic`: any subscriber, or for a topic the policy
/// marks sensitive only plugins whose live `sensitive_events` grant covers it (checked
/// at each delivery, so a revocation or expiry takes effect with the next event).
pub fn event_audience<'a>(
    shared: &'a crate::context::Shared,
    topic: &'a str,
) -> impl Fn(&str) -> bool + 'a {
    let sensitive = shared.catalog.is_sensitive(topic);
    move |plugin: &str| {
        !sensitive
            || matches!(
                shared.store.check_grant(
                    &shared.catalog,
                    plugin,
                    crate::catalog::Permission::SensitiveEvents,
                    Some(topic),
                ),
                Ok(Some(_))
            )
    }
}
