//! What confinement needs from the host, prepared once at start-up: the cgroup
//! hierarchy, the Landlock ABI, the compiled seccomp policy and the read-only
//! entries of every plugin root; and the per-plugin spec built from them.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::cgroup::{Cgroups, Limits, PendingCgroup};
use super::rootfs::{RoEntry, RootPlan};
use super::seccomp::{self, CompiledPolicy};
use crate::config::Config;
use crate::launcher::ConfineSpec;
use crate::manifest::Manifest;
use crate::python_runtime;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Cgroup(#[from] super::cgroup::CgroupError),
    #[error("seccomp policy `{0}` (sandbox.seccomp_policy) does not exist")]
    NoSuchPolicy(String),
    #[error("{0}")]
    Io(String),
    /// This host cannot run the plugin as policy requires (not retried).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Locked(#[from] crate::instance_lock::LockError),
}

pub struct SandboxHost {
    pub cgroups: Cgroups,
    pub landlock_abi: u8,
    pub landlock_minimum: u8,
    pub seccomp: CompiledPolicy,
    /// Python plugins' policy (`python.seccomp_policy`), or why there is none: then
    /// Python plugins are refused at start with that reason.
    pub python_seccomp: Result<CompiledPolicy, String>,
    pub read_only: Vec<RoEntry>,
    /// Seccomp filters this process already runs under, from whoever started it.
    pub inherited_seccomp_filters: u32,
    /// Held while the supervisor runs: no other one may use this cgroup subtree.
    _lock: crate::instance_lock::InstanceLock,
}

/// `Seccomp_filters:` of /proc/self/status; 0 where the kernel does not say.
fn inherited_seccomp_filters() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(parse_seccomp_filters)
        .unwrap_or(0)
}

fn parse_seccomp_filters(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .and_then(|v| v.trim().parse().ok())
}

