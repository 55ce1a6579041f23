//! The distributions vendored into a Python plugin package (`vendor/`, where
//! `pip install --target` puts them): the `Name:`/`Version:` of each one's metadata.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::{io_at, open_regular, DepsError};
use crate::advisories::{normalize_pypi_name, Dependency, Ecosystem};

/// The most of a `METADATA`/`PKG-INFO` file read: its header block comes first and is
/// short; the long description after it is never read.
pub const MAX_METADATA_HEADER_BYTES: u64 = 64 * 1024;
/// The most directory entries walked under `vendor/` (a package holds at most 4096).
pub const MAX_VENDOR_ENTRIES: usize = 16 * 1024;
/// The deepest directory walked under `vendor/`.
pub const MAX_VENDOR_DEPTH: usize = 16;

const MAX_NAME_BYTES: usize = 256;
const MAX_VERSION_BYTES: usize = 128;

/// Every `*.dist-info/METADATA` and `*.egg-info/PKG-INFO` (or `*.egg-info` file) under
/// `package_dir/vendor`, sorted and deduplicated; none when there is no `vendor/`.
/// A symbolic link anywhere there is refused, not followed (a package holds none).
pub fn python_dependencies(package_dir: &Path) -> Result<Vec<Dependency>, DepsError> {
    let vendor = package_dir.join("vendor");
    match fs::symlink_metadata(&vendor) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_at(&vendor)(e)),
        Ok(m) if m.file_type().is_symlink() => {
            return Err(DepsError::Symlink {
                path: vendor.display().to_string(),
            })
        }
        Ok(m) if !m.is_dir() => {
            return Err(DepsError::Metadata {
                path: vendor.display().to_string(),
                message: "is not a directory".into(),
            })
        }
        Ok(_) => {}
    }
    let mut walk = Walk {
        vendor: &vendor,
        entries: 0,
        found: BTreeSet::new(),
    };
    walk.dir(&vendor, 0)?;
    Ok(walk.found.into_iter().collect())
}

struct Walk<'a> {
    vendor: &'a Path,
    entries: usize,
    found: BTreeSet<Dependency>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, depth: usize) -> Result<(), DepsError> {
        if depth > MAX_VENDOR_DEPTH {
            return Err(DepsError::Metadata {
                path: dir.display().to_string(),
                message: format!("nested deeper than {MAX_VENDOR_DEPTH} directories under vendor/"),
            });
        }
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_at(dir))? {
            let entry = entry.map_err(io_at(dir))?;
            self.entries += 1;
            if self.entries > MAX_VENDOR_ENTRIES {
                return Err(DepsError::TooManyEntries {
                    path: self.vendor.display().to_string(),
                    limit: MAX_VENDOR_ENTRIES,
                });
            }
            entries.push(entry);
        }
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            // DirEntry::file_type does not follow a link.
            let kind = entry.file_type().map_err(io_at(&path))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if kind.is_symlink() {
                return Err(DepsError::Symlink {
                    path: path.display().to_string(),
                });
            } else if kind.is_dir() && name.ends_with(".dist-info") {
                self.metadata(&path.join("METADATA"))?;
            } else if kind.is_dir() && name.ends_with(".egg-info") {
                self.metadata(&path.join("PKG-INFO"))?;
            } else if kind.is_file() && name.ends_with(".egg-info") {
                // distutils' single-file form: the file is the PKG-INFO.
                self.metadata(&path)?;
            } else if kind.is_dir() {
                self.dir(&path, depth + 1)?;
            }
        }
        Ok(())
    }

    fn metadata(&mut self, path: &Path) -> Result<(), DepsError> {
        let (file, _) = open_regular(path)?;
        let mut bytes = Vec::new();
        file.take(MAX_METADATA_HEADER_BYTES)
            .read_to_end(&mut bytes)
            .map_err(io_at(path))?;
        let (name, version) = parse_header(&bytes).map_err(|message| DepsError::Metadata {
            path: path.display().to_string(),
            message,
        })?;
        self.found.insert(Dependency {
            ecosystem: Ecosystem::PyPI,
            name: normalize_pypi_name(&name),
            version,
        });
        Ok(())
    }
}

