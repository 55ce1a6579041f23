//! What the supervisor spends on one plugin's behalf: its broker work (statements,
//! file I/O, HTTP, command launches) runs under a concurrency limit with a bounded
//! queue, and the CPU its blocking work takes is charged against a budget.

// Why: the rate limiter counts calls, not what they cost, and a plugin's cgroup does
// not see the work the supervisor does for it. Without a limit, 520 concurrent
// one-second statements from one plugin filled the shared blocking pool and both
// CPUs. With it, a plugin gets `concurrency` operations at a time (the rest wait in a
// queue of `queue`, then RESOURCE_EXHAUSTED), and once its blocking work has used more
// CPU than `cpu_budget` seconds per second allow (with `cpu_burst` of credit), its
// next calls are refused until the debt is paid back.
//
// The limits are read from the live settings at every call, so a reload applies to
// running plugins: a raised concurrency adds permits at once; a lowered one takes
// idle permits away at once and the rest as running work finishes (a finished
// slot's permit is then forgotten rather than handed to new work); the CPU budget
// and burst apply from the next refill.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::live::Live;
use crate::monitor::Counters;

/// `[broker]` limits of what one plugin's calls may cost.
#[derive(Debug, Clone, Copy)]
pub struct CostLimits {
    pub concurrency: usize,
    pub queue: usize,
    /// Supervisor CPU seconds per second the plugin's blocking work may take.
    pub cpu_budget: f64,
    /// CPU credit a quiet plugin accumulates, at most.
    pub cpu_burst: Duration,
}

/// One plugin's account.
pub struct Costs {
    plugin: String,
    live: Arc<Live>,
    permits: Arc<Semaphore>,
    /// The concurrency `permits` is sized for: its permits, less those `owed`.
    sized: Mutex<usize>,
    owed: Arc<AtomicUsize>,
    /// Operations running or waiting for a permit.
    admitted: Arc<AtomicUsize>,
    credit: Mutex<Credit>,
    counters: Arc<Counters>,
}

/// CPU credit in seconds: refilled at the budget rate, spent by charged work; may go
/// below zero (work is charged after it ran), which refuses calls until repaid.
struct Credit {
    seconds: f64,
    at: Instant,
}

/// A place among the plugin's admitted operations, held until the work is done.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    /// Permits still to take away after a lowered concurrency (see `Costs::resize`).
    owed: Arc<AtomicUsize>,
    _admitted: Admitted,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let pay = self
            .owed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if let (Ok(_), Some(permit)) = (pay, self.permit.take()) {
            permit.forget();
        }
    }
}

