//! Checks every value of a parsed `supervisor.toml` against its bounds and this host,
//! collecting every problem (each naming its key) rather than stopping at the first.

use std::fmt;
use std::path::{Component, Path};
use std::time::Duration;

use super::host::Host;
use super::Config;

/// The explicit bounds (README, Configuration, "Validation and `--check-config`"). Zero is refused for every
/// duration; counts start at 1 unless 0 has a documented meaning.
pub mod bounds {
    use std::time::Duration;

    /// handshake_timeout, stop_grace, health_timeout: each holds a start, a stop or
    /// a health check of one plugin.
    pub const PLUGIN_WAIT_MAX: Duration = Duration::from_secs(5 * 60);
    /// command_timeout, the broker's service limits and call_timeout.
    pub const CALL_MAX: Duration = Duration::from_secs(3600);
    /// health_interval and the restart backoffs.
    pub const INTERVAL_MAX: Duration = Duration::from_secs(86_400);
    /// quarantine_window and alert windows.
    pub const WINDOW_MAX: Duration = Duration::from_secs(30 * 86_400);
    /// broker.rate_per_sec and broker.burst (a billion is "unlimited" for benchmarks).
    pub const RATE_MAX: f64 = 1e9;
    pub const BURST_MAX: u64 = 1_000_000_000;
    /// Plugin uids one supervisor may hand out.
    pub const UID_COUNT_MAX: u64 = 1_000_000;
    /// Below this are system accounts, which packages create at any time.
    pub const UID_BASE_MIN: u32 = 1000;
    /// The overflow uid/gid every kernel maps unknown ids to.
    pub const NOBODY: u32 = 65534;
    /// The least memory and the most pids a manifest's `[resources]` may ask for:
    /// a cap outside them would refuse every plugin or cap nothing.
    pub const MEMORY_MIN: u64 = 4 << 20;
    pub const PIDS_MAX: u64 = 4096;
    /// cpu.max cannot enforce less than 1 ms per 100 ms period.
    pub const CPU_MIN: f64 = 0.01;
    pub const TMP_MIN: u64 = 1 << 20;
    pub const WARM_TRAMPOLINES_MAX: u64 = 64;
    pub const DATA_QUOTA_MAX: u64 = 1 << 40;
    pub const DB_MAX_ROWS_MAX: u64 = 1_000_000;
    pub const HTTP_MAX_REDIRECTS_MAX: u64 = 20;
    pub const QUARANTINE_AFTER_MAX: u64 = 1_000_000;
    pub const BACKUP_KEEP_MAX: usize = 10_000;
    pub const ALERT_THRESHOLD_MAX: u64 = 1_000_000;
    /// Blocking broker operations one plugin may run at once, and wait for.
    pub const PLUGIN_CONCURRENCY_MAX: u64 = 64;
    pub const PLUGIN_QUEUE_MAX: u64 = 10_000;
    /// Supervisor CPU seconds per second one plugin's broker work may take.
    pub const PLUGIN_CPU_BUDGET_MAX: f64 = 64.0;
    /// storage.check_interval.
    pub const SPACE_CHECK_MAX: Duration = Duration::from_secs(3600);
    /// sockaddr_un.sun_path holds 108 bytes with the terminating NUL.
    pub const SOCKET_PATH_MAX: usize = 107;
}

/// One refused value: `key` is its path in the file (`runtime.health_interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.key, self.message)
    }
}

/// Every problem of one file, at least one.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems:", all.len())?;
                all.iter().try_for_each(|p| write!(f, "\n  {p}"))
            }
        }
    }
}

/// Every problem of `cfg` on `host`; empty when it may be used.
pub fn validate(cfg: &Config, host: &Host) -> Vec<Problem> {
    let mut c = Checks::default();
    paths(&mut c, cfg);
    access(&mut c, cfg, host);
    runtime(&mut c, cfg);
    sandbox(&mut c, cfg, host);
    broker(&mut c, cfg);
    storage(&mut c, cfg);
    c.section("logs", cfg.logs.validate());
    c.section("python", cfg.python.validate());
    c.section("broker", cfg.broker.validate_events());
    c.section("access.connections", cfg.access.connections.validate());
    c.0.extend(super::operations::validate(
        &cfg.alerts,
        &cfg.monitor,
        &cfg.backup,
    ));
    c.0
}

#[derive(Default)]
struct Checks(Vec<Problem>);

