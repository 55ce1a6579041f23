//! What one installed package was found to depend on, as recorded at install: the list
//! `cargo auditable` embedded, the vendored Python distributions, or "unknown" and why.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{python_dependencies, rust_dependencies, Database, Dependency, Finding, RustDeps};

/// The dependencies a reviewer sees and advisories are matched against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Whether the package said what it depends on.
    pub known: bool,
    /// Where the list came from, or why there is none ("dependencies unknown ...").
    pub note: String,
    pub dependencies: Vec<Dependency>,
}

impl Inventory {
    /// A native plugin's entry binary. A list that cannot be read is recorded as
    /// unknown with the reason: it is what a reviewer must know, not a reason to
    /// refuse a package whose code is pinned anyway.
    pub fn of_binary(entry: &Path) -> Inventory {
        match rust_dependencies(entry) {
            Ok(deps @ RustDeps::Embedded { .. }) => Inventory {
                known: true,
                note: deps.summary(),
                dependencies: deps.dependencies(),
            },
            Ok(none) => Inventory {
                known: false,
                note: none.summary(),
                dependencies: Vec::new(),
            },
            Err(e) => Inventory {
                known: false,
                note: format!("dependencies unknown: {e}"),
                dependencies: Vec::new(),
            },
        }
    }

    /// A Python package's `vendor/` distributions.
    pub fn of_python(package: &Path) -> Inventory {
        match python_dependencies(package) {
            Ok(deps) if deps.is_empty() => Inventory {
                known: true,
                note: "no vendored distributions (vendor/ holds no *.dist-info)".into(),
                dependencies: deps,
            },
            Ok(deps) => Inventory {
                known: true,
                note: format!("{} vendored distributions", deps.len()),
                dependencies: deps,
            },
            Err(e) => Inventory {
                known: false,
                note: format!("dependencies unknown: {e}"),
                dependencies: Vec::new(),
            },
        }
    }

    /// The advisories of `db` that name one of these dependencies.
    pub fn findings(&self, db: Option<&Database>) -> Vec<Finding> {
        db.map(|db| db.matches(&self.dependencies))
            .unwrap_or_default()
    }
}
