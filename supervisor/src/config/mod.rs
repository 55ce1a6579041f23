//! Supervisor configuration (`supervisor.toml`): paths, admin-socket access roles and
//! runtime timings. Owns loading, defaults (the embedded file) and path resolution.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::catalog::{parse_duration, Catalog, CatalogError};

mod admin_socket;
pub mod check;
mod effective;
mod host;
mod install;
mod logs;
mod operations;
mod python;
pub mod validate;
pub use admin_socket::ConnectionLimits;
pub use effective::render_effective;
pub use host::Host;
pub use install::InstallConfig;
pub use logs::LogsConfig;
pub use operations::{AlertKind, AlertRule, BackupConfig, MonitorConfig, StorageConfig};
pub use python::PythonConfig;
pub use validate::{Problem, Problems};

/// The default configuration, embedded so `plexichat-supervisor` runs with no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../../policies/supervisor.toml");
/// The shipped permission catalog, used when `policy_dir` is unset.
pub const DEFAULT_CATALOG: &str = include_str!("../../../policies/permissions.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub admin_socket: PathBuf,
    #[serde(default)]
    pub policy_dir: Option<PathBuf>,
    #[serde(default)]
    pub access: Access,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub sandbox: SandboxConfig,
    #[serde(default)]
    pub broker: BrokerConfig,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// Plugins' own logs: size caps, rotation and output rate.
    #[serde(default)]
    pub logs: LogsConfig,
    /// Python plugins: interpreter, SDK bundle, seccomp policy.
    #[serde(default)]
    pub python: PythonConfig,
    #[serde(default)]
    pub install: InstallConfig,
    /// Alert rules (`[[alert]]` tables), evaluated per plugin.
    #[serde(default, rename = "alert")]
    pub alerts: Vec<AlertRule>,
}

/// Limits of the broker's data-plane services.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Bytes a plugin may keep in its data directory (writes through the broker
    /// beyond it fail with RESOURCE_EXHAUSTED).
    #[serde(with = "bytes")]
    pub data_quota: u64,
    /// Calls per second each plugin may make to each broker service (events,
    /// config, log, permissions, files), refilled continuously...
    pub rate_per_sec: f64,
    /// ...with bursts of up to this many calls.
    pub burst: u32,
    /// The application database plugins query through the database service
    /// (SQLite; never created by the supervisor). Default: `<state_dir>/app.db`.
    pub database: Option<PathBuf>,
    /// A database statement running longer than this is stopped.
    #[serde(with = "duration")]
    pub db_statement_time: Duration,
    /// Most rows one query may return, and most bytes of values in them.
    pub db_max_rows: usize,
    #[serde(with = "bytes")]
    pub db_max_bytes: u64,
    /// Longest string or blob in a statement (SQLite's `SQLITE_LIMIT_LENGTH`): keeps
    /// any single function call short, since no interrupt splits one.
    #[serde(with = "bytes")]
    pub db_max_value_bytes: u64,
    /// An HTTP request (all redirects included) taking longer than this fails.
    #[serde(with = "duration")]
    pub http_timeout: Duration,
    /// Largest response body the network service returns.
    #[serde(with = "bytes")]
    pub http_max_response_bytes: u64,
    /// Redirects followed per request, each checked like the first URL.
    pub http_max_redirects: usize,
    /// A command run for execute_commands is killed after this long.
    #[serde(with = "duration")]
    pub exec_timeout: Duration,
    /// Most bytes kept of a command's stdout, and of its stderr.
    #[serde(with = "bytes")]
    pub exec_max_output_bytes: u64,
    /// Every brokered call is answered within this, whatever it does: the backstop
    /// behind each service's own limit, which must be shorter.
    #[serde(with = "duration")]
    pub call_timeout: Duration,
    /// Blocking broker operations (statements, file I/O, HTTP, commands) one plugin
    /// may have running at once...
    pub plugin_concurrency: usize,
    /// ...and waiting behind them; beyond, RESOURCE_EXHAUSTED.
    pub plugin_queue: usize,
    /// Supervisor CPU seconds per second one plugin's blocking work may take...
    pub plugin_cpu_budget: f64,
    /// ...with this much credit saved up by a quiet plugin.
    #[serde(with = "duration")]
    pub plugin_cpu_burst: Duration,
    /// Largest event payload a plugin may emit or the server publish.
    #[serde(with = "bytes")]
    pub event_max_payload: u64,
    /// Bytes of one plugin's events held in the supervisor at once, across every
    /// queue; its emits beyond it are refused with RESOURCE_EXHAUSTED.
    #[serde(with = "bytes")]
    pub event_budget: u64,
    /// Bytes of events one subscriber's queue, or one admin watcher's, holds; events
    /// beyond it are dropped for that queue (counted, audited in aggregate).
    #[serde(with = "bytes")]
    pub event_queue_bytes: u64,
    /// Topic patterns one plugin may be subscribed to.
    pub max_subscriptions: usize,
}

