//! Confinement of one plugin process, applied by the launcher trampoline in the
//! design's order (namespaces, minimal root, cgroup, credentials, Landlock, seccomp),
//! plus what the supervisor needs to set up and observe it.

pub mod seccomp;
pub mod syscalls;
