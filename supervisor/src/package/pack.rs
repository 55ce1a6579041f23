//! The CLI's side of an upload: walks a package directory with the caller's own
//! rights, refuses anything but regular files and directories, and streams it.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::{EntryKind, PackageChunk, PackageEnd, PackageEntry, UploadHeader};
use tokio::sync::mpsc;

use super::{wire_path, DATA_CHUNK_BYTES, MAX_PACKAGE_BYTES, MAX_PACKAGE_ENTRIES};

#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("package {root}: `{entry}` {problem}")]
    Entry {
        root: String,
        entry: String,
        problem: String,
    },
    #[error("package {root}: {problem}")]
    Package { root: String, problem: String },
}

/// One entry as the walk saw it; the send checks the file it opens is still it.
#[derive(Debug)]
pub(super) struct Planned {
    pub(super) rel: PathBuf,
    pub(super) wire: String,
    pub(super) kind: EntryKind,
    pub(super) mode: u32,
    pub(super) size: u64,
    dev: u64,
    ino: u64,
}

/// A package directory, walked and checked, ready to send.
#[derive(Debug)]
pub struct Plan {
    root: PathBuf,
    pub(super) entries: Vec<Planned>,
}

impl Plan {
    pub(super) fn entry_err(&self, rel: &Path, problem: impl Into<String>) -> PackError {
        entry_err(&self.root, rel, problem)
    }

    /// The directory the plan walked.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The number of entries and file bytes the plan holds.
    pub fn totals(&self) -> (u32, u64) {
        let bytes = self.entries.iter().map(|e| e.size).sum();
        (self.entries.len() as u32, bytes)
    }
}

fn entry_err(root: &Path, rel: &Path, problem: impl Into<String>) -> PackError {
    PackError::Entry {
        root: root.display().to_string(),
        entry: rel.display().to_string(),
        problem: problem.into(),
    }
}

fn package_err(root: &Path, problem: impl Into<String>) -> PackError {
    PackError::Package {
        root: root.display().to_string(),
        problem: problem.into(),
    }
}

/// Walks `root` without following any symlink inside it (lstat only, nothing is
/// opened): every entry must be a directory or a regular file with one link, and
/// the package within the caps. Entries come out parents first, names sorted.
pub fn plan(root: &Path) -> Result<Plan, PackError> {
    let meta = fs::metadata(root).map_err(|e| package_err(root, e.to_string()))?;
    if !meta.is_dir() {
        return Err(package_err(root, "is not a directory"));
    }
    let mut plan = Plan {
        root: root.to_path_buf(),
        entries: Vec::new(),
    };
    let mut bytes = 0u64;
    walk(root, Path::new(""), &mut plan, &mut bytes)?;
    Ok(plan)
}

fn walk(root: &Path, rel: &Path, plan: &mut Plan, bytes: &mut u64) -> Result<(), PackError> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| entry_err(root, rel, format!("cannot be listed: {e}")))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| entry_err(root, rel, format!("cannot be listed: {e}")))?;
    names.sort();
    for name in names {
        let child = rel.join(&name);
        let meta = fs::symlink_metadata(root.join(&child))
            .map_err(|e| entry_err(root, &child, e.to_string()))?;
        let kind = classify(root, &child, &meta)?;
        let wire = wire_path(&child)
            .ok_or_else(|| entry_err(root, &child, "has a name that is not UTF-8"))?;
        super::entry_path(&wire).map_err(|e| entry_err(root, &child, e))?;
        if plan.entries.len() as u32 >= MAX_PACKAGE_ENTRIES {
            return Err(package_err(
                root,
                format!("holds more than {MAX_PACKAGE_ENTRIES} entries"),
            ));
        }
        let size = if kind == EntryKind::File {
            meta.len()
        } else {
            0
        };
        *bytes = bytes.saturating_add(size);
        if *bytes > MAX_PACKAGE_BYTES {
            return Err(package_err(
                root,
                format!("its files total more than {MAX_PACKAGE_BYTES} bytes"),
            ));
        }
        plan.entries.push(Planned {
            rel: child.clone(),
            wire,
            kind,
            mode: meta.mode() & 0o7777,
            size,
            dev: meta.dev(),
            ino: meta.ino(),
        });
        if kind == EntryKind::Directory {
            walk(root, &child, plan, bytes)?;
        }
    }
    Ok(())
}

/// Directories and singly linked regular files pass; everything else is named.
fn classify(root: &Path, rel: &Path, meta: &Metadata) -> Result<EntryKind, PackError> {
    let t = meta.file_type();
    let refuse = |what: String| {
        Err(entry_err(
            root,
            rel,
            format!("{what}; a package may hold only regular files and directories"),
        ))
    };
    if t.is_dir() {
        Ok(EntryKind::Directory)
    } else if t.is_file() && meta.nlink() > 1 {
        Err(entry_err(
            root,
            rel,
            format!(
                "has {} hard links: a package may not hold a hard link (it could be a hard link to a file outside the package); copy the file instead",
                meta.nlink()
            ),
        ))
    } else if t.is_file() {
        Ok(EntryKind::File)
    } else if t.is_symlink() {
        let target = fs::read_link(root.join(rel))
            .map(|t| t.display().to_string())
            .unwrap_or_else(|_| "?".into());
        refuse(format!("is a symbolic link (to {target})"))
    } else if t.is_fifo() {
        refuse("is a FIFO".into())
    } else if t.is_socket() {
        refuse("is a socket".into())
    } else if t.is_block_device() || t.is_char_device() {
        refuse("is a device node".into())
    } else {
        refuse("is not a regular file".into())
    }
}

