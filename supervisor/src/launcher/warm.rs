//! Trampolines started ahead of time: exec'd, in fresh namespaces (confined) and in a
//! cgroup of their own, waiting for a spec. A launch takes one, renames its cgroup to
//! the plugin's and sends the spec; a pool thread starts the next in the background.

// Why: exec'ing the supervisor binary in launch mode, creating six namespaces, forking
// into the pid namespace and making and joining a v1 cgroup (whose migration now and
// then waits out an RCU grace period) are the same for every plugin, and were most of
// a spawn. None of it depends on which plugin runs, so it happens before anyone asks.
// The trampoline learns nothing about its plugin until the spec arrives, and does all
// plugin-specific confinement (hostname, root, rlimits, uid, Landlock, seccomp) after.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::clone_into::{self, ChildFds, Started};
use super::{high_fd, spawn_failure, LaunchFailure};
use crate::sandbox::cgroup::{PendingCgroup, PluginCgroup};

/// What kind of trampoline a launch needs.
#[derive(Debug, Clone)]
pub struct WarmKind {
    /// Pre-enters the namespaces and forks pid 1 of the new pid namespace.
    pub confined: bool,
    /// A cgroup beside which the trampoline's own is made (`None`: no cgroups).
    pub cgroup_near: Option<PluginCgroup>,
}

impl WarmKind {
    /// Whether a trampoline of this kind waiting in a pool cgroup must fork pid 1
    /// only at launch, into the plugin's cgroup: cgroup v2 cannot rename the pool
    /// cgroup to the plugin's.
    fn forks_late(&self) -> bool {
        self.confined
            && self
                .cgroup_near
                .as_ref()
                .is_some_and(|cg| cg.version() == "v2")
    }

    fn same_as(&self, other: &WarmKind) -> bool {
        self.confined == other.confined
            && self.cgroup_near.as_ref().map(PluginCgroup::version)
                == other.cgroup_near.as_ref().map(PluginCgroup::version)
    }
}

/// How the trampoline is told to behave (its argument after the launch argument).
fn mode_arg(confined: bool, forks_late: bool) -> &'static str {
    match (confined, forks_late) {
        (false, _) => "plain",
        (true, false) => "confined",
        (true, true) => "confined-late",
    }
}

/// A trampoline waiting for its spec, with the supervisor's ends of its sockets.
pub struct Warm {
    pub started: Started,
    pub broker: StdUnixStream,
    pub control: OwnedFd,
    /// Its pool cgroup: renamed to the plugin's at launch (v1), or where it stays
    /// while pid 1 is forked into the plugin's (v2).
    pub cgroup: Option<PluginCgroup>,
    kind: WarmKind,
}

impl Warm {
    /// Forks pid 1 at launch into the plugin's cgroup (sent with the spec).
    pub fn forks_late(&self) -> bool {
        self.cgroup.is_some() && self.kind.forks_late()
    }

    /// Kills the waiting trampoline (and the pid-namespace child it forked) and
    /// removes its cgroup.
    pub fn discard(self) {
        // SAFETY: pidfd_send_signal on the pidfd of our own child.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.started.pidfd.as_raw_fd(),
                libc::SIGKILL,
                0,
                0,
            )
        };
        if let Some(cg) = &self.cgroup {
            cg.kill();
            cg.remove();
        }
        // SAFETY: reaping our own child, which was just killed.
        unsafe { libc::waitpid(self.started.pid, std::ptr::null_mut(), 0) };
    }
}

/// Where a new trampoline's cgroup comes from.
pub enum Place<'a> {
    /// No cgroups (confinement off).
    Nowhere,
    /// A pool cgroup of this name, made now without limits. On v1 a launch renames it
    /// to the plugin's (a rename moves no process); v2 cannot rename cgroups, so there
    /// the trampoline stays in it and forks pid 1 into the plugin's at launch.
    Pool(String),
    /// The plugin's own cgroup, made and limited now (a trampoline started for one
    /// launch when none is ready).
    Plugin(&'a PendingCgroup),
}

fn cgroup_failure(what: &str, e: impl std::fmt::Display) -> LaunchFailure {
    LaunchFailure {
        stage: super::LaunchStage::Confine,
        message: format!("{what}: {e}"),
    }
}

