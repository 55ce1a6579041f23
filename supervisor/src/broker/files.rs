//! Host-side file access for the broker's Files calls: path validation, the root a plugin path
//! resolves under (its data dir or a granted scope entry) and symlink-proof `openat2` resolution.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use crate::catalog::ScopeShape;

/// The plugin-visible path of its own data directory.
pub const DATA_PREFIX: &str = "/data";
/// Most bytes one ReadFile or WriteFile call moves; bigger files go in chunks.
pub const MAX_CHUNK_BYTES: usize = 512 * 1024;
/// Most entries one ListDir answer carries, so it always fits in a broker message.
pub const MAX_DIR_ENTRIES: usize = 2048;
/// Prefix of the temporary files atomic replacement writes (hidden from listings).
const TMP_PREFIX: &str = ".plexichat-tmp-";

// openat2(2) `resolve` flags (linux/openat2.h).
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Why a file call failed; each maps to one gRPC code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Exhausted(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Deadline(String),
}

impl From<FileError> for tonic::Status {
    fn from(e: FileError) -> tonic::Status {
        match e {
            FileError::Invalid(m) => tonic::Status::invalid_argument(m),
            FileError::Denied(m) => tonic::Status::permission_denied(m),
            FileError::NotFound(m) => tonic::Status::not_found(m),
            FileError::Exists(m) => tonic::Status::already_exists(m),
            FileError::Exhausted(m) => tonic::Status::resource_exhausted(m),
            FileError::Io(m) => tonic::Status::internal(m),
            FileError::Deadline(m) => tonic::Status::deadline_exceeded(m),
        }
    }
}

/// Names an OS failure of `op` on the plugin's `path`, with the code the plugin can act on.
fn os_error(op: &str, path: &str, errno: Errno) -> FileError {
    let path = crate::audit::short(path);
    match errno {
        Errno::ELOOP => FileError::Denied(format!("{op} `{path}`: symlinks are not followed")),
        Errno::EXDEV => FileError::Denied(format!("{op} `{path}`: resolves outside its root")),
        Errno::EACCES | Errno::EPERM => {
            FileError::Denied(format!("{op} `{path}`: {}", errno.desc()))
        }
        Errno::ENOENT => FileError::NotFound(format!("{op} `{path}`: no such file or directory")),
        Errno::EEXIST => FileError::Exists(format!("{op} `{path}`: already exists")),
        Errno::ENOTDIR | Errno::EISDIR | Errno::ENOTEMPTY | Errno::ENAMETOOLONG => {
            FileError::Invalid(format!("{op} `{path}`: {}", errno.desc()))
        }
        Errno::ENOSYS => FileError::Io(format!(
            "{op} `{path}`: this kernel lacks openat2 (Linux 5.6 or later is needed)"
        )),
        _ => FileError::Io(format!("{op} `{path}`: {}", errno.desc())),
    }
}

fn io_error(op: &str, path: &str, e: &std::io::Error) -> FileError {
    match e.raw_os_error() {
        Some(code) => os_error(op, path, Errno::from_raw(code)),
        None => FileError::Io(format!("{op} `{}`: {e}", crate::audit::short(path))),
    }
}

/// Refuses anything but a normalised absolute path: resolution must never have to
/// interpret `.` or `..`, so a path means exactly the components it spells.
pub fn validate_path(path: &str) -> Result<(), FileError> {
    let shown = crate::audit::short(path);
    let invalid = |why: &str| Err(FileError::Invalid(format!("path `{shown}` {why}")));
    if path.contains('\0') {
        return invalid("contains a NUL byte");
    }
    if !path.starts_with('/') {
        return invalid("must be absolute");
    }
    if path.len() > 4096 {
        return invalid("is longer than 4096 bytes");
    }
    if path != "/"
        && path[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return invalid("must be normalised: no `.`, `..`, empty components or trailing `/`");
    }
    Ok(())
}

/// Where a (validated) plugin path lands on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The directory resolution may not leave: the data dir or a granted scope entry.
    pub root: PathBuf,
    /// The rest of the path, relative to `root`; `.` for the root itself.
    pub rel: String,
    /// Whether `root` is the plugin's data dir (quota and ownership apply).
    pub in_data: bool,
}

