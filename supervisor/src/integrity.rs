//! `verify system-integrity`: every plugin binary (or Python package, interpreter and
//! SDK) against its pin, the audit chain, SQLite's check and the policy files.

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

/// The plugin's installed entry binary against its pin; for a Python plugin, the
/// whole package tree, the interpreter and the SDK bundle against theirs.
pub fn plugin_check(shared: &Shared, row: &PluginRow) -> Check {
    let name = format!("plugin {}", row.name);
    let entry = match Manifest::parse(&row.manifest, &shared.catalog) {
        Ok(m) => m.entry,
        Err(e) => return check(name, false, format!("stored manifest invalid: {e}")),
    };
    let package = Path::new(&row.install_dir);
    let Some(pin) = &row.python else {
        let binary = package.join(&entry);
        return match file_matches(&binary, &row.sha256) {
            Ok(()) => check(name, true, format!("{} matches its pin", binary.display())),
            Err(e) => check(name, false, e),
        };
    };
    let problems: Vec<String> = [
        tree_matches("package", package, &row.sha256),
        file_matches(&pin.interpreter, &pin.sha256),
        tree_matches("SDK bundle", &pin.sdk_dir, &pin.sdk_digest),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if problems.is_empty() {
        check(
            name,
            true,
            format!(
                "package {} ({} files), interpreter {} (Python {}) and SDK bundle {} match their pins",
                package.display(),
                pin.files.len(),
                pin.interpreter.display(),
                pin.version,
                pin.sdk_dir.display()
            ),
        )
    } else {
        check(name, false, problems.join("; "))
    }
}

fn file_matches(path: &Path, pinned: &str) -> Result<(), String> {
    match sha256_file(path) {
        Ok(h) if h == pinned => Ok(()),
        Ok(h) => Err(format!(
            "{} changed: sha256 {h}, pinned {pinned}",
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn tree_matches(what: &str, dir: &Path, pinned: &str) -> Result<(), String> {
    match crate::package::tree::pin(dir) {
        Ok(t) if t.digest == pinned => Ok(()),
        Ok(t) => Err(format!(
            "{what} {} changed: digest {}, pinned {pinned}",
            dir.display(),
            t.digest
        )),
        Err(e) => Err(format!("{what} {}: {e}", dir.display())),
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
