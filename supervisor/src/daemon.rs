//! The `plexichat-supervisor` process: load config and catalog (fatal if bad), open
//! the store, start the launcher thread and the runtime, serve the admin socket,
//! tell systemd it is ready, and stop every plugin on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

use crate::audit::{Actor, AuditEntry, AuditWriter, CommitFailure, LogFiles, Outcome};
use crate::broker::Hub;
use crate::config::Config;
use crate::context::Shared;
use crate::launcher::Launcher;
use crate::runtime::{Runtime, StopMode};
use crate::sandbox::host::SandboxHost;
use crate::store::Store;

#[derive(Parser, Debug)]
#[command(
    name = "plexichat-supervisor",
    version,
    about = "Runs PlexiChat plugins, each confined in its own process, behind a permission-checking broker"
)]
struct Args {
    /// Configuration file (TOML). Without it the embedded default is used, with
    /// every path under ./var.
    #[arg(long, env = "PLEXICHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter, e.g. `info` or `plexichat_supervisor=debug`.
    #[arg(long, env = "PLEXICHAT_LOG", default_value = "info")]
    log: String,
    /// Validate the configuration, permission catalog and seccomp policy, print the
    /// effective configuration and exit (0 if it would start, 1 with every problem).
    /// Touches nothing: no directories, cgroups, socket or store.
    #[arg(long)]
    check_config: bool,
    /// Trust a publisher's public key (an OpenSSH `.pub` file) without a second admin,
    /// and exit: how the host's root seeds the first key, with the supervisor stopped
    /// (refused while one runs on this state directory). Audited as trust.key_added.
    #[arg(long, value_name = "FILE", requires = "publisher")]
    bootstrap_key: Option<PathBuf>,
    /// The publisher the bootstrapped key belongs to.
    #[arg(long, value_name = "NAME", requires = "bootstrap_key")]
    publisher: Option<String>,
    /// The plugin names the bootstrapped key may sign (a name or a glob).
    #[arg(
        long,
        value_name = "PATTERN",
        default_value = "*",
        requires = "bootstrap_key"
    )]
    key_plugins: String,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    if args.check_config {
        return crate::config::check::main(args.config.as_deref());
    }
    crate::logging::init(&args.log);
    if let Some(key) = &args.bootstrap_key {
        return match bootstrap_key(&args, key) {
            Ok(fpr) => {
                println!("trusted {fpr} (offline bootstrap)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("plexichat-supervisor: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plexichat-supervisor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Large buffers (broker messages and event payloads up to 1 MiB) always come from
/// mmap and go back to the kernel when freed. glibc otherwise raises its mmap
/// threshold after the first such free, and a burst of large messages then stays in
/// the heap as resident memory long after it was released.
fn return_large_frees() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only tunes the allocator; called before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    return_large_frees();
    let cwd = std::env::current_dir().context("current directory")?;
    let cfg = Config::load(args.config.as_deref(), &cwd)?;
    // A watchdog request that cannot be met is refused before anything is touched.
    crate::sd_watchdog::requested().context("the systemd watchdog")?;
    // Before anything opens fds: the budget is measured against the raised limit.
    crate::runtime::fd_budget::raise_nofile_limit().context("raising RLIMIT_NOFILE")?;
    let catalog = cfg.load_catalog()?;
    prepare_dirs(&cfg)?;
    // Held until the process ends: a second supervisor on this state refuses here,
    // before it opens the store or touches a cgroup.
    let _state = crate::instance_lock::lock_state_dir(&cfg.state_dir)?;
    let logs = Arc::new(
        LogFiles::open_rotating(&cfg.log_dir, Some(cfg.logs.audit_rotation()))
            .context("opening audit log files")?,
    );
    let store = Store::open(&cfg.store_path(), Arc::clone(&logs))
        .with_context(|| format!("opening store {}", cfg.store_path().display()))?;
    let sandbox = if cfg.sandbox.confine {
        Some(SandboxHost::prepare(&cfg).context("preparing plugin confinement")?)
    } else {
        tracing::warn!(
            "sandbox.confine = false: plugins run UNCONFINED (no namespaces, Landlock, seccomp \
             or cgroup limits). Use this only to measure what confinement costs."
        );
        None
    };
    // A plugin whose trampoline dies before it does is reparented to us rather
    // than to init, and reaped by the runtime (see OrphanReaper).
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        anyhow::bail!(
            "PR_SET_CHILD_SUBREAPER: {}",
            std::io::Error::last_os_error()
        );
    }
    let launcher = Launcher::start(
        PathBuf::from("/proc/self/exe"),
        cfg.sandbox.warm_trampolines,
    )
    .context("starting the launcher thread")?;
    let (audit, audit_queue) = AuditWriter::new();
    let policy_digests = crate::integrity::policy_digests(&cfg);
    let counters = Arc::new(crate::monitor::Counters::default());
    let live = crate::live::Live::new(crate::live::Settings::from_config(&cfg));
    let alerts = Arc::new(crate::alerts::Alerts::new(Arc::clone(&live)));
    {
        let (counters, alerts) = (Arc::clone(&counters), Arc::clone(&alerts));
        let observer: crate::store::Observer = Box::new(move |committed| {
            counters.observe(committed);
            alerts.observe(committed);
        });
        if store.observe(observer).is_err() {
            anyhow::bail!("the store already has an observer");
        }
    }
    let hub = Hub::new(Arc::clone(&live));
    let shared = Arc::new(Shared {
        policy_digests,
        counters,
        alerts,
        live,
        cfg,
        catalog,
        store,
        audit,
        hub,
        host_actions: Default::default(),
        locks: Default::default(),
        sandbox,
    });
    let weak = Arc::downgrade(&shared);
    audit_queue
        .start(Box::new(move |batch| {
            let Some(shared) = weak.upgrade() else {
                return Err(CommitFailure {
                    reason: "the supervisor is stopping".into(),
                    entries: batch,
                });
            };
            shared.store.audit(batch).map_err(CommitFailure::from)
        }))
        .context("starting the audit writer")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("supervisor")
        .build()
        .context("starting the async runtime")?;
    let reloader = Arc::new(crate::reload::Reloader::new(
        crate::reload::source(args.config.as_deref(), &cwd),
        logs,
        Arc::clone(&shared.live),
        shared.cfg.clone(),
    ));
    rt.block_on(serve(shared, launcher, reloader))
}

/// `--bootstrap-key`: writes the key into the store under the state lock, so never
/// while a supervisor runs on it.
fn bootstrap_key(args: &Args, key_file: &std::path::Path) -> anyhow::Result<String> {
    let cwd = std::env::current_dir().context("current directory")?;
    let cfg = Config::load(args.config.as_deref(), &cwd)?;
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("key file {}", key_file.display()))?;
    let key = crate::trust::PublisherKey::parse(&text)
        .map_err(|e| anyhow::anyhow!("key file {}: {e}", key_file.display()))?;
    let publisher = args.publisher.as_deref().unwrap_or_default();
    crate::trust::check_publisher(publisher).map_err(anyhow::Error::msg)?;
    let plugins =
        crate::trust::NamePattern::parse(&args.key_plugins).map_err(anyhow::Error::msg)?;
    prepare_dirs(&cfg)?;
    let _state = crate::instance_lock::lock_state_dir(&cfg.state_dir)
        .context("bootstrapping a key needs the supervisor stopped")?;
    let logs = Arc::new(LogFiles::open(&cfg.log_dir).context("opening audit log files")?);
    let store = Store::open(&cfg.store_path(), logs)
        .with_context(|| format!("opening store {}", cfg.store_path().display()))?;
    let req = crate::trust::KeyRequest {
        key: &key,
        publisher,
        plugins: &plugins,
        comment: "offline bootstrap by the host's root (plexichat-supervisor --bootstrap-key)",
    };
    let row = crate::trust::bootstrap_key(&store, &req)?;
    Ok(row.fingerprint)
}

fn prepare_dirs(cfg: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for dir in [&cfg.state_dir, &cfg.plugin_store_dir(), &cfg.data_root()] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Plugin binaries, data and the store are nobody else's business.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod {}", dir.display()))?;
    }
    std::fs::create_dir_all(&cfg.log_dir)
        .with_context(|| format!("creating {}", cfg.log_dir.display()))?;
    crate::install::sweep_staging(cfg);
    Ok(())
}

