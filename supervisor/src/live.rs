//! The settings a running supervisor changes on reload — access roles, alert rules and
//! broker limits — behind one cell that every subsystem reads a snapshot of.

// Why a `RwLock<Arc<..>>` and not `arc-swap`: a reader holds the lock only to clone
// the `Arc` (one uncontended atomic read-modify-write; the write lock is taken once
// per reload, for one pointer store), never across a call, so there is nothing for
// a lock-free cell to win that a brokered call — a store lookup and an audit record
// each — would notice. Readers take one snapshot per decision, so a call never sees
// half of an old configuration and half of a new one.

use std::sync::{Arc, RwLock};

use crate::config::{Access, AlertRule, BrokerConfig, Config};

/// What a reload may change while plugins run. `generation` counts reloads that
/// changed something, so caches (roles, alert windows) know when to look again.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub generation: u64,
    pub access: Access,
    pub broker: BrokerConfig,
    pub alerts: Vec<AlertRule>,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Settings {
        Settings {
            generation: 0,
            access: cfg.access.clone(),
            broker: cfg.broker.clone(),
            alerts: cfg.alerts.clone(),
        }
    }
}

/// The one source of the live settings.
#[derive(Debug)]
pub struct Live {
    current: RwLock<Arc<Settings>>,
}

impl Live {
    pub fn new(settings: Settings) -> Arc<Live> {
        Arc::new(Live {
            current: RwLock::new(Arc::new(settings)),
        })
    }

    /// The settings in force now; later reloads do not change this snapshot.
    pub fn load(&self) -> Arc<Settings> {
        // A panic elsewhere cannot leave a half-written `Arc`: the value is still whole.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts `settings` in force for every reader's next snapshot, as the next generation.
    pub fn store(&self, mut settings: Settings) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        settings.generation = current.generation + 1;
        *current = Arc::new(settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_stays_whole_and_the_next_load_sees_the_new_generation() {
        let live = Live::new(Settings::default());
        let before = live.load();
        let mut next = Settings::default();
        next.broker.burst = 7;
        live.store(next);
        assert_eq!((before.generation, before.broker.burst), (0, 1000));
        let after = live.load();
        assert_eq!((after.generation, after.broker.burst), (1, 7));
    }
}
