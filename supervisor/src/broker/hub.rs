//! The event hub: which plugin sessions are live, fan-out of events to subscribed
//! plugins and admin watchers within byte budgets (dropping for full queues, counted),
//! and the admin notification broadcast.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use broker_proto::admin::v1::{Notification, NotificationKind, PluginEvent};
use broker_proto::broker::v1::Event;
use tokio::sync::{broadcast, mpsc};

use super::budget::{Budget, Charge};
use super::session::Session;
use super::subscriptions::Subscriptions;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::live::Live;

/// Bytes an event is charged beyond its payload, topic and id: what a queue entry
/// costs even when empty, so zero-byte events are bounded too.
const EVENT_OVERHEAD: usize = 256;
/// Who pays for events the PlexiChat server publishes.
const SERVER_EMITTER: &str = "server";
/// The queue name under which admin watchers' losses are counted.
const WATCHERS: &str = "watchers";

/// The byte limits on events (`[broker]` event_* keys).
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Largest payload one event may carry.
    pub max_payload: usize,
    /// Bytes of one emitter's events held at once, across every queue.
    pub budget: usize,
    /// Bytes one subscriber's queue, or one watcher's, holds at once.
    pub queue_bytes: usize,
}

impl From<&crate::config::BrokerConfig> for EventLimits {
    fn from(b: &crate::config::BrokerConfig) -> EventLimits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        EventLimits {
            max_payload: size(b.event_max_payload),
            budget: size(b.event_budget),
            queue_bytes: size(b.event_queue_bytes),
        }
    }
}

/// Who publishes an event, which decides who hears it.
#[derive(Debug, Clone, Copy)]
pub enum Emitter<'a> {
    /// A plugin: its subscribers but not itself, and the admin watchers.
    Plugin(&'a str),
    /// The PlexiChat server: every subscriber.
    Server,
}

impl Emitter<'_> {
    fn name(&self) -> &str {
        match self {
            Emitter::Plugin(name) => name,
            Emitter::Server => SERVER_EMITTER,
        }
    }
}

/// An emitter's events in flight fill its budget; the emit is refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{emitter} has {used} bytes of events in flight, and this event needs {needed} more (broker.event_budget = {limit}); retry once subscribers have read them")]
pub struct Exhausted {
    pub emitter: String,
    pub used: usize,
    pub needed: usize,
    pub limit: usize,
}

/// Events not queued since the last report: dropped per full queue, refused per
/// emitter. Keys are plugin names (or `watchers`, `server`), so the map stays small.
#[derive(Debug, Default)]
pub struct Losses {
    dropped: HashMap<String, Tally>,
    refused: HashMap<String, Tally>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    events: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: usize) {
        self.events += 1;
        self.bytes += bytes as u64;
    }
}

impl Losses {
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.refused.is_empty()
    }

    /// One `broker.events_dropped` record per full queue and one
    /// `broker.emit_refused` per emitter over its budget.
    pub fn entries(&self, interval_ms: u64) -> Vec<AuditEntry> {
        let record = |action: &str, who: &str, role: &str, t: &Tally| {
            let mut e = AuditEntry::new(&Actor::system(), action, Outcome::Denied).detail(
                serde_json::json!({ role: who, "events": t.events, "bytes": t.bytes, "interval_ms": interval_ms }),
            );
            if who != WATCHERS && who != SERVER_EMITTER {
                e = e.plugin(who);
            }
            e
        };
        let mut out: Vec<AuditEntry> = self
            .dropped
            .iter()
            .map(|(who, t)| record("broker.events_dropped", who, "queue", t))
            .collect();
        out.extend(
            self.refused
                .iter()
                .map(|(who, t)| record("broker.emit_refused", who, "emitter", t)),
        );
        out
    }
}

/// One event's way to its subscribers: its cost and charge, who does not get it, and
/// the byte limit of each queue.
#[derive(Clone, Copy)]
struct Delivery<'a> {
    cost: usize,
    charge: &'a Arc<Charge>,
    except: Option<&'a str>,
    queue_bytes: usize,
}

