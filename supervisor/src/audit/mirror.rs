//! The JSON-line mirrors of the audit trail (`system/`, `audit/`, `security/`,
//! `plugins/activity.log`): written after each commit, rotated by size, a count kept.

// Why rotate here rather than leave it to logrotate: a mirror grows with every
// brokered call, and a host without logrotate (or with it misconfigured) would fill
// its disk. The store stays the record of truth; a rotation happens between whole
// batches, so the kept files hold contiguous records with no line cut or lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{Category, Committed};

/// When a mirror file is rotated, and how many of its files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// A file is rotated once a write would take it past this many bytes.
    pub max_bytes: u64,
    /// Files kept per log, the live one included (`x.log`, `x.log.1`, ...).
    pub files: u32,
}

/// The four JSON-lines logs under the log directory. The store is the record of
/// truth; these mirror it for log shippers and humans.
pub struct LogFiles {
    dir: PathBuf,
    rotation: Option<Rotation>,
    files: Mutex<Vec<Mirror>>,
}

struct Mirror {
    category: Category,
    file: File,
    len: u64,
}

/// The record as one JSON line: `id` and an RFC 3339 `ts` first, then the entry's
/// own fields and its detail, serialised straight into the line.
fn json_line(c: &Committed) -> Option<Vec<u8>> {
    let fields = serde_json::to_vec(&c.entry).ok()?;
    let inner = fields.strip_prefix(b"{")?.strip_suffix(b"}")?;
    let ts = serde_json::to_string(&crate::clock::rfc3339_ms(c.entry.ts_ms)).ok()?;
    let detail = c.detail.as_deref().unwrap_or("null");
    let mut line = Vec::with_capacity(fields.len() + ts.len() + detail.len() + 40);
    line.extend_from_slice(format!("{{\"id\":{},\"ts\":{ts},", c.id).as_bytes());
    line.extend_from_slice(inner);
    line.extend_from_slice(b",\"detail\":");
    line.extend_from_slice(detail.as_bytes());
    line.extend_from_slice(b"}\n");
    Some(line)
}

impl LogFiles {
    /// The mirrors, never rotated (tests, tools).
    pub fn open(log_dir: &Path) -> std::io::Result<LogFiles> {
        Self::open_rotating(log_dir, None)
    }

    /// The mirrors, each rotated as `rotation` says.
    pub fn open_rotating(log_dir: &Path, rotation: Option<Rotation>) -> std::io::Result<LogFiles> {
        Ok(LogFiles {
            dir: log_dir.to_path_buf(),
            rotation,
            files: Mutex::new(open_all(log_dir)?),
        })
    }

    /// Opens the files again by name (after logrotate moved them away); the old ones
    /// are closed once every line before the call is in them. On failure the old
    /// files stay in use.
    pub fn reopen(&self) -> std::io::Result<()> {
        let fresh = open_all(&self.dir)?;
        let mut files = self
            .files
            .lock()
            .map_err(|_| std::io::Error::other("the log files' lock is poisoned"))?;
        *files = fresh;
        Ok(())
    }

    /// Appends entries (already committed to the store) as JSON lines.
    pub fn append(&self, entries: &[Committed]) {
        let Ok(mut files) = self.files.lock() else {
            return;
        };
        // One write per file per batch: the broker's batches hold thousands of records.
        let mut pending: Vec<Vec<u8>> = vec![Vec::new(); files.len()];
        for committed in entries {
            let Some(text) = json_line(committed) else {
                continue;
            };
            for c in committed.entry.categories() {
                if let Some(i) = files.iter().position(|m| m.category == c) {
                    pending[i].extend_from_slice(&text);
                }
            }
        }
        for (mirror, bytes) in files.iter_mut().zip(pending) {
            if bytes.is_empty() {
                continue;
            }
            let rel = mirror.category.rel_path();
            if let Some(r) = self.rotation {
                if mirror.len > 0 && mirror.len + bytes.len() as u64 > r.max_bytes {
                    if let Err(err) = rotate(&self.dir.join(rel), r.files, mirror) {
                        tracing::error!(error = %err, file = rel, "audit log rotation failed");
                    }
                }
            }
            match append_whole(&mut mirror.file, &bytes) {
                Ok(()) => mirror.len += bytes.len() as u64,
                // The store keeps the records; the mirror misses these lines.
                Err(err) => tracing::error!(error = %err, file = rel, "audit log write failed"),
            }
        }
    }
}

/// `x.log.N-1` → `x.log.N` ... `x.log` → `x.log.1` (the oldest beyond `files` goes),
/// then a fresh `x.log`.
fn rotate(path: &Path, files: u32, mirror: &mut Mirror) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    let _ = std::fs::remove_file(numbered(files.saturating_sub(1)));
    for n in (1..files.saturating_sub(1)).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    if files > 1 {
        std::fs::rename(path, numbered(1))?;
    } else {
        std::fs::remove_file(path)?;
    }
    mirror.file = OpenOptions::new().create(true).append(true).open(path)?;
    mirror.len = 0;
    Ok(())
}

fn open_all(log_dir: &Path) -> std::io::Result<Vec<Mirror>> {
    let mut files = Vec::new();
    for category in Category::ALL {
        let path: PathBuf = log_dir.join(category.rel_path());
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        files.push(Mirror {
            category,
            file,
            len,
        });
    }
    Ok(files)
}

/// Appends `bytes` or nothing: a write cut short (a full disk) is truncated away, so
/// the mirror never holds half a line that the next record would run into.
fn append_whole(f: &mut File, bytes: &[u8]) -> std::io::Result<()> {
    let before = f.metadata()?.len();
    f.write_all(bytes).inspect_err(|_| {
        let _ = f.set_len(before);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditEntry, Outcome};

    #[test]
    fn rotation_keeps_whole_contiguous_records_in_a_bounded_number_of_files() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: 4096,
            files: 3,
        };
        let logs = LogFiles::open_rotating(dir.path(), Some(rotation)).unwrap();
        let actor = Actor::system();
        for batch in 0..200 {
            let entries: Vec<Committed> = (0..3)
                .map(|i| {
                    let entry = AuditEntry::new(&actor, "plugin.start", Outcome::Ok).plugin("p");
                    Committed {
                        id: batch * 3 + i + 1,
                        detail: Committed::detail_text(&entry),
                        entry,
                    }
                })
                .collect();
            logs.append(&entries);
        }
        let base = dir.path().join("system/plugin_system.log");
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        let mut ids = Vec::new();
        for n in (1..3).rev() {
            let p = PathBuf::from(format!("{}.{n}", base.display()));
            assert!(std::fs::metadata(&p).unwrap().len() <= 4096 + 1024);
            ids.extend(id_lines(&read(p)));
        }
        ids.extend(id_lines(&read(base.clone())));
        assert!(
            !PathBuf::from(format!("{}.3", base.display())).exists(),
            "3 files kept"
        );
        assert!(
            ids.windows(2).all(|w| w[1] == w[0] + 1),
            "contiguous, nothing cut"
        );
        assert_eq!(ids.last().copied(), Some(600), "up to the last record");
        assert!(ids.len() < 600, "the oldest were rotated away");
    }

    fn id_lines(text: &str) -> Vec<i64> {
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("whole JSON lines");
                v["id"].as_i64().expect("id")
            })
            .collect()
    }
}