/// Whether `path` addresses the plugin's data dir, and where it lands in `data_dir`.
pub fn data_target(path: &str, data_dir: &Path) -> Option<Target> {
    let rest = path.strip_prefix(DATA_PREFIX)?;
    let rel = match rest {
        "" => ".",
        _ => rest.strip_prefix('/')?,
    };
    Some(Target {
        root: data_dir.to_path_buf(),
        rel: rel.to_string(),
        in_data: true,
    })
}

/// The granted scope entry that covers `path`, as a root with the path beneath it.
pub fn granted_target(path: &str, scope: &[String]) -> Option<Target> {
    let entry = scope.iter().find(|e| ScopeShape::Paths.covers(e, path))?;
    let rest = path.strip_prefix(entry.as_str())?.trim_start_matches('/');
    Some(Target {
        root: PathBuf::from(entry),
        rel: if rest.is_empty() { "." } else { rest }.to_string(),
        in_data: false,
    })
}

/// What [`Beneath::read`] returns.
#[derive(Debug, PartialEq, Eq)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub eof: bool,
    pub size: u64,
}

/// One directory entry or stat answer: `kind` is "file", "dir" or "other".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub kind: &'static str,
    pub size: u64,
    pub modified_ms: i64,
}

impl Stat {
    fn from_file_stat(name: &str, st: &FileStat) -> Stat {
        let kind = match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => "file",
            SFlag::S_IFDIR => "dir",
            _ => "other",
        };
        Stat {
            name: name.to_string(),
            kind,
            size: u64::try_from(st.st_size).unwrap_or(0),
            modified_ms: st.st_mtime * 1000 + st.st_mtime_nsec / 1_000_000,
        }
    }
}

/// An open root directory and the path beneath it: every operation resolves from the
/// root's fd with openat2, so neither `..`, symlinks nor magic links can leave it.
pub struct Beneath {
    root: OwnedFd,
    rel: String,
    /// The plugin's spelling of the path, for messages.
    path: String,
    /// Owner given to what is created in the data dir, so the plugin keeps direct access.
    owner: Option<(Uid, Gid)>,
}

impl Beneath {
    /// Opens `target.root` (O_PATH, never a symlink itself) for resolving `path` beneath it.
    pub fn open(target: &Target, path: &str) -> Result<Beneath, FileError> {
        let root: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(&target.root)
            .map_err(|e| io_error("open root of", path, &e))?
            .into();
        let owner = if target.in_data {
            let st = nix::sys::stat::fstat(root.as_raw_fd())
                .map_err(|e| os_error("stat root of", path, e))?;
            Some((Uid::from_raw(st.st_uid), Gid::from_raw(st.st_gid)))
        } else {
            None
        };
        Ok(Beneath {
            root,
            rel: target.rel.clone(),
            path: path.to_string(),
            owner,
        })
    }

