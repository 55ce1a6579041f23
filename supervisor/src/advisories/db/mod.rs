//! The offline advisory database: importing a directory (RustSec advisory-db layout and
//! OSV JSON) under caps, its normalised JSON form, and matching dependencies against it.

mod osv;
mod rustsec;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{normalize_pypi_name, Dependency, Ecosystem};
pub use osv::{load_osv, OsvEvent, OsvRange, PyVersion};
pub use rustsec::load_rustsec;

/// The most files one import reads (the RustSec advisory-db holds about a thousand;
/// osv.dev's whole PyPI export about twenty thousand).
pub const MAX_DB_FILES: usize = 100_000;
/// The most bytes of one advisory file.
pub const MAX_DB_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// The most bytes one import reads in all.
pub const MAX_DB_TOTAL_BYTES: u64 = 512 * 1024 * 1024;
/// The deepest directory an import walks.
pub const MAX_DB_DEPTH: usize = 8;
/// The version of [`Database`]'s JSON form.
pub const DATABASE_FORMAT: u32 = 1;

/// The directories of an import holding OSV files (besides its top level).
pub const OSV_SUBDIRS: &[&str] = &["osv", "pypi", "PyPI"];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A malformed advisory: the message says which line or field.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path} is a symbolic link; an advisory import follows none")]
    Symlink { path: String },
    #[error("{path} is neither a regular file nor a directory")]
    NotRegular { path: String },
    #[error("{path} is {size} bytes, over the {limit}-byte cap on one advisory file")]
    FileTooLarge { path: String, size: u64, limit: u64 },
    #[error("{dir}: more than {limit} advisory files, the most one import reads")]
    TooManyFiles { dir: String, limit: usize },
    #[error("{dir}: more than {limit} bytes of advisories, the most one import reads")]
    TooManyBytes { dir: String, limit: u64 },
    #[error("{path}: nested deeper than {limit} directories under the import")]
    TooDeep { path: String, limit: usize },
    #[error("advisory {id} is in both {first} and {second}")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
    #[error(
        "{dir} holds no advisories: expected crates/<crate>/RUSTSEC-*.md (the RustSec \
         advisory-db layout) or OSV *.json files (at its top level or under osv/ or pypi/)"
    )]
    Empty { dir: String },
    #[error("the stored advisory database is unreadable: {0}")]
    Stored(String),
}

/// One advisory about one package, normalised from either source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    /// `RUSTSEC-YYYY-NNNN`, `PYSEC-…`, `GHSA-…`.
    pub id: String,
    pub ecosystem: Ecosystem,
    /// As published (crates.io) or normalised per PEP 503 (PyPI).
    pub package: String,
    /// RustSec's title, OSV's `summary` (or the start of its `details`).
    pub title: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub date: Option<String>,
    /// RustSec: "high 7.5 (CVSS:3.1/…)"; OSV: its `severity` scores or the
    /// `database_specific.severity` word.
    pub severity: Option<String>,
    /// RustSec informational advisories: `unmaintained`, `unsound`, `notice`, …
    pub informational: Option<String>,
    pub url: Option<String>,
    /// The file it was read from, relative to the imported directory.
    pub file: String,
    pub affects: Affects,
}

/// Which versions an advisory is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Affects {
    /// RustSec `[versions]` (vulnerable unless a `patched` or `unaffected` requirement
    /// matches) and `[affected]` (only on these OSes/CPUs, in these functions).
    Rustsec {
        versions: ::rustsec::advisory::Versions,
        #[serde(default)]
        os: Vec<String>,
        #[serde(default)]
        arch: Vec<String>,
        #[serde(default)]
        functions: Vec<String>,
    },
    /// OSV `affected[]` of one package: explicit versions and ECOSYSTEM/SEMVER ranges
    /// (GIT ranges name commits, not releases, and are dropped at import).
    Osv {
        #[serde(default)]
        versions: Vec<String>,
        #[serde(default)]
        ranges: Vec<OsvRange>,
    },
}

/// A dependency an advisory is about, as the reviewer and the alert see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Finding {
    pub advisory_id: String,
    pub ecosystem: Ecosystem,
    pub package: String,
    pub version: String,
    pub title: String,
    pub severity: Option<String>,
    /// "patched: >= 1.2.3", "fixed in 2.0.1", "no patched version".
    pub patched: String,
    /// Set for RustSec informational advisories (unmaintained, unsound, notice): a
    /// warning, not a vulnerability.
    pub informational: Option<String>,
    pub url: Option<String>,
    pub aliases: Vec<String>,
}

/// One line: `RUSTSEC-2099-0001 itoa 1.0.19 (crates.io): title [critical 9.8 (…)]
/// (patched: >=1.0.20) https://…`, informational ones marked.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} ({}): ",
            self.advisory_id, self.package, self.version, self.ecosystem
        )?;
        if let Some(kind) = &self.informational {
            write!(f, "[informational: {kind}] ")?;
        }
        f.write_str(&self.title)?;
        if let Some(severity) = &self.severity {
            write!(f, " [{severity}]")?;
        }
        write!(f, " ({})", self.patched)?;
        if let Some(url) = &self.url {
            write!(f, " {url}")?;
        }
        Ok(())
    }
}