async fn serve(
    shared: Arc<Shared>,
    launcher: Launcher,
    reloader: Arc<crate::reload::Reloader>,
) -> anyhow::Result<()> {
    // First thing: SIGHUP's default action would end the supervisor and every plugin.
    let mut signals = Signals::install().context("installing signal handlers")?;
    let watchdog = start_watchdog(&launcher, &shared)?;
    let listener = crate::admin::bind(
        &shared.cfg.admin_socket,
        shared.cfg.access.socket_mode,
        shared.cfg.access.socket_group.as_deref(),
    )
    .with_context(|| format!("binding admin socket {}", shared.cfg.admin_socket.display()))?;
    let runtime = Runtime::new(Arc::clone(&shared), launcher.clone());
    let system = Actor::system();
    shared.store.audit(vec![AuditEntry::new(
        &system,
        "supervisor.start",
        Outcome::Ok,
    )
    .detail(
        serde_json::json!({ "pid": std::process::id(), "version": env!("CARGO_PKG_VERSION") }),
    )])?;
    let started = runtime.boot()?;
    let _expiry = crate::runtime::expiry::watch(Arc::clone(&shared));
    let _space = crate::diskspace::watch(Arc::clone(&shared));
    let _losses = crate::broker::report_losses(Arc::clone(&shared));
    crate::alerts::Alerts::spawn(Arc::clone(&shared), Arc::clone(&runtime));
    if let Some(addr) = shared.cfg.monitor.prometheus_listen {
        crate::monitor::serve_prometheus(addr, Arc::clone(&shared), Arc::clone(&runtime))
            .await
            .with_context(|| format!("serving Prometheus metrics on {addr}"))?;
    }
    tracing::info!(socket = %shared.cfg.admin_socket.display(), plugins = started.len(), "supervisor serving");
    notify_systemd("READY=1\nSTATUS=serving");
    let service = crate::admin::service(
        Arc::clone(&shared),
        Arc::clone(&runtime),
        Arc::clone(&reloader),
    );
    let (stop_serving, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::admin::serve(listener, service, async {
        let _ = stopped.await;
    }));
    while signals.next().await == Signal::Reload {
        let (shared, reloader) = (Arc::clone(&shared), Arc::clone(&reloader));
        notify_systemd("RELOADING=1");
        // A refused reload is recorded and logged; the supervisor carries on either way.
        let _ = tokio::task::spawn_blocking(move || reloader.on_signal(&shared.audit)).await;
        notify_systemd("READY=1\nSTATUS=serving");
    }
    notify_systemd("STOPPING=1");
    drop(watchdog);
    let _ = stop_serving.send(());
    // In-flight calls get a moment to finish; a client holding a connection open
    // (an `event watch`, say) must not keep the supervisor from stopping.
    match tokio::time::timeout(ADMIN_DRAIN, server).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "admin server failed"),
        Err(_) => tracing::info!("admin clients still connected after {ADMIN_DRAIN:?}; closing"),
        _ => {}
    }
    tracing::info!("stopping plugins");
    runtime.stop_all(StopMode::Graceful).await;
    launcher.shutdown();
    if !shared.audit.flush().await {
        tracing::error!("the last audit records of brokered calls could not be committed");
    }
    if let Some(host) = &shared.sandbox {
        host.cgroups.remove_parents();
    }
    shared.store.audit(vec![AuditEntry::new(
        &system,
        "supervisor.stop",
        Outcome::Ok,
    )])?;
    let _ = std::fs::remove_file(&shared.cfg.admin_socket);
    Ok(())
}

