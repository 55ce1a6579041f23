//! Who may hold an admin-socket connection: the peer's role is checked at accept by
//! SO_PEERCRED, connections are capped per uid and in total (with a reserve only
//! admins may use), and refusals are counted and audited once per interval.

// Roles and caps are read from the live settings at each accept, so a reload admits
// or refuses the next connection by the new `[access]`; a cached group lookup made
// under an older generation is looked up again. `max_total` is the exception: the
// fd budget reserves descriptors for it at start, so a reload keeps the running one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc::UnboundedSender;
use tonic::transport::server::UdsConnectInfo;

use super::auth::role_of;
use super::conn::AdminConn;
use super::refusal;
use crate::audit::{Actor, AuditEntry, Outcome, Role};
use crate::config::{Access, ConnectionLimits};
use crate::context::Shared;
use crate::live::Live;

/// Refused connections are written as one audit record per this interval.
const REFUSAL_AUDIT_EVERY: Duration = Duration::from_secs(5);
/// After EMFILE/ENFILE on accept: the listener stays readable, so retrying at once
/// would spin; wait for fds to come back instead.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Roles by group membership need NSS lookups, which may block: they are made off
/// the accept loop and remembered this long.
const ROLE_CACHE_TTL: Duration = Duration::from_secs(10);
/// Connections at most waiting for such a lookup; beyond it they are refused.
const MAX_RESOLVING: usize = 64;
/// Refused connections answered at once (each for at most `refusal::LINGER`);
/// beyond this many a refused connection is closed at once.
pub const MAX_LINGERING: usize = 32;

/// Why a connection was closed at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    NoRole,
    PerUid,
    Total,
    Busy,
}

impl Refusal {
    fn key(self) -> &'static str {
        match self {
            Refusal::NoRole => "no_role",
            Refusal::PerUid => "max_per_uid",
            Refusal::Total => "max_total",
            Refusal::Busy => "busy",
        }
    }

    fn message(self, uid: u32, limits: &ConnectionLimits) -> String {
        match self {
            Refusal::NoRole => format!("uid={uid} has no role on this supervisor"),
            Refusal::PerUid => format!(
                "uid={uid} already holds {} admin-socket connections (access.connections.max_per_uid)",
                limits.max_per_uid
            ),
            Refusal::Total => format!(
                "the admin socket is at its connection limit for this role (access.connections.max_total = {}, of which {} are kept for admins)",
                limits.max_total, limits.admin_reserve
            ),
            Refusal::Busy => "the supervisor is busy checking callers' roles; try again".into(),
        }
    }

    /// The gRPC status a refused client's first call gets.
    fn grpc_status(self) -> u8 {
        match self {
            Refusal::NoRole => 7, // PERMISSION_DENIED
            _ => 8,               // RESOURCE_EXHAUSTED
        }
    }
}

/// A role looked up by (uid, gid), when, and under which settings generation.
type CachedRole = (Option<Role>, Instant, u64);

#[derive(Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// The admission state of the admin socket.
pub struct Gate {
    live: Arc<Live>,
    /// `access.connections.max_total` as at start (see above).
    max_total: usize,
    counts: Mutex<Counts>,
    refused: Mutex<BTreeMap<(u32, Refusal), u64>>,
    roles: Mutex<HashMap<(u32, u32), CachedRole>>,
    resolving: AtomicUsize,
    lingering: AtomicUsize,
}

/// Whether `role_of` needs NSS (some principal is a group name).
fn by_group(access: &Access) -> bool {
    [&access.admin, &access.server, &access.viewer]
        .iter()
        .any(|p| !p.groups.is_empty())
}

