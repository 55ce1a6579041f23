//! Plugin binaries as sealed memfds: read once from the plugin store while hashing,
//! compared with the pin, sealed against any change, and exec'd from the memfd on
//! every start. The file run is the file checked, and restarts need no re-hash.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{BinaryPin, LaunchFailure, LaunchStage};
use crate::install::hex;

/// Identity of the on-disk file a memfd was made from. Any change (a replaced
/// file, a write, even a chmod) changes ctime, and the next start re-reads and
/// re-verifies the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileId {
    pub(super) fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

struct Sealed {
    id: FileId,
    sha256: String,
    memfd: OwnedFd,
}

/// Sealed copies kept at most: each is one of the supervisor's fds, so the cache is
/// a fixed cost rather than one per installed plugin. A binary evicted is re-read
/// and re-verified at its next start.
const MAX_SEALED: usize = 16;

/// The launcher thread's cache of sealed binaries: what each path held when it was
/// verified, and one memfd per content (plugins installed from the same binary share it).
#[derive(Default)]
pub struct SealedBinaries {
    paths: HashMap<PathBuf, (FileId, String)>,
    /// By SHA-256: the memfd and when it was last used (a launch counter).
    memfds: HashMap<String, (OwnedFd, u64)>,
    uses: u64,
}

const SEALS: i32 = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

pub(super) fn integrity(message: String) -> LaunchFailure {
    LaunchFailure {
        stage: LaunchStage::Integrity,
        message,
    }
}

impl SealedBinaries {
    /// The sealed memfd of `path`, verified against `sha256`. Borrowed: the
    /// caller duplicates it for the child.
    pub fn get(&mut self, path: &Path, pin: &BinaryPin) -> Result<&OwnedFd, LaunchFailure> {
        let meta = std::fs::metadata(path)
            .map_err(|e| integrity(format!("cannot stat {}: {e}", path.display())))?;
        let id = FileId::of(&meta);
        let known = self.paths.get(path).and_then(|(seen, sha)| {
            let pinned = match pin {
                BinaryPin::Sha256(want) => sha == want,
                BinaryPin::Unpinned => true,
            };
            (*seen == id && pinned && self.memfds.contains_key(sha)).then(|| sha.clone())
        });
        let sha = match known {
            Some(sha) => sha,
            None => {
                let sealed = seal(path, pin)?;
                self.paths
                    .insert(path.to_path_buf(), (sealed.id, sealed.sha256.clone()));
                // Same content as a copy already sealed: keep that one.
                self.memfds
                    .entry(sealed.sha256.clone())
                    .or_insert((sealed.memfd, 0));
                sealed.sha256
            }
        };
        self.uses += 1;
        if let Some(entry) = self.memfds.get_mut(&sha) {
            entry.1 = self.uses;
        }
        self.evict_beyond_cap();
        self.memfds
            .get(&sha)
            .map(|(fd, _)| fd)
            .ok_or_else(|| integrity("sealed binary cache lost its entry".into()))
    }

    /// Closes the least recently used copies beyond [`MAX_SEALED`] (never the one
    /// just used, which has the newest stamp).
    fn evict_beyond_cap(&mut self) {
        while self.memfds.len() > MAX_SEALED {
            let Some(oldest) = self
                .memfds
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(sha, _)| sha.clone())
            else {
                return;
            };
            self.memfds.remove(&oldest);
        }
    }
}

