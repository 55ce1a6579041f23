//! Serialising lifecycle commands: one async mutex per plugin name, and one
//! store-wide RwLock that a restore takes for write and everything else for read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, OwnedMutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// How long a command waits for the one before it on the same plugin (or for a
/// restore) before giving up with [`Busy`]. Longer than any graceful stop.
const WAIT: Duration = Duration::from_secs(120);

/// The lifecycle commands that take a lock, named in a [`Busy`] refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Install,
    Update,
    Remove,
    Enable,
    Disable,
    RequestChanges,
    Repin,
    Backup,
    Restore,
    Trial,
}

impl Op {
    /// "an update", "a restore": how the refusal names it.
    fn with_article(self) -> &'static str {
        match self {
            Op::Install => "an install",
            Op::Update => "an update",
            Op::Remove => "a remove",
            Op::Enable => "an enable",
            Op::Disable => "a disable",
            Op::RequestChanges => "a request for changes",
            Op::Repin => "a runtime repin",
            Op::Backup => "a backup",
            Op::Restore => "a restore",
            Op::Trial => "a trial",
        }
    }
}

/// The command before this one did not finish within [`WAIT`].
#[derive(Debug, thiserror::Error)]
#[error("{} of {target} is in progress (for {}s); try again once it has finished", holder.map_or("another lifecycle command", Op::with_article), since.as_secs())]
pub struct Busy {
    /// The plugin's name, or "the store" while a restore runs.
    pub target: String,
    /// What holds the lock, when known.
    pub holder: Option<Op>,
    pub since: Duration,
}

/// Who holds a plugin's lock, for the refusal of whoever waits too long.
type Holder = Arc<StdMutex<Option<(Op, Instant)>>>;

#[derive(Clone, Default)]
struct Slot {
    lock: Arc<Mutex<()>>,
    holder: Holder,
}

/// The registry every admin handler takes its lock from (in `Shared`).
#[derive(Default)]
pub struct Locks {
    store: RwLock<()>,
    /// Who holds `store` for write (a restore), if anyone.
    store_writer: Holder,
    plugins: StdMutex<HashMap<String, Slot>>,
}

/// Held while a command changes one plugin: other commands on it wait, commands on
/// other plugins proceed, a restore waits for it.
pub struct PluginGuard<'a> {
    _store: RwLockReadGuard<'a, ()>,
    _plugin: OwnedMutexGuard<()>,
    holder: Holder,
}

impl Drop for PluginGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut h) = self.holder.lock() {
            *h = None;
        }
    }
}

/// Held by a restore: no plugin command runs meanwhile.
pub struct StoreGuard<'a> {
    _store: RwLockWriteGuard<'a, ()>,
    holder: Holder,
}

impl Drop for StoreGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut h) = self.holder.lock() {
            *h = None;
        }
    }
}

/// Held by a backup: runs beside plugin commands (SQLite's online backup is a
/// consistent copy) but never during a restore.
pub struct ReadGuard<'a> {
    _store: RwLockReadGuard<'a, ()>,
}