/// A connection's place against the caps, given back when it closes.
pub struct Slot {
    gate: Arc<Gate>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = lock(&self.gate.counts);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

/// Counters stay usable after a panic elsewhere: they hold no invariant a panic breaks.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    pub fn new(live: Arc<Live>) -> Arc<Gate> {
        let max_total = live.load().access.connections.max_total;
        Arc::new(Gate {
            live,
            max_total,
            counts: Mutex::default(),
            refused: Mutex::default(),
            roles: Mutex::default(),
            resolving: AtomicUsize::new(0),
            lingering: AtomicUsize::new(0),
        })
    }

    /// The caps in force: the live ones, with the total fixed at start.
    fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_total: self.max_total,
            ..self.live.load().access.connections.clone()
        }
    }

    /// Connections admitted and still open.
    pub fn open(&self) -> usize {
        lock(&self.counts).total
    }

    fn admit(self: &Arc<Self>, uid: u32, role: Option<Role>) -> Result<Slot, Refusal> {
        let Some(role) = role else {
            return Err(Refusal::NoRole);
        };
        let limits = self.limits();
        let mut c = lock(&self.counts);
        if c.per_uid.get(&uid).copied().unwrap_or(0) >= limits.max_per_uid {
            return Err(Refusal::PerUid);
        }
        let room = match role {
            Role::Admin => limits.max_total,
            _ => limits.max_total.saturating_sub(limits.admin_reserve),
        };
        if c.total >= room {
            return Err(Refusal::Total);
        }
        c.total += 1;
        *c.per_uid.entry(uid).or_insert(0) += 1;
        Ok(Slot {
            gate: Arc::clone(self),
            uid,
        })
    }

    /// The caller's role if it is known without blocking.
    fn known_role(&self, uid: u32, gid: u32) -> Option<Option<Role>> {
        let settings = self.live.load();
        if !by_group(&settings.access) {
            return Some(role_of(&settings.access, uid, gid));
        }
        let roles = lock(&self.roles);
        roles
            .get(&(uid, gid))
            .filter(|(_, at, generation)| {
                at.elapsed() < ROLE_CACHE_TTL && *generation == settings.generation
            })
            .map(|(role, _, _)| *role)
    }

    /// Refuses `stream`, answering the client's first call with why (within
    /// `refusal::LINGER`), and counts the refusal for the next audit record.
    fn refuse(self: &Arc<Self>, stream: UnixStream, uid: u32, why: Refusal) {
        *lock(&self.refused).entry((uid, why)).or_insert(0) += 1;
        let message = why.message(uid, &self.limits());
        if self.lingering.fetch_add(1, Ordering::SeqCst) >= MAX_LINGERING {
            self.lingering.fetch_sub(1, Ordering::SeqCst);
            // Never waits: a fresh socket's send buffer takes these few bytes.
            let _ = stream.try_write(&refusal::preface_and_goaway(&message));
            return;
        }
        let gate = Arc::clone(self);
        let answer = refusal::Answer {
            grpc_status: why.grpc_status(),
            message,
        };
        tokio::spawn(async move {
            refusal::answer(stream, answer).await;
            gate.lingering.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Admits or refuses one accepted connection without blocking.
    fn handle(self: &Arc<Self>, stream: UnixStream, tx: &UnboundedSender<AdminConn>) {
        let Ok(cred) = stream.peer_cred() else {
            return; // the peer is gone already
        };
        // A client's address is always unnamed: not worth a syscall per connection.
        let uds = UdsConnectInfo {
            peer_addr: None,
            peer_cred: Some(cred),
        };
        let (uid, gid) = (cred.uid(), cred.gid());
        if let Some(role) = self.known_role(uid, gid) {
            self.decide(stream, uds, role, tx);
            return;
        }
        if self.resolving.fetch_add(1, Ordering::SeqCst) >= MAX_RESOLVING {
            self.resolving.fetch_sub(1, Ordering::SeqCst);
            self.refuse(stream, uid, Refusal::Busy);
            return;
        }
        let (gate, tx) = (Arc::clone(self), tx.clone());
        tokio::spawn(async move {
            let settings = gate.live.load();
            let generation = settings.generation;
            let role = tokio::task::spawn_blocking(move || role_of(&settings.access, uid, gid))
                .await
                .ok()
                .flatten();
            lock(&gate.roles).insert((uid, gid), (role, Instant::now(), generation));
            gate.resolving.fetch_sub(1, Ordering::SeqCst);
            gate.decide(stream, uds, role, &tx);
        });
    }

    fn decide(
        self: &Arc<Self>,
        stream: UnixStream,
        uds: UdsConnectInfo,
        role: Option<Role>,
        tx: &UnboundedSender<AdminConn>,
    ) {
        let uid = uds.peer_cred.map_or(u32::MAX, |c| c.uid());
        match self.admit(uid, role) {
            Ok(slot) => {
                let idle = self.live.load().access.connections.idle_timeout;
                let _ = tx.send(AdminConn::new(stream, uds, slot, idle));
            }
            Err(why) => self.refuse(stream, uid, why),
        }
    }

    /// One `admin.connection_refused` record for the refusals since the last one,
    /// queued on the audit writer (kept and retried while the store cannot take it).
    fn audit_refusals(&self, shared: &Shared) {
        let refused = std::mem::take(&mut *lock(&self.refused));
        if refused.is_empty() {
            return;
        }
        let total: u64 = refused.values().sum();
        tracing::warn!(
            total,
            "admin socket refused connections at accept (see admin.connection_refused)"
        );
        let detail = serde_json::json!({
            "interval_s": REFUSAL_AUDIT_EVERY.as_secs(),
            "total": total,
            "refused": refused
                .iter()
                .map(|((uid, why), count)| serde_json::json!({ "uid": uid, "reason": why.key(), "count": count }))
                .collect::<Vec<_>>(),
        });
        let entry = AuditEntry::new(
            &Actor::system(),
            "admin.connection_refused",
            Outcome::Denied,
        )
        .detail(detail);
        shared.audit.record(entry);
    }
}

fn out_of_fds(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Accepts connections until tonic stops taking them, handing the admitted ones to
/// `tx`. Nothing here blocks, and running out of fds backs off rather than spins.
pub async fn accept_loop(
    listener: UnixListener,
    gate: Arc<Gate>,
    shared: Arc<Shared>,
    tx: UnboundedSender<AdminConn>,
) {
    let mut audit = tokio::time::interval(REFUSAL_AUDIT_EVERY);
    let mut last_fd_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => gate.handle(stream, &tx),
                Err(e) if out_of_fds(&e) => {
                    if last_fd_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::error!(error = %e, open = gate.open(), "admin socket cannot accept: out of file descriptors");
                        last_fd_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "admin socket accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            },
            _ = audit.tick() => {
                gate.audit_refusals(&shared);
            }
            () = tx.closed() => break,
        }
    }
    gate.audit_refusals(&shared);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Principals;
    use crate::live::Settings;

    fn access(limits: ConnectionLimits) -> Access {
        Access {
            admin: Principals {
                uids: vec![0],
                ..Default::default()
            },
            viewer: Principals {
                uids: vec![10, 11],
                ..Default::default()
            },
            connections: limits,
            ..Access::default()
        }
    }

    fn gate(limits: ConnectionLimits) -> Arc<Gate> {
        Gate::new(Live::new(Settings {
            access: access(limits),
            ..Settings::default()
        }))
    }

    #[test]
    fn caps_per_uid_and_in_total_keep_the_reserve_for_admins() {
        let g = gate(ConnectionLimits {
            max_per_uid: 3,
            max_total: 6,
            admin_reserve: 2,
            ..ConnectionLimits::default()
        });
        let viewer = Some(Role::Viewer);
        assert_eq!(g.admit(7, None).err(), Some(Refusal::NoRole));
        let a: Vec<Slot> = (0..3).map(|_| g.admit(10, viewer).unwrap()).collect();
        assert_eq!(g.admit(10, viewer).err(), Some(Refusal::PerUid));
        let b = g.admit(11, viewer).unwrap();
        assert_eq!(
            g.admit(11, viewer).err(),
            Some(Refusal::Total),
            "4 of 6, 2 kept for admins"
        );
        let root: Vec<Slot> = (0..2)
            .map(|_| g.admit(0, Some(Role::Admin)).unwrap())
            .collect();
        assert_eq!(g.admit(0, Some(Role::Admin)).err(), Some(Refusal::Total));
        assert_eq!(g.open(), 6);
        drop(a);
        drop(b);
        drop(root);
        assert_eq!(g.open(), 0);
        assert!(
            g.admit(10, viewer).is_ok(),
            "slots come back when connections close"
        );
    }

    #[test]
    fn a_reload_changes_roles_and_caps_for_the_next_connection_but_not_the_total() {
        let limits = ConnectionLimits {
            max_per_uid: 1,
            max_total: 6,
            admin_reserve: 2,
            ..ConnectionLimits::default()
        };
        let live = Live::new(Settings {
            access: access(limits.clone()),
            ..Settings::default()
        });
        let g = Gate::new(Arc::clone(&live));
        assert_eq!(g.known_role(10, 10), Some(Some(Role::Viewer)));
        assert_eq!(g.known_role(20, 20), Some(None));
        let held = g.admit(10, Some(Role::Viewer)).unwrap();
        assert_eq!(g.admit(10, Some(Role::Viewer)).err(), Some(Refusal::PerUid));

        let mut next = access(ConnectionLimits {
            max_per_uid: 2,
            max_total: 100,
            ..limits
        });
        next.viewer.uids = vec![20];
        live.store(Settings {
            access: next,
            ..Settings::default()
        });
        assert_eq!(g.known_role(10, 10), Some(None), "10 lost its role");
        assert_eq!(
            g.known_role(20, 20),
            Some(Some(Role::Viewer)),
            "20 gained one"
        );
        let second = g.admit(10, Some(Role::Viewer)).expect("2 per uid now");
        assert_eq!(g.limits().max_total, 6, "the total stays as at start");
        drop((held, second));
    }
}
