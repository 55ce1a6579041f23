//! SIGHUP and `plexichat config reload`: re-read and validate the configuration, put
//! its live keys in force, reopen the audit logs, record what applied and what waits.

// What applies live is exactly what `merge_live` takes from the new file: access
// roles and connection caps (but `max_total`, which the fd budget reserved for at
// start), the `[broker]` limits (but `database`: which file the database service
// opens is fixed at start) and the alert rules. Everything else — paths,
// the socket, `[sandbox]`, `[runtime]`, `[logs]`, `[storage]`, `[backup]`,
// `[monitor]`, the permission catalog and seccomp policies — is read once at start;
// a change to it is named in `needs_restart` and left as it runs. A file that fails
// validation, alone or combined with the running restart-only keys, changes nothing.
// The logs are reopened on every reload, valid file or not: logrotate's postrotate
// must not depend on someone's half-edited configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::audit::{Actor, AuditEntry, AuditWriter, LogFiles, Outcome};
use crate::config::{render_effective, BrokerConfig, Config, ConnectionLimits, Host};
use crate::live::{Live, Settings};

/// Where the running configuration came from, to read it again.
pub struct Source {
    pub path: Option<PathBuf>,
    pub cwd: PathBuf,
}

/// The running configuration's source from the command line.
pub fn source(path: Option<&Path>, cwd: &Path) -> Source {
    Source {
        path: path.map(Path::to_path_buf),
        cwd: cwd.to_path_buf(),
    }
}

/// What a valid file changed, as dotted keys (`alert.<name>` for a rule).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed keys now in force.
    pub applied: Vec<String>,
    /// Changed keys that wait for a restart (reported again until there is one).
    pub needs_restart: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not reloaded, the running one is kept: {0}")]
    Config(String),
}

/// What one reload did: the configuration's verdict and the logs' reopening.
#[derive(Debug)]
pub struct Reload {
    pub config: Result<Changes, ReloadError>,
    pub logs: Result<(), String>,
}

/// Runs reloads, one at a time, against the configuration in force.
pub struct Reloader {
    source: Source,
    logs: Arc<LogFiles>,
    live: Arc<Live>,
    /// The configuration read at start, with the live keys of the last reload.
    running: Mutex<Config>,
}

impl Reloader {
    pub fn new(source: Source, logs: Arc<LogFiles>, live: Arc<Live>, started: Config) -> Reloader {
        Reloader {
            source,
            logs,
            live,
            running: Mutex::new(started),
        }
    }

    /// SIGHUP: a reload by the system, recorded through `audit`.
    pub fn on_signal(&self, audit: &AuditWriter) {
        let (_, entry) = self.reload(&Actor::system());
        audit.record(entry);
    }

    /// One reload for `actor`, and the `supervisor.reload` record the caller writes
    /// (the admin API waits for it to be committed before answering). Blocks: run it
    /// off the async runtime.
    pub fn reload(&self, actor: &Actor) -> (Reload, AuditEntry) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let logs = self.logs.reopen().map_err(|e| e.to_string());
        let config = self.reload_config(&mut running);
        drop(running);
        let done = Reload { config, logs };
        journal(&done);
        let entry = record(actor, &done);
        (done, entry)
    }

    fn reload_config(&self, running: &mut Config) -> Result<Changes, ReloadError> {
        let refuse = |e: &dyn std::fmt::Display| ReloadError::Config(e.to_string());
        let fresh =
            Config::load(self.source.path.as_deref(), &self.source.cwd).map_err(|e| refuse(&e))?;
        // Read at start only, but a broken catalog would refuse the next start.
        fresh.load_catalog().map_err(|e| refuse(&e))?;
        let next = merge_live(running, &fresh);
        let problems = crate::config::validate::validate(&next, &Host::current());
        if !problems.is_empty() {
            return Err(ReloadError::Config(format!(
                "with the keys that need a restart kept as they run: {}",
                crate::config::Problems(problems)
            )));
        }
        let changes = Changes {
            applied: changed_keys(running, &next),
            needs_restart: changed_keys(&next, &fresh),
        };
        if !changes.applied.is_empty() {
            self.live.store(Settings::from_config(&next));
        }
        *running = next;
        Ok(changes)
    }
}