/// Starts one trampoline of `kind` now, placed as `place` says.
pub fn start(exe: &Path, kind: &WarmKind, place: Place<'_>) -> Result<Warm, LaunchFailure> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (cgroup, pooled) = match place {
        Place::Nowhere => (None, false),
        Place::Pool(name) => {
            let near = kind
                .cgroup_near
                .as_ref()
                .ok_or_else(|| cgroup_failure("pool cgroup", "no hierarchy to make it in"))?;
            let cg = near.sibling(&name);
            cg.make_bare()
                .map_err(|e| cgroup_failure("creating cgroup", e))?;
            (Some(cg), true)
        }
        Place::Plugin(pending) => {
            pending
                .make()
                .map_err(|e| cgroup_failure("creating cgroup", e))?;
            (Some(pending.cgroup().clone()), false)
        }
    };
    let remove_cgroup = |cgroup: &Option<PluginCgroup>| {
        if let Some(cg) = cgroup {
            cg.remove();
        }
    };
    let pairs = StdUnixStream::pair()
        .map_err(|e| spawn_failure("broker socketpair", e))
        .and_then(|broker| {
            let control = socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| spawn_failure("control socketpair", e))?;
            Ok((broker, control))
        });
    let ((broker_parent, broker_child), (control_parent, control_child)) = match pairs {
        Ok(p) => p,
        Err(e) => {
            remove_cgroup(&cgroup);
            return Err(e);
        }
    };
    let started = high_fd(broker_child.into())
        .and_then(|b| Ok((b, high_fd(control_child)?)))
        .map_err(|e| spawn_failure("dup", e))
        .and_then(|(broker_child, control_child)| {
            let fds = ChildFds {
                broker: broker_child.as_raw_fd(),
                control: control_child.as_raw_fd(),
            };
            let args = [
                mode_arg(kind.confined, pooled && kind.forks_late()).to_string(),
                std::process::id().to_string(),
            ];
            match &cgroup {
                // On v2 the trampoline is created inside its cgroup.
                Some(cg) if cg.version() == "v2" => cg
                    .v2_dir_fd()
                    .ok_or_else(|| spawn_failure("opening the cgroup", "cannot open it"))
                    .and_then(|dir| {
                        clone_into::spawn(exe, &args, &fds, Some(&dir))
                            .map_err(|e| spawn_failure("clone3 into the cgroup", e))
                    }),
                _ => clone_into::spawn(exe, &args, &fds, None)
                    .map_err(|e| spawn_failure("fork/exec trampoline", e)),
            }
        });
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            remove_cgroup(&cgroup);
            return Err(e);
        }
    };
    let mut warm = Warm {
        started,
        broker: broker_parent,
        control: control_parent,
        cgroup,
        kind: kind.clone(),
    };
    // v1 has no CLONE_INTO_CGROUP: the trampoline is moved in by pid. It waits for
    // the go below before it does anything, so it never forks outside its cgroup.
    if let Some(cg) = warm.cgroup.as_ref().filter(|cg| cg.version() != "v2") {
        if let Err(e) = cg.add(warm.started.pid) {
            warm.discard();
            return Err(cgroup_failure("joining cgroup", e));
        }
    }
    if let Err(e) = super::send_datagram(warm.control.as_raw_fd(), super::GO, &[]) {
        warm.discard();
        return Err(spawn_failure("starting the trampoline", e));
    }
    if !pooled {
        // Already the plugin's own: nothing to take over at launch.
        warm.cgroup = None;
    }
    Ok(warm)
}

/// How often the pool thread removes pool cgroups whose trampolines have exited.
const SWEEP_EVERY: Duration = Duration::from_secs(2);

struct State {
    /// Trampolines kept ready (`sandbox.warm_trampolines`): a burst of launches beyond
    /// this starts the rest on demand.
    size: usize,
    kind: Option<WarmKind>,
    ready: VecDeque<Warm>,
    /// Pool cgroups of v2 trampolines that forked into a plugin's cgroup: removed once
    /// the trampoline, pid 1's parent, has exited.
    retired: Vec<PluginCgroup>,
    next: u64,
    stopped: bool,
}

