//! The event hub: which plugin sessions are live, fan-out of events to subscribed
//! plugins, and the broadcast streams (plugin events, admin notifications) that
//! admin-API watchers read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use broker_proto::admin::v1::{Notification, PluginEvent};
use broker_proto::broker::v1::Event;
use tokio::sync::broadcast;

use super::session::Session;
use crate::clock::now_ms;

pub struct Hub {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    plugin_events: broadcast::Sender<PluginEvent>,
    notifications: broadcast::Sender<Notification>,
    next_event: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sessions: RwLock::new(HashMap::new()),
            plugin_events: broadcast::channel(1024).0,
            notifications: broadcast::channel(1024).0,
            next_event: AtomicU64::new(1),
        }
    }
}

impl Hub {
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

    /// Queues an event for every ready plugin subscribed to its topic (except the
    /// emitter) that `may_receive` it; returns who got it. A plugin whose queue is full
    /// misses it.
    pub fn deliver(
        &self,
        event: &Event,
        except: Option<&str>,
        may_receive: &dyn Fn(&str) -> bool,
    ) -> Vec<String> {
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
            match s.push_event(event.clone()) {
                Ok(()) => delivered.push(s.name().to_string()),
                Err(e) => {
                    tracing::warn!(plugin = s.name(), topic = %event.topic, error = ?e, "event not delivered")
                }
            }
        }
        delivered.sort();
        delivered
    }

    pub fn publish_plugin_event(&self, event: PluginEvent) {
        let _ = self.plugin_events.send(event);
    }

    pub fn watch_plugin_events(&self) -> broadcast::Receiver<PluginEvent> {
        self.plugin_events.subscribe()
    }

    pub fn notify(&self, kind: &str, plugin: &str, message: impl Into<String>) {
        let _ = self.notifications.send(Notification {
            ts_ms: now_ms(),
            kind: kind.to_string(),
            plugin: plugin.to_string(),
            message: message.into(),
        });
    }

    pub fn watch_notifications(&self) -> broadcast::Receiver<Notification> {
        self.notifications.subscribe()
    }
}