/// `running` with every key that applies live taken from `fresh`.
fn merge_live(running: &Config, fresh: &Config) -> Config {
    let mut next = running.clone();
    next.access.admin = fresh.access.admin.clone();
    next.access.server = fresh.access.server.clone();
    next.access.viewer = fresh.access.viewer.clone();
    next.access.connections = ConnectionLimits {
        max_total: running.access.connections.max_total,
        ..fresh.access.connections.clone()
    };
    next.broker = BrokerConfig {
        database: running.broker.database.clone(),
        ..fresh.broker.clone()
    };
    next.alerts = fresh.alerts.clone();
    next
}

/// The journal line: the same keys as the record.
fn journal(done: &Reload) {
    if let Err(e) = &done.logs {
        tracing::error!(
            action = "supervisor.reload",
            outcome = "failed",
            error = %e,
            "reload: the audit logs could not be reopened"
        );
    }
    match &done.config {
        Ok(c) if c.needs_restart.is_empty() => tracing::info!(
            action = "supervisor.reload",
            outcome = "ok",
            applied = ?c.applied,
            "reloaded: {} changed keys applied, none waits for a restart",
            c.applied.len()
        ),
        Ok(c) => tracing::warn!(
            action = "supervisor.reload",
            outcome = "ok",
            applied = ?c.applied,
            needs_restart = ?c.needs_restart,
            "reloaded: {} changed keys applied; {} take effect only at the next restart",
            c.applied.len(),
            c.needs_restart.len()
        ),
        Err(e) => tracing::error!(
            action = "supervisor.reload",
            outcome = "failed",
            error = %e,
            "reload refused"
        ),
    }
}

fn record(actor: &Actor, done: &Reload) -> AuditEntry {
    let mut detail = serde_json::json!({ "logs_reopened": done.logs.is_ok() });
    if let Err(e) = &done.logs {
        detail["logs_error"] = e.clone().into();
    }
    let outcome = match &done.config {
        Ok(c) => {
            detail["applied"] = c.applied.clone().into();
            detail["needs_restart"] = c.needs_restart.clone().into();
            if done.logs.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            }
        }
        Err(e) => {
            detail["error"] = e.to_string().into();
            Outcome::Failed
        }
    };
    AuditEntry::new(actor, "supervisor.reload", outcome).detail(detail)
}

