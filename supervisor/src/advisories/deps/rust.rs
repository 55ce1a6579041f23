//! The dependency list `cargo auditable` embeds in a binary (the zlib-compressed JSON
//! of its `.dep-v0` section), read under caps so a hostile binary cannot balloon us.

use std::collections::BTreeSet;
use std::fmt;
use std::io::BufReader;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use auditable_info::{audit_info_from_reader, Error as AuditError, Limits};
use serde::{Deserialize, Serialize};

use super::{open_regular, DepsError};
use crate::advisories::{Dependency, Ecosystem};

/// The most of a binary read to find the section (the whole file is read: the section
/// table is at its end). A plugin's release binary is typically 10-30 MiB.
pub const MAX_BINARY_BYTES: usize = 64 * 1024 * 1024;
/// The most the embedded list may inflate to (its compressed form is capped the same).
pub const MAX_DEPS_JSON_BYTES: usize = 8 * 1024 * 1024;

/// What a Rust binary says it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RustDeps {
    /// The binary carries no `.dep-v0` section (not built with `cargo auditable`):
    /// its dependencies are unknown.
    NoneEmbedded,
    /// The embedded list, in the order the binary holds it (the root package included).
    Embedded { packages: Vec<RustPackage> },
}

/// One package of an embedded dependency list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustPackage {
    pub name: String,
    pub version: String,
    pub source: Source,
    /// Build-time only (build scripts, proc macros) or linked into the binary.
    pub kind: DepKind,
    /// The package the binary was built from.
    pub root: bool,
}

/// Where a package came from, as `cargo auditable` records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Source {
    CratesIo,
    Git,
    Local,
    Registry,
    /// A kind a later format version added.
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepKind {
    Build,
    Runtime,
}

impl Source {
    pub fn as_str(&self) -> &str {
        match self {
            Source::CratesIo => "crates.io",
            Source::Git => "git",
            Source::Local => "local",
            Source::Registry => "registry",
            Source::Other(other) => other,
        }
    }
}

impl From<String> for Source {
    fn from(s: String) -> Self {
        match s.as_str() {
            "crates.io" => Source::CratesIo,
            "git" => Source::Git,
            "local" => Source::Local,
            "registry" => Source::Registry,
            _ => Source::Other(s),
        }
    }
}

impl From<Source> for String {
    fn from(s: Source) -> String {
        s.as_str().to_string()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RustDeps {
    /// Whether the binary said what it depends on.
    pub fn is_known(&self) -> bool {
        matches!(self, RustDeps::Embedded { .. })
    }

    pub fn packages(&self) -> &[RustPackage] {
        match self {
            RustDeps::NoneEmbedded => &[],
            RustDeps::Embedded { packages } => packages,
        }
    }

    pub fn root(&self) -> Option<&RustPackage> {
        self.packages().iter().find(|p| p.root)
    }

    /// The packages advisories can name: those from crates.io (RustSec advisories are
    /// about published crates; a git, local or alternative-registry package of the same
    /// name is another package), build-time ones included, sorted and deduplicated.
    pub fn dependencies(&self) -> Vec<Dependency> {
        let set: BTreeSet<Dependency> = self
            .packages()
            .iter()
            .filter(|p| p.source == Source::CratesIo)
            .map(|p| Dependency {
                ecosystem: Ecosystem::CratesIo,
                name: p.name.clone(),
                version: p.version.clone(),
            })
            .collect();
        set.into_iter().collect()
    }

    /// One line for a reviewer.
    pub fn summary(&self) -> String {
        match self {
            RustDeps::NoneEmbedded => {
                "dependencies unknown (the binary embeds no list; build it with `cargo auditable`)"
                    .to_string()
            }
            RustDeps::Embedded { packages } => {
                let crates_io = packages
                    .iter()
                    .filter(|p| p.source == Source::CratesIo)
                    .count();
                format!(
                    "{} packages embedded by cargo auditable ({crates_io} from crates.io)",
                    packages.len()
                )
            }
        }
    }
}

/// Reads the dependency list `cargo auditable` embedded in `binary` (ELF, PE or Mach-O),
/// without following a symbolic link. A binary without the section is not an error:
/// it answers [`RustDeps::NoneEmbedded`].
pub fn rust_dependencies(binary: &Path) -> Result<RustDeps, DepsError> {
    rust_dependencies_capped(binary, MAX_BINARY_BYTES, MAX_DEPS_JSON_BYTES)
}

pub(super) fn rust_dependencies_capped(
    binary: &Path,
    max_binary: usize,
    max_json: usize,
) -> Result<RustDeps, DepsError> {
    let shown = || binary.display().to_string();
    let (file, size) = open_regular(binary)?;
    let too_large = |size: u64| DepsError::TooLarge {
        path: shown(),
        size,
        limit: max_binary as u64,
    };
    if size > max_binary as u64 {
        return Err(too_large(size));
    }
    let limits = Limits {
        input_file_size: max_binary,
        decompressed_json_size: max_json,
    };
    let mut reader = BufReader::new(file);
    // The parser is forbid(unsafe) and bounds-checked; a panic on a hostile binary
    // must still not take the root daemon down with it.
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        audit_info_from_reader(&mut reader, limits)
    }));
    let embedded = |message: String| DepsError::Embedded {
        path: shown(),
        message,
    };
    let info = match parsed {
        Err(_) => return Err(embedded("the section parser panicked".into())),
        Ok(Err(AuditError::NoAuditData)) => return Ok(RustDeps::NoneEmbedded),
        // The file grew between the size check and the read.
        Ok(Err(AuditError::InputLimitExceeded)) => return Err(too_large(size)),
        Ok(Err(AuditError::OutputLimitExceeded)) => {
            return Err(embedded(format!(
                "the section inflates past {max_json} bytes (the reader's cap)"
            )))
        }
        Ok(Err(e)) => return Err(embedded(e.to_string())),
        Ok(Ok(info)) => info,
    };
    let packages = info
        .packages
        .into_iter()
        .map(|p| RustPackage {
            name: p.name,
            version: p.version.to_string(),
            source: Source::from(String::from(p.source)),
            kind: match p.kind {
                auditable_serde::DependencyKind::Build => DepKind::Build,
                auditable_serde::DependencyKind::Runtime => DepKind::Runtime,
            },
            root: p.root,
        })
        .collect();
    Ok(RustDeps::Embedded { packages })
}

#[cfg(test)]
#[path = "rust_tests.rs"]
mod tests;
