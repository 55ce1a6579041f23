//! The supervisor's file-descriptor budget: RLIMIT_NOFILE raised to its hard limit at
//! start, what is kept back for the admin socket, store and logs, and one lease per
//! plugin instance, so a plugin starts only when the fds it needs are there.

use std::sync::{Arc, Mutex};

/// The supervisor's fds one running plugin holds: the trampoline's pidfd, the plugin
/// process's pidfd (reaped here if the trampoline dies first), the broker socket,
/// the stdout and stderr pipes (two, so each line keeps its stream's name), the
/// plugin's log file and the seccomp notification listener. The control socket is
/// closed once the plugin has exec'd, and sealed binaries are shared by content
/// and capped (see `launcher::sealed`), so neither is per plugin.
/// `tests/exhaustion.rs` measures the real figure against this.
pub const FDS_PER_PLUGIN: u64 = 7;
/// Kept beyond the admin connections: refused connections lingering a moment
/// (`admin::gate`, at most 32), SQLite's files per store connection, the audit log
/// files, a backup being taken, the broker's per-call files, databases and
/// sockets, a launch in progress and the trampoline replacing it.
const HEADROOM: u64 = 96;
/// Room the fds really open must leave when a plugin starts: the last line of
/// defence against fds the budget does not know of (the budget itself decides).
const GUARD: u64 = 32;
/// fds of one trampoline waiting in the warm pool (pidfd, broker and control
/// sockets, stdout and stderr pipes).
const FDS_PER_WARM_TRAMPOLINE: u64 = 5;

/// RLIMIT_NOFILE as the supervisor runs with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    pub soft: u64,
    pub hard: u64,
    /// The soft limit found at start, when it was raised.
    pub raised_from: Option<u64>,
}

fn getrlimit() -> std::io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lim)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (a shell's usual 1024 would
/// otherwise cap the supervisor at about a hundred plugins) and says what it is.
pub fn raise_nofile_limit() -> std::io::Result<NofileLimit> {
    let lim = getrlimit()?;
    let (soft, hard) = (lim.rlim_cur, lim.rlim_max);
    if soft >= hard {
        tracing::info!(limit = soft, "RLIMIT_NOFILE is at its hard limit");
        return Ok(NofileLimit {
            soft,
            hard,
            raised_from: None,
        });
    }
    let raised = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit with a fully initialised rlimit no higher than the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    tracing::info!(
        from = soft,
        to = hard,
        "raised RLIMIT_NOFILE to its hard limit"
    );
    Ok(NofileLimit {
        soft: hard,
        hard,
        raised_from: Some(soft),
    })
}

/// fds this process has open now (one `/proc/self/fd` listing); `None` when even
/// that cannot be opened.
pub fn open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    // The listing includes the directory's own fd.
    Some((entries.count() as u64).saturating_sub(1))
}

/// The budget as `security plugin-status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdFigures {
    pub limit: u64,
    pub in_use: u64,
    pub at_start: u64,
    pub reserved: u64,
    pub per_plugin: u64,
    pub plugins: u64,
    pub affordable: u64,
}

/// A plugin that cannot be afforded, with the figures that say why.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "cannot start {plugin}: {in_use} of {limit} file descriptors in use or held for running plugins and a plugin needs {per_plugin}, with {reserved} kept for the admin socket, store and logs (RLIMIT_NOFILE {limit}; raise LimitNOFILE=)"
)]
pub struct FdShortage {
    pub plugin: String,
    pub in_use: u64,
    pub limit: u64,
    pub per_plugin: u64,
    pub reserved: u64,
}

#[derive(Debug)]
pub struct FdBudget {
    limit: u64,
    /// Open before any plugin started (store, logs, listener, runtime).
    at_start: u64,
    reserved: u64,
    leases: Mutex<u64>,
}

/// One plugin instance's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct FdLease(Arc<FdBudget>);

impl Drop for FdLease {
    fn drop(&mut self) {
        let mut held = self.0.leases.lock().unwrap_or_else(|e| e.into_inner());
        *held = held.saturating_sub(1);
    }
}

