//! `make bench-spawn`: spawn-to-ready of a fully confined SDK plugin (from the
//! launch request until its handshake completes and its session is open), side by
//! side with an unconfined spawn of the same plugin and bubblewrap running /bin/true;
//! each with trampolines started ahead of time (the default) and without. Then the
//! Python hello, confined, beside `python3 -I -S -c pass` unconfined.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::{
    AuditQuery, DisablePluginRequest, EnablePluginRequest, ListPluginsRequest, PluginState,
    RuntimePhase,
};
use plexichat_bench::{python_config, python_package, release_dir, stats, Daemon, Stats};

const RUNS: usize = 200;
/// A Python start costs ~100x a native one: fewer runs keep the bench short.
const PYTHON_RUNS: usize = 40;
const WARMUP: usize = 10;

/// The plugin a spawn series starts.
#[derive(Clone, Copy)]
enum Subject {
    /// The native echo test plugin.
    Echo,
    /// The Python hello example (plugin-sdk-python/examples/hello).
    PythonHello,
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Echo => "echo",
            Subject::PythonHello => "hello-py",
        }
    }
}

/// Wall time of `runs` runs of `command` (after the warm-up), each to its exit;
/// `what` names it in errors.
fn wall_times(runs: usize, what: &str, mut command: impl FnMut() -> Command) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs + WARMUP {
        let t = Instant::now();
        let status = command()
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {what}"))?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if !status.success() {
            bail!("{what} failed: {status}");
        }
        if i >= WARMUP {
            out.push(us);
        }
    }
    Ok(out)
}

/// `python3 -I -S <args>`, unconfined, with no environment.
fn python_unconfined(args: &[&str], runs: usize) -> Result<Vec<f64>> {
    wall_times(runs, "/usr/bin/python3", || {
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-I", "-S"]).args(args).env_clear();
        c
    })
}

fn bwrap_true(runs: usize) -> Result<Vec<f64>> {
    wall_times(runs, "bwrap /bin/true (Debian package bubblewrap)", || {
        let mut c = Command::new("bwrap");
        c.args([
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/",
            "/",
            "/bin/true",
        ]);
        c
    })
}

