//! `verify system-integrity`: every plugin binary against its pin, the audit log's
//! hash chain, SQLite's integrity check and the policy files as loaded at start.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::context::Shared;
use crate::install::sha256_file;
use crate::manifest::Manifest;
use crate::store::PluginRow;

/// One check: what was checked, whether it held, and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

pub fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// The policy files the supervisor loaded, with their SHA-256 at load time.
pub fn policy_digests(cfg: &Config) -> Vec<(PathBuf, String)> {
    let Some(dir) = &cfg.policy_dir else {
        return Vec::new();
    };
    let mut files = vec![dir.join("permissions.toml")];
    if let Ok(entries) = std::fs::read_dir(dir.join("seccomp")) {
        let mut json: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        json.sort();
        files.extend(json);
    }
    files
        .into_iter()
        .filter_map(|p| sha256_file(&p).ok().map(|h| (p, h)))
        .collect()
}

fn plugin_checks(shared: &Shared) -> Vec<Check> {
    match shared.store.plugins() {
        Ok(plugins) => plugins
            .iter()
            .map(|row| plugin_check(shared, row))
            .collect(),
        Err(e) => vec![check("plugins", false, format!("cannot list plugins: {e}"))],
    }
}

/// The plugin's installed entry binary against its pin.
pub fn plugin_check(shared: &Shared, row: &PluginRow) -> Check {
    let name = format!("plugin {}", row.name);
    let entry = match Manifest::parse(&row.manifest, &shared.catalog) {
        Ok(m) => m.entry,
        Err(e) => return check(name, false, format!("stored manifest invalid: {e}")),
    };
    let binary = Path::new(&row.install_dir).join(&entry);
    match sha256_file(&binary) {
        Ok(h) if h == row.sha256 => {
            check(name, true, format!("{} matches its pin", binary.display()))
        }
        Ok(h) => check(
            name,
            false,
            format!(
                "{} changed: sha256 {h}, pinned {}",
                binary.display(),
                row.sha256
            ),
        ),
        Err(e) => check(name, false, format!("{}: {e}", binary.display())),
    }
}

fn policy_checks(loaded: &[(PathBuf, String)]) -> Vec<Check> {
    if loaded.is_empty() {
        return vec![check(
            "policies",
            true,
            "built into the binary (no policy_dir)",
        )];
    }
    loaded
        .iter()
        .map(|(path, at_start)| {
            let name = format!("policy {}", path.display());
            match sha256_file(path) {
                Ok(now) if now == *at_start => {
                    check(name, true, "unchanged since the supervisor loaded it")
                }
                Ok(_) => check(name, false, "changed since the supervisor loaded it"),
                Err(e) => check(name, false, format!("unreadable: {e}")),
            }
        })
        .collect()
}

/// Runs every check; the caller flushes queued audit records first.
pub fn verify(shared: &Shared) -> Vec<Check> {
    let mut checks = plugin_checks(shared);
    checks.push(match shared.store.verify_audit_chain() {
        Ok(c) => match c.broken {
            None => check(
                "audit chain",
                true,
                format!(
                    "{} records chained, {} from before the chain",
                    c.chained, c.unchained
                ),
            ),
            Some(where_) => check("audit chain", false, where_),
        },
        Err(e) => check(
            "audit chain",
            false,
            format!("cannot read the audit log: {e}"),
        ),
    });
    checks.push(match shared.store.integrity_check() {
        Ok(r) if r == "ok" => check("store", true, "SQLite integrity_check: ok"),
        Ok(r) => check("store", false, format!("SQLite integrity_check: {r}")),
        Err(e) => check("store", false, e.to_string()),
    });
    checks.extend(policy_checks(&shared.policy_digests));
    checks
}