impl SandboxHost {
    /// Fails (and the supervisor does not start) when the seccomp policy is
    /// malformed or no cgroup hierarchy can enforce limits. A weak Landlock is not
    /// fatal here: plugins are refused at start, each with the reason.
    pub fn prepare(cfg: &Config) -> Result<SandboxHost, HostError> {
        let policies = seccomp::load_policies(cfg.seccomp_dir().as_deref())?;
        let seccomp = policies
            .get(&cfg.sandbox.seccomp_policy)
            .cloned()
            .ok_or_else(|| HostError::NoSuchPolicy(cfg.sandbox.seccomp_policy.clone()))?;
        let python_seccomp = policies
            .get(&cfg.python.seccomp_policy)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "seccomp policy `{}` (python.seccomp_policy) does not exist",
                    cfg.python.seccomp_policy
                )
            });
        if let Err(e) = &python_seccomp {
            tracing::error!("{e}: Python plugins are refused");
        }
        let cgroups = Cgroups::prepare(&cfg.sandbox.cgroup_name)?;
        // Before anything in the subtree is called a leftover: only cgroups whose
        // owning supervisor is gone are removed.
        let lock = crate::instance_lock::lock_cgroup(cgroups.subtree())?;
        let leftovers = cgroups.clean_leftovers();
        if !leftovers.is_empty() {
            tracing::warn!(?leftovers, "removed cgroups left by a previous supervisor");
        }
        let root = cfg.sandbox_root();
        std::fs::create_dir_all(&root)
            .map_err(|e| HostError::Io(format!("{}: {e}", root.display())))?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HostError::Io(format!("{}: {e}", root.display())))?;
        let landlock_abi = super::landlock::detect_abi();
        let host = SandboxHost {
            cgroups,
            landlock_abi,
            landlock_minimum: cfg.sandbox.landlock_minimum_abi,
            seccomp,
            python_seccomp,
            read_only: RootPlan::read_only_entries(&cfg.sandbox.read_only),
            inherited_seccomp_filters: inherited_seccomp_filters(),
            _lock: lock,
        };
        tracing::info!(
            cgroup = host.cgroups.version(),
            landlock_abi,
            landlock_minimum = host.landlock_minimum,
            seccomp_policy = %host.seccomp.name,
            seccomp_syscalls = host.seccomp.allowed_syscalls,
            inherited_seccomp_filters = host.inherited_seccomp_filters,
            "confinement prepared"
        );
        if host.cgroups.version() == "v1" {
            tracing::warn!("cpu, memory and pids are on cgroup v1 (hybrid host): using the v1 fallback; memory.oom.group and cgroup.kill are unavailable");
        }
        if let Err(e) = host.landlock_ok() {
            tracing::error!("{e}");
        }
        if host.inherited_seccomp_filters > 0 {
            // Filters stack and the strictest verdict wins: what these refuse with an
            // errno never reaches the plugin's own filter, so it is never reported.
            tracing::warn!(
                filters = host.inherited_seccomp_filters,
                "the supervisor runs under seccomp filters it did not install (a systemd unit's): \
                 plugins inherit them, and syscalls they refuse fail in a plugin without a \
                 seccomp-violation report"
            );
        }
        Ok(host)
    }

    /// Whether this host's Landlock meets the policy's minimum.
    pub fn landlock_ok(&self) -> Result<(), String> {
        if self.landlock_abi >= self.landlock_minimum {
            Ok(())
        } else {
            Err(format!(
                "host Landlock ABI {} is below sandbox.landlock_minimum_abi {}: plugins are refused",
                self.landlock_abi, self.landlock_minimum
            ))
        }
    }

    /// The manifest's request capped by policy; one extra pid for the trampoline
    /// that stays as the plugin's parent inside the cgroup.
    pub fn limits(cfg: &Config, manifest: &Manifest) -> Limits {
        Limits {
            cpu: manifest.resources.cpu.min(cfg.sandbox.max_cpu),
            memory_bytes: manifest.resources.memory_bytes.min(cfg.sandbox.max_memory),
            pids: manifest.resources.pids.min(cfg.sandbox.max_pids) + 1,
        }
    }

    /// The plugin's cgroup, named; the launcher creates it (see [`PendingCgroup`]).
    pub fn plan_cgroup(&self, plugin: &str, limits: Limits) -> PendingCgroup {
        self.cgroups.plan(plugin, limits)
    }

    /// The confinement spec for one launch; gives the data directory to the
    /// plugin's uid. A Python plugin also gets its package and the SDK bundle
    /// (read-only, noexec), the host's site-packages hidden, and its own policy.
    pub fn confine_spec(
        &self,
        cfg: &Config,
        plugin: &str,
        uid: u32,
        data_dir: &Path,
        flavor: &Flavor<'_>,
    ) -> Result<ConfineSpec, HostError> {
        let io = |e: std::io::Error| HostError::Io(format!("{}: {e}", data_dir.display()));
        std::fs::create_dir_all(data_dir).map_err(io)?;
        nix::unistd::chown(
            data_dir,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(uid)),
        )
        .map_err(|e| io(e.into()))?;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        let (policy, binds, masks) = match flavor {
            Flavor::Native => (&self.seccomp, Vec::new(), Vec::new()),
            Flavor::Python { package, pin } => (
                self.python_seccomp
                    .as_ref()
                    .map_err(|e| HostError::Refused(e.clone()))?,
                python_runtime::binds(package, pin),
                python_runtime::masked_site_dirs(&pin.version, &self.read_only),
            ),
        };
        Ok(ConfineSpec {
            uid,
            gid: uid,
            hostname: format!("plugin-{plugin}"),
            root: RootPlan {
                mount_point: cfg.sandbox_root(),
                read_only: self.read_only.clone(),
                binds,
                masks,
                data_dir: data_dir.to_path_buf(),
                tmp_bytes: cfg.sandbox.tmp_size,
                uid,
                gid: uid,
            },
            landlock_abi: self.landlock_abi,
            seccomp_policy: policy.name.clone(),
            seccomp_main: policy.main.clone(),
            seccomp_clone3: policy.clone3.clone(),
            seccomp_syscalls: policy.allowed_syscalls,
        })
    }
}

/// What kind of program a launch runs, for what its root holds.
pub enum Flavor<'a> {
    Native,
    /// A Python plugin: its package directory and what it was pinned to.
    Python {
        package: &'a Path,
        pin: &'a python_runtime::PythonPin,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seccomp_filters_are_read_from_the_status_file() {
        let status = "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t3\nSpeculation_Store_Bypass:\tthread vulnerable\n";
        assert_eq!(parse_seccomp_filters(status), Some(3));
        assert_eq!(parse_seccomp_filters("Seccomp:\t0\n"), None);
    }
}
