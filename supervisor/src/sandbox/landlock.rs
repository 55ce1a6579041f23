//! Landlock for one plugin: detect the kernel's ABI, confine the filesystem to the
//! minimal root (execute only the pinned binary and the libraries), deny TCP bind
//! and connect, scope abstract unix sockets and signals, and report what took.

use landlock::{
    Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, ABI,
};
use serde::{Deserialize, Serialize};

/// The ABI this design needs: TCP rules (4), ioctl on devices (5), scoping (6).
pub const REQUIRED_ABI: u8 = 6;

/// What Landlock actually enforced for a plugin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LandlockReport {
    pub abi: u8,
    /// `fully_enforced`, `partially_enforced` or `not_enforced`.
    pub status: String,
    pub net_denied: bool,
    pub scoped: bool,
}

/// The running kernel's Landlock ABI (0: none).
pub fn detect_abi() -> u8 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only
    // returns the ABI version (or -1).
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    u8::try_from(v.max(0)).unwrap_or(u8::MAX)
}

fn abi_enum(abi: u8) -> ABI {
    ABI::from(i32::from(abi))
}

/// Paths the plugin may use inside its root, with their rights.
pub struct Grants<'a> {
    /// Read only (library directories).
    pub read_only: &'a [std::path::PathBuf],
    /// Files that may be executed: the binary's dynamic loader, nothing else.
    pub exec_files: &'a [std::path::PathBuf],
    /// Read-write, no execute (/data, /tmp).
    pub read_write: &'a [&'a str],
    /// Device files that may be read and written.
    pub devices: &'a [&'a str],
}

#[derive(Debug, thiserror::Error)]
#[error("landlock: {0}")]
pub struct LandlockError(String);

fn err(e: impl std::fmt::Display) -> LandlockError {
    LandlockError(e.to_string())
}

/// Applies the ruleset to the calling (single-threaded) process. Requires
/// no_new_privs (or CAP_SYS_ADMIN). The plugin binary needs no rule: it is exec'd
/// from a sealed memfd, which lives on an internal filesystem Landlock does not
/// restrict (and the plugin cannot exec anything else: see `launcher::EXEC_FD`).
pub fn restrict(abi: u8, grants: &Grants<'_>) -> Result<LandlockReport, LandlockError> {
    let a = abi_enum(abi);
    let all = AccessFs::from_all(a);
    let read = AccessFs::from_read(a);
    // Only rights this ABI knows: asking for more would make the crate report a
    // partial enforcement, which the trampoline refuses.
    let rw_file = (AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate) & all;
    let rw_dir = (AccessFs::from_read(a) & !AccessFs::Execute
        | AccessFs::WriteFile
        | AccessFs::RemoveDir
        | AccessFs::RemoveFile
        | AccessFs::MakeDir
        | AccessFs::MakeReg
        | AccessFs::Truncate)
        & all;
    let mut ruleset = Ruleset::default().handle_access(all).map_err(err)?;
    let net_denied = abi >= 4;
    if net_denied {
        ruleset = ruleset
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(err)?;
    }
    let scoped = abi >= 6;
    if scoped {
        ruleset = ruleset
            .scope(Scope::AbstractUnixSocket | Scope::Signal)
            .map_err(err)?;
    }
    let mut created = ruleset.create().map_err(err)?;
    let read_only = read & !AccessFs::Execute;
    for p in grants.read_only {
        let fd = PathFd::new(p).map_err(err)?;
        created = created
            .add_rule(PathBeneath::new(fd, read_only))
            .map_err(err)?;
    }
    for p in grants.exec_files {
        let fd = PathFd::new(p).map_err(err)?;
        created = created
            .add_rule(PathBeneath::new(
                fd,
                (AccessFs::Execute | AccessFs::ReadFile) & all,
            ))
            .map_err(err)?;
    }
    for p in grants.read_write {
        let fd = PathFd::new(p).map_err(err)?;
        created = created
            .add_rule(PathBeneath::new(fd, rw_dir))
            .map_err(err)?;
    }
    for p in grants.devices {
        let fd = PathFd::new(p).map_err(err)?;
        created = created
            .add_rule(PathBeneath::new(fd, rw_file))
            .map_err(err)?;
    }
    let status = created.restrict_self().map_err(err)?;
    Ok(LandlockReport {
        abi,
        status: match status.ruleset {
            RulesetStatus::FullyEnforced => "fully_enforced",
            RulesetStatus::PartiallyEnforced => "partially_enforced",
            RulesetStatus::NotEnforced => "not_enforced",
        }
        .into(),
        net_denied,
        scoped,
    })
}
