//! Staging directories: one fresh directory per request inside the plugin store
//! (same filesystem, so installing is a rename), removed unless it was installed.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{renameat2, RenameFlags};

use crate::config::Config;

const PREFIX: &str = ".staging-";

/// A directory this request made and owns; dropped, it is deleted with what it holds.
#[derive(Debug)]
pub struct Staging {
    path: PathBuf,
}

impl Staging {
    /// `<plugins>/.staging-<pid>-<n>`, created 0700 by this call (never reused: a
    /// name that exists is skipped).
    pub fn create(cfg: &Config) -> std::io::Result<Staging> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let store = cfg.plugin_store_dir();
        fs::create_dir_all(&store)?;
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = store.join(format!("{PREFIX}{}-{n}", std::process::id()));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Staging { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the staged tree to the first of `candidates` that does not exist
    /// (RENAME_NOREPLACE: an existing directory is never replaced) and returns it;
    /// the caller then owns that directory.
    pub fn place(self, candidates: impl Iterator<Item = PathBuf>) -> std::io::Result<PathBuf> {
        for dest in candidates {
            if let Some(parent) = dest.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)?;
            }
            match renameat2(None, &self.path, None, &dest, RenameFlags::RENAME_NOREPLACE) {
                Ok(()) => {
                    // Placed, it is no longer private: a Python plugin's uid reads
                    // its package at /plugin. Its parent still keeps others out.
                    fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))?;
                    // Made durable before the store row points at it.
                    if let Some(parent) = dest.parent() {
                        fs::File::open(parent)?.sync_all()?;
                    }
                    std::mem::forget(self);
                    return Ok(dest);
                }
                Err(nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "every candidate directory exists",
        ))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "could not delete a staging directory");
        }
    }
}

/// At start: staging directories of daemons no longer running (named by their
/// pid), left by a kill, and old-style ones. The store never points at one.
pub fn sweep(cfg: &Config) {
    let Ok(entries) = fs::read_dir(cfg.plugin_store_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        // Earlier versions named them `.staging-<plugin>-<pid>`: never a live one.
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| {
            pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
        });
        if !alive {
            tracing::info!(dir = %entry.path().display(), "deleting a staging directory left by a stopped supervisor");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Where version `version` of `name` goes: `<plugins>/<name>/<version>`, or
/// `<version>~1`, `~2`… when a directory of that name is left over.
pub fn destinations(cfg: &Config, name: &str, version: &str) -> impl Iterator<Item = PathBuf> {
    let base = cfg.plugin_store_dir().join(name);
    let version = version.to_string();
    (0..100u32).map(move |n| match n {
        0 => base.join(&version),
        n => base.join(format!("{version}~{n}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staging_directory_goes_unless_placed_and_the_sweep_spares_live_daemons() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load(None, dir.path()).unwrap();
        let dropped = Staging::create(&cfg).unwrap();
        let path = dropped.path().to_path_buf();
        assert!(path.is_dir());
        drop(dropped);
        assert!(!path.exists(), "an unplaced staging directory is deleted");

        let placed = Staging::create(&cfg).unwrap();
        fs::write(placed.path().join("f"), "x").unwrap();
        let dest = placed.place(destinations(&cfg, "p", "1.0.0")).unwrap();
        assert_eq!(dest, cfg.plugin_store_dir().join("p/1.0.0"));
        assert!(dest.join("f").is_file());

        let store = cfg.plugin_store_dir();
        // pid 1 is alive; no pid is this large.
        fs::create_dir(store.join(".staging-1-0")).unwrap();
        fs::create_dir(store.join(".staging-4000000000-0")).unwrap();
        fs::create_dir(store.join(".staging-hello-1")).unwrap();
        sweep(&cfg);
        assert!(store.join(".staging-1-0").is_dir());
        assert!(!store.join(".staging-4000000000-0").exists());
        assert!(
            !store.join(".staging-hello-1").exists(),
            "an old-style name"
        );
        assert!(dest.is_dir(), "the sweep touches only staging directories");
    }
}
