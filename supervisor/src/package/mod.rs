//! Plugin packages on the wire: the caps and the entry-path rules both ends apply,
//! the CLI's packer (`pack`, caller's rights) and the daemon's unpacker (`unpack`).

pub mod archive;
pub mod contents;
pub mod pack;
pub mod tree;
pub mod unpack;

use std::path::{Component, Path, PathBuf};

/// The files of one package total at most this many bytes.
pub const MAX_PACKAGE_BYTES: u64 = 256 * 1024 * 1024;
/// A package holds at most this many entries (files and directories).
pub const MAX_PACKAGE_ENTRIES: u32 = 4096;
/// An entry's path is at most this many bytes.
pub const MAX_ENTRY_PATH_BYTES: usize = 1024;
/// The packer sends a file's bytes in messages of at most this size.
pub const DATA_CHUNK_BYTES: usize = 1024 * 1024;
/// The audit record keeps at most this much of the caller's origin text.
pub const MAX_ORIGIN_BYTES: usize = 512;

/// Checks one entry path: relative, "/"-separated, every component a plain name.
/// Returns it as a relative path that cannot leave the directory it is joined to.
pub fn entry_path(raw: &str) -> Result<PathBuf, String> {
    let bad = |why: &str| Err(format!("entry path {:?}: {why}", clip(raw)));
    if raw.is_empty() {
        return bad("is empty");
    }
    if raw.len() > MAX_ENTRY_PATH_BYTES {
        return bad(&format!("longer than {MAX_ENTRY_PATH_BYTES} bytes"));
    }
    // A newline would break the content list's lines; any control character is a
    // trap for the terminal that shows the path.
    if raw.chars().any(char::is_control) {
        return bad("holds a control character");
    }
    if raw.starts_with('/') {
        return bad("is absolute");
    }
    let mut out = PathBuf::new();
    for part in raw.split('/') {
        match part {
            "" => return bad("has an empty component"),
            "." | ".." => return bad("has a `.` or `..` component"),
            p if p.len() > 255 => return bad("has a component longer than 255 bytes"),
            p => out.push(p),
        }
    }
    // `split` saw every byte; this only guards the invariant.
    if !out.components().all(|c| matches!(c, Component::Normal(_))) {
        return bad("is not a plain relative path");
    }
    Ok(out)
}

/// The entry path of `rel` (relative to a package root) as it goes on the wire.
pub fn wire_path(rel: &Path) -> Option<String> {
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    parts.map(|p| p.join("/"))
}

/// At most 80 characters of caller text, for an error message.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_entries() {
        assert_eq!(
            entry_path("plugin.toml").unwrap(),
            PathBuf::from("plugin.toml")
        );
        assert_eq!(entry_path("a/b/c").unwrap(), PathBuf::from("a/b/c"));
        for (bad, why) in [
            ("", "empty"),
            ("/etc/shadow", "absolute"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a//b", "empty component"),
            ("a/", "empty component"),
            ("./a", "`.`"),
            ("a\0b", "control character"),
            ("a\nb", "control character"),
        ] {
            let e = entry_path(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        assert!(entry_path(&"a/".repeat(600)).is_err());
        assert!(entry_path(&"x".repeat(256)).is_err());
    }
}