struct Admitted(Arc<AtomicUsize>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Costs {
    pub fn new(plugin: &str, live: Arc<Live>, counters: Arc<Counters>) -> Arc<Costs> {
        let limits = live.load().broker.cost_limits();
        let concurrency = limits.concurrency.max(1);
        Arc::new(Costs {
            plugin: plugin.to_string(),
            live,
            permits: Arc::new(Semaphore::new(concurrency)),
            sized: Mutex::new(concurrency),
            owed: Arc::new(AtomicUsize::new(0)),
            admitted: Arc::new(AtomicUsize::new(0)),
            credit: Mutex::new(Credit {
                seconds: limits.cpu_burst.as_secs_f64(),
                at: Instant::now(),
            }),
            counters,
        })
    }

    /// Waits for a place to run (the queue is bounded), refusing at once when the
    /// queue is full or the CPU budget is spent.
    pub async fn slot(&self) -> Result<Slot, Status> {
        let limits = self.limits();
        if let Err(refused) = self.within_budget(&limits) {
            tokio::time::sleep(super::REFUSAL_DELAY).await;
            return Err(refused);
        }
        let waiting = self.admitted.fetch_add(1, Ordering::AcqRel);
        let admitted = Admitted(Arc::clone(&self.admitted));
        if waiting >= limits.concurrency + limits.queue {
            drop(admitted);
            tokio::time::sleep(super::REFUSAL_DELAY).await;
            return Err(Status::resource_exhausted(format!(
                "plugin `{}` has {} broker operations running and {} waiting, the most allowed (broker.plugin_concurrency, broker.plugin_queue)",
                self.plugin, limits.concurrency, limits.queue
            )));
        }
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("the plugin's broker is stopping"))?;
        Ok(Slot {
            permit: Some(permit),
            owed: Arc::clone(&self.owed),
            _admitted: admitted,
        })
    }

    /// Runs `work` on a blocking thread in a slot and charges its CPU time. The slot
    /// travels with the work: a caller that gives up (a deadline) frees nothing until
    /// the work has really finished.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let slot = self.slot().await?;
        let costs = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let _long = LongWork::start();
            let started = thread_cpu();
            let value = work();
            costs.charge(thread_cpu().saturating_sub(started));
            value
        })
        .await
        .map_err(|e| Status::internal(format!("broker work failed: {e}")))
    }

    /// The limits in force, with the semaphore resized to a changed concurrency.
    fn limits(&self) -> CostLimits {
        let limits = self.live.with(|s| s.broker.cost_limits());
        self.resize(limits.concurrency.max(1));
        limits
    }

    fn resize(&self, concurrency: usize) {
        let Ok(mut sized) = self.sized.lock() else {
            return;
        };
        match concurrency.cmp(&*sized) {
            std::cmp::Ordering::Equal => return,
            std::cmp::Ordering::Greater => {
                // A debt not yet paid is cancelled first, then permits are added.
                let more = concurrency - *sized;
                let owed = self
                    .owed
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        Some(n.saturating_sub(more))
                    })
                    .unwrap_or(0);
                self.permits.add_permits(more - owed.min(more));
            }
            std::cmp::Ordering::Less => {
                // Idle permits go now; those held by running work as it finishes.
                let excess = *sized - concurrency;
                let held = excess - self.permits.forget_permits(excess);
                self.owed.fetch_add(held, Ordering::AcqRel);
            }
        }
        tracing::info!(plugin = %self.plugin, from = *sized, to = concurrency, "broker.plugin_concurrency changed");
        *sized = concurrency;
    }

    fn charge(&self, cpu: Duration) {
        self.counters.charge_cpu(&self.plugin, cpu);
        let limits = self.live.with(|s| s.broker.cost_limits());
        if let Ok(mut credit) = self.credit.lock() {
            refill(&mut credit, &limits);
            credit.seconds -= cpu.as_secs_f64();
        }
    }

    fn within_budget(&self, limits: &CostLimits) -> Result<(), Status> {
        let Ok(mut credit) = self.credit.lock() else {
            return Ok(());
        };
        refill(&mut credit, limits);
        if credit.seconds >= 0.0 {
            return Ok(());
        }
        let wait = -credit.seconds / limits.cpu_budget.max(f64::MIN_POSITIVE);
        Err(Status::resource_exhausted(format!(
            "plugin `{}` has used the supervisor CPU its calls may take ({} s per second, broker.plugin_cpu_budget); try again in {} ms",
            self.plugin,
            limits.cpu_budget,
            (wait * 1000.0).ceil() as u64
        )))
    }
}

fn refill(credit: &mut Credit, limits: &CostLimits) {
    let now = Instant::now();
    let earned = now.duration_since(credit.at).as_secs_f64() * limits.cpu_budget;
    credit.seconds = (credit.seconds + earned).min(limits.cpu_burst.as_secs_f64());
    credit.at = now;
}

/// The nice value a plugin's blocking work drops to once it has run for `LONG_WORK`:
/// below everything the supervisor does for itself (the admin API, the broker's
/// dispatch, the audit writer) and below other plugins' short calls, so a plugin's
/// long statements yield the CPU to them. Short work never drops: a bystander's `stat`
/// competes as an equal, not as a suspect.
const LONG_WORK_NICE: i32 = 10;
const LONG_WORK: Duration = Duration::from_millis(2);

