//! Host commands run for a plugin (`execute_commands`): launched like the plugin
//! itself, confined the same way, with a timeout and capped output.

// The command goes through the same launcher and trampoline as a plugin: its binary is
// read into a sealed memfd and exec'd from there, inside fresh namespaces, the plugin's
// minimal root (so it sees the plugin's /data, nothing of the host), the plugin's uid,
// Landlock and the seccomp policy (denials served and audited like the plugin's), in a
// cgroup of its own with the plugin's limits. The command is killed with its cgroup
// when the timeout passes.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::instance::{launch_request_for, PrepareError, Program};
use super::security;
use crate::context::Shared;
use crate::launcher::{self, LaunchRequest, Launcher, PidFd};
use crate::manifest::Manifest;

/// Bounds of one command.
#[derive(Debug, Clone, Copy)]
pub struct CommandLimits {
    pub timeout: Duration,
    pub max_output_bytes: usize,
}

/// What a command did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandOutput {
    /// Exit status, or `None` when it was killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond the cap was read and dropped.
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error("the command ran longer than {0:?} and was killed")]
    Timeout(Duration),
}

impl From<CommandError> for tonic::Status {
    fn from(e: CommandError) -> tonic::Status {
        match e {
            CommandError::Unavailable(m) => tonic::Status::unavailable(m),
            CommandError::Failed(m) => tonic::Status::failed_precondition(m),
            CommandError::Timeout(_) => tonic::Status::deadline_exceeded(e.to_string()),
        }
    }
}

static NEXT: AtomicU64 = AtomicU64::new(1);

fn launch_request(
    shared: &Shared,
    plugin: &str,
    argv: &[String],
) -> Result<(LaunchRequest, crate::sandbox::cgroup::PluginCgroup), CommandError> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| CommandError::Failed(format!("{what}: {e}"));
    let row = shared
        .store
        .plugin(plugin)
        .map_err(|e| failed("reading the plugin", &e))?
        .ok_or_else(|| CommandError::Failed(format!("plugin `{plugin}` is not installed")))?;
    let manifest =
        Manifest::parse(&row.manifest, &shared.catalog).map_err(|e| failed("manifest", &e))?;
    let (binary, args) = argv
        .split_first()
        .ok_or_else(|| CommandError::Failed("empty argv".into()))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let request = launch_request_for(
        shared,
        &row,
        &manifest,
        Program::host_command(binary.into(), args.to_vec()),
        &format!("{plugin}.cmd-{n}"),
    )
    .map_err(|e| match e {
        PrepareError::Refused(why) => CommandError::Unavailable(why),
        PrepareError::Failed(why) => CommandError::Failed(why),
    })?;
    let cgroup = request
        .cgroup
        .as_ref()
        .map(|p| p.cgroup().clone())
        .ok_or_else(|| CommandError::Failed("no cgroup planned for the command".into()))?;
    Ok((request, cgroup))
}

/// Reads `fd` to its end, keeping at most `cap` bytes; true if more came.
async fn read_capped(fd: OwnedFd, cap: usize) -> (Vec<u8>, bool) {
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return (Vec::new(), false);
    };
    let (mut kept, mut dropped) = (Vec::new(), false);
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
        dropped |= n > room;
    }
    (kept, dropped)
}

/// Runs `argv` (already authorised) for `plugin`.
pub async fn run(
    shared: &Arc<Shared>,
    launcher: &Launcher,
    plugin: &str,
    argv: &[String],
    limits: CommandLimits,
) -> Result<CommandOutput, CommandError> {
    if shared.sandbox.is_none() {
        return Err(CommandError::Unavailable(
            "commands run only confined, and confinement is switched off (sandbox.confine = false)"
                .into(),
        ));
    }
    let (request, cgroup) = launch_request(shared, plugin, argv)?;
    let result = run_launched(shared, launcher, plugin, request, &cgroup, limits).await;
    cgroup.kill();
    cgroup.remove();
    result
}

async fn run_launched(
    shared: &Arc<Shared>,
    launcher: &Launcher,
    plugin: &str,
    request: LaunchRequest,
    cgroup: &crate::sandbox::cgroup::PluginCgroup,
    limits: CommandLimits,
) -> Result<CommandOutput, CommandError> {
    let spawned = launcher
        .spawn(request)
        .await
        .map_err(|f| CommandError::Failed(format!("launching the command: {f}")))?;
    drop(spawned.broker);
    let process = PidFd::new(spawned.pidfd, spawned.pid)
        .map_err(|e| CommandError::Failed(format!("pidfd: {e}")))?;
    let control = spawned.control;
    let timeout = limits.timeout;
    let launched = tokio::task::spawn_blocking(move || launcher::collect_launch(control, timeout))
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .map_err(|f| CommandError::Failed(format!("the command did not start: {f}")))?;
    let _watchers = security::Watchers::start(
        Arc::clone(shared),
        plugin,
        launched.seccomp_listener,
        Some(cgroup.clone()),
    );
    let cap = limits.max_output_bytes;
    let stdout = tokio::spawn(read_capped(spawned.stdout, cap));
    let stderr = tokio::spawn(read_capped(spawned.stderr, cap));
    let exit = match tokio::time::timeout(limits.timeout, process.wait()).await {
        Ok(exit) => {
            exit.map_err(|e| CommandError::Failed(format!("waiting for the command: {e}")))?
        }
        Err(_) => {
            cgroup.kill();
            let _ = process.kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
            return Err(CommandError::Timeout(limits.timeout));
        }
    };
    let ((out, out_cut), (err, err_cut)) = (
        stdout.await.unwrap_or_default(),
        stderr.await.unwrap_or_default(),
    );
    let (exit_code, signal) = match exit {
        launcher::ExitStatus::Exited(code) => (Some(code), None),
        launcher::ExitStatus::Signaled(sig) => (None, Some(sig)),
    };
    Ok(CommandOutput {
        exit_code,
        signal,
        stdout: out,
        stderr: err,
        truncated: out_cut || err_cut,
    })
}