impl BrokerConfig {
    pub fn cost_limits(&self) -> crate::broker::CostLimits {
        crate::broker::CostLimits {
            concurrency: self.plugin_concurrency,
            queue: self.plugin_queue,
            cpu_budget: self.plugin_cpu_budget,
            cpu_burst: self.plugin_cpu_burst,
        }
    }

    /// The event limits: positive, a budget and queue that fit at least two of the
    /// largest events, and nothing past 1 GiB (or 64 Ki subscriptions).
    pub fn validate_events(&self) -> Result<(), String> {
        const GIB: u64 = 1 << 30;
        let max_payload = (broker_proto::MAX_BROKER_MESSAGE_BYTES / 2) as u64;
        if !(1..=max_payload).contains(&self.event_max_payload) {
            return Err(format!(
                "broker.event_max_payload ({}) must be between 1 byte and {max_payload} bytes (half the broker message limit)",
                self.event_max_payload
            ));
        }
        for (key, value) in [
            ("broker.event_budget", self.event_budget),
            ("broker.event_queue_bytes", self.event_queue_bytes),
        ] {
            if value < 2 * self.event_max_payload || value > GIB {
                return Err(format!(
                    "{key} ({value}) must be at least twice broker.event_max_payload ({}) and at most 1 GiB",
                    self.event_max_payload
                ));
            }
        }
        if !(1..=65_536).contains(&self.max_subscriptions) {
            return Err(format!(
                "broker.max_subscriptions ({}) must be between 1 and 65536",
                self.max_subscriptions
            ));
        }
        Ok(())
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            data_quota: 64 << 20,
            rate_per_sec: 500.0,
            burst: 1000,
            database: None,
            db_statement_time: Duration::from_secs(1),
            db_max_rows: 1000,
            db_max_bytes: 1 << 20,
            db_max_value_bytes: 64 << 10,
            http_timeout: Duration::from_secs(10),
            http_max_response_bytes: 512 << 10,
            http_max_redirects: 5,
            exec_timeout: Duration::from_secs(10),
            exec_max_output_bytes: 256 << 10,
            call_timeout: Duration::from_secs(30),
            plugin_concurrency: 1,
            plugin_queue: 32,
            plugin_cpu_budget: 0.5,
            plugin_cpu_burst: Duration::from_secs(2),
            event_max_payload: 64 << 10,
            event_budget: 4 << 20,
            event_queue_bytes: 2 << 20,
            max_subscriptions: 256,
        }
    }
}

