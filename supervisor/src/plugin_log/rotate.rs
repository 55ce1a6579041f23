//! Size-based rotation of one plugin's log: `<name>.log` is rotated to `<name>.log.1`
//! (and on up to `.log.<files-1>`, the oldest dropped) before it passes its share of the cap.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use super::rate::Tally;

/// Where a plugin's log files live and how big they may get.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub dir: PathBuf,
    pub plugin: String,
    /// The live file and the rotated ones, at least 1.
    pub files: u32,
    /// No file grows past this; all of them together stay within `files * file_bytes`.
    pub file_bytes: u64,
}

impl Rotation {
    /// File `i`: 0 is the live file, 1 the newest rotated one.
    pub fn path(&self, i: u32) -> PathBuf {
        match i {
            0 => self.dir.join(format!("{}.log", self.plugin)),
            i => self.dir.join(format!("{}.log.{i}", self.plugin)),
        }
    }

    /// Rotated files beyond `files` (a configuration that shrank): plugin names hold
    /// no dots, so `<name>.log.<n>` belongs to this plugin alone.
    fn stale(&self) -> Vec<PathBuf> {
        let prefix = format!("{}.log.", self.plugin);
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix(&prefix))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|i| i >= self.files)
            })
            .map(|e| e.path())
            .collect()
    }
}

/// A write that did not (fully) happen: the error and what was lost.
#[derive(Debug)]
pub struct WriteFailed {
    pub error: io::Error,
    pub lost: Tally,
}

impl WriteFailed {
    pub fn of(error: io::Error, unwritten: &[u8]) -> WriteFailed {
        let lines = unwritten.iter().filter(|b| **b == b'\n').count() as u64;
        WriteFailed {
            error,
            lost: Tally {
                bytes: unwritten.len() as u64,
                lines,
            },
        }
    }
}

/// The live file, open for appending, and its size.
pub struct RotatingFile {
    rotation: Rotation,
    file: File,
    size: u64,
}