/// An admin `WatchEvents` stream: its topics and its own byte-bounded queue.
struct Watcher {
    topics: Option<Subscriptions>,
    tx: mpsc::UnboundedSender<Watched>,
    budget: Arc<Budget>,
}

/// A plugin event queued for a watcher, with its charges (released when taken).
pub struct Watched {
    event: PluginEvent,
    _held: (Charge, Arc<Charge>),
}

impl Watched {
    pub fn into_event(self) -> PluginEvent {
        self.event
    }
}

pub struct Hub {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    watchers: Mutex<Vec<Watcher>>,
    notifications: broadcast::Sender<Notification>,
    next_event: AtomicU64,
    /// The event limits are read from here at every publish: a reload applies them to
    /// existing budgets and queues at their next event.
    live: Arc<Live>,
    /// Per emitter (plugin name or `server`): bytes of its events in flight.
    budgets: Mutex<HashMap<String, Arc<Budget>>>,
    /// Per subscribing plugin: bytes of events in its outbound queue.
    queues: Mutex<HashMap<String, Arc<Budget>>>,
    losses: Mutex<Losses>,
}

impl Hub {
    pub fn new(live: Arc<Live>) -> Hub {
        Hub {
            sessions: RwLock::new(HashMap::new()),
            watchers: Mutex::new(Vec::new()),
            notifications: broadcast::channel(1024).0,
            next_event: AtomicU64::new(1),
            live,
            budgets: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
            losses: Mutex::new(Losses::default()),
        }
    }

    pub fn limits(&self) -> EventLimits {
        self.live.with(|s| EventLimits::from(&s.broker))
    }

    pub fn register(&self, session: Arc<Session>) {
        if let Ok(mut s) = self.sessions.write() {
            s.insert(session.name().to_string(), session);
        }
    }

    /// Removes `session` if it is still the registered one for its plugin.
    pub fn unregister(&self, session: &Arc<Session>) {
        if let Ok(mut s) = self.sessions.write() {
            if s.get(session.name())
                .is_some_and(|cur| Arc::ptr_eq(cur, session))
            {
                s.remove(session.name());
            }
        }
    }

    pub fn session(&self, plugin: &str) -> Option<Arc<Session>> {
        self.sessions.read().ok()?.get(plugin).cloned()
    }

