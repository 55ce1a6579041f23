//! `make bench-spawn`: spawn-to-ready of a fully confined SDK plugin (from the
//! launch request until its handshake completes and its session is open), side by
//! side with an unconfined spawn of the same plugin and bubblewrap running /bin/true;
//! each with trampolines started ahead of time (the default) and without.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::{
    AuditQuery, DisablePluginRequest, EnablePluginRequest, ListPluginsRequest, PluginState,
    RuntimePhase,
};
use plexichat_bench::{release_dir, stats, Daemon, Stats};

const RUNS: usize = 200;
const WARMUP: usize = 10;

fn bwrap_true(runs: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs + WARMUP {
        let t = Instant::now();
        let status = Command::new("bwrap")
            .args([
                "--unshare-all",
                "--die-with-parent",
                "--new-session",
                "--ro-bind",
                "/",
                "/",
                "/bin/true",
            ])
            .stdin(Stdio::null())
            .status()
            .context("running bwrap (Debian package bubblewrap)")?;
        let us = t.elapsed().as_secs_f64() * 1e6;
        if !status.success() {
            bail!("bwrap /bin/true failed: {status}");
        }
        if i >= WARMUP {
            out.push(us);
        }
    }
    Ok(out)
}

/// Enables and force-disables the plugin `runs` times; returns the supervisor's
/// own spawn-to-ready figure of each start (from the audit trail).
async fn plugin_spawns(confine: bool, warm: usize, runs: usize) -> Result<Vec<f64>> {
    let daemon = Daemon::start(&format!("confine = {confine}\nwarm_trampolines = {warm}"))?;
    let mut admin = daemon.admin().await?;
    let binary = release_dir()?.join("echo_plugin");
    let pkg = daemon.package("echo", &binary)?;
    plexichat_bench::install(&mut admin, &pkg).await?;
    for _ in 0..runs + WARMUP {
        admin
            .enable_plugin(EnablePluginRequest {
                name: "echo".into(),
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
                name: "echo".into(),
                force: true,
            })
            .await?;
    }
    // Every page of the echo plugin's records, oldest first.
    let mut records = Vec::new();
    let mut before_id = 0;
    loop {
        let page = admin
            .query_audit(AuditQuery {
                plugin: "echo".into(),
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
    let unconfined = stats(&plugin_spawns(false, 2, runs).await?);
    let confined = stats(&plugin_spawns(true, 2, runs).await?);
    let unconfined_cold = stats(&plugin_spawns(false, 0, runs).await?);
    let confined_cold = stats(&plugin_spawns(true, 0, runs).await?);
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
    Ok(())
}