/// What one import read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportStats {
    pub files: usize,
    pub bytes: u64,
    /// Withdrawn advisories (soft-deleted upstream), skipped.
    pub withdrawn: usize,
    /// OSV `affected[]` entries of other ecosystems than PyPI, skipped.
    pub other_ecosystems: usize,
}

/// The normalised advisories of one import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Database {
    pub format: u32,
    pub advisories: Vec<Advisory>,
    pub stats: ImportStats,
}

/// Imports a directory holding a RustSec advisory-db checkout (its `crates/`; its
/// `rust/` toolchain advisories are not read), OSV PyPI `*.json` files (at its top level
/// and anywhere under `osv/`, `pypi/` or `PyPI/`), or both. Any malformed file, link or
/// cap reached refuses the whole import, naming the file.
pub fn load_dir(dir: &Path) -> Result<Database, DbError> {
    let mut import = Import::new(dir);
    let crates = dir.join("crates");
    if import.is_dir(&crates)? {
        rustsec::load_crates(&mut import, &crates)?;
    }
    for entry in import.sorted_entries(dir)? {
        if entry.is_file && has_ext(&entry.path, "json") {
            osv::load_file(&mut import, &entry.path)?;
        }
    }
    for sub in OSV_SUBDIRS {
        let sub = dir.join(sub);
        if import.is_dir(&sub)? {
            osv::load_tree(&mut import, &sub, 1)?;
        }
    }
    import.finish()
}

/// Reading one import: its caps, the IDs seen, the advisories so far.
struct Import {
    root: PathBuf,
    stats: ImportStats,
    ids: HashMap<String, String>,
    advisories: Vec<Advisory>,
}

struct Entry {
    path: PathBuf,
    is_file: bool,
    is_dir: bool,
}

impl Import {
    fn new(root: &Path) -> Self {
        Import {
            root: root.to_path_buf(),
            stats: ImportStats::default(),
            ids: HashMap::new(),
            advisories: Vec::new(),
        }
    }