impl RotatingFile {
    /// Opens the live file and brings what is on disk within the cap: stale rotated
    /// files are removed, an oversized live file is rotated, oversized rotated ones
    /// (from before the cap existed) are cut to their share.
    pub fn open(rotation: Rotation) -> io::Result<RotatingFile> {
        std::fs::create_dir_all(&rotation.dir)?;
        for stale in rotation.stale() {
            remove_if_present(&stale)?;
        }
        let file = open_live(&rotation)?;
        let size = file.metadata()?.len();
        let mut log = RotatingFile {
            rotation,
            file,
            size,
        };
        if log.size > log.rotation.file_bytes {
            log.rotate()?;
        }
        for i in 1..log.rotation.files {
            match OpenOptions::new().write(true).open(log.rotation.path(i)) {
                Ok(f) if f.metadata()?.len() > log.rotation.file_bytes => {
                    f.set_len(log.rotation.file_bytes)?
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(log)
    }

    /// Appends whole lines, rotating first whenever the next lines would take the
    /// live file past its size. A line longer than a whole file is cut.
    pub fn append(&mut self, mut batch: &[u8]) -> Result<(), WriteFailed> {
        while !batch.is_empty() {
            let room = self.rotation.file_bytes.saturating_sub(self.size) as usize;
            if batch.len() <= room {
                return self.write(batch);
            }
            let fits = batch[..room]
                .iter()
                .rposition(|b| *b == b'\n')
                .map(|i| i + 1);
            let take = match fits {
                Some(n) => n,
                None if self.size == 0 => room,
                None => 0,
            };
            self.write(&batch[..take])?;
            batch = &batch[take..];
            self.rotate().map_err(|e| WriteFailed::of(e, batch))?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteFailed> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Part may have landed: go by what the file says now.
                let before = self.size;
                self.size = self.file.metadata().map_or(before, |m| m.len());
                let written = self.size.saturating_sub(before) as usize;
                Err(WriteFailed::of(error, &bytes[written.min(bytes.len())..]))
            }
        }
    }

    /// Shifts `.log.i` to `.log.i+1` (the oldest is replaced), the live file to
    /// `.log.1`, and starts an empty live file. With one file, the live file is emptied.
    fn rotate(&mut self) -> io::Result<()> {
        let r = &self.rotation;
        if r.files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for i in (1..r.files - 1).rev() {
            rename_if_present(&r.path(i), &r.path(i + 1))?;
        }
        rename_if_present(&r.path(0), &r.path(1))?;
        self.file = open_live(r)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }
}

fn open_live(r: &Rotation) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(r.path(0))
}

fn rename_if_present(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn remove_if_present(path: &std::path::Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rotation(dir: &std::path::Path, files: u32, file_bytes: u64) -> Rotation {
        Rotation {
            dir: dir.to_path_buf(),
            plugin: "p".into(),
            files,
            file_bytes,
        }
    }

    fn sizes(r: &Rotation) -> Vec<u64> {
        (0..r.files + 2)
            .map(|i| std::fs::metadata(r.path(i)).map_or(0, |m| m.len()))
            .collect()
    }

    #[test]
    fn rotation_keeps_every_file_within_its_share_and_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotation(dir.path(), 3, 1000);
        let mut log = RotatingFile::open(r.clone()).unwrap();
        let line = format!("{}\n", "x".repeat(99));
        for i in 0..200 {
            log.append(format!("{i:04}{line}").as_bytes()).unwrap();
        }
        let s = sizes(&r);
        assert!(s.iter().all(|&n| n <= 1000), "{s:?}");
        assert!(s.iter().sum::<u64>() <= 3000, "{s:?}");
        assert_eq!(s[3], 0, "no fourth file");
        for i in 0..3 {
            let text = std::fs::read_to_string(r.path(i)).unwrap();
            assert!(text.ends_with('\n') && text.lines().all(|l| l.len() == 103));
        }
        let newest = std::fs::read_to_string(r.path(0)).unwrap();
        assert!(newest
            .trim_end()
            .ends_with(&format!("0199{}", "x".repeat(99))));
    }

    #[test]
    fn a_batch_of_many_lines_is_split_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotation(dir.path(), 2, 100);
        let mut log = RotatingFile::open(r.clone()).unwrap();
        log.append("abcdefghi\n".repeat(25).as_bytes()).unwrap();
        let s = sizes(&r);
        assert_eq!(s[..2], [50, 100]);
    }

    #[test]
    fn a_line_longer_than_a_file_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotation(dir.path(), 2, 100);
        let mut log = RotatingFile::open(r.clone()).unwrap();
        log.append(&[b'y'; 250]).unwrap();
        assert!(sizes(&r).iter().all(|&n| n <= 100));
    }

    #[test]
    fn one_file_is_emptied_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotation(dir.path(), 1, 100);
        let mut log = RotatingFile::open(r.clone()).unwrap();
        for _ in 0..30 {
            log.append(b"0123456789\n").unwrap();
        }
        assert!(sizes(&r)[0] <= 100);
        assert_eq!(sizes(&r)[1], 0);
    }

    #[test]
    fn opening_brings_old_files_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let r = rotation(dir.path(), 2, 100);
        std::fs::write(r.path(0), vec![b'a'; 5000]).unwrap();
        std::fs::write(r.path(1), vec![b'b'; 5000]).unwrap();
        std::fs::write(r.path(5), b"stale").unwrap();
        std::fs::write(dir.path().join("other.log.9"), b"not ours").unwrap();
        let log = RotatingFile::open(r.clone()).unwrap();
        assert_eq!(log.size, 0);
        let s = sizes(&r);
        assert!(s.iter().all(|&n| n <= 100), "{s:?}");
        assert!(!r.path(5).exists());
        assert!(dir.path().join("other.log.9").exists());
    }

    #[test]
    fn a_failed_write_reports_what_was_lost() {
        // /dev/full fails every write with ENOSPC, like a full disk.
        let file = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut log = RotatingFile {
            rotation: rotation(dir.path(), 2, 1 << 20),
            file,
            size: 0,
        };
        let err = log.append(b"one\ntwo\n").unwrap_err();
        assert_eq!(err.error.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(err.lost, Tally { bytes: 8, lines: 2 });
    }
}