/// How long stopping waits for admin-API clients to finish their calls.
const ADMIN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT: stop the plugins, then the supervisor.
    Stop,
    /// SIGHUP: see `reload`.
    Reload,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => {
                tracing::info!("SIGTERM received");
                Signal::Stop
            }
            _ = self.int.recv() => {
                tracing::info!("SIGINT received");
                Signal::Stop
            }
            _ = self.hup.recv() => {
                tracing::info!("SIGHUP received: reloading");
                Signal::Reload
            }
        }
    }
}

fn notify_systemd(state: &str) {
    crate::sd_notify::notify_or_warn(state);
}

/// Pings systemd's watchdog, if the unit has `WatchdogSec=`, while the runtime, the
/// launcher and the audit writer make progress (see `sd_watchdog`).
fn start_watchdog(
    launcher: &Launcher,
    shared: &Shared,
) -> anyhow::Result<Option<crate::sd_watchdog::SdWatchdog>> {
    let timeout = crate::sd_watchdog::requested().context("the systemd watchdog")?;
    let parts = vec![
        crate::sd_watchdog::runtime(tokio::runtime::Handle::current()),
        launcher.liveness(),
        shared.audit.liveness(),
    ];
    crate::sd_watchdog::start(timeout, parts).context("starting the systemd watchdog thread")
}
