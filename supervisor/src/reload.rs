//! SIGHUP (and `systemctl reload`): re-read and validate the configuration, reopen the
//! JSON-line logs, and record `supervisor.reload` with what changed. Never stops a plugin.

// Why a narrow reload: every subsystem was handed its configuration at start, and
// swapping a value under a running broker or admin socket must be done per subsystem
// with care. Until each one can take a new value live, a reload says exactly which
// changed keys wait for a restart, rather than pretending to apply them. What it does
// do is what logrotate needs (the audit logs reopened by name) and the check an
// operator wants before restarting (a bad file is refused and the running
// configuration kept).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::audit::{Actor, AuditEntry, LogFiles, Outcome};
use crate::config::{render_effective, Config};
use crate::context::Shared;

/// Where the running configuration came from, to read it again.
pub struct Source {
    pub path: Option<PathBuf>,
    pub cwd: PathBuf,
}

/// What one reload did.
#[derive(Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Keys whose value in the file differs from the running one; each waits for a
    /// restart.
    pub needs_restart: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration was not reloaded, the running one is kept: {0}")]
    Config(String),
    #[error("reopening the audit logs: {0}")]
    Logs(std::io::Error),
}

/// One reload, recorded either way.
pub fn reload(shared: &Shared, logs: &LogFiles, source: &Source) -> Result<Reloaded, ReloadError> {
    let result = apply(&shared.cfg, logs, source);
    let entry = match &result {
        Ok(r) => AuditEntry::new(&Actor::system(), "supervisor.reload", Outcome::Ok).detail(
            serde_json::json!({
                "logs_reopened": true,
                "needs_restart": r.needs_restart,
            }),
        ),
        Err(e) => AuditEntry::new(&Actor::system(), "supervisor.reload", Outcome::Failed)
            .detail(serde_json::json!({ "error": e.to_string() })),
    };
    shared.audit.record(entry);
    match &result {
        Ok(r) if r.needs_restart.is_empty() => {
            tracing::info!("reloaded: audit logs reopened, configuration unchanged")
        }
        Ok(r) => tracing::warn!(
            keys = ?r.needs_restart,
            "reloaded: audit logs reopened; these changed keys take effect at the next restart"
        ),
        Err(e) => tracing::error!(error = %e, "reload refused"),
    }
    result
}

fn apply(running: &Config, logs: &LogFiles, source: &Source) -> Result<Reloaded, ReloadError> {
    let fresh = Config::load(source.path.as_deref(), &source.cwd)
        .map_err(|e| ReloadError::Config(e.to_string()))?;
    fresh
        .load_catalog()
        .map_err(|e| ReloadError::Config(e.to_string()))?;
    logs.reopen().map_err(ReloadError::Logs)?;
    Ok(Reloaded {
        needs_restart: changed_keys(running, &fresh),
    })
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
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The running configuration's source from the command line.
pub fn source(path: Option<&Path>, cwd: &Path) -> Source {
    Source {
        path: path.map(Path::to_path_buf),
        cwd: cwd.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_named_and_equal_files_change_nothing() {
        let cwd = std::env::current_dir().unwrap();
        let a = Config::parse(crate::config::DEFAULT_CONFIG, "default", &cwd).unwrap();
        assert!(changed_keys(&a, &a.clone()).is_empty());
        let text = crate::config::DEFAULT_CONFIG.replace("burst = 1000", "burst = 2000");
        let b = Config::parse(&text, "edited", &cwd).unwrap();
        assert_eq!(changed_keys(&a, &b), ["broker.burst"]);
    }
}