/// The `Name:` and `Version:` of a core-metadata header block (RFC 822 style: it ends
/// at the first blank line; continuation lines start with whitespace).
fn parse_header(bytes: &[u8]) -> Result<(String, String), String> {
    let text = String::from_utf8_lossy(bytes);
    let mut name = None;
    let mut version = None;
    let mut ended = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            ended = true;
            break;
        }
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "name" => &mut name,
            "version" => &mut version,
            _ => continue,
        };
        // The first occurrence counts, as in email.parser's get().
        slot.get_or_insert_with(|| value.trim().to_string());
    }
    let cut = !ended && bytes.len() as u64 >= MAX_METADATA_HEADER_BYTES;
    let missing = |field: &str| {
        if cut {
            format!(
                "no `{field}:` header in the first {MAX_METADATA_HEADER_BYTES} bytes \
                 (the header block is not allowed to be longer)"
            )
        } else {
            format!("no `{field}:` header in the metadata's header block")
        }
    };
    let name = name.ok_or_else(|| missing("Name"))?;
    let version = version.ok_or_else(|| missing("Version"))?;
    check_name(&name)?;
    check_version(&version)?;
    Ok((name, version))
}

/// PEP 508 names: ASCII letters, digits, `-`, `_`, `.`, starting and ending with a
/// letter or digit.
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`Name: {}` is not a valid distribution name (PEP 508: ASCII letters, digits, \
             `-`, `_`, `.`, at most {MAX_NAME_BYTES} bytes)",
            clip(name)
        ))
    }
}

/// Any printable version string is kept (a legacy non-PEP 440 one too: it is shown,
/// and matched against advisories by exact text only).
fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version.len() <= MAX_VERSION_BYTES
        && version.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`Version: {}` is not a version (printable ASCII without spaces, at most \
             {MAX_VERSION_BYTES} bytes)",
            clip(version)
        ))
    }
}