impl Locks {
    /// Waits for the plugin's lock (and for any restore to finish).
    pub async fn plugin(&self, name: &str, op: Op) -> Result<PluginGuard<'_>, Busy> {
        let store = self.read_store().await?;
        let slot = self.slot(name);
        let guard = match tokio::time::timeout(WAIT, Arc::clone(&slot.lock).lock_owned()).await {
            Ok(guard) => guard,
            Err(_) => return Err(busy(name, &slot.holder)),
        };
        set(&slot.holder, op);
        Ok(PluginGuard {
            _store: store,
            _plugin: guard,
            holder: slot.holder,
        })
    }

    /// The plugin's lock if nobody holds it now, else [`Busy`] at once: a trial holds
    /// it for minutes, and a second one should say so rather than queue behind it.
    pub async fn try_plugin(&self, name: &str, op: Op) -> Result<PluginGuard<'_>, Busy> {
        let store = self.read_store().await?;
        let slot = self.slot(name);
        let guard = Arc::clone(&slot.lock)
            .try_lock_owned()
            .map_err(|_| busy(name, &slot.holder))?;
        set(&slot.holder, op);
        Ok(PluginGuard {
            _store: store,
            _plugin: guard,
            holder: slot.holder,
        })
    }

    /// Waits until no plugin command runs, then excludes them all.
    pub async fn store(&self, op: Op) -> Result<StoreGuard<'_>, Busy> {
        match tokio::time::timeout(WAIT, self.store.write()).await {
            Ok(guard) => {
                set(&self.store_writer, op);
                Ok(StoreGuard {
                    _store: guard,
                    holder: Arc::clone(&self.store_writer),
                })
            }
            Err(_) => Err(Busy {
                target: "the store".into(),
                holder: None,
                since: WAIT,
            }),
        }
    }

    /// Excludes only a restore.
    pub async fn shared(&self) -> Result<ReadGuard<'_>, Busy> {
        Ok(ReadGuard {
            _store: self.read_store().await?,
        })
    }

    async fn read_store(&self) -> Result<RwLockReadGuard<'_, ()>, Busy> {
        tokio::time::timeout(WAIT, self.store.read())
            .await
            .map_err(|_| busy("the store", &self.store_writer))
    }

    /// The plugin's slot; slots nobody holds or waits for are dropped on the way,
    /// so the map stays as small as the set of plugins being worked on.
    fn slot(&self, name: &str) -> Slot {
        let mut map = match self.plugins.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.retain(|n, s| n == name || Arc::strong_count(&s.lock) > 1);
        map.entry(name.to_string()).or_default().clone()
    }
}

fn set(holder: &Holder, op: Op) {
    if let Ok(mut h) = holder.lock() {
        *h = Some((op, Instant::now()));
    }
}

fn busy(target: &str, holder: &Holder) -> Busy {
    let held = holder.lock().ok().and_then(|h| *h);
    Busy {
        target: target.to_string(),
        holder: held.map(|(op, _)| op),
        since: held.map_or(WAIT, |(_, at)| at.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_plugin_at_a_time_others_in_parallel_restore_alone() {
        let locks = Locks::default();
        let a = locks.plugin("a", Op::Update).await.unwrap();
        // Another plugin proceeds while `a` is held.
        let b = locks.plugin("b", Op::Enable).await.unwrap();
        drop(b);
        // A second command on `a` waits.
        let waiting =
            tokio::time::timeout(Duration::from_millis(50), locks.plugin("a", Op::Disable));
        assert!(waiting.await.is_err(), "a second lock on `a` was granted");
        // A restore waits for `a`.
        let restore = tokio::time::timeout(Duration::from_millis(50), locks.store(Op::Restore));
        assert!(restore.await.is_err(), "a restore ran beside an update");
        drop(a);
        let r = locks.store(Op::Restore).await.unwrap();
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), locks.plugin("b", Op::Enable));
        assert!(
            blocked.await.is_err(),
            "a plugin command ran during a restore"
        );
        let backup = tokio::time::timeout(Duration::from_millis(50), locks.shared());
        assert!(backup.await.is_err(), "a backup ran during a restore");
        drop(r);
        assert!(locks.plugin("b", Op::Enable).await.is_ok());
    }

    #[tokio::test]
    async fn a_held_plugin_refuses_a_try_at_once_naming_the_holder() {
        let locks = Locks::default();
        let trial = locks.try_plugin("a", Op::Trial).await.unwrap();
        let e = locks.try_plugin("a", Op::Trial).await.err().unwrap();
        assert!(
            e.to_string().starts_with("a trial of a is in progress"),
            "{e}"
        );
        assert!(locks.try_plugin("b", Op::Trial).await.is_ok());
        drop(trial);
        assert!(locks.try_plugin("a", Op::Enable).await.is_ok());
    }

    #[test]
    fn the_refusal_names_the_holder() {
        let holder: Holder = Arc::default();
        set(&holder, Op::Update);
        let e = busy("hello", &holder);
        assert!(
            e.to_string()
                .starts_with("an update of hello is in progress"),
            "{e}"
        );
    }
}