impl Checks {
    fn refuse(&mut self, key: &str, message: String) {
        self.0.push(Problem::new(key, message));
    }

    /// The verdict of a section that checks itself; its message starts with the key
    /// it names.
    fn section(&mut self, name: &str, verdict: Result<(), String>) {
        if let Err(message) = verdict {
            let (key, rest) = message
                .split_once(' ')
                .filter(|(k, _)| k.starts_with(name))
                .unwrap_or((name, &message));
            self.refuse(key, rest.to_string());
        }
    }

    fn duration(&mut self, key: &str, value: Duration, max: Duration) {
        let got = show(value);
        if value.is_zero() {
            self.refuse(key, format!("must be greater than 0 (got \"{got}\")"));
        } else if value > max {
            self.refuse(
                key,
                format!("must be at most {} (got \"{got}\")", show(max)),
            );
        }
    }

    /// Counts of any unsigned width, widened to u64 (usize is 64-bit on Linux).
    fn count(&mut self, key: &str, value: impl Into<Count>, min: u64, max: u64) {
        let value = value.into().0;
        if value < min {
            self.refuse(key, format!("must be at least {min} (got {value})"));
        } else if value > max {
            self.refuse(key, format!("must be at most {max} (got {value})"));
        }
    }

    fn size(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if value < min {
            self.refuse(
                key,
                format!("must be at least {} (got {})", bytes(min), bytes(value)),
            );
        } else if value > max {
            self.refuse(
                key,
                format!("must be at most {} (got {})", bytes(max), bytes(value)),
            );
        }
    }

    fn number(&mut self, key: &str, value: f64, min: f64, max: f64) {
        if !value.is_finite() || value <= 0.0 {
            self.refuse(
                key,
                format!("must be a finite number greater than 0 (got {value})"),
            );
        } else if value < min {
            self.refuse(key, format!("must be at least {min} (got {value})"));
        } else if value > max {
            self.refuse(key, format!("must be at most {max} (got {value})"));
        }
    }

    /// `limit` must end before `deadline` (the broker's call_timeout).
    fn shorter(&mut self, key: &str, limit: Duration, deadline: Duration) {
        if !limit.is_zero() && limit >= deadline {
            self.refuse(
                key,
                format!(
                    "({limit:?}) must be shorter than broker.call_timeout ({deadline:?}), the deadline every brokered call is answered within"
                ),
            );
        }
    }
}

struct Count(u64);

impl From<u32> for Count {
    fn from(n: u32) -> Count {
        Count(n.into())
    }
}

impl From<usize> for Count {
    fn from(n: usize) -> Count {
        Count(n as u64)
    }
}

fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn bytes(n: u64) -> String {
    super::format_bytes(n)
}

fn paths(c: &mut Checks, cfg: &Config) {
    let mut named = vec![
        ("state_dir", &cfg.state_dir),
        ("log_dir", &cfg.log_dir),
        ("admin_socket", &cfg.admin_socket),
    ];
    named.extend(cfg.policy_dir.as_ref().map(|p| ("policy_dir", p)));
    for (key, path) in &named {
        if path.as_os_str().is_empty() {
            c.refuse(key, "must not be empty".into());
        }
    }
    for (key, path) in [("state_dir", &cfg.state_dir), ("log_dir", &cfg.log_dir)] {
        if path.parent().is_none() && !path.as_os_str().is_empty() {
            // prepare_dirs makes state_dir 0700: never the host's root.
            c.refuse(key, format!("must be a directory below / (got {path:?})"));
        }
    }
    let socket = &cfg.admin_socket;
    let len = socket.as_os_str().len();
    if len > 0 && socket.file_name().is_none() {
        c.refuse(
            "admin_socket",
            format!("must name a socket file (got {socket:?})"),
        );
    } else if len > bounds::SOCKET_PATH_MAX {
        c.refuse(
            "admin_socket",
            format!(
                "must be at most {} bytes long, the limit of a Unix socket address (got {len} bytes: {socket:?})",
                bounds::SOCKET_PATH_MAX,
            ),
        );
    }
}

fn access(c: &mut Checks, cfg: &Config, host: &Host) {
    if let Some(group) = &cfg.access.socket_group {
        if !host.has_group(group) {
            c.refuse(
                "access.socket_group",
                format!("names group `{group}`, which does not exist on this host"),
            );
        }
    }
}

