//! The plugin's minimal root filesystem: a tmpfs with read-only binds of the
//! libraries, the plugin's data directory read-write at /data, a small /tmp and three
//! device nodes, switched to with pivot_root; the host's root is detached. No /proc.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sys::Sys;

/// Where the plugin's data directory appears inside its root.
pub const DATA_MOUNT: &str = "/data";
const OLD_ROOT: &str = ".old-root";
const DEVICES: [&str; 3] = ["null", "zero", "urandom"];

const MS_RDONLY: u64 = libc::MS_RDONLY;
const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;
const MS_BIND: u64 = libc::MS_BIND;
const MS_REC: u64 = libc::MS_REC;
const MS_REMOUNT: u64 = libc::MS_REMOUNT;
const MS_PRIVATE: u64 = libc::MS_PRIVATE;

/// A read-only entry of the root: a host directory bound at the same path, or a
/// host symlink recreated (so `/lib -> usr/lib` keeps working on merged-/usr hosts).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum RoEntry {
    Bind(PathBuf),
    Symlink { path: PathBuf, target: PathBuf },
}

/// A host directory bound read-only and noexec at another path of the root: a Python
/// plugin's package at /plugin and the SDK bundle at /sdk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindAt {
    pub source: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootPlan {
    /// An empty host directory the tmpfs root is mounted on (in the plugin's own
    /// mount namespace only).
    pub mount_point: PathBuf,
    pub read_only: Vec<RoEntry>,
    /// Read-only, noexec directories at paths of their own (after `read_only`).
    #[serde(default)]
    pub binds: Vec<BindAt>,
    /// Directories inside `read_only` hidden under an empty read-only tmpfs (the
    /// host's Python site-packages for a Python plugin).
    #[serde(default)]
    pub masks: Vec<PathBuf>,
    pub data_dir: PathBuf,
    pub tmp_bytes: u64,
    pub uid: u32,
    pub gid: u32,
}

impl RootPlan {
    /// Resolves configured read-only paths on the host: existing directories are
    /// bound, symlinks recreated, anything missing skipped.
    pub fn read_only_entries(paths: &[PathBuf]) -> Vec<RoEntry> {
        paths
            .iter()
            .filter_map(|p| {
                let meta = std::fs::symlink_metadata(p).ok()?;
                if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(p).ok()?;
                    Some(RoEntry::Symlink {
                        path: p.clone(),
                        target,
                    })
                } else if meta.is_dir() || meta.is_file() {
                    Some(RoEntry::Bind(p.clone()))
                } else {
                    None
                }
            })
            .collect()
    }
}

fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

fn ctx<'a>(what: &str, p: &'a Path) -> impl FnOnce(io::Error) -> io::Error + 'a {
    let what = what.to_string();
    move |e| io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

/// Builds the root and pivots into it. Must run in a fresh mount namespace, as
/// root, before credentials are dropped.
pub fn build(sys: &dyn Sys, plan: &RootPlan) -> io::Result<()> {
    // Nothing done here may propagate back to the host.
    sys.mount(None, Path::new("/"), None, MS_REC | MS_PRIVATE, None)
        .map_err(ctx("make private", Path::new("/")))?;
    let root = plan.mount_point.as_path();
    sys.mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV,
        Some("size=1m,mode=0755"),
    )
    .map_err(ctx("mount tmpfs root at", root))?;
    for entry in &plan.read_only {
        read_only_entry(sys, root, entry)?;
    }
    for b in &plan.binds {
        let target = inside(root, &b.target);
        mkdir_parents(sys, root, &target)?;
        sys.mkdir(&target, 0o755).map_err(ctx("mkdir", &target))?;
        bind(
            sys,
            &b.source,
            &target,
            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
        )?;
    }
    for mask in &plan.masks {
        let target = inside(root, mask);
        sys.mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            Some("size=4k,mode=0555"),
        )
        .map_err(ctx("mask", &target))?;
    }
    let data = inside(root, Path::new(DATA_MOUNT));
    sys.mkdir(&data, 0o755).map_err(ctx("mkdir", &data))?;
    bind(sys, &plan.data_dir, &data, MS_NOSUID | MS_NODEV | MS_NOEXEC)?;
    let tmp = inside(root, Path::new("/tmp"));
    sys.mkdir(&tmp, 0o755).map_err(ctx("mkdir", &tmp))?;
    let tmp_opts = format!(
        "size={},mode=0700,uid={},gid={}",
        plan.tmp_bytes, plan.uid, plan.gid
    );
    sys.mount(
        Some("tmpfs"),
        &tmp,
        Some("tmpfs"),
        MS_NOSUID | MS_NODEV | MS_NOEXEC,
        Some(&tmp_opts),
    )
    .map_err(ctx("mount tmpfs at", &tmp))?;
    devices(sys, root)?;
    let old = root.join(OLD_ROOT);
    sys.mkdir(&old, 0o700).map_err(ctx("mkdir", &old))?;
    sys.pivot_root(root, &old)
        .map_err(ctx("pivot_root to", root))?;
    sys.chdir(Path::new("/"))
        .map_err(ctx("chdir", Path::new("/")))?;
    let old_inside = Path::new("/").join(OLD_ROOT);
    sys.umount_detach(&old_inside)
        .map_err(ctx("detach old root", &old_inside))?;
    sys.rmdir(&old_inside).map_err(ctx("rmdir", &old_inside))?;
    // The root itself becomes read-only once everything is in place.
    sys.mount(
        None,
        Path::new("/"),
        None,
        MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
        None,
    )
    .map_err(ctx("remount read-only", Path::new("/")))?;
    sys.chdir(Path::new(DATA_MOUNT))
        .map_err(ctx("chdir", Path::new(DATA_MOUNT)))
}