impl State {
    fn sweep(&mut self) {
        self.retired.retain(|cg| !cg.try_remove());
    }
}

/// The ready trampolines and the thread that keeps enough of them.
#[derive(Clone)]
pub struct WarmPool {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl WarmPool {
    /// Starts the pool thread; it starts trampolines once the first launch has shown
    /// what kind is needed. Like the launcher thread it lives as long as the
    /// supervisor: the trampolines it starts get PDEATHSIG from it.
    pub fn start(exe: PathBuf, size: usize) -> std::io::Result<WarmPool> {
        let pool = WarmPool {
            state: Arc::new((
                Mutex::new(State {
                    size,
                    kind: None,
                    ready: VecDeque::new(),
                    retired: Vec::new(),
                    next: 0,
                    stopped: false,
                }),
                Condvar::new(),
            )),
        };
        let filler = pool.clone();
        std::thread::Builder::new()
            .name("warm-trampolines".into())
            .spawn(move || filler.fill(&exe))?;
        Ok(pool)
    }

    fn fill(&self, exe: &Path) {
        let (lock, wake) = &*self.state;
        loop {
            let (kind, name) = {
                let Ok(mut st) = lock.lock() else { return };
                while !st.stopped && (st.kind.is_none() || st.ready.len() >= st.size) {
                    // Woken by launches, and now and then to remove retired cgroups.
                    st = match wake.wait_timeout(st, SWEEP_EVERY) {
                        Ok((st, _)) => st,
                        Err(_) => return,
                    };
                    st.sweep();
                }
                if st.stopped {
                    return;
                }
                st.sweep();
                st.next += 1;
                (st.kind.clone(), warm_name(st.next))
            };
            let Some(kind) = kind else { continue };
            let place = if kind.cgroup_near.is_some() {
                Place::Pool(name)
            } else {
                Place::Nowhere
            };
            match start(exe, &kind, place) {
                Ok(warm) => {
                    let Ok(mut st) = lock.lock() else { return };
                    let wanted = st.kind.as_ref().is_some_and(|k| k.same_as(&warm.kind));
                    if wanted && !st.stopped {
                        st.ready.push_back(warm);
                    } else {
                        drop(st);
                        warm.discard();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a trampoline ahead of time; launches start their own");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    /// A ready trampoline of `kind`, if one is waiting; from now on the pool keeps
    /// trampolines of this kind.
    pub fn take(&self, kind: &WarmKind) -> Option<Warm> {
        let (lock, wake) = &*self.state;
        let (warm, stale) = {
            let mut st = lock.lock().ok()?;
            let mut stale = Vec::new();
            if !st.kind.as_ref().is_some_and(|k| k.same_as(kind)) {
                st.kind = Some(kind.clone());
                stale.extend(st.ready.drain(..));
            }
            (st.ready.pop_front(), stale)
        };
        wake.notify_all();
        for w in stale {
            w.discard();
        }
        warm
    }

    /// Keeps `cg` to remove once empty (see `State::retired`).
    pub fn retire(&self, cg: PluginCgroup) {
        if let Ok(mut st) = self.state.0.lock() {
            st.sweep();
            st.retired.push(cg);
        }
    }

    /// A name no pool cgroup has had yet, for a trampoline started on demand.
    pub fn fresh_name(&self) -> String {
        let (lock, _) = &*self.state;
        match lock.lock() {
            Ok(mut st) => {
                st.next += 1;
                warm_name(st.next)
            }
            Err(_) => warm_name(u64::MAX),
        }
    }

    /// Stops refilling and discards every waiting trampoline (supervisor shutdown).
    pub fn shutdown(&self) {
        let (lock, wake) = &*self.state;
        let drained: Vec<Warm> = match lock.lock() {
            Ok(mut st) => {
                st.stopped = true;
                st.sweep();
                st.ready.drain(..).collect()
            }
            Err(_) => return,
        };
        wake.notify_all();
        for w in drained {
            w.discard();
        }
    }
}

/// Pool cgroups start with a dot, which no plugin name (and so no plugin's cgroup)
/// can; the pid keeps two supervisors' pools apart on a shared hierarchy.
fn warm_name(n: u64) -> String {
    format!(".warm-{}-{n}", std::process::id())
}