/// How plugins are confined, and the caps on what a manifest may request.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxConfig {
    /// Confinement on (the default). Off only for measuring its cost: the
    /// supervisor then says so loudly and `security plugin-status` shows it.
    pub confine: bool,
    /// Plugins get uids (and gids) `uid_base .. uid_base + uid_count`, one per
    /// plugin, kept for the plugin's lifetime.
    pub uid_base: u32,
    pub uid_count: u32,
    /// Host paths bound read-only into every plugin's root (libraries); symlinks
    /// are recreated. Each must exist; the default lists those of the usual
    /// library paths this host has.
    pub read_only: Vec<PathBuf>,
    #[serde(with = "bytes")]
    pub tmp_size: u64,
    /// Landlock ABI below which plugins are refused (6: filesystem, TCP, scoping).
    pub landlock_minimum_abi: u8,
    /// Name of the seccomp policy (a file stem under `policy_dir/seccomp/`).
    pub seccomp_policy: String,
    pub max_cpu: f64,
    #[serde(with = "bytes")]
    pub max_memory: u64,
    pub max_pids: u32,
    /// Name of the supervisor's cgroup under the hierarchy root (v1, or v2 when
    /// the supervisor runs in the root cgroup). Under systemd with Delegate=yes the
    /// service's own cgroup is used instead.
    pub cgroup_name: String,
    /// Trampolines started ahead of time, waiting in fresh namespaces and a cgroup
    /// of their own for the next launch (0: every launch starts its own).
    pub warm_trampolines: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            confine: true,
            uid_base: 200_000,
            uid_count: 10_000,
            // Only the ones this host has: a written entry must exist.
            read_only: [
                "/usr/lib",
                "/usr/lib64",
                "/lib",
                "/lib64",
                "/etc/ld.so.cache",
            ]
            .iter()
            .map(PathBuf::from)
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .collect(),
            tmp_size: 16 << 20,
            landlock_minimum_abi: crate::sandbox::landlock::REQUIRED_ABI,
            seccomp_policy: "default".into(),
            max_cpu: 1.0,
            max_memory: 512 << 20,
            max_pids: 128,
            cgroup_name: "plexichat".into(),
            warm_trampolines: 2,
        }
    }
}

/// Sizes are written `16MiB`, `512KiB` or a plain byte count.
mod bytes {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        crate::manifest::parse_bytes(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not a size (e.g. 16MiB)")))
    }

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_bytes(*n))
    }
}

/// `n` bytes in the largest binary unit that divides it exactly (`parse_bytes` reads it).
pub fn format_bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Principals {
    #[serde(default)]
    pub uids: Vec<u32>,
    #[serde(default)]
    pub gids: Vec<u32>,
    /// Group names; a caller whose user is a member (primary or supplementary)
    /// matches. SO_PEERCRED carries only the primary gid, so membership is looked up.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Principals {
    pub fn matches(&self, uid: u32, gid: u32) -> bool {
        self.uids.contains(&uid) || self.gids.contains(&gid) || self.member_of_group(uid, gid)
    }

    fn member_of_group(&self, uid: u32, gid: u32) -> bool {
        use nix::unistd::{getgrouplist, Gid, Group, Uid, User};
        if self.groups.is_empty() {
            return false;
        }
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return false;
        };
        let gids = getgrouplist(&name, Gid::from_raw(gid)).unwrap_or_default();
        gids.iter().any(|g| {
            Group::from_gid(*g)
                .ok()
                .flatten()
                .is_some_and(|grp| self.groups.contains(&grp.name))
        })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    #[serde(default = "root_only")]
    pub admin: Principals,
    #[serde(default)]
    pub server: Principals,
    #[serde(default)]
    pub viewer: Principals,
    #[serde(default = "default_socket_mode", with = "octal_mode")]
    pub socket_mode: u32,
    /// Group that owns the admin socket, so its members can connect.
    #[serde(default)]
    pub socket_group: Option<String>,
    /// Caps and idle timeout of the admin socket's connections.
    #[serde(default)]
    pub connections: ConnectionLimits,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            admin: root_only(),
            server: Principals::default(),
            viewer: Principals::default(),
            socket_mode: default_socket_mode(),
            socket_group: None,
            connections: ConnectionLimits::default(),
        }
    }
}

fn root_only() -> Principals {
    Principals {
        uids: vec![0],
        ..Principals::default()
    }
}

fn default_socket_mode() -> u32 {
    0o660
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    #[serde(with = "duration")]
    pub stop_grace: Duration,
    #[serde(with = "duration")]
    pub health_interval: Duration,
    #[serde(with = "duration")]
    pub health_timeout: Duration,
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    #[serde(with = "duration")]
    pub restart_backoff_initial: Duration,
    #[serde(with = "duration")]
    pub restart_backoff_max: Duration,
    pub quarantine_after: u32,
    #[serde(with = "duration")]
    pub quarantine_window: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            handshake_timeout: Duration::from_secs(5),
            stop_grace: Duration::from_secs(3),
            health_interval: Duration::from_secs(10),
            health_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(10),
            restart_backoff_initial: Duration::from_millis(250),
            restart_backoff_max: Duration::from_secs(30),
            quarantine_after: 5,
            quarantine_window: Duration::from_secs(300),
        }
    }
}