fn runtime(c: &mut Checks, cfg: &Config) {
    use bounds::*;
    let r = &cfg.runtime;
    c.duration(
        "runtime.handshake_timeout",
        r.handshake_timeout,
        PLUGIN_WAIT_MAX,
    );
    c.duration("runtime.stop_grace", r.stop_grace, PLUGIN_WAIT_MAX);
    c.duration("runtime.health_interval", r.health_interval, INTERVAL_MAX);
    c.duration("runtime.health_timeout", r.health_timeout, PLUGIN_WAIT_MAX);
    c.duration("runtime.command_timeout", r.command_timeout, CALL_MAX);
    c.duration(
        "runtime.restart_backoff_initial",
        r.restart_backoff_initial,
        INTERVAL_MAX,
    );
    c.duration(
        "runtime.restart_backoff_max",
        r.restart_backoff_max,
        INTERVAL_MAX,
    );
    if r.restart_backoff_initial > r.restart_backoff_max {
        c.refuse(
            "runtime.restart_backoff_initial",
            format!(
                "(\"{}\") must not exceed runtime.restart_backoff_max (\"{}\")",
                show(r.restart_backoff_initial),
                show(r.restart_backoff_max)
            ),
        );
    }
    c.count(
        "runtime.quarantine_after",
        r.quarantine_after,
        1,
        QUARANTINE_AFTER_MAX,
    );
    c.duration("runtime.quarantine_window", r.quarantine_window, WINDOW_MAX);
}

fn sandbox(c: &mut Checks, cfg: &Config, host: &Host) {
    use bounds::*;
    let s = &cfg.sandbox;
    uid_range(c, s.uid_base, s.uid_count, host);
    for (i, path) in s.read_only.iter().enumerate() {
        if let Err(why) = read_only_entry(path, cfg) {
            c.refuse(
                &format!("sandbox.read_only[{i}]"),
                format!("{path:?} {why}"),
            );
        }
    }
    c.size("sandbox.tmp_size", s.tmp_size, TMP_MIN, host.memory_bytes);
    if s.landlock_minimum_abi == 0 {
        // Landlock is part of confinement; only `confine = false` turns it off.
        c.refuse(
            "sandbox.landlock_minimum_abi",
            "must be at least 1 (got 0)".into(),
        );
    }
    simple_name(c, "sandbox.seccomp_policy", &s.seccomp_policy);
    simple_name(c, "sandbox.cgroup_name", &s.cgroup_name);
    c.number("sandbox.max_cpu", s.max_cpu, CPU_MIN, host.cpus as f64);
    c.size(
        "sandbox.max_memory",
        s.max_memory,
        MEMORY_MIN,
        host.memory_bytes,
    );
    c.count("sandbox.max_pids", s.max_pids, 1, PIDS_MAX);
    c.count(
        "sandbox.warm_trampolines",
        s.warm_trampolines,
        0,
        WARM_TRAMPOLINES_MAX,
    );
}

fn simple_name(c: &mut Checks, key: &str, name: &str) {
    if crate::manifest::PluginName::new(name).is_err() {
        c.refuse(
            key,
            format!("`{name}` must be a simple name (a-z, 0-9, _ or -)"),
        );
    }
}

/// Plugin uids and gids are `uid_base .. uid_base + uid_count`: none may belong to
/// anyone else, or a plugin would act as that user or group.
fn uid_range(c: &mut Checks, base: u32, count: u32, host: &Host) {
    const KEY: &str = "sandbox.uid_base";
    c.count("sandbox.uid_count", count, 1, bounds::UID_COUNT_MAX);
    if base < bounds::UID_BASE_MIN {
        c.refuse(
            KEY,
            format!(
                "must be at least {} (got {base}): lower ids are system accounts (plugins never run as root)",
                bounds::UID_BASE_MIN
            ),
        );
        return;
    }
    // u32::MAX is (uid_t)-1, "no change" to setresuid: never a plugin's uid.
    let Some(end) = base.checked_add(count).filter(|e| *e < u32::MAX) else {
        c.refuse(
            KEY,
            format!(
                "+ sandbox.uid_count ({base} + {count}) must stay below {}",
                u32::MAX
            ),
        );
        return;
    };
    let range = base..end;
    let shown =
        format!("{base} with sandbox.uid_count {count} gives plugins the ids {base}..{end}, which");
    if range.contains(&bounds::NOBODY) {
        c.refuse(KEY, format!("{shown} include {} (nobody)", bounds::NOBODY));
    }
    for (kind, accounts) in [("user", &host.users), ("group", &host.groups)] {
        let taken: Vec<String> = accounts
            .iter()
            .filter(|(_, id)| range.contains(id) && *id != bounds::NOBODY)
            .map(|(name, id)| format!("{name} ({id})"))
            .collect();
        if !taken.is_empty() {
            c.refuse(
                KEY,
                format!("{shown} include existing {kind}s: {}", list(&taken)),
            );
        }
    }
    for file in &host.unreadable {
        c.refuse(KEY, format!("cannot be checked against {file}"));
    }
}

