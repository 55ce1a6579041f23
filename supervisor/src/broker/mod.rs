//! The data plane: a tonic `Broker` server over each plugin's socketpair, with the
//! connection as the plugin's identity, and the hub that routes events between
//! plugins and the PlexiChat server. May call the store and catalog; never spawns.

mod budget;
mod cost;
pub mod database;
mod files;
pub mod host_actions;
pub mod http2;
mod hub;
pub mod imports;
pub mod network;
mod ratelimit;
mod service;
mod session;
mod sql_functions;
mod subscriptions;
mod watchdog;

use std::sync::Arc;

use broker_proto::broker::v1::broker_server::BrokerServer;
use broker_proto::MAX_BROKER_MESSAGE_BYTES;
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

pub use cost::{CostLimits, Costs};
pub use hub::{Emitter, EventLimits, Hub};
pub use ratelimit::{Rate, RateLimiter};
pub use service::BrokerService;
pub(crate) use service::{
    accept_handshake, from_sql_value, open_session_stream, to_sql_value, HostStream,
};
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
        let result = http2::server()
            .add_service(server)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = result {
            tracing::warn!(plugin, error = %e, "broker connection ended with an error");
        }
    })
}

pub fn shared_session(
    plugin: crate::manifest::PluginName,
    version: String,
    declared: crate::manifest::Declared,
) -> Arc<Session> {
    Arc::new(Session::new(plugin, version, Arc::new(declared)))
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

/// How often events dropped for full queues and emits refused for a full budget are
/// written to the audit trail, as one record per queue or emitter with the counts.
pub const LOSS_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Writes the hub's event losses every [`LOSS_REPORT_INTERVAL`] while there are any.
pub fn report_losses(shared: Arc<crate::context::Shared>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LOSS_REPORT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let losses = shared.hub.take_losses();
            if losses.is_empty() {
                continue;
            }
            let interval_ms = LOSS_REPORT_INTERVAL.as_millis() as u64;
            for entry in losses.entries(interval_ms) {
                shared.audit.record(entry);
            }
        }
    })
}
