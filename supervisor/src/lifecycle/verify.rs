//! `plugin enable --verify-security`: before the start, the binary against its pin and
//! the host's enforcement; after it, the running process itself as the kernel shows it.

use std::path::Path;

use crate::context::Shared;
use crate::integrity::{check, plugin_check, Check};
use crate::runtime::Status;
use crate::sandbox::namespaces;
use crate::store::PluginRow;

/// What must hold before the plugin may start.
pub fn before_start(shared: &Shared, row: &PluginRow) -> Vec<Check> {
    let mut checks = vec![plugin_check(shared, row)];
    checks.push(match &shared.sandbox {
        None => check(
            "confinement",
            false,
            "sandbox.confine is off: plugins would run unconfined",
        ),
        Some(host) => match host.landlock_ok() {
            Ok(()) => check(
                "host enforcement",
                true,
                format!(
                    "cgroup {}, Landlock ABI {} (minimum {}), seccomp `{}` ({} syscalls)",
                    host.cgroups.version(),
                    host.landlock_abi,
                    host.landlock_minimum,
                    host.seccomp.name,
                    host.seccomp.allowed_syscalls
                ),
            ),
            Err(refusal) => check("host enforcement", false, refusal),
        },
    });
    checks
}

/// What the running instance must show: its own report (Landlock fully enforced,
/// cgroup limits set) and, read from `/proc`, seccomp filtering, no_new_privs, no
/// capabilities and a namespace of its own for each of the six.
pub fn after_start(status: &Status) -> Vec<Check> {
    let Some(e) = &status.enforcement else {
        return vec![check(
            "enforcement",
            false,
            "the instance reported no enforcement",
        )];
    };
    let mut checks = Vec::new();
    checks.push(match &e.landlock {
        Some(l) if l.status == "fully_enforced" => {
            check("landlock", true, format!("ABI {} fully enforced", l.abi))
        }
        Some(l) => check("landlock", false, format!("ABI {}: {}", l.abi, l.status)),
        None => check("landlock", false, "not enforced"),
    });
    checks.push(match &status.cgroup {
        Some(cg) => {
            let l = cg.enforced();
            let ok = l.memory_bytes > 0 && l.pids > 0 && l.cpu > 0.0;
            check(
                "cgroup",
                ok,
                format!(
                    "{}: cpu {} cores, memory {} bytes, pids {}",
                    cg.version(),
                    l.cpu,
                    l.memory_bytes,
                    l.pids
                ),
            )
        }
        None => check("cgroup", false, "the instance has no cgroup"),
    });
    checks.extend(process_checks(e.plugin_pid));
    checks
}

fn process_checks(pid: i32) -> Vec<Check> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let status = match std::fs::read_to_string(proc_dir.join("status")) {
        Ok(s) => s,
        Err(e) => return vec![check("process", false, format!("pid {pid}: {e}"))],
    };
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let (seccomp, nnp, cap_eff, cap_bnd) = (
        field("Seccomp:"),
        field("NoNewPrivs:"),
        field("CapEff:"),
        field("CapBnd:"),
    );
    let no_caps = |v: &str| !v.is_empty() && v.chars().all(|c| c == '0');
    let mut checks = vec![
        check(
            "seccomp",
            seccomp == "2",
            format!("pid {pid}: Seccomp {seccomp}"),
        ),
        check(
            "no_new_privs",
            nnp == "1",
            format!("pid {pid}: NoNewPrivs {nnp}"),
        ),
        check(
            "capabilities",
            no_caps(&cap_eff) && no_caps(&cap_bnd),
            format!("pid {pid}: CapEff {cap_eff}, CapBnd {cap_bnd}"),
        ),
    ];
    let shared_ns: Vec<&str> = namespaces::NAMES
        .iter()
        .copied()
        .filter(|ns| {
            let mine = std::fs::read_link(Path::new("/proc/self/ns").join(ns));
            let theirs = std::fs::read_link(proc_dir.join("ns").join(ns));
            !matches!((mine, theirs), (Ok(a), Ok(b)) if a != b)
        })
        .collect();
    checks.push(check(
        "namespaces",
        shared_ns.is_empty(),
        if shared_ns.is_empty() {
            format!("pid {pid}: own {}", namespaces::NAMES.join(", "))
        } else {
            format!("pid {pid} shares the supervisor's {}", shared_ns.join(", "))
        },
    ));
    checks
}