    fn err(&self, op: &str) -> impl Fn(Errno) -> FileError + '_ {
        let op = op.to_string();
        move |e| os_error(&op, &self.path, e)
    }

    fn io_err(&self, op: &str) -> impl Fn(std::io::Error) -> FileError + '_ {
        let op = op.to_string();
        move |e| io_error(&op, &self.path, &e)
    }

    /// The parent directory (resolved beneath the root) and the last component.
    /// The root itself has no parent a plugin may change.
    fn parent_and_name(&self) -> Result<(OwnedFd, &str), FileError> {
        if self.rel == "." {
            return Err(FileError::Denied(format!(
                "`{}` is a granted root and cannot be replaced or removed",
                self.path
            )));
        }
        let (parent, name) = self.rel.rsplit_once('/').unwrap_or((".", &self.rel));
        let fd = openat2(&self.root, parent, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(self.err("open parent of"))?;
        Ok((fd, name))
    }

    fn chown_fd(&self, fd: &impl AsRawFd) -> Result<(), FileError> {
        match self.owner {
            Some((uid, gid)) => {
                nix::unistd::fchown(fd.as_raw_fd(), Some(uid), Some(gid)).map_err(self.err("chown"))
            }
            None => Ok(()),
        }
    }

    /// Opens the target as a regular file; O_NONBLOCK so a FIFO cannot hang the broker.
    fn open_regular(&self, flags: i32, mode: u32) -> Result<File, FileError> {
        let fd = openat2(
            &self.root,
            &self.rel,
            flags | libc::O_NONBLOCK | libc::O_NOCTTY,
            mode,
        )
        .map_err(self.err("open"))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(self.io_err("stat"))?;
        if !meta.is_file() {
            return Err(FileError::Invalid(format!(
                "`{}` is not a regular file",
                self.path
            )));
        }
        Ok(file)
    }

    /// Reads at most `max_bytes` (capped to [`MAX_CHUNK_BYTES`]; 0 means the cap) from `offset`.
    pub fn read(&self, offset: u64, max_bytes: u64) -> Result<Chunk, FileError> {
        let file = self.open_regular(libc::O_RDONLY, 0)?;
        let size = file.metadata().map_err(self.io_err("stat"))?.len();
        let cap = MAX_CHUNK_BYTES as u64;
        let want = if max_bytes == 0 {
            cap
        } else {
            max_bytes.min(cap)
        };
        let len = want.min(size.saturating_sub(offset));
        let mut data = vec![0u8; usize::try_from(len).unwrap_or(MAX_CHUNK_BYTES)];
        let mut filled = 0;
        while filled < data.len() {
            match file.read_at(&mut data[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_error("read", &self.path, &e)),
            }
        }
        data.truncate(filled);
        Ok(Chunk {
            eof: offset + filled as u64 >= size,
            data,
            size,
        })
    }

    /// Size of the target if it is an existing regular file, else 0 (for quota accounting).
    pub fn existing_size(&self) -> u64 {
        self.stat()
            .ok()
            .filter(|s| s.kind == "file")
            .map_or(0, |s| s.size)
    }

    /// Appends to, or atomically replaces, the file; returns its new size.
    pub fn write(&self, data: &[u8], append: bool) -> Result<u64, FileError> {
        if data.len() > MAX_CHUNK_BYTES {
            return Err(FileError::Invalid(format!(
                "at most {MAX_CHUNK_BYTES} bytes per write; append the rest in chunks"
            )));
        }
        if append {
            self.append(data)
        } else {
            self.replace(data)
        }
    }

    fn append(&self, data: &[u8]) -> Result<u64, FileError> {
        let mut file = self.open_regular(libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o640)?;
        self.chown_fd(&file)?;
        file.write_all(data).map_err(self.io_err("write"))?;
        Ok(file.metadata().map_err(self.io_err("stat"))?.len())
    }

    /// Writes a temp file in the same directory, then renames it over the target, so
    /// readers see the old content or the new one, never a torn file.
    fn replace(&self, data: &[u8]) -> Result<u64, FileError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let (parent, name) = self.parent_and_name()?;
        let tmp = format!(
            "{TMP_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY;
        let mut file =
            File::from(openat2(&parent, &tmp, flags, 0o640).map_err(self.err("create"))?);
        let written = self
            .chown_fd(&file)
            .and_then(|()| file.write_all(data).map_err(self.io_err("write")))
            .and_then(|()| file.sync_all().map_err(self.io_err("sync")))
            .and_then(|()| {
                let dir = Some(parent.as_raw_fd());
                nix::fcntl::renameat(dir, tmp.as_str(), dir, name).map_err(self.err("replace"))
            });
        if written.is_err() {
            // Best effort: the temp file is ours and useless now.
            let _ = nix::unistd::unlinkat(
                Some(parent.as_raw_fd()),
                tmp.as_str(),
                UnlinkatFlags::NoRemoveDir,
            );
        }
        written.map(|()| data.len() as u64)
    }

    /// The entries of the directory, sorted by name (temp files of pending writes hidden).
    pub fn list(&self) -> Result<Vec<Stat>, FileError> {
        let fd = openat2(&self.root, &self.rel, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(self.err("list"))?;
        let mut dir = nix::dir::Dir::from_fd(fd.into_raw_fd()).map_err(self.err("list"))?;
        let dir_fd = dir.as_raw_fd();
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(self.err("list"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "." || name == ".." || name.starts_with(TMP_PREFIX) {
                continue;
            }
            if out.len() == MAX_DIR_ENTRIES {
                return Err(FileError::Exhausted(format!(
                    "`{}` has more than {MAX_DIR_ENTRIES} entries",
                    self.path
                )));
            }
            // Never follows: a symlink is listed as "other", not as what it points to.
            let st = nix::sys::stat::fstatat(
                Some(dir_fd),
                entry.file_name(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(self.err("stat"))?;
            out.push(Stat::from_file_stat(&name, &st));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn stat(&self) -> Result<Stat, FileError> {
        let fd = openat2(&self.root, &self.rel, libc::O_PATH, 0).map_err(self.err("stat"))?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(self.err("stat"))?;
        let name = self.rel.rsplit('/').next().unwrap_or_default();
        Ok(Stat::from_file_stat(name, &st))
    }

    /// Removes a file or an empty directory (a symlink is removed itself, never followed).
    pub fn remove(&self) -> Result<(), FileError> {
        let (parent, name) = self.parent_and_name()?;
        let dir = Some(parent.as_raw_fd());
        match nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
            Err(Errno::EISDIR) => nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir),
            other => other,
        }
        .map_err(self.err("remove"))
    }

    pub fn mkdir(&self) -> Result<(), FileError> {
        let (parent, name) = self.parent_and_name()?;
        let dir = Some(parent.as_raw_fd());
        nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o750))
            .map_err(self.err("mkdir"))?;
        if let Some((uid, gid)) = self.owner {
            nix::unistd::fchownat(
                dir,
                name,
                Some(uid),
                Some(gid),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(self.err("chown"))?;
        }
        Ok(())
    }
}

/// openat2 beneath `dir`: no `..` escape, no symlinks, no magic links.
fn openat2(dir: &OwnedFd, rel: &str, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let rel = CString::new(rel).map_err(|_| Errno::EINVAL)?;
    let how = OpenHow {
        flags: u64::from((flags | libc::O_CLOEXEC) as u32),
        mode: u64::from(mode),
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    // EAGAIN: a concurrent rename raced RESOLVE_BENEATH's check; the kernel asks to retry.
    for _ in 0..8 {
        // SAFETY: valid NUL-terminated path, a live dir fd and an open_how of the size we pass.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd >= 0 {
            let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
            // SAFETY: the kernel just handed us this fd; nothing else owns it.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => continue,
            e => return Err(e),
        }
    }
    Err(Errno::EAGAIN)
}

/// Bytes in regular files under `dir` (symlinks are not followed, nor counted).
pub fn usage(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                total += entry.metadata()?.size();
            }
        }
    }
    Ok(total)
}