/// The dotted keys whose effective values differ.
fn changed_keys(a: &Config, b: &Config) -> Vec<String> {
    let (fa, fb) = (flat(a), flat(b));
    let mut keys: Vec<String> = fa
        .keys()
        .chain(fb.keys())
        .filter(|k| fa.get(*k) != fb.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flat(cfg: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = render_effective(cfg).unwrap_or_default();
    if let Ok(table) = text.parse::<toml::Table>() {
        walk("", &toml::Value::Table(table), &mut out);
    }
    out
}

fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeMap<String, String>) {
    let name = |v: &toml::Value| {
        v.get("name")
            .and_then(toml::Value::as_str)
            .map(String::from)
    };
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        // Named tables (`[[alert]]`) are one key each, by name, so a changed rule is
        // named rather than the whole list.
        toml::Value::Array(items)
            if !items.is_empty() && items.iter().all(|v| name(v).is_some()) =>
        {
            for item in items {
                let key = format!("{prefix}.{}", name(item).unwrap_or_default());
                out.insert(key, item.to_string());
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_CONFIG;

    fn parse(text: &str) -> Config {
        let cwd = std::env::current_dir().unwrap();
        Config::parse(text, "test", &cwd).unwrap()
    }

    #[test]
    fn changed_keys_are_named_and_equal_files_change_nothing() {
        let a = parse(DEFAULT_CONFIG);
        assert!(changed_keys(&a, &a.clone()).is_empty());
        let b = parse(&DEFAULT_CONFIG.replace("burst = 1000", "burst = 2000"));
        assert_eq!(changed_keys(&a, &b), ["broker.burst"]);
        let c = parse(&DEFAULT_CONFIG.replace("threshold = 100", "threshold = 7"));
        let changed = changed_keys(&a, &c);
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert!(
            changed[0].starts_with("alert."),
            "a rule by name: {changed:?}"
        );
    }

    #[test]
    fn live_keys_are_applied_and_the_rest_waits_for_a_restart() {
        let running = parse(DEFAULT_CONFIG);
        let text = DEFAULT_CONFIG
            .replace("burst = 1000", "burst = 20")
            .replace("threshold = 100", "threshold = 7")
            .replace("uid_base = 200000", "uid_base = 300000")
            .replace("\"var/state\"", "\"var/state2\"");
        let fresh = parse(&text);
        let next = merge_live(&running, &fresh);
        let applied = changed_keys(&running, &next);
        let waiting = changed_keys(&next, &fresh);
        assert!(applied.contains(&"broker.burst".to_string()), "{applied:?}");
        assert!(
            applied.iter().any(|k| k.starts_with("alert.")),
            "{applied:?}"
        );
        for key in ["sandbox.uid_base", "state_dir"] {
            assert!(waiting.contains(&key.to_string()), "{key}: {waiting:?}");
            assert!(!applied.contains(&key.to_string()));
        }
        assert!(
            applied.iter().all(|k| !waiting.contains(k)),
            "a key is applied or waits, never both"
        );
        assert_eq!(next.state_dir, running.state_dir);
        assert_eq!(next.broker.burst, 20);
    }

    #[test]
    fn the_total_connection_cap_and_the_database_wait_for_a_restart() {
        let running = parse(DEFAULT_CONFIG);
        let mut fresh = running.clone();
        fresh.access.connections.max_total = 1000;
        fresh.access.connections.max_per_uid = 10;
        fresh.access.socket_mode = 0o600;
        fresh.broker.event_budget = 8 << 20;
        fresh.broker.max_subscriptions = 10;
        fresh.broker.database = Some("/srv/other.db".into());
        let next = merge_live(&running, &fresh);
        assert_eq!(
            changed_keys(&running, &next),
            [
                "access.connections.max_per_uid",
                "broker.event_budget",
                "broker.max_subscriptions"
            ]
        );
        assert_eq!(
            changed_keys(&next, &fresh),
            [
                "access.connections.max_total",
                "access.socket_mode",
                "broker.database"
            ]
        );
    }

    /// A reloader over `text` written to a file in a fresh directory.
    fn reloader(text: &str) -> (tempfile::TempDir, Arc<Live>, Reloader) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supervisor.toml");
        std::fs::write(&path, text).unwrap();
        let started = Config::load(Some(&path), dir.path()).unwrap();
        let live = Live::new(Settings::from_config(&started));
        let logs = Arc::new(LogFiles::open(&dir.path().join("log")).unwrap());
        let source = source(Some(&path), dir.path());
        let r = Reloader::new(source, logs, Arc::clone(&live), started);
        (dir, live, r)
    }

    #[test]
    fn a_file_valid_alone_but_not_with_the_running_restart_keys_changes_nothing() {
        let (dir, live, r) = reloader(DEFAULT_CONFIG);
        // A reserve of 600 fits a total of 1000, but the total stays 512 until a restart.
        let text = DEFAULT_CONFIG
            .replace("max_total = 512", "max_total = 1000")
            .replace("admin_reserve = 32", "admin_reserve = 600")
            .replace("burst = 1000", "burst = 5");
        std::fs::write(dir.path().join("supervisor.toml"), &text).unwrap();
        let (done, entry) = r.reload(&Actor::system());
        let err = done.config.expect_err("refused").to_string();
        assert!(err.contains("access.connections.admin_reserve"), "{err}");
        assert!(err.contains("running one is kept"), "{err}");
        assert_eq!(entry.outcome, Outcome::Failed);
        assert!(done.logs.is_ok(), "the logs are reopened either way");
        let now = live.load();
        assert_eq!(
            (now.generation, now.broker.burst),
            (0, 1000),
            "nothing applied"
        );

        // Without the reserve the same file applies its burst and names the total.
        std::fs::write(
            dir.path().join("supervisor.toml"),
            text.replace("admin_reserve = 600", "admin_reserve = 32"),
        )
        .unwrap();
        let (done, entry) = r.reload(&Actor::system());
        let changes = done.config.expect("applied");
        assert_eq!(changes.applied, ["broker.burst"]);
        assert_eq!(changes.needs_restart, ["access.connections.max_total"]);
        assert_eq!(entry.detail["applied"], serde_json::json!(["broker.burst"]));
        let now = live.load();
        assert_eq!((now.generation, now.broker.burst), (1, 5));

        // Again with the same file: nothing new to apply, the total still waits.
        let (done, _) = r.reload(&Actor::system());
        let changes = done.config.expect("unchanged");
        assert!(changes.applied.is_empty());
        assert_eq!(changes.needs_restart, ["access.connections.max_total"]);
        assert_eq!(
            live.load().generation,
            1,
            "an unchanged reload stores nothing"
        );
    }
}
