//! The daemon's side of an upload: writes the streamed entries into its own
//! staging directory, accepting only directories and regular files within caps.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::{EntryKind, PackageEnd, PackageEntry};

use super::{clip, entry_path, MAX_PACKAGE_BYTES, MAX_PACKAGE_ENTRIES};

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The stream broke a rule; nothing of it is kept.
    #[error("{0}")]
    Refused(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

fn refused<T>(why: impl Into<String>) -> Result<T, UnpackError> {
    Err(UnpackError::Refused(why.into()))
}

/// The file being received.
struct Current {
    wire: String,
    file: File,
    left: u64,
}

/// Receives one package into `root` (an empty directory only the daemon writes).
pub struct Unpacker {
    root: PathBuf,
    dirs: HashSet<PathBuf>,
    entries: u32,
    /// Sum of the sizes files declared: refused as soon as it passes the cap.
    declared: u64,
    written: u64,
    current: Option<Current>,
    ended: bool,
}

impl Unpacker {
    pub fn new(root: &Path) -> Unpacker {
        Unpacker {
            root: root.to_path_buf(),
            dirs: HashSet::new(),
            entries: 0,
            declared: 0,
            written: 0,
            current: None,
            ended: false,
        }
    }

    /// Takes the next message after the header.
    pub fn accept(&mut self, item: Item) -> Result<(), UnpackError> {
        if self.ended {
            return refused("the package goes on after its end");
        }
        match item {
            Item::Header(_) => refused("a second header in one upload"),
            Item::Entry(e) => {
                self.close_current()?;
                self.entry(e)
            }
            Item::Data(d) => self.data(&d),
            Item::End(end) => {
                self.close_current()?;
                self.end(end)
            }
        }
    }

    /// The whole package arrived (its end was received).
    pub fn finish(mut self) -> Result<(), UnpackError> {
        self.close_current()?;
        if !self.ended {
            return refused(
                "the upload ended before the package was complete; nothing was installed",
            );
        }
        // One syncfs for every file and directory received, before the rename
        // that installs them (an fsync per file made 4096 small files take seconds).
        let dir = File::open(&self.root).map_err(|source| self.io(&self.root, source))?;
        // SAFETY: syncfs(2) on a descriptor this function owns.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
            return Err(self.io(&self.root, std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn io(&self, path: &Path, source: std::io::Error) -> UnpackError {
        UnpackError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    fn entry(&mut self, e: PackageEntry) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > MAX_PACKAGE_ENTRIES {
            return refused(format!(
                "the package holds more than {MAX_PACKAGE_ENTRIES} entries"
            ));
        }
        let rel = entry_path(&e.path).map_err(UnpackError::Refused)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() && !self.dirs.contains(parent) {
            return refused(format!(
                "`{}`: its directory `{}` was not sent before it",
                clip(&e.path),
                parent.display()
            ));
        }
        let full = self.root.join(&rel);
        match EntryKind::try_from(e.kind) {
            Ok(EntryKind::Directory) => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&full)
                    .map_err(|source| duplicate_or_io(&e.path, &full, source))?;
                self.dirs.insert(rel);
                Ok(())
            }
            Ok(EntryKind::File) => self.open_file(e, &full),
            _ => refused(format!(
                "`{}`: only regular files and directories can be sent",
                clip(&e.path)
            )),
        }
    }

    fn open_file(&mut self, e: PackageEntry, full: &Path) -> Result<(), UnpackError> {
        self.declared = self.declared.saturating_add(e.size);
        if self.declared > MAX_PACKAGE_BYTES {
            return refused(format!(
                "`{}`: the package's files total more than {MAX_PACKAGE_BYTES} bytes",
                clip(&e.path)
            ));
        }
        let mode = if e.mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(full)
            .map_err(|source| duplicate_or_io(&e.path, full, source))?;
        // Whatever the daemon's umask, the installed mode is exactly this.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|source| self.io(full, source))?;
        self.current = Some(Current {
            wire: e.path,
            file,
            left: e.size,
        });
        Ok(())
    }

    fn data(&mut self, bytes: &[u8]) -> Result<(), UnpackError> {
        let Some(cur) = self.current.as_mut() else {
            return refused("file data outside a file entry");
        };
        if bytes.len() as u64 > cur.left {
            return refused(format!(
                "`{}`: more bytes than its declared size",
                clip(&cur.wire)
            ));
        }
        cur.left -= bytes.len() as u64;
        self.written += bytes.len() as u64;
        let path = self.root.join(&cur.wire);
        cur.file.write_all(bytes).map_err(|source| UnpackError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    /// The current file must have all its bytes.
    fn close_current(&mut self) -> Result<(), UnpackError> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if cur.left != 0 {
            return refused(format!(
                "`{}`: {} bytes short of its declared size",
                clip(&cur.wire),
                cur.left
            ));
        }
        Ok(())
    }

    fn end(&mut self, end: PackageEnd) -> Result<(), UnpackError> {
        if end.entries != self.entries || end.bytes != self.written {
            return refused(format!(
                "the package's end counts {} entries and {} bytes, but {} and {} arrived",
                end.entries, end.bytes, self.entries, self.written
            ));
        }
        self.ended = true;
        Ok(())
    }
}

fn duplicate_or_io(wire: &str, full: &Path, source: std::io::Error) -> UnpackError {
    if source.kind() == std::io::ErrorKind::AlreadyExists {
        UnpackError::Refused(format!("`{}` is sent twice", clip(wire)))
    } else {
        UnpackError::Io {
            path: full.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, size: u64) -> Item {
        Item::Entry(PackageEntry {
            path: path.into(),
            kind: kind as i32,
            mode: 0o755,
            size,
        })
    }

    #[test]
    fn a_package_arrives_whole_or_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut u = Unpacker::new(dir.path());
        u.accept(entry("lib", EntryKind::Directory, 0)).unwrap();
        u.accept(entry("lib/bin", EntryKind::File, 3)).unwrap();
        u.accept(Item::Data(b"abc".to_vec())).unwrap();
        u.accept(Item::End(PackageEnd {
            entries: 2,
            bytes: 3,
        }))
        .unwrap();
        u.finish().unwrap();
        assert_eq!(fs::read(dir.path().join("lib/bin")).unwrap(), b"abc");
        let mode = fs::metadata(dir.path().join("lib/bin"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
    }

    #[test]
    fn each_rule_is_enforced_with_a_reason() {
        let cases: Vec<(Vec<Item>, &str)> = vec![
            (vec![entry("../x", EntryKind::File, 0)], "`..`"),
            (vec![entry("/etc/x", EntryKind::File, 0)], "absolute"),
            (
                vec![entry("a/b", EntryKind::File, 0)],
                "was not sent before it",
            ),
            (
                vec![entry("x", EntryKind::Unspecified, 0)],
                "only regular files",
            ),
            (
                vec![entry("x", EntryKind::File, MAX_PACKAGE_BYTES + 1)],
                "more than 268435456 bytes",
            ),
            (
                vec![entry("x", EntryKind::File, 1), Item::Data(b"ab".to_vec())],
                "more bytes than",
            ),
            (
                vec![
                    entry("x", EntryKind::File, 2),
                    entry("y", EntryKind::File, 0),
                ],
                "2 bytes short",
            ),
            (
                vec![
                    entry("x", EntryKind::File, 0),
                    entry("x", EntryKind::File, 0),
                ],
                "sent twice",
            ),
            (
                vec![Item::End(PackageEnd {
                    entries: 1,
                    bytes: 0,
                })],
                "but 0 and 0 arrived",
            ),
        ];
        for (items, want) in cases {
            let dir = tempfile::tempdir().unwrap();
            let mut u = Unpacker::new(dir.path());
            let err = items
                .into_iter()
                .try_for_each(|i| u.accept(i))
                .expect_err(want)
                .to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut u = Unpacker::new(dir.path());
        for i in 0..MAX_PACKAGE_ENTRIES {
            u.accept(entry(&format!("f{i}"), EntryKind::File, 0))
                .unwrap();
        }
        let err = u.accept(entry("one-more", EntryKind::File, 0)).unwrap_err();
        assert!(err.to_string().contains("more than 4096 entries"), "{err}");
        let unended = Unpacker::new(dir.path()).finish().unwrap_err();
        assert!(unended
            .to_string()
            .contains("before the package was complete"));
    }
}
