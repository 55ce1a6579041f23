//! One plugin instance's live connection state: handshake status, the outbound
//! host-message stream, subscriptions and in-flight command invocations and pings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use broker_proto::broker::v1::{host_message, CommandInvocation, HostMessage, Ping, Shutdown};
use tokio::sync::{mpsc, oneshot, watch};

use super::budget::Charge;
use super::subscriptions::{Subscriptions, TooMany};
use crate::manifest::{Declared, PluginName};

/// Host messages queued per plugin before publishers see RESOURCE_EXHAUSTED.
pub const OUTBOUND_QUEUE: usize = 256;
/// Slots of the outbound queue events never take: invocations, pings and shutdowns
/// still reach a plugin whose queue is full of events.
const CONTROL_RESERVE: usize = 32;

/// A host message on its way to the plugin. An event carries its charges (this
/// queue's bytes, and the emitter's bytes in flight), released when the session
/// stream takes it.
pub struct Outbound {
    message: HostMessage,
    charges: Option<(Charge, Arc<Charge>)>,
}

impl Outbound {
    pub fn into_message(self) -> HostMessage {
        self.message
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeError {
    NotReady,
    QueueFull,
    Timeout,
    Gone,
    Plugin(String),
}

/// Where a plugin's answer to one command invocation is delivered.
type ReplySlot = oneshot::Sender<Result<Vec<u8>, String>>;

pub struct Session {
    pub plugin: PluginName,
    pub version: String,
    /// The running version's declared settings and commands.
    pub declared: Arc<Declared>,
    /// Modules the plugin's runtime reported loading (ReportImports).
    pub imports: Arc<super::imports::ImportLog>,
    handshaken: AtomicBool,
    closed: AtomicBool,
    /// Flips to true once the plugin has opened its session stream: it is ready.
    ready: watch::Sender<bool>,
    outbound: Mutex<Option<mpsc::Sender<Outbound>>>,
    /// Swapped whole on a change, so a delivery matches a snapshot outside the lock.
    subscriptions: RwLock<Arc<Subscriptions>>,
    invocations: Mutex<HashMap<String, ReplySlot>>,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
}

impl Session {
    pub fn new(plugin: PluginName, version: String, declared: Arc<Declared>) -> Session {
        Session {
            plugin,
            version,
            declared,
            imports: Arc::default(),
            handshaken: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            ready: watch::channel(false).0,
            outbound: Mutex::new(None),
            subscriptions: RwLock::new(Arc::default()),
            invocations: Mutex::new(HashMap::new()),
            pings: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn name(&self) -> &str {
        self.plugin.as_str()
    }

    /// Marks the handshake done; false if it already was (a second handshake).
    pub fn complete_handshake(&self) -> bool {
        !self.handshaken.swap(true, Ordering::SeqCst)
    }

    pub fn handshaken(&self) -> bool {
        self.handshaken.load(Ordering::SeqCst)
    }

    /// Opens the outbound stream; `None` if one is already open.
    pub fn open_stream(&self) -> Option<mpsc::Receiver<Outbound>> {
        let mut slot = self.outbound.lock().ok()?;
        if slot.is_some() || self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        *slot = Some(tx);
        self.ready.send_replace(true);
        Some(rx)
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the plugin is ready (handshake done and session stream open).
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn sender(&self) -> Option<mpsc::Sender<Outbound>> {
        self.outbound.lock().ok()?.clone()
    }

    fn try_push(&self, kind: host_message::Kind) -> Result<(), InvokeError> {
        self.try_send(Outbound {
            message: HostMessage { kind: Some(kind) },
            charges: None,
        })
    }

    fn try_send(&self, item: Outbound) -> Result<(), InvokeError> {
        let tx = self.sender().ok_or(InvokeError::NotReady)?;
        if item.charges.is_some() && tx.capacity() <= CONTROL_RESERVE {
            return Err(InvokeError::QueueFull);
        }
        tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => InvokeError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => InvokeError::Gone,
        })
    }

    /// Adds `topics` (validated) to the subscriptions, all or none; returns them all.
    pub fn add_subscriptions(&self, topics: &[String], max: usize) -> Result<Vec<String>, TooMany> {
        let mut subs = self
            .subscriptions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let next = subs.with(topics, max)?;
        let patterns = next.patterns();
        *subs = Arc::new(next);
        Ok(patterns)
    }

    pub fn subscribed_to(&self, topic: &str) -> bool {
        let snapshot = match self.subscriptions.read() {
            Ok(s) => Arc::clone(&s),
            Err(_) => return false,
        };
        snapshot.matches(topic)
    }

    /// Queues an event with its charges; events leave room for control messages.
    pub fn push_event(
        &self,
        event: broker_proto::broker::v1::Event,
        held: (Charge, Arc<Charge>),
    ) -> Result<(), InvokeError> {
        self.try_send(Outbound {
            message: HostMessage {
                kind: Some(host_message::Kind::Event(event)),
            },
            charges: Some(held),
        })
    }

    /// Queues an event a trial delivers (`plexichat plugin trial --event`): no hub,
    /// so no budget charges; it takes a control slot like an invocation.
    pub fn push_trial_event(
        &self,
        event: broker_proto::broker::v1::Event,
    ) -> Result<(), InvokeError> {
        self.try_push(host_message::Kind::Event(event))
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a command invocation and waits for the reply until `timeout`; a late
    /// reply is dropped.
    pub async fn invoke(
        &self,
        command: &str,
        args: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let id = format!("{}-{}", self.name(), self.next_id());
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.invocations.lock() {
            m.insert(id.clone(), tx);
        }
        let deadline_ms =
            crate::clock::now_ms() + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2);
        let sent = self.try_push(host_message::Kind::Invoke(CommandInvocation {
            invocation_id: id.clone(),
            command: command.to_string(),
            args,
            deadline_ms,
        }));
        let result = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(timeout, rx).await {
                Err(_) => Err(InvokeError::Timeout),
                Ok(Err(_)) => Err(InvokeError::Gone),
                Ok(Ok(reply)) => reply.map_err(InvokeError::Plugin),
            },
        };
        if let Ok(mut m) = self.invocations.lock() {
            m.remove(&id);
        }
        result
    }

    /// Delivers a plugin's reply; false if nobody waits for that id any more.
    pub fn complete_invocation(&self, id: &str, reply: Result<Vec<u8>, String>) -> bool {
        let waiter = self.invocations.lock().ok().and_then(|mut m| m.remove(id));
        match waiter {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    /// Round-trips a ping through the plugin's dispatch loop.
    pub async fn ping(&self, timeout: Duration) -> bool {
        let id = self.next_id();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut m) = self.pings.lock() {
            m.insert(id, tx);
        }
        let ok = self.try_push(host_message::Kind::Ping(Ping { id })).is_ok()
            && matches!(tokio::time::timeout(timeout, rx).await, Ok(Ok(())));
        if let Ok(mut m) = self.pings.lock() {
            m.remove(&id);
        }
        ok
    }

    pub fn complete_ping(&self, id: u64) {
        if let Some(tx) = self.pings.lock().ok().and_then(|mut m| m.remove(&id)) {
            let _ = tx.send(());
        }
    }

    /// The process is gone: every waiting invocation and ping fails now instead
    /// of at its deadline, and nothing more can be queued.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        if let Ok(mut out) = self.outbound.lock() {
            *out = None;
        }
        self.ready.send_replace(false);
        if let Ok(mut m) = self.invocations.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.pings.lock() {
            m.clear();
        }
    }

    pub fn request_shutdown(&self, grace: Duration, reason: &str) -> bool {
        self.try_push(host_message::Kind::Shutdown(Shutdown {
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            reason: reason.to_string(),
        }))
        .is_ok()
    }
}