impl FdBudget {
    /// The budget under the current RLIMIT_NOFILE, measured now (call it before any
    /// plugin starts), keeping `admin_connections` fds for the admin socket and the
    /// warm pool's trampolines.
    pub fn measure(admin_connections: u64, warm_trampolines: u64) -> Arc<FdBudget> {
        let limit = getrlimit().map_or(1024, |l| l.rlim_cur);
        let budget = FdBudget {
            limit,
            at_start: open_fds().unwrap_or(0),
            reserved: admin_connections + HEADROOM + warm_trampolines * FDS_PER_WARM_TRAMPOLINE,
            leases: Mutex::new(0),
        };
        tracing::info!(
            limit,
            at_start = budget.at_start,
            reserved = budget.reserved,
            per_plugin = FDS_PER_PLUGIN,
            affordable = budget.affordable(),
            "file descriptor budget"
        );
        Arc::new(budget)
    }

    fn affordable(&self) -> u64 {
        self.limit.saturating_sub(self.at_start + self.reserved) / FDS_PER_PLUGIN
    }

    /// A lease for one instance of `plugin`, or the shortage that refuses it. The
    /// leases decide (a plugin starting has its lease before it has its fds); the
    /// fds really open are checked too, in case something else holds them.
    pub fn lease(self: &Arc<Self>, plugin: &str) -> Result<FdLease, FdShortage> {
        let mut held = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let promised = self.at_start + *held * FDS_PER_PLUGIN;
        // Unreadable /proc/self/fd means fds are gone already.
        let open_now = open_fds().unwrap_or(self.limit);
        let fits = promised + FDS_PER_PLUGIN + self.reserved <= self.limit
            && open_now + FDS_PER_PLUGIN + GUARD <= self.limit;
        if !fits {
            return Err(FdShortage {
                plugin: plugin.to_string(),
                in_use: promised.max(open_now),
                limit: self.limit,
                per_plugin: FDS_PER_PLUGIN,
                reserved: self.reserved,
            });
        }
        *held += 1;
        Ok(FdLease(Arc::clone(self)))
    }

    pub fn figures(&self) -> FdFigures {
        let held = *self.leases.lock().unwrap_or_else(|e| e.into_inner());
        FdFigures {
            limit: self.limit,
            in_use: open_fds().unwrap_or(self.limit),
            at_start: self.at_start,
            reserved: self.reserved,
            per_plugin: FDS_PER_PLUGIN,
            plugins: held,
            affordable: self.affordable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(limit: u64, at_start: u64, reserved: u64) -> Arc<FdBudget> {
        Arc::new(FdBudget {
            limit,
            at_start,
            reserved,
            leases: Mutex::new(0),
        })
    }

    #[test]
    fn leases_stop_at_what_the_limit_affords_and_come_back() {
        // Far more "open at start" than this test process has, so the leases (not
        // other tests' fds coming and going) decide.
        let at_start = open_fds().unwrap() + 1000;
        let limit = at_start + 100 + 3 * FDS_PER_PLUGIN;
        let b = budget(limit, at_start, 100);
        assert_eq!(b.affordable(), 3);
        let held: Vec<FdLease> = (0..3).map(|i| b.lease(&format!("p{i}")).unwrap()).collect();
        let err = b.lease("hello").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot start hello: {} of {limit} file descriptors in use or held for running plugins and a plugin needs {FDS_PER_PLUGIN}, with 100 kept for the admin socket, store and logs (RLIMIT_NOFILE {limit}; raise LimitNOFILE=)",
                at_start + 3 * FDS_PER_PLUGIN
            )
        );
        assert_eq!(b.figures().plugins, 3);
        drop(held);
        assert_eq!(b.figures().plugins, 0);
        assert!(b.lease("hello").is_ok());
    }

    #[test]
    fn fds_really_open_count_even_without_leases() {
        // stdin, stdout and stderr alone leave no room for a plugin in 8.
        let b = budget(8, 0, 1);
        assert!(b.lease("hello").is_err());
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let lim = raise_nofile_limit().unwrap();
        assert_eq!(lim.soft, lim.hard);
        assert_eq!(getrlimit().unwrap().rlim_cur, lim.hard);
    }
}
