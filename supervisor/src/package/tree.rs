//! The pin of a whole installed package tree (Python plugins): every file's path, mode,
//! size and SHA-256, folded into one digest, and which files are native code.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::install::hex;

/// One file as pinned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinnedFile {
    /// Relative to the package root, "/"-separated.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    pub size: u64,
    pub sha256: String,
}

/// A package tree's files, in path order, and the digest over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreePin {
    pub digest: String,
    pub files: Vec<PinnedFile>,
    /// Files that are native code (ELF, or named like an extension module).
    pub native: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} is neither a regular file nor a directory (a package holds only those)")]
    Special(String),
    #[error("more than {0} entries")]
    TooMany(u32),
}

const NATIVE_SUFFIXES: &[&str] = &[".so", ".pyd", ".dylib"];
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Walks `dir` (never following a symlink) and hashes every file.
pub fn pin(dir: &Path) -> Result<TreePin, TreeError> {
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut native = Vec::new();
    for rel in paths {
        let (file, is_elf) = hash_file(dir, &rel)?;
        if is_elf || NATIVE_SUFFIXES.iter().any(|s| file.path.ends_with(s)) {
            native.push(file.path.clone());
        }
        files.push(file);
    }
    Ok(TreePin {
        digest: digest(&files),
        files,
        native,
    })
}

/// SHA-256 over `path NUL mode NUL size NUL sha256 LF` of each file in path order: a
/// path holds no NUL, so no two trees share a digest input.
pub fn digest(files: &[PinnedFile]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.path.as_bytes());
        h.update(format!("\0{:o}\0{}\0{}\n", f.mode, f.size, f.sha256).as_bytes());
    }
    hex(&h.finalize())
}

/// The files under `dir`, relative, for a caller that only stats them.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, TreeError> {
    let mut paths = Vec::new();
    walk(dir, Path::new(""), &mut paths)?;
    paths.sort();
    Ok(paths)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TreeError + '_ {
    move |source| TreeError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), TreeError> {
    let here = root.join(rel);
    for entry in std::fs::read_dir(&here).map_err(io(&here))? {
        let entry = entry.map_err(io(&here))?;
        let child = rel.join(entry.file_name());
        let kind = entry.file_type().map_err(io(&here))?;
        if kind.is_dir() {
            walk(root, &child, out)?;
        } else if kind.is_file() {
            out.push(child);
        } else {
            return Err(TreeError::Special(child.display().to_string()));
        }
        if out.len() > super::MAX_PACKAGE_ENTRIES as usize {
            return Err(TreeError::TooMany(super::MAX_PACKAGE_ENTRIES));
        }
    }
    Ok(())
}

fn hash_file(root: &Path, rel: &Path) -> Result<(PinnedFile, bool), TreeError> {
    let full = root.join(rel);
    let mut file = File::open(&full).map_err(io(&full))?;
    let meta = file.metadata().map_err(io(&full))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::with_capacity(4);
    loop {
        let n = file.read(&mut buf).map_err(io(&full))?;
        if n == 0 {
            break;
        }
        if head.len() < 4 {
            head.extend_from_slice(&buf[..n.min(4 - head.len())]);
        }
        h.update(&buf[..n]);
    }
    let path = super::wire_path(rel).ok_or_else(|| TreeError::Io {
        path: rel.display().to_string(),
        source: std::io::Error::other("the path is not UTF-8"),
    })?;
    Ok((
        PinnedFile {
            path,
            mode: meta.permissions().mode() & 0o7777,
            size: meta.len(),
            sha256: hex(&h.finalize()),
        },
        head == ELF_MAGIC,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_covers_every_path_mode_and_byte() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pkg")).unwrap();
        std::fs::write(dir.path().join("main.py"), "import pkg\n").unwrap();
        std::fs::write(dir.path().join("pkg/__init__.py"), "").unwrap();
        let first = pin(dir.path()).unwrap();
        assert_eq!(
            first
                .files
                .iter()
                .map(|f| f.path.as_str())
                .collect::<Vec<_>>(),
            ["main.py", "pkg/__init__.py"]
        );
        assert!(first.native.is_empty());
        assert_eq!(pin(dir.path()).unwrap().digest, first.digest, "stable");
        let changes: [&dyn Fn(&Path); 3] = [
            &|d| std::fs::write(d.join("main.py"), "import os\n").unwrap(),
            &|d| {
                std::fs::set_permissions(d.join("main.py"), std::fs::Permissions::from_mode(0o755))
                    .unwrap()
            },
            &|d| std::fs::write(d.join("pkg/extra.py"), "").unwrap(),
        ];
        let mut seen = vec![first.digest];
        for change in changes {
            change(dir.path());
            let now = pin(dir.path()).unwrap().digest;
            assert!(!seen.contains(&now), "a change left the digest as it was");
            seen.push(now);
        }
    }

    #[test]
    fn native_code_is_found_by_name_and_by_content_and_specials_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("_speedups.cpython-311-x86_64-linux-gnu.so"),
            "x",
        )
        .unwrap();
        std::fs::write(dir.path().join("data.bin"), b"\x7fELF\x02\x01").unwrap();
        std::fs::write(dir.path().join("ok.py"), "").unwrap();
        let p = pin(dir.path()).unwrap();
        assert_eq!(
            p.native,
            ["_speedups.cpython-311-x86_64-linux-gnu.so", "data.bin"]
        );
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("link")).unwrap();
        assert!(matches!(pin(dir.path()), Err(TreeError::Special(p)) if p == "link"));
    }
}