/// Refuses a write of `new_len` bytes (replacing `old_len`) that would take the data
/// dir over `quota`.
pub fn check_quota(used: u64, old_len: u64, new_len: u64, quota: u64) -> Result<(), FileError> {
    let after = used.saturating_sub(old_len).saturating_add(new_len);
    if after > quota {
        return Err(FileError::Exhausted(format!(
            "data directory quota exceeded: {after} bytes would exceed the {quota}-byte quota"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_root(root: &Path, rel: &str) -> Beneath {
        let target = Target {
            root: root.to_path_buf(),
            rel: rel.to_string(),
            in_data: false,
        };
        Beneath::open(&target, &format!("/x/{rel}")).unwrap()
    }

    #[test]
    fn paths_must_be_absolute_and_normalised() {
        for bad in [
            "data/x",
            "/data/../etc",
            "/data/./x",
            "/data//x",
            "/data/x/",
            "/a\0b",
            "",
        ] {
            assert!(
                matches!(validate_path(bad), Err(FileError::Invalid(_))),
                "{bad:?}"
            );
        }
        for good in ["/", "/data", "/data/a/b.txt", "/srv/x..y"] {
            validate_path(good).unwrap();
        }
    }

    #[test]
    fn data_paths_map_into_the_data_dir() {
        let d = Path::new("/var/lib/px/data/echo");
        assert_eq!(data_target("/data", d).unwrap().rel, ".");
        assert_eq!(data_target("/data/a/b", d).unwrap().rel, "a/b");
        assert!(data_target("/database/x", d).is_none());
        assert!(data_target("/srv/data", d).is_none());
    }

    #[test]
    fn granted_roots_do_not_confuse_prefixes() {
        let scope = vec!["/srv/data".to_string()];
        let t = granted_target("/srv/data/x.txt", &scope).unwrap();
        assert_eq!(
            (t.root, t.rel.as_str()),
            (PathBuf::from("/srv/data"), "x.txt")
        );
        assert_eq!(granted_target("/srv/data", &scope).unwrap().rel, ".");
        assert!(granted_target("/srv/database/y.txt", &scope).is_none());
        assert!(granted_target("/srv", &scope).is_none());
        let all = granted_target("/etc/hosts", &["/".to_string()]).unwrap();
        assert_eq!(all.rel, "etc/hosts");
    }

    #[test]
    fn reads_writes_and_lists_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        in_root(dir.path(), "sub").mkdir().unwrap();
        let f = in_root(dir.path(), "sub/a.txt");
        assert_eq!(f.write(b"hello", false).unwrap(), 5);
        assert_eq!(f.write(b" world", true).unwrap(), 11);
        assert_eq!(f.read(0, 0).unwrap().data, b"hello world");
        let chunk = f.read(6, 3).unwrap();
        assert_eq!(
            (chunk.data.as_slice(), chunk.eof, chunk.size),
            (&b"wor"[..], false, 11)
        );
        assert!(f.read(9, 100).unwrap().eof);
        assert_eq!(f.write(b"new", false).unwrap(), 3);
        assert_eq!(std::fs::read(dir.path().join("sub/a.txt")).unwrap(), b"new");
        let list = in_root(dir.path(), "sub").list().unwrap();
        assert_eq!(list.len(), 1, "no temp files left: {list:?}");
        assert_eq!(
            (list[0].name.as_str(), list[0].kind, list[0].size),
            ("a.txt", "file", 3)
        );
        assert_eq!(in_root(dir.path(), "sub").stat().unwrap().kind, "dir");
        f.remove().unwrap();
        assert!(matches!(f.read(0, 0), Err(FileError::NotFound(_))));
        assert!(matches!(
            f.write(&vec![0; MAX_CHUNK_BYTES + 1], false),
            Err(FileError::Invalid(_))
        ));
    }

    #[test]
    fn dot_dot_and_symlinks_never_leave_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("dirlink")).unwrap();
        let escape = in_root(dir.path(), "../secret");
        assert!(matches!(escape.read(0, 0), Err(FileError::Denied(_))));
        for rel in ["link", "dirlink/secret"] {
            let err = in_root(dir.path(), rel).read(0, 0).unwrap_err();
            assert!(
                err.to_string().contains("symlinks are not followed"),
                "{err}"
            );
            assert!(matches!(
                in_root(dir.path(), rel).write(b"x", true),
                Err(FileError::Denied(_))
            ));
        }
        // Replacing through a symlinked directory is refused too.
        assert!(in_root(dir.path(), "dirlink/secret")
            .write(b"x", false)
            .is_err());
        assert_eq!(std::fs::read(outside.path().join("secret")).unwrap(), b"s");
        let listed = in_root(dir.path(), ".").list().unwrap();
        assert!(listed.iter().all(|e| e.kind == "other"), "{listed:?}");
    }

    #[test]
    fn swapping_a_directory_for_a_symlink_mid_read_never_escapes() {
        // A plugin (or anything else) racing the broker: `sub` flips between a real
        // directory and a symlink to an outside directory with the same file name.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), b"OUTSIDE").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (real, link, sub) = (
            dir.path().join("real"),
            dir.path().join("link"),
            dir.path().join("sub"),
        );
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f"), b"inside").unwrap();
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        std::fs::rename(&real, &sub).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, real, link, sub) = (stop.clone(), real.clone(), link.clone(), sub.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // sub = real dir -> sub = symlink -> back, with renames (atomic).
                    std::fs::rename(&sub, &real).unwrap();
                    std::fs::rename(&link, &sub).unwrap();
                    std::fs::rename(&sub, &link).unwrap();
                    std::fs::rename(&real, &sub).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        let (mut inside, mut refused) = (0u32, 0u32);
        for _ in 0..20_000 {
            match in_root(dir.path(), "sub/f").read(0, 0) {
                Ok(chunk) => {
                    assert_eq!(chunk.data, b"inside", "escaped through the swapped symlink");
                    inside += 1;
                }
                Err(_) => refused += 1,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        assert!(swaps > 100, "the race ran ({swaps} swaps)");
        assert!(
            inside > 0 && refused > 0,
            "both sides of the race seen: {inside} reads, {refused} refusals"
        );
    }

    #[test]
    fn the_root_itself_cannot_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            in_root(dir.path(), ".").remove(),
            Err(FileError::Denied(_))
        ));
        assert!(dir.path().exists());
    }

    #[test]
    fn quota_counts_files_and_replacements() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/a"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("b"), [0u8; 50]).unwrap();
        assert_eq!(usage(dir.path()).unwrap(), 150);
        check_quota(150, 0, 50, 200).unwrap();
        assert!(matches!(
            check_quota(150, 0, 51, 200),
            Err(FileError::Exhausted(_))
        ));
        check_quota(150, 100, 150, 200).unwrap();
    }
}
