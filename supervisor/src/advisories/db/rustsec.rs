//! RustSec advisory-db files (`crates/<crate>/RUSTSEC-YYYY-NNNN.md`: TOML front matter
//! in a ```toml fence, then a Markdown title), parsed by the `rustsec` crate.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::{has_ext, invalid, Advisory, Affects, Database, DbError, Import};
use crate::advisories::Ecosystem;

const FENCE: &str = "```toml";

/// Imports a RustSec advisory-db checkout: `dir` holds `crates/`.
pub fn load_rustsec(dir: &Path) -> Result<Database, DbError> {
    let mut import = Import::new(dir);
    let crates = dir.join("crates");
    if !import.is_dir(&crates)? {
        return Err(DbError::Empty {
            dir: dir.display().to_string(),
        });
    }
    load_crates(&mut import, &crates)?;
    import.finish()
}

/// Every `crates/<crate>/*.md`; other files there are not advisories and are skipped.
pub(super) fn load_crates(import: &mut Import, crates: &Path) -> Result<(), DbError> {
    for krate in import.sorted_entries(crates)? {
        if !krate.is_dir {
            continue;
        }
        for file in import.sorted_entries(&krate.path)? {
            if file.is_file && has_ext(&file.path, "md") {
                let text = import.read(&file.path)?;
                let parsed = parse(import, &file.path, &text)?;
                import.add(&file.path, parsed.into_iter().collect())?;
            }
        }
    }
    Ok(())
}

/// One advisory file; `None` when it is withdrawn.
fn parse(import: &mut Import, path: &Path, text: &str) -> Result<Option<Advisory>, DbError> {
    // rustsec slices the first 20 bytes of a file that lacks the fence for its error
    // message, which panics inside a multi-byte character: check the fence first.
    if !text.starts_with(FENCE) {
        return Err(invalid(
            path,
            "line 1: a RustSec advisory starts with a ```toml front-matter fence",
        ));
    }
    let parsed = catch_unwind(AssertUnwindSafe(|| text.parse::<::rustsec::Advisory>()))
        .map_err(|_| invalid(path, "the RustSec parser panicked on this file"))?;
    let advisory = parsed.map_err(|e| invalid(path, located(text, &e.to_string())))?;
    if advisory.withdrawn() {
        import.stats.withdrawn += 1;
        return Ok(None);
    }
    let meta = &advisory.metadata;
    let affected = advisory.affected.clone().unwrap_or_default();
    Ok(Some(Advisory {
        id: meta.id.as_str().to_string(),
        ecosystem: Ecosystem::CratesIo,
        package: meta.package.as_str().to_string(),
        title: advisory.title().to_string(),
        aliases: meta
            .aliases
            .iter()
            .map(|a| a.as_str().to_string())
            .collect(),
        date: Some(meta.date.as_str().to_string()),
        severity: meta
            .cvss
            .as_ref()
            .map(|c| format!("{} {:.1} ({c})", c.severity().as_str(), c.score())),
        informational: meta.informational.as_ref().map(|i| i.as_str().to_string()),
        url: meta
            .url
            .as_ref()
            .map(|u| u.to_string())
            .or_else(|| meta.id.url()),
        file: import.rel(path),
        affects: Affects::Rustsec {
            versions: advisory.versions.clone(),
            os: affected.os,
            arch: affected.arch,
            functions: affected.functions.keys().map(|f| f.to_string()).collect(),
        },
    }))
}

/// The parser's message with its TOML position turned into a line of the file. The
/// parser numbers lines from the front matter's first line, after adding an
/// `[advisory]` line of its own when the file has none (the V4 format omits it).
fn located(text: &str, message: &str) -> String {
    let message = message.trim_start_matches("parse error: ");
    let Some(at) = message.find("at line ") else {
        return message.replace('\n', " ");
    };
    let tail = &message[at + "at line ".len()..];
    let digits: String = tail.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(toml_line) = digits.parse::<usize>() else {
        return message.replace('\n', " ");
    };
    let body = &text[FENCE.len()..];
    let skipped = body.len() - body.trim_start().len();
    let first_line = 1 + text[..FENCE.len() + skipped].matches('\n').count();
    let added = usize::from(!body.trim_start().starts_with("[advisory]"));
    let file_line = (first_line + toml_line).saturating_sub(1 + added).max(1);
    // Keep the explanation, not the snippet (its numbers are the front matter's).
    let explanation: Vec<&str> = message
        .lines()
        .skip(1)
        .filter(|l| !is_snippet(l))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("line {file_line}: {}", explanation.join(" "))
}

/// A line of the parser's source excerpt: `  |`, `3 | text`, `  |   ^^^`.
fn is_snippet(line: &str) -> bool {
    let line = line.trim_start();
    line.starts_with('|')
        || line
            .split_once('|')
            .is_some_and(|(n, _)| n.trim().parse::<usize>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_positions_become_file_lines() {
        let text = "```toml\n[advisory]\nid = \"RUSTSEC-2020-0001\"\nbad = \n```\n";
        let msg = "parse error: TOML parse error at line 3, column 7\n  |\n3 | bad = \n  |       ^\nstring values must be quoted, expected literal string\n";
        assert_eq!(
            located(text, msg),
            "line 4: string values must be quoted, expected literal string"
        );
        // V4 files omit [advisory]; the parser adds it, one line more.
        let v4 = "```toml\nid = \"RUSTSEC-2020-0001\"\nbad = \n```\n";
        let msg = "parse error: TOML parse error at line 3, column 7\n  |\n3 | bad = \n  |       ^\nexpected a value\n";
        assert_eq!(located(v4, msg), "line 3: expected a value");
        assert_eq!(located(text, "parse error: no header"), "no header");
    }
}
