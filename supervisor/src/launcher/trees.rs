//! Package trees checked before a launch (a Python plugin's package and SDK bundle):
//! the digest taken at install must still hold. A tree whose files all keep their
//! identity since it was last verified is not re-hashed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sealed::{integrity, FileId};
use super::LaunchFailure;
use crate::package::tree;

/// A directory that must hash to `digest` (see `package::tree`) for the launch to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeCheck {
    /// What the tree is, for the refusal: "package", "SDK bundle".
    pub what: String,
    pub dir: PathBuf,
    pub digest: String,
}

/// Trees remembered at most; one beyond is verified afresh at its next start.
const MAX_TREES: usize = 64;

/// The launcher thread's memory of verified trees: each file's identity then.
#[derive(Default)]
pub struct VerifiedTrees {
    seen: HashMap<PathBuf, (Vec<(PathBuf, FileId)>, String)>,
}

impl VerifiedTrees {
    pub fn verify(&mut self, check: &TreeCheck) -> Result<(), LaunchFailure> {
        let ids = identities(&check.dir)
            .map_err(|e| integrity(format!("{} {}: {e}", check.what, check.dir.display())))?;
        let known = self
            .seen
            .get(&check.dir)
            .is_some_and(|(then, digest)| *then == ids && *digest == check.digest);
        if known {
            return Ok(());
        }
        let pinned = tree::pin(&check.dir)
            .map_err(|e| integrity(format!("{} {}: {e}", check.what, check.dir.display())))?;
        if pinned.digest != check.digest {
            return Err(integrity(format!(
                "{} {} changed since install: digest {}, pinned {}",
                check.what,
                check.dir.display(),
                pinned.digest,
                check.digest
            )));
        }
        if self.seen.len() >= MAX_TREES {
            self.seen.clear();
        }
        self.seen.insert(check.dir.clone(), (ids, pinned.digest));
        Ok(())
    }
}

/// Every file's identity, in path order. A write, replace or chmod changes one.
fn identities(dir: &Path) -> Result<Vec<(PathBuf, FileId)>, String> {
    tree::list(dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|rel| {
            std::fs::symlink_metadata(dir.join(&rel))
                .map(|m| (rel, FileId::of(&m)))
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::LaunchStage;

    #[test]
    fn a_tree_is_verified_remembered_and_refused_once_changed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), "print(1)\n").unwrap();
        let check = TreeCheck {
            what: "package".into(),
            dir: dir.path().to_path_buf(),
            digest: tree::pin(dir.path()).unwrap().digest,
        };
        let mut trees = VerifiedTrees::default();
        trees.verify(&check).unwrap();
        trees.verify(&check).unwrap();
        std::fs::write(dir.path().join("evil.py"), "import os\n").unwrap();
        let err = trees.verify(&check).unwrap_err();
        assert_eq!(err.stage, LaunchStage::Integrity);
        assert!(
            err.message.starts_with("package ") && err.message.contains("changed since install"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("evil.py")).unwrap();
        trees.verify(&check).unwrap();
    }
}