    fn finish(self) -> Result<Database, DbError> {
        if self.stats.files == 0 {
            return Err(DbError::Empty {
                dir: self.root.display().to_string(),
            });
        }
        Ok(Database {
            format: DATABASE_FORMAT,
            advisories: self.advisories,
            stats: self.stats,
        })
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Whether `path` is a directory; absent is false, a link or another kind refused.
    fn is_dir(&self, path: &Path) -> Result<bool, DbError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_at(path, e)),
            Ok(m) if m.file_type().is_symlink() => Err(DbError::Symlink {
                path: path.display().to_string(),
            }),
            Ok(m) if m.is_dir() => Ok(true),
            Ok(_) => Err(DbError::NotRegular {
                path: path.display().to_string(),
            }),
        }
    }

    /// A directory's entries in name order; a link among them refuses the import.
    fn sorted_entries(&mut self, dir: &Path) -> Result<Vec<Entry>, DbError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| io_at(dir, e))? {
            let entry = entry.map_err(|e| io_at(dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| io_at(&path, e))?;
            if kind.is_symlink() {
                return Err(DbError::Symlink {
                    path: path.display().to_string(),
                });
            }
            out.push(Entry {
                is_file: kind.is_file(),
                is_dir: kind.is_dir(),
                path,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// One advisory file's text, counted against the caps.
    fn read(&mut self, path: &Path) -> Result<String, DbError> {
        self.stats.files += 1;
        if self.stats.files > MAX_DB_FILES {
            return Err(DbError::TooManyFiles {
                dir: self.root.display().to_string(),
                limit: MAX_DB_FILES,
            });
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| io_at(path, e))?;
        let meta = file.metadata().map_err(|e| io_at(path, e))?;
        if !meta.is_file() {
            return Err(DbError::NotRegular {
                path: path.display().to_string(),
            });
        }
        if meta.len() > MAX_DB_FILE_BYTES {
            return Err(DbError::FileTooLarge {
                path: path.display().to_string(),
                size: meta.len(),
                limit: MAX_DB_FILE_BYTES,
            });
        }
        let mut bytes = Vec::new();
        file.take(MAX_DB_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_at(path, e))?;
        if bytes.len() as u64 > MAX_DB_FILE_BYTES {
            return Err(DbError::FileTooLarge {
                path: path.display().to_string(),
                size: bytes.len() as u64,
                limit: MAX_DB_FILE_BYTES,
            });
        }
        self.stats.bytes += bytes.len() as u64;
        if self.stats.bytes > MAX_DB_TOTAL_BYTES {
            return Err(DbError::TooManyBytes {
                dir: self.root.display().to_string(),
                limit: MAX_DB_TOTAL_BYTES,
            });
        }
        String::from_utf8(bytes).map_err(|e| {
            invalid(
                path,
                format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            )
        })
    }

    /// Adds the advisories of one file; an ID another file already used refuses.
    fn add(&mut self, path: &Path, advisories: Vec<Advisory>) -> Result<(), DbError> {
        let here = self.rel(path);
        for advisory in &advisories {
            if let Some(first) = self.ids.get(&advisory.id) {
                if *first != here {
                    return Err(DbError::DuplicateId {
                        id: advisory.id.clone(),
                        first: first.clone(),
                        second: here,
                    });
                }
            }
            self.ids.insert(advisory.id.clone(), here.clone());
        }
        self.advisories.extend(advisories);
        Ok(())
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> DbError {
    DbError::Invalid {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn io_at(path: &Path, source: std::io::Error) -> DbError {
    DbError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e == ext)
}

impl Database {
    pub fn len(&self) -> usize {
        self.advisories.len()
    }

    pub fn is_empty(&self) -> bool {
        self.advisories.is_empty()
    }

    pub fn to_json(&self) -> Result<String, DbError> {
        serde_json::to_string(self).map_err(|e| DbError::Stored(e.to_string()))
    }

    /// Reads [`Database::to_json`]'s form back (version requirements and PEP 440
    /// versions are checked again).
    pub fn from_json(text: &str) -> Result<Self, DbError> {
        let db: Database =
            serde_json::from_str(text).map_err(|e| DbError::Stored(e.to_string()))?;
        if db.format != DATABASE_FORMAT {
            return Err(DbError::Stored(format!(
                "format {} (this supervisor reads format {DATABASE_FORMAT})",
                db.format
            )));
        }
        Ok(db)
    }

    /// The advisories about these dependencies, sorted by package, version and ID.
    /// RustSec advisories limited to other OSes or CPUs than this host's are left out.
    pub fn matches(&self, deps: &[Dependency]) -> Vec<Finding> {
        let mut by_name: HashMap<(Ecosystem, String), Vec<&Dependency>> = HashMap::new();
        for dep in deps {
            by_name
                .entry(match_key(dep.ecosystem, &dep.name))
                .or_default()
                .push(dep);
        }
        let mut found = BTreeSet::new();
        for advisory in &self.advisories {
            let Some(deps) = by_name.get(&match_key(advisory.ecosystem, &advisory.package)) else {
                continue;
            };
            for dep in deps {
                if advisory.affects_version(&dep.version) {
                    found.insert(advisory.finding(dep));
                }
            }
        }
        found.into_iter().collect()
    }
}

fn match_key(ecosystem: Ecosystem, name: &str) -> (Ecosystem, String) {
    match ecosystem {
        Ecosystem::CratesIo => (ecosystem, name.to_string()),
        Ecosystem::PyPI => (ecosystem, normalize_pypi_name(name)),
    }
}

impl Advisory {
    /// Whether `version` of this advisory's package is affected (on this host).
    pub fn affects_version(&self, version: &str) -> bool {
        match &self.affects {
            Affects::Rustsec {
                versions, os, arch, ..
            } => {
                let here =
                    |list: &[String], this: &str| list.is_empty() || list.iter().any(|x| x == this);
                if !here(os, std::env::consts::OS) || !here(arch, std::env::consts::ARCH) {
                    return false;
                }
                // An unparseable version cannot be placed against the requirements:
                // say affected rather than hide an advisory.
                match ::rustsec::Version::parse(version) {
                    Ok(v) => versions.is_vulnerable(&v),
                    Err(_) => true,
                }
            }
            Affects::Osv { versions, ranges } => osv::affects(versions, ranges, version),
        }
    }

    fn finding(&self, dep: &Dependency) -> Finding {
        Finding {
            advisory_id: self.id.clone(),
            ecosystem: self.ecosystem,
            package: dep.name.clone(),
            version: dep.version.clone(),
            title: self.title.clone(),
            severity: self.severity.clone(),
            patched: self.patched_text(),
            informational: self.informational.clone(),
            url: self.url.clone(),
            aliases: self.aliases.clone(),
        }
    }

    /// Where the fix is, in words.
    pub fn patched_text(&self) -> String {
        let list = match &self.affects {
            Affects::Rustsec { versions, .. } => versions
                .patched()
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            Affects::Osv { ranges, .. } => ranges
                .iter()
                .flat_map(|r| r.events.iter())
                .filter_map(|e| match e {
                    OsvEvent::Fixed(v) => Some(v.as_str().to_string()),
                    _ => None,
                })
                .collect(),
        };
        match (&self.affects, list.is_empty()) {
            (_, true) => "no patched version".to_string(),
            (Affects::Rustsec { .. }, false) => format!("patched: {}", list.join("; ")),
            (Affects::Osv { .. }, false) => format!("fixed in {}", list.join(", ")),
        }
    }
}

#[cfg(test)]
#[path = "db_tests.rs"]
mod tests;
