//! One supervisor per state directory and per cgroup subtree: exclusive `flock`s held
//! for the life of the process, and the holder's pid named when a second one refuses.

// Why flock: the kernel drops the lock when the holder dies however it dies, so a
// SIGKILLed supervisor never leaves a stale lock, and a live one is never mistaken
// for dead (a pid file alone can name a reused pid). The cgroup subtree is locked on
// its own directory, so two supervisors with different state directories but the
// same cgroup_name cannot clean up each other's plugins as "leftovers".

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Another supervisor holds the lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another supervisor{} is running on {what} {} (locked {}); stop it first, or give this one its own state_dir and sandbox.cgroup_name", holder_text(*.holder), .path.display(), .lock.display())]
    Held {
        what: &'static str,
        path: PathBuf,
        lock: PathBuf,
        holder: Option<u32>,
    },
    #[error("locking {}: {source}", .lock.display())]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

fn holder_text(holder: Option<u32>) -> String {
    holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Locks the state directory through `<state_dir>/supervisor.lock`, writing our pid in
/// it for people to read.
pub fn lock_state_dir(state_dir: &Path) -> Result<InstanceLock, LockError> {
    let lock = state_dir.join("supervisor.lock");
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&lock)
        .map_err(|source| LockError::Io {
            lock: lock.clone(),
            source,
        })?;
    let held = take(file, "state directory", state_dir, &lock)?;
    let pid = format!("{}\n", std::process::id());
    // Only for people: the kernel's lock is what counts.
    let _ = held._file.set_len(0);
    let _ = std::os::unix::fs::FileExt::write_at(&held._file, pid.as_bytes(), 0);
    Ok(held)
}

/// Locks a cgroup directory (the supervisor's subtree) itself.
pub fn lock_cgroup(dir: &Path) -> Result<InstanceLock, LockError> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|source| LockError::Io {
            lock: dir.to_path_buf(),
            source,
        })?;
    take(file, "cgroup subtree", dir, dir)
}

fn take(
    file: File,
    what: &'static str,
    path: &Path,
    lock: &Path,
) -> Result<InstanceLock, LockError> {
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(InstanceLock { _file: file });
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
        return Err(LockError::Io {
            lock: lock.to_path_buf(),
            source: err,
        });
    }
    Err(LockError::Held {
        what,
        path: path.to_path_buf(),
        lock: lock.to_path_buf(),
        holder: file.metadata().ok().and_then(|m| flock_holder(&m)),
    })
}

/// The pid holding a flock on the file of `meta`, from `/proc/locks`
/// (`1: FLOCK  ADVISORY  WRITE 1234 00:1f:5678 0 EOF`).
fn flock_holder(meta: &std::fs::Metadata) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&text, meta.dev(), meta.ino())
}

fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are listed as `1: -> FLOCK ...`; only the holder counts.
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let inode: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino)
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_with_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_state_dir(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join("supervisor.lock")).unwrap();
        assert_eq!(pid.trim(), std::process::id().to_string());
        let err = lock_state_dir(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("(pid {})", std::process::id())),
            "{text}"
        );
        assert!(text.contains("state directory"), "{text}");
        drop(first);
        lock_state_dir(dir.path()).expect("free again once the holder is gone");
    }

    #[test]
    fn directories_lock_too() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock_cgroup(dir.path()).unwrap();
        assert!(matches!(
            lock_cgroup(dir.path()),
            Err(LockError::Held {
                what: "cgroup subtree",
                ..
            })
        ));
    }

    #[test]
    fn proc_locks_lines_are_read_for_the_holder_only() {
        let dev = libc::makedev(0, 0x1f);
        let locks = "1: FLOCK  ADVISORY  WRITE 4242 00:1f:5678 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 7 00:1f:5678 0 EOF\n\
                     2: POSIX  ADVISORY  WRITE 9 00:1f:9999 0 EOF\n";
        assert_eq!(holder_in(locks, dev, 5678), Some(4242));
        assert_eq!(
            holder_in(locks, dev, 9999),
            None,
            "POSIX locks are not ours"
        );
        assert_eq!(holder_in(locks, dev, 1), None);
    }
}
