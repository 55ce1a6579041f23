//! What an update changed: permission requests that are new, grown, narrowed or
//! dropped (by the scope shape's covering rule), and files added, removed or changed.

use std::collections::BTreeMap;

use crate::catalog::Catalog;
use crate::manifest::PermissionRequest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Grown,
    Narrowed,
    /// Some entries added and some removed.
    Changed,
    Dropped,
    Added,
    Removed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Grown => "grown",
            Change::Narrowed => "narrowed",
            Change::Changed => "changed",
            Change::Dropped => "dropped",
            Change::Added => "added",
            Change::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionChange {
    pub permission: String,
    pub change: Change,
    pub before: Vec<String>,
    pub after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub change: Change,
}

/// The requests of the new version against the old one's; unchanged ones are left out.
pub fn permission_changes(
    catalog: &Catalog,
    old: &[PermissionRequest],
    new: &[PermissionRequest],
) -> Vec<PermissionChange> {
    let mut out = Vec::new();
    for req in new {
        let shape = catalog.spec(req.permission).scope;
        let before = old.iter().find(|o| o.permission == req.permission);
        let Some(before) = before else {
            out.push(PermissionChange {
                permission: req.permission.to_string(),
                change: Change::New,
                before: Vec::new(),
                after: req.scope.clone(),
            });
            continue;
        };
        let within = |a: &[String], b: &[String]| {
            a.iter().all(|e| b.iter().any(|w| shape.entry_within(e, w)))
        };
        let grew = !within(&req.scope, &before.scope);
        let shrank = !within(&before.scope, &req.scope);
        let change = match (grew, shrank) {
            (false, false) => continue,
            (true, false) => Change::Grown,
            (false, true) => Change::Narrowed,
            (true, true) => Change::Changed,
        };
        out.push(PermissionChange {
            permission: req.permission.to_string(),
            change,
            before: before.scope.clone(),
            after: req.scope.clone(),
        });
    }
    for o in old
        .iter()
        .filter(|o| !new.iter().any(|n| n.permission == o.permission))
    {
        out.push(PermissionChange {
            permission: o.permission.to_string(),
            change: Change::Dropped,
            before: o.scope.clone(),
            after: Vec::new(),
        });
    }
    out
}

/// Files added, removed or changed (content or mode) between two content lists.
pub fn file_changes(old: &str, new: &str) -> Vec<FileChange> {
    let (old, new) = (lines(old), lines(new));
    let mut out = Vec::new();
    for (path, line) in &new {
        match old.get(path) {
            None => out.push(FileChange {
                path: path.to_string(),
                change: Change::Added,
            }),
            Some(o) if o != line => out.push(FileChange {
                path: path.to_string(),
                change: Change::Changed,
            }),
            Some(_) => {}
        }
    }
    for path in old.keys().filter(|p| !new.contains_key(*p)) {
        out.push(FileChange {
            path: path.to_string(),
            change: Change::Removed,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Path -> the rest of its line (mode, size, SHA-256).
fn lines(contents: &str) -> BTreeMap<&str, &str> {
    contents
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (mode, size, sha, path) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let rest = &l[..mode.len() + size.len() + sha.len() + 2];
            Some((path, rest))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn catalog() -> Catalog {
        Catalog::parse(include_str!("../../../policies/permissions.toml"), "test").unwrap()
    }

    fn requests(perms: &str) -> Vec<PermissionRequest> {
        let text = format!("name = \"p\"\nversion = \"1.0.0\"\nentry = \"p\"\n{perms}");
        Manifest::parse(&text, &catalog()).unwrap().permissions
    }

    #[test]
    fn grown_narrowed_new_and_dropped_requests_are_named() {
        let old = requests(
            "[[permissions]]\nname = \"file_read\"\njustification = \"x\"\nscope = [\"/srv/a\"]\n\
             [[permissions]]\nname = \"database_read\"\njustification = \"x\"\nscope = [\"t1\", \"t2\"]\n\
             [[permissions]]\nname = \"file_write\"\njustification = \"x\"\nscope = [\"/srv/out\"]\n",
        );
        let new = requests(
            "[[permissions]]\nname = \"file_read\"\njustification = \"x\"\nscope = [\"/srv\"]\n\
             [[permissions]]\nname = \"database_read\"\njustification = \"x\"\nscope = [\"t1\"]\n\
             [[permissions]]\nname = \"network_outbound\"\njustification = \"x\"\nscope = [\"api.example.com\"]\n",
        );
        let got: Vec<(String, &str)> = permission_changes(&catalog(), &old, &new)
            .into_iter()
            .map(|c| (c.permission, c.change.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("file_read".to_string(), "grown"),
                ("database_read".to_string(), "narrowed"),
                ("network_outbound".to_string(), "new"),
                ("file_write".to_string(), "dropped"),
            ]
        );
        assert!(permission_changes(&catalog(), &old, &old).is_empty());
    }

    #[test]
    fn file_changes_compare_content_lists() {
        let a =
            "plexichat-package-contents 1\n0644 1 aa plugin.toml\n0755 2 bb bin\n0644 3 cc gone\n";
        let b = "plexichat-package-contents 1\n0644 1 aa plugin.toml\n0755 2 bd bin\n0644 4 dd new file\n";
        let got: Vec<(String, &str)> = file_changes(a, b)
            .into_iter()
            .map(|c| (c.path, c.change.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("bin".to_string(), "changed"),
                ("gone".to_string(), "removed"),
                ("new file".to_string(), "added")
            ]
        );
    }
}
