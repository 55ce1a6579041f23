//! The systemd watchdog (`WatchdogSec=`): WATCHDOG=1 at half of `$WATCHDOG_USEC`, sent
//! only while the async runtime, the launcher thread and the audit writer make progress.

// How progress is seen: each watched part has a heartbeat counter. At every tick the
// watchdog thread asks each part to beat with a cheap probe it answers from its own
// loop (a task spawned on the runtime, a message on the launcher's and the writer's
// queues), and pings systemd only if every counter moved since the last ping. A part
// that is blocked (a deadlocked runtime, a launch hanging in the kernel, a commit stuck
// on a dead disk) stops beating; the watchdog names it in an error and stops pinging,
// and systemd kills the service (SIGABRT, `WatchdogSignal=`) and restarts it.
//
// The audit writer beats on every turn of its loop, retries included: a store that
// refuses commits (a full disk) is the audit gate's business, which refuses calls and
// says why, not a reason to restart. Only a writer that cannot get round its loop at
// all (one commit blocked for half the watchdog interval) stops the pings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A part's progress counter; clones share it.
#[derive(Clone, Default, Debug)]
pub struct Heartbeat(Arc<AtomicU64>);

impl Heartbeat {
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Asks a part to beat from its own loop; must not block.
pub type Probe = Box<dyn Fn() + Send>;

/// One part the watchdog requires progress of.
pub struct Watched {
    name: &'static str,
    beat: Heartbeat,
    probe: Probe,
}

impl Watched {
    pub fn new(name: &'static str, beat: Heartbeat, probe: Probe) -> Watched {
        Watched { name, beat, probe }
    }
}

/// The runtime, as a part: a probe is a task spawned on it, which any free worker runs.
pub fn runtime(handle: tokio::runtime::Handle) -> Watched {
    let beat = Heartbeat::default();
    let ticks = beat.clone();
    Watched::new(
        "the async runtime",
        beat,
        Box::new(move || {
            let ticks = ticks.clone();
            drop(handle.spawn(async move { ticks.beat() }));
        }),
    )
}

/// `$WATCHDOG_USEC`/`$WATCHDOG_PID` that cannot be what systemd meant.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("WATCHDOG_USEC={0:?} is not a positive number of microseconds")]
    Usec(String),
    #[error("WATCHDOG_PID={0:?} is not a process id")]
    Pid(String),
}

/// The watchdog timeout systemd set for this process, if any (sd_watchdog_enabled(3)):
/// `WATCHDOG_PID`, when set, must be our pid, or the variables are someone else's.
pub fn requested() -> Result<Option<Duration>, EnvError> {
    let var = |name| std::env::var(name).ok();
    parse_env(
        var("WATCHDOG_USEC").as_deref(),
        var("WATCHDOG_PID").as_deref(),
        std::process::id(),
    )
}

fn parse_env(
    usec: Option<&str>,
    pid: Option<&str>,
    ours: u32,
) -> Result<Option<Duration>, EnvError> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    if let Some(pid) = pid {
        let pid: u32 = pid.trim().parse().map_err(|_| EnvError::Pid(pid.into()))?;
        if pid != ours {
            return Ok(None);
        }
    }
    match usec.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(Some(Duration::from_micros(n))),
        _ => Err(EnvError::Usec(usec.into())),
    }
}

/// Counts at the last ping: pinging again needs every one of them to have moved.
struct Gate {
    at_ping: Vec<u64>,
}

impl Gate {
    fn new(parts: usize) -> Gate {
        Gate {
            at_ping: vec![0; parts],
        }
    }

    /// Indices of the parts that have not beaten since the last ping; none: ping.
    fn stuck(&self, now: &[u64]) -> Vec<usize> {
        self.at_ping
            .iter()
            .zip(now)
            .enumerate()
            .filter(|(_, (then, now))| now <= then)
            .map(|(i, _)| i)
            .collect()
    }

    fn pinged(&mut self, now: Vec<u64>) {
        self.at_ping = now;
    }
}

/// The running watchdog thread; dropping this stops the pings (the supervisor is
/// stopping, and systemd no longer expects them).
pub struct SdWatchdog {
    _stop: mpsc::Sender<()>,
}

/// Starts pinging if systemd asked for it (`WatchdogSec=` in the unit); `None` if not.
pub fn start(
    timeout: Option<Duration>,
    parts: Vec<Watched>,
) -> std::io::Result<Option<SdWatchdog>> {
    let Some(timeout) = timeout else {
        return Ok(None);
    };
    let (stop, stopped) = mpsc::channel();
    let every = timeout / 2;
    std::thread::Builder::new()
        .name("sd-watchdog".into())
        .spawn(move || {
            run(every, &parts, &stopped, &mut || {
                crate::sd_notify::notify_or_warn("WATCHDOG=1")
            })
        })?;
    tracing::info!(timeout = ?timeout, every = ?every, "systemd watchdog on");
    Ok(Some(SdWatchdog { _stop: stop }))
}