/// Blocking work running now, by thread: the watchdog lowers the priority of work
/// that runs past `LONG_WORK`. Entries are added and removed, and priorities changed,
/// under the one lock, so a thread that finished is never lowered afterwards.
#[derive(Default)]
struct Running {
    work: Mutex<Vec<(libc::id_t, Instant, bool)>>,
    wake: std::sync::Condvar,
}

fn running() -> &'static Running {
    static RUNNING: std::sync::OnceLock<Running> = std::sync::OnceLock::new();
    RUNNING.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("broker-cost".into())
            .spawn(watchdog);
        if let Err(e) = spawned {
            tracing::error!(error = %e, "no watchdog for long broker work: it keeps its priority");
        }
        Running::default()
    })
}

fn watchdog() {
    let r = running();
    let Ok(mut work) = r.work.lock() else {
        return;
    };
    loop {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for (tid, started, lowered) in work.iter_mut().filter(|w| !w.2) {
            let due = *started + LONG_WORK;
            if due <= now {
                // SAFETY: setpriority on a thread of this process that is registered,
                // so still running the work (it deregisters under this lock).
                *lowered =
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, *tid, LONG_WORK_NICE) } == 0;
            } else {
                next = Some(next.map_or(due, |n: Instant| n.min(due)));
            }
        }
        work = match next {
            Some(due) => match r
                .wake
                .wait_timeout(work, due.saturating_duration_since(now))
            {
                Ok((w, _)) => w,
                Err(_) => return,
            },
            None => match r.wake.wait(work) {
                Ok(w) => w,
                Err(_) => return,
            },
        };
    }
}

/// The calling thread registered as running blocking work until dropped; its priority
/// is restored if the watchdog lowered it.
struct LongWork {
    tid: libc::id_t,
    /// The thread's nice value before, restored if the watchdog lowered it.
    nice: i32,
}

impl LongWork {
    fn start() -> LongWork {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as libc::id_t;
        // SAFETY: getpriority of our own thread.
        let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid) };
        let r = running();
        if let Ok(mut work) = r.work.lock() {
            // A thread already at least this nice is left as it is.
            work.push((tid, Instant::now(), nice >= LONG_WORK_NICE));
        }
        r.wake.notify_one();
        LongWork { tid, nice }
    }
}

