//! What a plugin package depends on (`deps`: the list `cargo auditable` embeds, the
//! vendored Python distributions) and the offline advisory database matched against it (`db`).

pub mod db;
pub mod deps;
mod inventory;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use db::{
    load_dir, load_osv, load_rustsec, Advisory, Affects, Database, DbError, Finding, ImportStats,
};
pub use deps::{
    python_dependencies, rust_dependencies, DepKind, DepsError, RustDeps, RustPackage, Source,
};
pub use inventory::Inventory;

/// The package registry a dependency's name and version belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Ecosystem {
    /// Rust crates (advisories from the RustSec advisory-db).
    #[serde(rename = "crates.io")]
    CratesIo,
    /// Python distributions (advisories in the OSV format).
    #[serde(rename = "PyPI")]
    PyPI,
}

impl Ecosystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::CratesIo => "crates.io",
            Ecosystem::PyPI => "PyPI",
        }
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One package a plugin carries, as matched against advisories. PyPI names are
/// normalised per PEP 503; crates.io names are as published.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dependency {
    pub ecosystem: Ecosystem,
    pub name: String,
    pub version: String,
}

/// A PyPI project name normalised per PEP 503: lowercase, every run of `-`, `_` and
/// `.` one `-` (so `Zope.Interface`, `zope_interface` and `zope-interface` are one).
pub fn normalize_pypi_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
            }
            in_run = true;
        } else {
            out.extend(c.to_lowercase());
            in_run = false;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    /// The itoa version in Cargo.lock that `tests/fixtures/advisory-db` flags.
    pub const FIXTURE_ITOA_VERSION: &str = "1.0.19";

    pub fn repo_root() -> PathBuf {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.parent().unwrap_or(manifest).to_path_buf()
    }

    pub fn fixture_db() -> PathBuf {
        repo_root().join("tests/fixtures/advisory-db")
    }

    /// The test plugin `make auditable` builds with `cargo auditable`; `None` (and a
    /// printed reason) when it has not been built.
    pub fn auditable_test_binary() -> Option<PathBuf> {
        let target = match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
            Some(dir) if dir.is_absolute() => dir,
            Some(dir) => repo_root().join(dir),
            None => repo_root().join("target"),
        };
        let bin = target.join("auditable/audited_plugin");
        if bin.is_file() {
            Some(bin)
        } else {
            eprintln!(
                "SKIP: {} is absent (`make auditable` builds it; `make test` runs that first)",
                bin.display()
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pep503_names() {
        assert_eq!(normalize_pypi_name("Zope.Interface"), "zope-interface");
        assert_eq!(normalize_pypi_name("zope__interface"), "zope-interface");
        assert_eq!(normalize_pypi_name("A-_.b"), "a-b");
        assert_eq!(normalize_pypi_name("requests"), "requests");
        assert_eq!(normalize_pypi_name("Flask_SQLAlchemy"), "flask-sqlalchemy");
    }

    #[test]
    fn dependency_json_names_the_ecosystem_as_registries_do() {
        let dep = Dependency {
            ecosystem: Ecosystem::PyPI,
            name: "requests".into(),
            version: "2.31.0".into(),
        };
        let json = serde_json::to_string(&dep).unwrap();
        assert_eq!(
            json,
            r#"{"ecosystem":"PyPI","name":"requests","version":"2.31.0"}"#
        );
        assert_eq!(serde_json::from_str::<Dependency>(&json).unwrap(), dep);
        let rust = serde_json::to_value(Ecosystem::CratesIo).unwrap();
        assert_eq!(rust, "crates.io");
    }
}