/// Enables and force-disables the plugin `runs` times; returns the supervisor's
/// own spawn-to-ready figure of each start (from the audit trail).
async fn plugin_spawns(
    subject: Subject,
    confine: bool,
    warm: usize,
    runs: usize,
) -> Result<Vec<f64>> {
    let name = subject.name();
    let daemon = Daemon::start(&format!(
        "confine = {confine}\nwarm_trampolines = {warm}\n{}",
        python_config()
    ))?;
    let mut admin = daemon.admin().await?;
    let pkg = match subject {
        Subject::Echo => daemon.package(name, &release_dir()?.join("echo_plugin"))?,
        Subject::PythonHello => python_package(
            &daemon,
            name,
            "plugin-sdk-python/examples/hello",
            &["greet"],
        )?,
    };
    plexichat_bench::install(&mut admin, &pkg).await?;
    for _ in 0..runs + WARMUP {
        admin
            .enable_plugin(EnablePluginRequest {
                name: name.into(),
                verify_security: false,
            })
            .await?;
        let t = Instant::now();
        loop {
            let list = admin
                .list_plugins(ListPluginsRequest {})
                .await?
                .into_inner();
            let p = list.plugins.first().context("plugin listed")?;
            if p.runtime() == RuntimePhase::Running {
                break;
            }
            if p.state() != PluginState::Enabled || t.elapsed() > Duration::from_secs(20) {
                bail!(
                    "plugin did not start: {p:?}\n{}",
                    std::fs::read_to_string(daemon.root().join("daemon.log"))?
                );
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        admin
            .disable_plugin(DisablePluginRequest {
                name: name.into(),
                force: true,
            })
            .await?;
    }
    // Every page of the plugin's records, oldest first.
    let mut records = Vec::new();
    let mut before_id = 0;
    loop {
        let page = admin
            .query_audit(AuditQuery {
                plugin: name.into(),
                before_id,
                page_size: broker_proto::MAX_AUDIT_PAGE_RECORDS,
                ..AuditQuery::default()
            })
            .await?
            .into_inner();
        records.splice(0..0, page.records);
        before_id = page.next_before_id;
        if before_id == 0 {
            break;
        }
    }
    let samples: Vec<f64> = records
        .iter()
        .filter(|r| r.action == "plugin.start")
        .filter_map(|r| serde_json::to_value(&r.detail).ok())
        .filter_map(|d| d["spawn_to_ready_us"].as_f64())
        .skip(WARMUP)
        .collect();
    drop(admin);
    if samples.len() != runs {
        bail!("expected {runs} audited starts, found {}", samples.len());
    }
    Ok(samples)
}

fn row(name: &str, s: Stats, base: Stats) -> String {
    format!(
        "{name:<48} {:>5} {:>10.2} {:>10.2} {:>10.2} {:>12.2}x",
        s.n,
        s.min / 1000.0,
        s.p50 / 1000.0,
        s.p99 / 1000.0,
        s.p50 / base.p50
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS);
    let bwrap = stats(&bwrap_true(runs)?);
    let unconfined = stats(&plugin_spawns(Subject::Echo, false, 2, runs).await?);
    let confined = stats(&plugin_spawns(Subject::Echo, true, 2, runs).await?);
    let unconfined_cold = stats(&plugin_spawns(Subject::Echo, false, 0, runs).await?);
    let confined_cold = stats(&plugin_spawns(Subject::Echo, true, 0, runs).await?);
    println!("spawn-to-ready, {runs} runs each after {WARMUP} warm-up runs (milliseconds)");
    println!(
        "{:<48} {:>5} {:>10} {:>10} {:>10} {:>13}",
        "", "n", "min", "p50", "p99", "p50 vs bwrap"
    );
    for (name, s) in [
        ("bwrap --unshare-all /bin/true", bwrap),
        ("SDK plugin, unconfined", unconfined),
        ("SDK plugin, fully confined", confined),
        (
            "SDK plugin, unconfined, no ready trampoline",
            unconfined_cold,
        ),
        (
            "SDK plugin, fully confined, no ready trampoline",
            confined_cold,
        ),
    ] {
        println!("{}", row(name, s, bwrap));
    }
    let adds = |c: Stats, u: Stats| {
        format!(
            "{:.2} ms at p50 ({:.2} ms at p99)",
            (c.p50 - u.p50) / 1000.0,
            (c.p99 - u.p99) / 1000.0
        )
    };
    println!(
        "confinement adds {} with ready trampolines, {} without; target: p50 <= 0.5x bwrap, overhead <= 2 ms",
        adds(confined, unconfined),
        adds(confined_cold, unconfined_cold)
    );
    python_rows().await
}

/// The Python hello, confined (interpreter sealed and verified, package and SDK
/// digests checked, boot, SDK import, handshake), beside the bare interpreter and the
/// interpreter importing the SDK, both unconfined, in the same run.
async fn python_rows() -> Result<()> {
    let runs = std::env::var("BENCH_PYTHON_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PYTHON_RUNS);
    let bare = stats(&python_unconfined(&["-c", "pass"], runs)?);
    let sdk = plexichat_bench::repo_dir().join("target/python-sdk");
    let import = format!(
        "import os, sys; os.environ['PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION'] = 'python'; \
         sys.path[:0] = [{:?}]; import plexichat_plugin",
        sdk.display().to_string()
    );
    let with_sdk = stats(&python_unconfined(&["-B", "-c", &import], runs)?);
    let confined = stats(&plugin_spawns(Subject::PythonHello, true, 2, runs).await?);
    println!();
    println!("Python plugins, {runs} runs each after {WARMUP} warm-up runs (milliseconds)");
    println!(
        "{:<48} {:>5} {:>10} {:>10} {:>10} {:>13}",
        "", "n", "min", "p50", "p99", "p50 vs bare"
    );
    for (name, s) in [
        ("python3 -I -S -c pass, unconfined", bare),
        ("python3 importing the SDK, unconfined", with_sdk),
        ("Python hello, fully confined (spawn-to-ready)", confined),
    ] {
        println!("{}", row(name, s, bare));
    }
    println!(
        "the confined start (sealed interpreter, package and SDK verified, boot, SDK import, handshake) is {:.2}x the unconfined SDK import at p50; the import is {:.0}% of it",
        confined.p50 / with_sdk.p50,
        100.0 * (with_sdk.p50 - bare.p50) / confined.p50
    );
    Ok(())
}