    pub fn event_id(&self) -> String {
        format!(
            "{:x}-{:x}",
            now_ms(),
            self.next_event.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn budget_in(
        map: &Mutex<HashMap<String, Arc<Budget>>>,
        who: &str,
        limit: usize,
    ) -> Arc<Budget> {
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let budget = map
            .entry(who.to_string())
            .or_insert_with(|| Budget::new(limit));
        if budget.limit() != limit {
            budget.set_limit(limit);
        }
        Arc::clone(budget)
    }

    /// Bytes of `emitter`'s events held now, in every queue.
    pub fn in_flight(&self, emitter: &str) -> usize {
        Hub::budget_in(&self.budgets, emitter, self.limits().budget).used()
    }

    fn count(&self, refused: bool, who: &str, bytes: usize) {
        let mut l = self
            .losses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let map = if refused {
            &mut l.refused
        } else {
            &mut l.dropped
        };
        map.entry(who.to_string()).or_default().add(bytes);
    }

    /// What was dropped or refused since the last call.
    pub fn take_losses(&self) -> Losses {
        let mut l = self
            .losses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *l)
    }

    /// Publishes `event`: charged to the emitter's budget, queued for the admin
    /// watchers of a plugin's events, and for every other ready plugin subscribed to
    /// its topic that `may_receive` it. A full queue drops the event (counted);
    /// returns who got it.
    pub fn publish(
        &self,
        from: Emitter<'_>,
        event: Event,
        may_receive: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<String>, Exhausted> {
        let emitter = from.name();
        let limits = self.limits();
        let cost = event.payload.len() + event.topic.len() + event.id.len() + EVENT_OVERHEAD;
        let budget = Hub::budget_in(&self.budgets, emitter, limits.budget);
        let Some(charge) = budget.try_charge(cost) else {
            self.count(true, emitter, cost);
            return Err(Exhausted {
                emitter: emitter.to_string(),
                used: budget.used(),
                needed: cost,
                limit: budget.limit(),
            });
        };
        let charge = Arc::new(charge);
        let except = match from {
            Emitter::Plugin(name) => {
                self.to_watchers(name, &event, cost, &charge, limits.queue_bytes);
                Some(name)
            }
            Emitter::Server => None,
        };
        let to = Delivery {
            cost,
            charge: &charge,
            except,
            queue_bytes: limits.queue_bytes,
        };
        Ok(self.deliver(&event, &to, may_receive))
    }

    fn to_watchers(
        &self,
        emitter: &str,
        event: &Event,
        cost: usize,
        charge: &Arc<Charge>,
        queue_bytes: usize,
    ) {
        let mut watchers = self
            .watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        watchers.retain(|w| !w.tx.is_closed());
        for w in watchers.iter() {
            if w.topics.as_ref().is_some_and(|t| !t.matches(&event.topic)) {
                continue;
            }
            if w.budget.limit() != queue_bytes {
                w.budget.set_limit(queue_bytes);
            }
            let Some(own) = w.budget.try_charge(cost) else {
                self.count(false, WATCHERS, cost);
                continue;
            };
            let watched = Watched {
                event: PluginEvent {
                    id: event.id.clone(),
                    topic: event.topic.clone(),
                    payload: event.payload.clone(),
                    plugin: emitter.to_string(),
                    timestamp_ms: event.timestamp_ms,
                },
                _held: (own, Arc::clone(charge)),
            };
            let _ = w.tx.send(watched);
        }
    }

    fn deliver(
        &self,
        event: &Event,
        to: &Delivery<'_>,
        may_receive: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
        let Delivery {
            cost,
            charge,
            except,
            queue_bytes,
        } = *to;
        let sessions: Vec<Arc<Session>> = match self.sessions.read() {
            Ok(s) => s.values().cloned().collect(),
            Err(_) => return Vec::new(),
        };
        let mut delivered = Vec::new();
        for s in sessions {
            if Some(s.name()) == except
                || !s.is_ready()
                || !s.subscribed_to(&event.topic)
                || !may_receive(s.name())
            {
                continue;
            }
            let queue = Hub::budget_in(&self.queues, s.name(), queue_bytes);
            let pushed = match queue.try_charge(cost) {
                None => Err(super::InvokeError::QueueFull),
                Some(own) => s.push_event(event.clone(), (own, Arc::clone(charge))),
            };
            match pushed {
                Ok(()) => delivered.push(s.name().to_string()),
                Err(e) => {
                    self.count(false, s.name(), cost);
                    tracing::debug!(plugin = s.name(), topic = %event.topic, error = ?e, "event dropped");
                }
            }
        }
        delivered.sort();
        delivered
    }

    /// A new admin watcher of plugin events on `topics` (all when empty), with its
    /// own queue of at most `queue_bytes`; a full queue drops (counted).
    pub fn watch_plugin_events(&self, topics: &[String]) -> mpsc::UnboundedReceiver<Watched> {
        let (tx, rx) = mpsc::unbounded_channel();
        let topics = (!topics.is_empty())
            .then(|| Subscriptions::default().with(topics, usize::MAX).ok())
            .flatten();
        let watcher = Watcher {
            topics,
            tx,
            budget: Budget::new(self.limits().queue_bytes),
        };
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher);
        rx
    }

    pub fn notify(&self, kind: NotificationKind, plugin: &str, message: impl Into<String>) {
        let _ = self.notifications.send(Notification {
            ts_ms: now_ms(),
            kind: kind.into(),
            plugin: plugin.to_string(),
            message: message.into(),
        });
    }

    pub fn watch_notifications(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(budget: usize, queue_bytes: usize) -> crate::live::Settings {
        let mut s = crate::live::Settings::default();
        s.broker.event_max_payload = 1000;
        s.broker.event_budget = budget as u64;
        s.broker.event_queue_bytes = queue_bytes as u64;
        s
    }

    fn hub(budget: usize, queue_bytes: usize) -> Hub {
        Hub::new(Live::new(settings(budget, queue_bytes)))
    }

    /// An event costing 700 + 10 + 1 + 256 = 967 bytes.
    fn event() -> Event {
        Event {
            id: "i".into(),
            topic: "plugin.a.x".into(),
            payload: vec![0; 700].into(),
            source: "plugin:a".into(),
            timestamp_ms: 0,
        }
    }

    const EVERYONE: &dyn Fn(&str) -> bool = &|_| true;

    #[test]
    fn a_stalled_watcher_holds_its_queue_and_drops_the_rest_counted() {
        let hub = hub(4000, 2000);
        let stalled = hub.watch_plugin_events(&[]);
        for _ in 0..10 {
            hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
                .expect("within the budget");
        }
        assert_eq!(hub.in_flight("a"), 2 * 967, "two fit the watcher's queue");
        let losses = hub.take_losses();
        assert_eq!(losses.dropped["watchers"].events, 8);
        assert_eq!(losses.entries(5000).len(), 1);
        assert!(hub.take_losses().is_empty(), "taken once");
        drop(stalled);
        assert_eq!(hub.in_flight("a"), 0, "released when the watcher leaves");
    }

    #[test]
    fn past_its_budget_an_emitter_is_refused_and_its_payload_is_shared() {
        let hub = hub(2000, 8000);
        let (_one, _two) = (hub.watch_plugin_events(&[]), hub.watch_plugin_events(&[]));
        hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect("first");
        hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect("second");
        // Two watchers hold both events, charged to the emitter once each.
        assert_eq!(hub.in_flight("a"), 2 * 967);
        let refused = hub
            .publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect_err("third");
        assert!(
            refused.to_string().contains("broker.event_budget"),
            "{refused}"
        );
        assert_eq!(hub.take_losses().refused["a"].events, 1);
        // Another emitter has its own budget; the server's events reach no watcher.
        hub.publish(Emitter::Plugin("b"), event(), EVERYONE)
            .expect("b");
        hub.publish(Emitter::Server, event(), EVERYONE)
            .expect("server");
        assert_eq!(hub.in_flight("server"), 0);
    }

    #[test]
    fn watchers_see_only_their_topics() {
        let hub = hub(4000, 4000);
        let mut other = hub.watch_plugin_events(&["plugin.b.*".to_string()]);
        let mut mine = hub.watch_plugin_events(&["plugin.a.*".to_string()]);
        hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect("publish");
        assert!(other.try_recv().is_err());
        let got = mine.try_recv().expect("delivered").into_event();
        assert_eq!((got.plugin.as_str(), got.payload.len()), ("a", 700));
        assert_eq!(hub.in_flight("a"), 0, "taken, so released");
    }

    #[test]
    fn a_reload_changes_the_budget_of_an_emitter_already_holding_events() {
        let live = Live::new(settings(2000, 8000));
        let hub = Hub::new(Arc::clone(&live));
        let _watching = hub.watch_plugin_events(&[]);
        for _ in 0..2 {
            hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
                .expect("within 2000");
        }
        assert!(hub
            .publish(Emitter::Plugin("a"), event(), EVERYONE)
            .is_err());
        live.store(settings(3000, 8000));
        hub.publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect("within the raised 3000");
        assert_eq!(hub.limits().budget, 3000);
        live.store(settings(2000, 8000));
        let refused = hub
            .publish(Emitter::Plugin("a"), event(), EVERYONE)
            .expect_err("2901 held, 2000 allowed");
        assert_eq!(refused.limit, 2000);
    }
}