fn clip(s: &str) -> String {
    let clipped: String = s.chars().take(64).collect();
    if clipped.len() < s.len() {
        format!("{}…", clipped.escape_debug())
    } else {
        clipped.escape_debug().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn deps(root: &Path) -> Vec<(String, String)> {
        python_dependencies(root)
            .unwrap()
            .into_iter()
            .map(|d| {
                assert_eq!(d.ecosystem, Ecosystem::PyPI);
                (d.name, d.version)
            })
            .collect()
    }

    #[test]
    fn vendored_distributions_with_odd_names() {
        let pkg = tempfile::tempdir().unwrap();
        let root = pkg.path();
        put(
            root,
            "vendor/Zope.Interface-6.1.dist-info/METADATA",
            "Metadata-Version: 2.1\r\nNAME: Zope.Interface\r\nversion: 6.1\r\n\r\nName: evil\r\n",
        );
        put(
            root,
            "vendor/my_pkg-1.0rc1.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: My__Pkg\nSummary: a summary\n  continued: Version: 9\n\
             Version: 1.0rc1\nVersion: 2.0\n\nVersion: 3.0\n",
        );
        put(
            root,
            "vendor/legacy.egg-info/PKG-INFO",
            "Metadata-Version: 1.0\nName: legacy-thing\nVersion: 2004d\n",
        );
        put(
            root,
            "vendor/single-0.1.egg-info",
            "Name: single\nVersion: 0.1\n",
        );
        // A distribution vendored inside another one.
        put(
            root,
            "vendor/outer/_vendor/inner-2.0.dist-info/METADATA",
            "Name: inner\nVersion: 2.0\n",
        );
        // Neither a dist-info nor an egg-info: not read.
        put(
            root,
            "vendor/requests/__init__.py",
            "Name: nope\nVersion: 0\n",
        );
        assert_eq!(
            deps(root),
            [
                ("inner".into(), "2.0".into()),
                ("legacy-thing".into(), "2004d".into()),
                ("my-pkg".into(), "1.0rc1".into()),
                ("single".into(), "0.1".into()),
                ("zope-interface".into(), "6.1".into()),
            ]
        );
    }

    #[test]
    fn no_vendor_directory_means_none() {
        let pkg = tempfile::tempdir().unwrap();
        assert!(python_dependencies(pkg.path()).unwrap().is_empty());
    }

    #[test]
    fn malformed_metadata_is_refused_naming_the_file() {
        for (text, why) in [
            ("Metadata-Version: 2.1\nVersion: 1.0\n", "no `Name:` header"),
            ("Name: x\n\nVersion: 1.0\n", "no `Version:` header"),
            (
                "Name: -bad-\nVersion: 1.0\n",
                "not a valid distribution name",
            ),
            ("Name: ok\nVersion: 1.0 beta\n", "is not a version"),
        ] {
            let pkg = tempfile::tempdir().unwrap();
            put(pkg.path(), "vendor/x-1.0.dist-info/METADATA", text);
            let err = python_dependencies(pkg.path()).unwrap_err().to_string();
            assert!(err.contains("x-1.0.dist-info/METADATA"), "{err}");
            assert!(err.contains(why), "{text:?}: {err}");
        }
        // A dist-info without its METADATA.
        let pkg = tempfile::tempdir().unwrap();
        fs::create_dir_all(pkg.path().join("vendor/y-1.dist-info")).unwrap();
        let err = python_dependencies(pkg.path()).unwrap_err().to_string();
        assert!(err.contains("y-1.dist-info/METADATA"), "{err}");
    }

    #[test]
    fn only_the_capped_header_block_is_read() {
        let pkg = tempfile::tempdir().unwrap();
        let filler = "X-Filler: y\n".repeat(MAX_METADATA_HEADER_BYTES as usize / 12 + 1);
        put(
            pkg.path(),
            "vendor/big-1.dist-info/METADATA",
            &format!("{filler}Name: big\nVersion: 1\n"),
        );
        let err = python_dependencies(pkg.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("first {MAX_METADATA_HEADER_BYTES} bytes")),
            "{err}"
        );
        // Name and Version first, then a huge description: fine.
        let pkg = tempfile::tempdir().unwrap();
        put(
            pkg.path(),
            "vendor/big-1.dist-info/METADATA",
            &format!("Name: big\nVersion: 1\n{filler}"),
        );
        assert_eq!(deps(pkg.path()), [("big".into(), "1".into())]);
    }

    #[test]
    fn symlinks_are_refused_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        put(outside.path(), "METADATA", "Name: outside\nVersion: 1\n");
        // A link to a METADATA file.
        let pkg = tempfile::tempdir().unwrap();
        fs::create_dir_all(pkg.path().join("vendor/a-1.dist-info")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("METADATA"),
            pkg.path().join("vendor/a-1.dist-info/METADATA"),
        )
        .unwrap();
        let err = python_dependencies(pkg.path()).unwrap_err();
        assert!(matches!(err, DepsError::Symlink { .. }), "{err}");
        // A link standing for a dist-info directory, and vendor/ itself a link.
        let pkg = tempfile::tempdir().unwrap();
        fs::create_dir_all(pkg.path().join("vendor")).unwrap();
        std::os::unix::fs::symlink(outside.path(), pkg.path().join("vendor/b-1.dist-info"))
            .unwrap();
        let err = python_dependencies(pkg.path()).unwrap_err();
        assert!(err.to_string().contains("b-1.dist-info"), "{err}");
        let pkg = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), pkg.path().join("vendor")).unwrap();
        let err = python_dependencies(pkg.path()).unwrap_err();
        assert!(matches!(err, DepsError::Symlink { .. }), "{err}");
    }

    #[test]
    fn depth_is_capped() {
        let pkg = tempfile::tempdir().unwrap();
        let deep = (0..=MAX_VENDOR_DEPTH + 1)
            .map(|i| format!("d{i}"))
            .collect::<Vec<_>>();
        fs::create_dir_all(pkg.path().join("vendor").join(deep.join("/"))).unwrap();
        let err = python_dependencies(pkg.path()).unwrap_err().to_string();
        assert!(err.contains("nested deeper than"), "{err}");
    }
}