fn seal(path: &Path, pin: &BinaryPin) -> Result<Sealed, LaunchFailure> {
    let mut file =
        File::open(path).map_err(|e| integrity(format!("cannot open {}: {e}", path.display())))?;
    // The identity is taken from the opened file, so a swap between stat and
    // open is noticed on the next start rather than trusted.
    let meta = file
        .metadata()
        .map_err(|e| integrity(format!("cannot stat {}: {e}", path.display())))?;
    let memfd = memfd_create(path)?;
    let mut out = File::from(memfd);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| integrity(format!("cannot read {}: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| integrity(format!("copying {} into memory: {e}", path.display())))?;
    }
    let actual = hex(&hasher.finalize());
    if let BinaryPin::Sha256(sha256) = pin {
        if actual != *sha256 {
            return Err(integrity(format!(
                "binary {} changed since install: sha256 {actual}, pinned {sha256}",
                path.display()
            )));
        }
    }
    let memfd = OwnedFd::from(out);
    // SAFETY: F_ADD_SEALS on our memfd with a valid seal mask.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, SEALS) } < 0 {
        return Err(integrity(format!(
            "sealing the in-memory copy of {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(Sealed {
        id: FileId::of(&meta),
        sha256: actual,
        memfd,
    })
}

fn memfd_create(path: &Path) -> Result<OwnedFd, LaunchFailure> {
    let name = std::ffi::CString::new(format!(
        "plexichat:{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ))
    .map_err(|_| integrity("binary name contains NUL".into()))?;
    const MFD_EXEC: u32 = 0x10;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3+) keeps vm.memfd_noexec from making the copy
    // non-executable; older kernels reject the flag and are executable anyway.
    for flags in [base | MFD_EXEC, base] {
        // SAFETY: memfd_create with a NUL-terminated name and known flags.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a fresh fd we own.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    Err(integrity(format!(
        "memfd_create: {}",
        std::io::Error::last_os_error()
    )))
}

/// In the trampoline: checks that the inherited binary fd is a fully sealed memfd.
pub fn check_sealed(fd: i32) -> Result<(), String> {
    // SAFETY: F_GET_SEALS only reads the seals of an fd.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if seals < 0 {
        return Err(format!("binary fd: {}", std::io::Error::last_os_error()));
    }
    if seals & SEALS != SEALS {
        return Err(format!("binary fd is not sealed (seals {seals:#x})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::install::sha256_file;

    #[test]
    fn a_verified_copy_is_sealed_cached_and_renewed_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("plugin");
        std::fs::write(&bin, b"first version").unwrap();
        let pin = BinaryPin::Sha256(sha256_file(&bin).unwrap());
        let mut cache = SealedBinaries::default();
        let fd = cache.get(&bin, &pin).unwrap().as_raw_fd();
        check_sealed(fd).unwrap();
        // Sealed: the copy cannot be written.
        // SAFETY: write(2) to our own memfd.
        let w = unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
        assert_eq!(w, -1);
        assert_eq!(cache.get(&bin, &pin).unwrap().as_raw_fd(), fd, "cached");
        std::fs::write(&bin, b"tampered").unwrap();
        let err = cache.get(&bin, &pin).unwrap_err();
        assert_eq!(err.stage, LaunchStage::Integrity);
        assert!(err.message.contains("changed since install"), "{err}");
        // A host command has no pin: the changed file is sealed as it now is.
        let fd = cache.get(&bin, &BinaryPin::Unpinned).unwrap().as_raw_fd();
        check_sealed(fd).unwrap();
        let mut copy = String::new();
        std::io::Read::read_to_string(
            &mut std::fs::File::open(format!("/proc/self/fd/{fd}")).unwrap(),
            &mut copy,
        )
        .unwrap();
        assert_eq!(copy, "tampered");
    }

    #[test]
    fn copies_of_one_binary_share_a_memfd_and_the_cache_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = SealedBinaries::default();
        let same: Vec<i32> = (0..3)
            .map(|i| {
                let bin = dir.path().join(format!("copy{i}"));
                std::fs::write(&bin, b"one binary").unwrap();
                let pin = BinaryPin::Sha256(sha256_file(&bin).unwrap());
                cache.get(&bin, &pin).unwrap().as_raw_fd()
            })
            .collect();
        assert!(same.iter().all(|fd| *fd == same[0]), "{same:?}");
        for i in 0..MAX_SEALED + 4 {
            let bin = dir.path().join(format!("other{i}"));
            std::fs::write(&bin, format!("binary {i}")).unwrap();
            cache.get(&bin, &BinaryPin::Unpinned).unwrap();
        }
        assert_eq!(cache.memfds.len(), MAX_SEALED);
        // An evicted binary is sealed again, and verified again, at its next start.
        let first = dir.path().join("copy0");
        let pin = BinaryPin::Sha256(sha256_file(&first).unwrap());
        check_sealed(cache.get(&first, &pin).unwrap().as_raw_fd()).unwrap();
    }
}