impl Drop for LongWork {
    fn drop(&mut self) {
        let Ok(mut work) = running().work.lock() else {
            return;
        };
        let Some(i) = work.iter().position(|w| w.0 == self.tid) else {
            return;
        };
        let (_, _, lowered) = work.swap_remove(i);
        // Raising the priority back needs CAP_SYS_NICE; without it the pool thread
        // stays nice, which only makes later work on it yield sooner.
        // SAFETY: setpriority on our own thread id.
        let restore = lowered && self.nice < LONG_WORK_NICE;
        if restore && unsafe { libc::setpriority(libc::PRIO_PROCESS, self.tid, self.nice) } != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "a blocking thread keeps the lower priority of long plugin work"
            );
        }
    }
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(concurrency: usize, queue: usize) -> Arc<Live> {
        Live::new(settings(concurrency, queue))
    }

    fn settings(concurrency: usize, queue: usize) -> crate::live::Settings {
        let mut s = crate::live::Settings::default();
        s.broker.plugin_concurrency = concurrency;
        s.broker.plugin_queue = queue;
        s.broker.plugin_cpu_budget = 0.5;
        s.broker.plugin_cpu_burst = Duration::from_millis(200);
        s
    }

    /// Starts `n` calls of 50 ms each; the most that ran at once and how many were
    /// refused.
    async fn concurrent(costs: &Arc<Costs>, n: usize) -> (usize, usize) {
        let (most, refusals) = concurrent_refusals(costs, n).await;
        (most, refusals.len())
    }

    /// Like [`concurrent`], with the refusals themselves.
    async fn concurrent_refusals(costs: &Arc<Costs>, n: usize) -> (usize, Vec<tonic::Status>) {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut calls = Vec::new();
        for _ in 0..n {
            let (costs, running, most) = (Arc::clone(costs), running.clone(), most.clone());
            calls.push(tokio::spawn(async move {
                costs
                    .blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
            }));
        }
        let mut refused = Vec::new();
        for c in calls {
            if let Err(s) = c.await.unwrap() {
                refused.push(s);
            }
        }
        (most.load(Ordering::SeqCst), refused)
    }

    fn nice() -> i32 {
        // SAFETY: getpriority of the calling thread.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn long_work_yields_and_short_work_keeps_its_priority() {
        let costs = Costs::new("p", limits(2, 2), Arc::default());
        let short = costs.blocking(nice).await.unwrap();
        assert_eq!(short, 0, "short work is not lowered");
        let long = costs
            .blocking(|| {
                std::thread::sleep(Duration::from_millis(30));
                nice()
            })
            .await
            .unwrap();
        assert_eq!(long, LONG_WORK_NICE, "long work is lowered while it runs");
        let after = costs.blocking(nice).await.unwrap();
        assert_eq!(after, 0, "and the thread is restored afterwards");
    }

    fn spin(d: Duration) {
        let t = thread_cpu();
        while thread_cpu() - t < d {}
    }

    #[tokio::test]
    async fn at_most_concurrency_run_and_the_queue_is_bounded() {
        let costs = Costs::new("p", limits(2, 3), Arc::default());
        let (most, refused) = concurrent_refusals(&costs, 10).await;
        assert_eq!(most, 2, "never more than 2 at a time");
        assert_eq!(refused.len(), 5, "2 running + 3 queued, the rest refused");
        for s in refused {
            assert_eq!(s.code(), tonic::Code::ResourceExhausted);
            assert!(s.message().contains("plugin_queue"), "{}", s.message());
        }
    }

    #[tokio::test]
    async fn cpu_beyond_the_budget_refuses_until_repaid_and_is_counted() {
        let counters: Arc<Counters> = Arc::default();
        let costs = Costs::new("p", limits(1, 1), Arc::clone(&counters));
        costs
            .blocking(|| spin(Duration::from_millis(400)))
            .await
            .expect("within the credit when it started");
        let refused = costs.blocking(|| ()).await.expect_err("in debt");
        assert!(
            refused.message().contains("plugin_cpu_budget"),
            "{}",
            refused.message()
        );
        assert!(counters.cpu("p") >= Duration::from_millis(400));
        // 200 ms of debt at 0.5 s/s: repaid in ~400 ms.
        tokio::time::sleep(Duration::from_millis(500)).await;
        costs.blocking(|| ()).await.expect("repaid");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_reloaded_concurrency_and_queue_apply_to_the_next_calls() {
        let live = limits(1, 20);
        let costs = Costs::new("p", Arc::clone(&live), Arc::default());
        assert_eq!(concurrent(&costs, 6).await, (1, 0), "one at a time");
        live.store(settings(3, 20));
        assert_eq!(concurrent(&costs, 6).await, (3, 0), "raised to three");
        live.store(settings(2, 1));
        let (most, refused) = concurrent(&costs, 6).await;
        assert_eq!(most, 2, "lowered to two");
        assert_eq!(refused, 3, "2 running + 1 queued, the rest refused");
        assert_eq!(costs.permits.available_permits(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_lowered_concurrency_takes_its_permits_back_as_running_work_finishes() {
        let live = limits(3, 20);
        let costs = Costs::new("p", Arc::clone(&live), Arc::default());
        let long: Vec<_> = (0..3)
            .map(|_| {
                let costs = Arc::clone(&costs);
                tokio::spawn(async move {
                    costs
                        .blocking(|| std::thread::sleep(Duration::from_millis(150)))
                        .await
                })
            })
            .collect();
        while costs.permits.available_permits() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        live.store(settings(1, 20));
        // These wait until two of the three running calls have given their permit up.
        assert_eq!(concurrent(&costs, 4).await, (1, 0), "one at a time");
        for call in long {
            call.await.unwrap().expect("the running work finishes");
        }
        assert_eq!(costs.permits.available_permits(), 1);
    }
}
