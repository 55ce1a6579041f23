//! `plexichat-supervisor --check-config`: everything a start would refuse that can be
//! checked without root side effects (config values, catalog, seccomp policy).

use std::path::Path;

use super::{validate, Config, Host};

/// The effective configuration when `path` (or the embedded default) would start,
/// or every problem found, each a line naming the file and the key.
pub fn check(path: Option<&Path>, base: &Path, host: &Host) -> Result<String, Vec<String>> {
    let (text, origin) = Config::read(path).map_err(|e| vec![e.to_string()])?;
    let cfg = Config::parse_unchecked(&text, &origin, base).map_err(|e| vec![e.to_string()])?;
    let mut problems: Vec<String> = validate::validate(&cfg, host)
        .into_iter()
        .map(|p| format!("config {origin}: {p}"))
        .collect();
    if let Err(e) = cfg.load_catalog() {
        problems.push(e.to_string());
    }
    problems.extend(seccomp_problem(&cfg));
    if !problems.is_empty() {
        return Err(problems);
    }
    super::render_effective(&cfg)
        .map_err(|e| vec![format!("config {origin}: cannot print it: {e}")])
}

/// The named seccomp policy must load and compile (as `SandboxHost::prepare` does).
fn seccomp_problem(cfg: &Config) -> Option<String> {
    let dir = cfg.seccomp_dir();
    match crate::sandbox::seccomp::load_policies(dir.as_deref()) {
        Err(e) => Some(format!("seccomp policy: {e}")),
        Ok(policies) if !policies.contains_key(&cfg.sandbox.seccomp_policy) => Some(format!(
            "sandbox.seccomp_policy `{}` is not among the policies ({})",
            cfg.sandbox.seccomp_policy,
            policies.keys().cloned().collect::<Vec<_>>().join(", ")
        )),
        Ok(_) => None,
    }
}

/// The `--check-config` command: prints the effective configuration and exits 0,
/// or prints every problem to stderr and exits 1.
pub fn main(path: Option<&Path>) -> std::process::ExitCode {
    let base = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("plexichat-supervisor: current directory: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match check(path, &base, &Host::current()) {
        Ok(effective) => {
            print!("{effective}");
            std::process::ExitCode::SUCCESS
        }
        Err(problems) => {
            eprintln!(
                "plexichat-supervisor: the configuration would be refused ({} problem{}):",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            );
            for p in problems {
                eprintln!("  {p}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
