//! Confinement of one plugin process, applied by the launcher trampoline in the
//! design's order (namespaces, minimal root, cgroup, credentials, Landlock, seccomp),
//! plus what the supervisor needs to set up, observe and report it.

pub mod bpf_tree;
pub mod cgroup;
pub mod credentials;
pub mod elf;
pub mod host;
pub mod landlock;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod sys;
pub mod syscalls;

use serde::{Deserialize, Serialize};

/// What the trampoline actually applied to a plugin, reported back before exec
/// and shown by `plexichat security plugin-status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Enforcement {
    pub namespaces: Vec<String>,
    pub uid: u32,
    pub gid: u32,
    pub rootfs: String,
    pub capabilities: String,
    pub no_new_privs: bool,
    pub landlock: Option<landlock::LandlockReport>,
    pub seccomp_policy: String,
    pub seccomp_syscalls: usize,
    /// Host pid of the plugin process (the pid namespace's init), as seen by the supervisor.
    pub plugin_pid: i32,
}