impl Plan {
    /// Sends the header, every entry with its bytes, and the end, blocking; returns
    /// early (Ok) if the receiver went away, as the daemon's answer then says why.
    /// Each file is opened O_NONBLOCK|O_NOFOLLOW and checked with fstat to be the
    /// regular file the walk saw before a byte is read.
    pub fn send(
        &self,
        header: UploadHeader,
        tx: &mpsc::Sender<PackageChunk>,
    ) -> Result<(), PackError> {
        let put = |item: Item| tx.blocking_send(PackageChunk { item: Some(item) }).is_ok();
        if !put(Item::Header(header)) {
            return Ok(());
        }
        let mut bytes = 0u64;
        for e in &self.entries {
            let file = match e.kind {
                EntryKind::File => Some(self.open(e)?),
                _ => None,
            };
            let entry = PackageEntry {
                path: e.wire.clone(),
                kind: e.kind as i32,
                mode: e.mode,
                size: e.size,
            };
            if !put(Item::Entry(entry)) {
                return Ok(());
            }
            if let Some(file) = file {
                if !self.send_file(e, file, &put)? {
                    return Ok(());
                }
                bytes += e.size;
            }
        }
        let (entries, _) = self.totals();
        put(Item::End(PackageEnd { entries, bytes }));
        Ok(())
    }

    pub(super) fn open(&self, e: &Planned) -> Result<File, PackError> {
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(self.root.join(&e.rel))
            .map_err(|err| self.entry_err(&e.rel, format!("cannot be opened: {err}")))?;
        let meta = file
            .metadata()
            .map_err(|err| self.entry_err(&e.rel, err.to_string()))?;
        if !meta.is_file() || meta.dev() != e.dev || meta.ino() != e.ino {
            return Err(self.entry_err(&e.rel, "was replaced while the package was read"));
        }
        classify(&self.root, &e.rel, &meta)?;
        if meta.len() != e.size {
            return Err(self.entry_err(&e.rel, "changed size while the package was read"));
        }
        Ok(file)
    }

    /// Sends exactly the planned size; false if the receiver went away.
    fn send_file(
        &self,
        e: &Planned,
        mut file: File,
        put: &dyn Fn(Item) -> bool,
    ) -> Result<bool, PackError> {
        let mut left = e.size;
        let mut buf = vec![0u8; DATA_CHUNK_BYTES.min(e.size.max(1) as usize)];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = file
                .read(&mut buf[..want])
                .map_err(|err| self.entry_err(&e.rel, format!("cannot be read: {err}")))?;
            if n == 0 {
                return Err(self.entry_err(&e.rel, "shrank while the package was read"));
            }
            left -= n as u64;
            if !put(Item::Data(buf[..n].to_vec())) {
                return Ok(false);
            }
        }
        let mut one = [0u8; 1];
        if file
            .read(&mut one)
            .map_err(|err| self.entry_err(&e.rel, err.to_string()))?
            != 0
        {
            return Err(self.entry_err(&e.rel, "grew while the package was read"));
        }
        Ok(true)
    }
}

/// Streams a planned package: the stream to hand to `UploadPlugin` and the
/// packer's own result, which says why when the stream stopped short.
pub fn stream(
    plan: Plan,
    header: UploadHeader,
) -> (
    tokio_stream::wrappers::ReceiverStream<PackageChunk>,
    tokio::task::JoinHandle<Result<(), PackError>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let packer = tokio::task::spawn_blocking(move || plan.send(header, &tx));
    (tokio_stream::wrappers::ReceiverStream::new(rx), packer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("plugin.toml"), "name = \"p\"\n").unwrap();
        fs::create_dir(dir.path().join("lib")).unwrap();
        fs::write(
            dir.path().join("lib/data"),
            vec![7u8; 3 * DATA_CHUNK_BYTES + 5],
        )
        .unwrap();
        dir
    }

    #[test]
    fn specials_symlinks_and_hard_links_are_refused_by_name() {
        let dir = pkg();
        assert_eq!(plan(dir.path()).unwrap().totals().0, 3);
        let fifo = dir.path().join("lib/fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = plan(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`lib/fifo` is a FIFO"), "{e}");
        fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero")).unwrap();
        let e = plan(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("`zero` is a symbolic link (to /dev/zero)"),
            "{e}"
        );
        fs::remove_file(dir.path().join("zero")).unwrap();
        let outside = tempfile::NamedTempFile::new_in(dir.path().parent().unwrap()).unwrap();
        fs::hard_link(outside.path(), dir.path().join("shadow")).unwrap();
        let e = plan(dir.path()).unwrap_err().to_string();
        assert!(e.contains("`shadow` has 2 hard links"), "{e}");
    }

    #[test]
    fn a_plan_sends_every_byte_and_the_totals() {
        let dir = pkg();
        let plan = plan(dir.path()).unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        plan.send(UploadHeader::default(), &tx).unwrap();
        drop(tx);
        let (mut data, mut end) = (0u64, None);
        while let Some(c) = rx.blocking_recv() {
            match c.item {
                Some(Item::Data(d)) => data += d.len() as u64,
                Some(Item::End(e)) => end = Some(e),
                _ => {}
            }
        }
        let end = end.unwrap();
        assert_eq!((end.entries, end.bytes, data), (3, data, plan.totals().1));
    }
}