fn list(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = items[..items.len().min(SHOWN)].join(", ");
    if items.len() > SHOWN {
        s.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    s
}

/// A read-only bind is absolute, plain (no `.` or `..`), exists, is not `/`, and
/// holds none of the supervisor's own files.
fn read_only_entry(path: &Path, cfg: &Config) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("must be an absolute path".into());
    }
    if path
        .components()
        .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err("must not contain `.` or `..`".into());
    }
    if path.parent().is_none() {
        return Err("must not be / (it would show every plugin the whole host)".into());
    }
    if std::fs::symlink_metadata(path).is_err() {
        return Err("does not exist".into());
    }
    for (key, own) in [
        ("state_dir", &cfg.state_dir),
        ("log_dir", &cfg.log_dir),
        ("admin_socket", &cfg.admin_socket),
    ] {
        if own.starts_with(path) {
            return Err(format!("must not contain {key} ({})", own.display()));
        }
    }
    Ok(())
}

fn storage(c: &mut Checks, cfg: &Config) {
    let s = &cfg.storage;
    c.duration(
        "storage.check_interval",
        s.check_interval,
        bounds::SPACE_CHECK_MAX,
    );
    c.size("storage.min_free", s.min_free, 0, bounds::DATA_QUOTA_MAX);
}

fn broker(c: &mut Checks, cfg: &Config) {
    use bounds::*;
    let b = &cfg.broker;
    let message = broker_proto::MAX_BROKER_MESSAGE_BYTES as u64;
    c.size("broker.data_quota", b.data_quota, 1, DATA_QUOTA_MAX);
    c.number("broker.rate_per_sec", b.rate_per_sec, 0.0, RATE_MAX);
    c.count("broker.burst", b.burst, 1, BURST_MAX);
    c.count("broker.db_max_rows", b.db_max_rows, 1, DB_MAX_ROWS_MAX);
    // Larger answers could never be delivered in one broker message.
    c.size("broker.db_max_bytes", b.db_max_bytes, 1, message);
    c.size(
        "broker.db_max_value_bytes",
        b.db_max_value_bytes,
        1 << 10,
        16 << 20,
    );
    c.size(
        "broker.http_max_response_bytes",
        b.http_max_response_bytes,
        1,
        message,
    );
    c.count(
        "broker.http_max_redirects",
        b.http_max_redirects,
        0,
        HTTP_MAX_REDIRECTS_MAX,
    );
    // stdout and stderr travel in one answer.
    c.size(
        "broker.exec_max_output_bytes",
        b.exec_max_output_bytes,
        1,
        message / 2,
    );
    if b.database
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        c.refuse("broker.database", "must not be empty".into());
    }
    c.count(
        "broker.plugin_concurrency",
        b.plugin_concurrency,
        1,
        PLUGIN_CONCURRENCY_MAX,
    );
    c.count("broker.plugin_queue", b.plugin_queue, 0, PLUGIN_QUEUE_MAX);
    c.number(
        "broker.plugin_cpu_budget",
        b.plugin_cpu_budget,
        CPU_MIN,
        PLUGIN_CPU_BUDGET_MAX,
    );
    c.duration("broker.plugin_cpu_burst", b.plugin_cpu_burst, CALL_MAX);
    c.duration("broker.call_timeout", b.call_timeout, CALL_MAX);
    for (key, limit) in [
        ("broker.db_statement_time", b.db_statement_time),
        ("broker.http_timeout", b.http_timeout),
        ("broker.exec_timeout", b.exec_timeout),
        ("runtime.command_timeout", cfg.runtime.command_timeout),
    ] {
        if key.starts_with("broker.") {
            c.duration(key, limit, CALL_MAX);
        }
        c.shorter(key, limit, b.call_timeout);
    }
}

#[cfg(test)]
mod tests;