/// Durations are written `250ms`, `10s`, `5m`, `1h 30m`.
mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// File modes are written in octal: `"0660"`.
mod octal_mode {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an octal file mode")))
    }

    pub fn serialize<S: Serializer>(m: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{m:04o}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Invalid { path: String, message: String },
    /// Parsed, but values are out of bounds: every problem found, each naming its key.
    #[error("config {path}: {problems}")]
    Rejected { path: String, problems: Problems },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

impl Config {
    /// Loads `path`, or the embedded default when `None`; relative paths are made
    /// absolute against `base` (the working directory).
    pub fn load(path: Option<&Path>, base: &Path) -> Result<Config, ConfigError> {
        let (text, origin) = Config::read(path)?;
        Config::parse(&text, &origin, base)
    }

    /// The text of `path` (or the embedded default) and the name errors give it.
    pub fn read(path: Option<&Path>) -> Result<(String, String), ConfigError> {
        Ok(match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (DEFAULT_CONFIG.to_string(), "<embedded default>".to_string()),
        })
    }

    /// Parses and validates against this host: every start goes through here.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        Config::parse_on(text, origin, base, &Host::current())
    }

    /// Parses, then refuses the file with every problem `validate` finds on `host`.
    pub fn parse_on(
        text: &str,
        origin: &str,
        base: &Path,
        host: &Host,
    ) -> Result<Config, ConfigError> {
        let cfg = Config::parse_unchecked(text, origin, base)?;
        let problems = validate::validate(&cfg, host);
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Rejected {
                path: origin.to_string(),
                problems: Problems(problems),
            })
        }
    }

    /// Syntax and types only; relative paths made absolute (empty ones are left
    /// empty for `validate` to refuse).
    pub fn parse_unchecked(text: &str, origin: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        let paths = [
            &mut cfg.state_dir,
            &mut cfg.log_dir,
            &mut cfg.admin_socket,
            &mut cfg.python.sdk_dir,
        ];
        for p in paths.into_iter().chain(cfg.policy_dir.as_mut()) {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        Ok(cfg)
    }

    /// The permission catalog from `policy_dir`, or the built-in one.
    pub fn load_catalog(&self) -> Result<Catalog, CatalogError> {
        match &self.policy_dir {
            Some(dir) => Catalog::load(&dir.join("permissions.toml")),
            None => Catalog::parse(DEFAULT_CATALOG, "<built-in permissions.toml>"),
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.state_dir.join("store.db")
    }

    /// Where installed plugin versions live: `<state>/plugins/<name>/<version>/`.
    pub fn plugin_store_dir(&self) -> PathBuf {
        self.state_dir.join("plugins")
    }

    /// Per-plugin writable data directories: `<state>/data/<name>/`.
    pub fn data_root(&self) -> PathBuf {
        self.state_dir.join("data")
    }

    /// The application database behind the broker's database service.
    pub fn app_database(&self) -> PathBuf {
        self.broker
            .database
            .clone()
            .unwrap_or_else(|| self.state_dir.join("app.db"))
    }

    /// Store backups: `<state>/backups/<id>.sqlite`.
    pub fn backup_dir(&self) -> PathBuf {
        self.state_dir.join("backups")
    }

    /// Empty directory each plugin's tmpfs root is mounted on, privately.
    pub fn sandbox_root(&self) -> PathBuf {
        self.state_dir.join("sandbox-root")
    }

    /// `policy_dir/seccomp`, or `None` for the built-in policy.
    pub fn seccomp_dir(&self) -> Option<PathBuf> {
        self.policy_dir.as_ref().map(|d| d.join("seccomp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_paths_become_absolute() {
        let cfg = Config::load(None, Path::new("/srv/px")).unwrap();
        assert_eq!(cfg.state_dir, PathBuf::from("/srv/px/var/state"));
        assert_eq!(cfg.access.socket_mode, 0o660);
        assert!(cfg.access.admin.matches(0, 1234));
        assert!(!cfg.access.viewer.matches(1000, 1000));
        assert_eq!(cfg.runtime.quarantine_after, 5);
        assert_eq!(cfg.broker.data_quota, 64 << 20);
        assert_eq!(cfg.alerts.len(), 4, "one default rule per kind");
        assert_eq!(cfg.backup.keep, 50);
        cfg.load_catalog().unwrap();
    }

    #[test]
    fn event_limits_are_validated_naming_the_key() {
        let base = "state_dir = \"s\"\nlog_dir = \"l\"\nadmin_socket = \"a\"\n[broker]\n";
        let parse =
            |extra: &str| Config::parse(&format!("{base}{extra}"), "t.toml", Path::new("/"));
        let cfg = parse("").expect("defaults are valid");
        assert_eq!(
            (cfg.broker.event_max_payload, cfg.broker.event_budget),
            (64 << 10, 4 << 20)
        );
        assert_eq!(cfg.broker.max_subscriptions, 256);
        for (extra, key) in [
            ("event_max_payload = \"0\"", "broker.event_max_payload"),
            ("event_max_payload = \"1MiB\"", "broker.event_max_payload"),
            ("event_budget = \"64KiB\"", "broker.event_budget"),
            ("event_queue_bytes = \"2GiB\"", "broker.event_queue_bytes"),
            ("max_subscriptions = 0", "broker.max_subscriptions"),
            ("max_subscriptions = 100000", "broker.max_subscriptions"),
        ] {
            let err = parse(extra).expect_err(extra).to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        assert!(parse("event_max_payload = \"512KiB\"\nevent_queue_bytes = \"1MiB\"").is_ok());
    }

    #[test]
    fn the_shipped_production_config_parses() {
        // On a host that has the `plexichat` group `make install` creates.
        let host = Host::with_accounts(&[("root", 0)], &[("root", 0), ("plexichat", 990)]);
        // scripts/install.sh puts PREFIX's lib directory in.
        let text =
            include_str!("../../../systemd/supervisor.toml").replace("@LIBDIR@", "/usr/local/lib");
        let cfg =
            Config::parse_on(&text, "systemd/supervisor.toml", Path::new("/"), &host).unwrap();
        assert_eq!(
            cfg.admin_socket,
            PathBuf::from("/run/plexichat/supervisor.sock")
        );
        assert_eq!(
            cfg.python.sdk_dir,
            PathBuf::from("/usr/local/lib/plexichat/python-sdk")
        );
        assert_eq!(cfg.access.socket_group.as_deref(), Some("plexichat"));
    }

    #[test]
    fn every_service_limit_must_fit_inside_the_call_deadline() {
        let text = DEFAULT_CONFIG.replace("call_timeout = \"30s\"", "call_timeout = \"5s\"");
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("broker.http_timeout (10s) must be shorter than broker.call_timeout (5s)"),
            "{err}"
        );
        let text = DEFAULT_CONFIG.replace("call_timeout = \"30s\"", "call_timeout = \"11s\"");
        let cfg = Config::parse(&text, "x", Path::new("/")).expect("10 s limits fit in 11 s");
        assert_eq!(cfg.broker.call_timeout, Duration::from_secs(11));
    }

    #[test]
    fn bad_values_name_what_is_wrong() {
        let text = DEFAULT_CONFIG.replace("\"5s\"", "\"soon\"");
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
        let text = DEFAULT_CONFIG.replace("\"0660\"", "\"999\"");
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("octal"), "{err}");
        let text = DEFAULT_CONFIG.replace(
            "# prometheus_listen = \"127.0.0.1:9464\"",
            "prometheus_listen = \"0.0.0.0:9464\"",
        );
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("only loopback"), "{err}");
        let text = format!(
            "{DEFAULT_CONFIG}\n[[alert]]\nname = \"denial-flood\"\nkind = \"denials\"\nthreshold = 1\nwindow = \"1m\"\n"
        );
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("defined twice"), "{err}");
        let text = DEFAULT_CONFIG.replace("threshold = 100", "threshold = 0");
        let err = Config::parse(&text, "x", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("greater than zero"), "{err}");
        let text = format!("{DEFAULT_CONFIG}\nbogus = 1\n");
        assert!(Config::parse(&text, "x", Path::new("/")).is_err());
    }
}