fn read_only_entry(sys: &dyn Sys, root: &Path, entry: &RoEntry) -> io::Result<()> {
    match entry {
        RoEntry::Bind(host) => {
            let target = inside(root, host);
            mkdir_parents(sys, root, &target)?;
            if host.is_dir() {
                sys.mkdir(&target, 0o755).map_err(ctx("mkdir", &target))?;
            } else {
                sys.create_file(&target).map_err(ctx("create", &target))?;
            }
            bind(sys, host, &target, MS_RDONLY | MS_NOSUID | MS_NODEV)
        }
        RoEntry::Symlink { path, target } => {
            let link = inside(root, path);
            mkdir_parents(sys, root, &link)?;
            sys.symlink(target, &link).map_err(ctx("symlink", &link))
        }
    }
}

fn mkdir_parents(sys: &dyn Sys, root: &Path, target: &Path) -> io::Result<()> {
    let Some(parent) = target.parent() else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for part in parent.strip_prefix(root).unwrap_or(parent).components() {
        at.push(part);
        sys.mkdir(&at, 0o755).map_err(ctx("mkdir", &at))?;
    }
    Ok(())
}

/// A bind mount, then the remount that actually applies `flags` (the kernel
/// ignores most flags on the initial MS_BIND).
fn bind(sys: &dyn Sys, source: &Path, target: &Path, flags: u64) -> io::Result<()> {
    let src = source.to_string_lossy();
    sys.mount(Some(&src), target, None, MS_BIND | MS_REC, None)
        .map_err(ctx("bind mount onto", target))?;
    sys.mount(None, target, None, MS_BIND | MS_REMOUNT | flags, None)
        .map_err(ctx("remount", target))
}

fn devices(sys: &dyn Sys, root: &Path) -> io::Result<()> {
    let dev = root.join("dev");
    sys.mkdir(&dev, 0o755).map_err(ctx("mkdir", &dev))?;
    for name in DEVICES {
        let target = dev.join(name);
        sys.create_file(&target).map_err(ctx("create", &target))?;
        bind(
            sys,
            &Path::new("/dev").join(name),
            &target,
            MS_NOSUID | MS_NOEXEC,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::sys::RecordingSys;

    fn plan() -> RootPlan {
        RootPlan {
            mount_point: PathBuf::from("/var/lib/px/sandbox-root"),
            read_only: vec![
                RoEntry::Bind(PathBuf::from("/usr/lib")),
                RoEntry::Symlink {
                    path: PathBuf::from("/lib64"),
                    target: PathBuf::from("usr/lib64"),
                },
            ],
            binds: vec![BindAt {
                source: PathBuf::from("/var/lib/px/plugins/hello/1.0.0"),
                target: PathBuf::from("/plugin"),
            }],
            masks: vec![PathBuf::from("/usr/lib/python3/dist-packages")],
            data_dir: PathBuf::from("/var/lib/px/data/hello"),
            tmp_bytes: 16 << 20,
            uid: 200_001,
            gid: 200_001,
        }
    }

    #[test]
    fn the_root_is_built_then_pivoted_then_the_host_detached_then_made_read_only() {
        let sys = RecordingSys::default();
        build(&sys, &plan()).unwrap();
        let calls = sys.calls();
        assert!(
            calls[0].starts_with("mount - / - 0x44000"),
            "private first: {calls:?}"
        );
        let bind_lib = sys.index_of("mount /usr/lib /var/lib/px/sandbox-root/usr/lib");
        let ro_lib = sys.index_of("mount - /var/lib/px/sandbox-root/usr/lib - 0x1027");
        let data = sys.index_of("mount /var/lib/px/data/hello /var/lib/px/sandbox-root/data");
        let tmp = sys.index_of("mount tmpfs /var/lib/px/sandbox-root/tmp tmpfs");
        let pivot = sys.index_of("pivot_root /var/lib/px/sandbox-root");
        let detach = sys.index_of("umount /.old-root");
        let ro_root = sys.index_of("mount - / - 0x1027");
        assert!(bind_lib < ro_lib && ro_lib < pivot && data < pivot && tmp < pivot);
        assert!(pivot < detach && detach < ro_root);
        // The package is read-only and noexec; the mask hides what the library bind showed.
        let pkg =
            sys.index_of("mount /var/lib/px/plugins/hello/1.0.0 /var/lib/px/sandbox-root/plugin");
        assert!(calls[pkg + 1].contains(" - 0x102f"), "{}", calls[pkg + 1]);
        let mask = sys
            .index_of("mount tmpfs /var/lib/px/sandbox-root/usr/lib/python3/dist-packages tmpfs");
        assert!(ro_lib < mask && mask < pivot);
        assert!(calls[tmp].contains("uid=200001"), "{}", calls[tmp]);
        assert!(calls
            .iter()
            .any(|c| c == "symlink usr/lib64 /var/lib/px/sandbox-root/lib64"));
        assert!(
            !calls.iter().any(|c| c.contains("proc")),
            "no /proc: {calls:?}"
        );
        assert_eq!(calls.last().map(String::as_str), Some("chdir /data"));
        // /data and /tmp are noexec: only the pinned binary is executable.
        let data_remount = &calls[data + 1];
        assert!(
            u64::from_str_radix(
                data_remount
                    .split_whitespace()
                    .nth(4)
                    .unwrap()
                    .trim_start_matches("0x"),
                16
            )
            .unwrap()
                & MS_NOEXEC
                != 0
        );
    }
}
