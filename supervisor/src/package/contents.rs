//! A package's content list: one line per file with its mode, size and SHA-256, in
//! byte order of path. It is what a publisher signs and what the daemon re-derives.

use std::collections::BTreeMap;

use super::tree::PinnedFile;

/// The first line of every content list (the format's version).
pub const HEADER: &str = "plexichat-package-contents 1\n";
/// A content list is at most this long (4096 entries of long paths fit).
pub const MAX_CONTENTS_BYTES: usize = 8 * 1024 * 1024;

/// The mode a package file is installed with: only whether it was executable counts.
pub fn installed_mode(mode: u32) -> u32 {
    if mode & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// The content list of `files`: each as installed (mode 0755 or 0644), sorted by the
/// bytes of its path, so the packer and the daemon render the same text.
pub fn render(files: &[PinnedFile]) -> String {
    let mut sorted: Vec<&PinnedFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut out = String::from(HEADER);
    for f in sorted {
        out.push_str(&format!(
            "{:04o} {} {} {}\n",
            installed_mode(f.mode),
            f.size,
            f.sha256,
            f.path
        ));
    }
    out
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    mode: u32,
    size: u64,
    sha256: String,
}

/// Reads a content list back, naming the first line that is not in the format.
fn parse(text: &[u8]) -> Result<BTreeMap<String, Line>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the content list is not UTF-8")?;
    let body = text
        .strip_prefix(HEADER)
        .ok_or("the content list does not start with `plexichat-package-contents 1`")?;
    let mut out = BTreeMap::new();
    for (i, line) in body.lines().enumerate() {
        let n = i + 2;
        let mut parts = line.splitn(4, ' ');
        let (Some(mode), Some(size), Some(sha), Some(path)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "content list line {n}: not `MODE SIZE SHA256 PATH`"
            ));
        };
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| format!("content list line {n}: mode `{mode}` is not octal"))?;
        let size = size
            .parse()
            .map_err(|_| format!("content list line {n}: size `{size}` is not a number"))?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("content list line {n}: `{sha}` is not a SHA-256"));
        }
        let line = Line {
            mode,
            size,
            sha256: sha.to_string(),
        };
        if out.insert(path.to_string(), line).is_some() {
            return Err(format!("content list line {n}: `{path}` is listed twice"));
        }
    }
    Ok(out)
}

/// The files a content list names, in its order (a malformed list yields none).
pub fn files(text: &str) -> Vec<PinnedFile> {
    parse(text.as_bytes())
        .map(|listed| {
            listed
                .into_iter()
                .map(|(path, l)| PinnedFile {
                    path,
                    mode: l.mode,
                    size: l.size,
                    sha256: l.sha256,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why the files received are not what `declared` lists, naming the first file that
/// differs; `None` when the daemon's rendering of them is exactly `declared`.
pub fn mismatch(declared: &[u8], files: &[PinnedFile]) -> Option<String> {
    let actual = render(files);
    if actual.as_bytes() == declared {
        return None;
    }
    let listed = match parse(declared) {
        Ok(listed) => listed,
        Err(e) => return Some(e),
    };
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        seen.insert(f.path.as_str());
        let Some(line) = listed.get(&f.path) else {
            return Some(format!(
                "`{}` is in the package but not in its content list",
                f.path
            ));
        };
        if line.sha256 != f.sha256 {
            return Some(format!(
                "`{}` has SHA-256 {}, but the content list says {}",
                f.path, f.sha256, line.sha256
            ));
        }
        if line.size != f.size {
            return Some(format!(
                "`{}` is {} bytes, but the content list says {}",
                f.path, f.size, line.size
            ));
        }
        if line.mode != installed_mode(f.mode) {
            return Some(format!(
                "`{}` has mode {:04o}, but the content list says {:04o}",
                f.path,
                installed_mode(f.mode),
                line.mode
            ));
        }
    }
    if let Some(missing) = listed.keys().find(|p| !seen.contains(p.as_str())) {
        return Some(format!(
            "`{missing}` is in the content list but not in the package"
        ));
    }
    Some("the content list is not in canonical form (order or spacing)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: u32, body: &[u8]) -> PinnedFile {
        PinnedFile {
            path: path.into(),
            mode,
            size: body.len() as u64,
            sha256: crate::install::sha256_reader(body).unwrap(),
        }
    }

    #[test]
    fn the_rendering_is_canonical_and_names_what_differs() {
        let files = vec![
            file("a/b", 0o600, b"x"),
            file("a-b", 0o700, b"yy"),
            file("plugin.toml", 0o644, b"name"),
        ];
        let text = render(&files);
        // Byte order: `-` (0x2d) sorts before `/` (0x2f), whatever the walk's order.
        let paths: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        assert_eq!(paths, ["a-b", "a/b", "plugin.toml"]);
        assert!(text.contains("0755 2 "), "{text}");
        assert!(text.contains("0644 1 "), "{text}");
        let mut reversed = files.clone();
        reversed.reverse();
        assert_eq!(render(&reversed), text);
        assert_eq!(mismatch(text.as_bytes(), &files), None);

        let mut tampered = files.clone();
        tampered[2] = file("plugin.toml", 0o644, b"nAme");
        let why = mismatch(text.as_bytes(), &tampered).unwrap();
        assert!(why.starts_with("`plugin.toml` has SHA-256"), "{why}");
        let mut exec = files.clone();
        exec[2].mode = 0o755;
        assert!(mismatch(text.as_bytes(), &exec)
            .unwrap()
            .contains("mode 0755"));
        let extra = [files.clone(), vec![file("new", 0o644, b"")]].concat();
        assert!(mismatch(text.as_bytes(), &extra)
            .unwrap()
            .contains("`new` is in the package but not"));
        assert!(mismatch(text.as_bytes(), &files[..2])
            .unwrap()
            .contains("`plugin.toml` is in the content list but not"));
        assert!(mismatch(b"junk", &files)
            .unwrap()
            .contains("does not start"));
        let twice = format!("{text}{}", text.lines().nth(1).unwrap());
        assert!(mismatch(twice.as_bytes(), &files)
            .unwrap()
            .contains("listed twice"));
    }
}