fn run(every: Duration, parts: &[Watched], stopped: &mpsc::Receiver<()>, ping: &mut dyn FnMut()) {
    let mut gate = Gate::new(parts.len());
    let mut last_ping = Instant::now();
    let mut reported: Vec<usize> = Vec::new();
    parts.iter().for_each(|p| (p.probe)());
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        let now: Vec<u64> = parts.iter().map(|p| p.beat.count()).collect();
        let stuck = gate.stuck(&now);
        if stuck.is_empty() {
            ping();
            gate.pinged(now);
            last_ping = Instant::now();
            if !reported.is_empty() {
                tracing::warn!(
                    "every watched part made progress again: pinging the systemd watchdog"
                );
                reported.clear();
            }
        } else if stuck != reported {
            let names: Vec<&str> = stuck.iter().map(|&i| parts[i].name).collect();
            tracing::error!(
                stuck = %names.join(", "),
                since = ?last_ping.elapsed(),
                "no progress since the last watchdog ping: not pinging; systemd will kill and restart the supervisor if this lasts"
            );
            reported = stuck;
        }
        parts.iter().for_each(|p| (p.probe)());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_comes_from_watchdog_usec_for_our_pid_only() {
        let d = |us| Ok(Some(Duration::from_micros(us)));
        assert_eq!(parse_env(None, None, 7), Ok(None));
        assert_eq!(parse_env(Some("400000"), None, 7), d(400_000));
        assert_eq!(parse_env(Some("30000000"), Some("7"), 7), d(30_000_000));
        assert_eq!(
            parse_env(Some("30000000"), Some("8"), 7),
            Ok(None),
            "another process's"
        );
        for bad in ["", "0", "-5", "1.5", "30s"] {
            assert_eq!(
                parse_env(Some(bad), None, 7),
                Err(EnvError::Usec(bad.into()))
            );
        }
        assert_eq!(
            parse_env(Some("1"), Some("x"), 7),
            Err(EnvError::Pid("x".into()))
        );
    }

    #[test]
    fn the_gate_pings_only_when_every_part_moved_since_the_last_ping() {
        let mut gate = Gate::new(3);
        assert_eq!(gate.stuck(&[0, 0, 0]), [0, 1, 2], "nothing beat yet");
        assert_eq!(gate.stuck(&[1, 1, 1]), Vec::<usize>::new());
        gate.pinged(vec![1, 1, 1]);
        assert_eq!(gate.stuck(&[5, 1, 2]), [1], "the second part is stuck");
        // No ping meanwhile: progress is still counted from the last ping.
        assert_eq!(gate.stuck(&[6, 2, 2]), Vec::<usize>::new());
        gate.pinged(vec![6, 2, 2]);
        assert_eq!(gate.stuck(&[6, 2, 2]), [0, 1, 2]);
    }

    /// The thread with a part that answers its probes, then does not, then does again.
    #[test]
    fn a_stuck_part_stops_the_pings_and_progress_resumes_them() {
        use std::sync::atomic::AtomicBool;
        let answering = Arc::new(AtomicBool::new(true));
        let beat = Heartbeat::default();
        let (b, a) = (beat.clone(), Arc::clone(&answering));
        let part = Watched::new(
            "the test part",
            beat,
            Box::new(move || {
                if a.load(Ordering::SeqCst) {
                    b.beat();
                }
            }),
        );
        let pings = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&pings);
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            run(Duration::from_millis(20), &[part], &stopped, &mut || {
                counted.fetch_add(1, Ordering::SeqCst);
            })
        });
        let count_for = |ms| {
            let before = pings.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(ms));
            pings.load(Ordering::SeqCst) - before
        };
        let healthy = count_for(300);
        answering.store(false, Ordering::SeqCst);
        // The probe sent before the switch may still have been answered: one more ping.
        std::thread::sleep(Duration::from_millis(200));
        let stuck = count_for(300);
        answering.store(true, Ordering::SeqCst);
        let again = count_for(300);
        drop(stop);
        thread.join().expect("watchdog thread");
        println!("pings in 300 ms: healthy {healthy}, stuck {stuck}, again {again}");
        assert!(healthy >= 5, "about one per 20 ms tick: {healthy}");
        assert_eq!(stuck, 0);
        assert!(again >= 5, "{again}");
    }
}
