//! OSV-format advisories (<https://ossf.github.io/osv-schema/>) for PyPI: explicit
//! versions and ECOSYSTEM ranges, evaluated with PEP 440 ordering (`pep440_rs`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{has_ext, invalid, Advisory, Affects, Database, DbError, Import, MAX_DB_DEPTH};
use crate::advisories::{normalize_pypi_name, Ecosystem};

const MAX_TITLE_CHARS: usize = 200;
const MAX_ID_BYTES: usize = 128;

/// A PEP 440 version as an OSV event gives it (its text kept for display).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PyVersion {
    text: String,
    version: pep440_rs::Version,
}

impl PyVersion {
    pub fn parse(text: &str) -> Result<Self, String> {
        let version = pep440_rs::Version::from_str(text.trim())
            .map_err(|e| format!("{text:?} is not a PEP 440 version: {e}"))?;
        Ok(PyVersion {
            text: text.to_string(),
            version,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// OSV's `"introduced": "0"`: before every version (pre-releases of 0 included).
    fn is_zero(&self) -> bool {
        self.text.trim() == "0"
    }
}

impl TryFrom<String> for PyVersion {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        PyVersion::parse(&text)
    }
}

impl From<PyVersion> for String {
    fn from(v: PyVersion) -> String {
        v.text
    }
}

/// One event of an OSV range, as the file spells it (`{"introduced": "1.0"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsvEvent {
    Introduced(PyVersion),
    Fixed(PyVersion),
    LastAffected(PyVersion),
    Limit(PyVersion),
}

impl OsvEvent {
    fn version(&self) -> &PyVersion {
        match self {
            OsvEvent::Introduced(v)
            | OsvEvent::Fixed(v)
            | OsvEvent::LastAffected(v)
            | OsvEvent::Limit(v) => v,
        }
    }
}

/// An ECOSYSTEM (or SEMVER) range: its events sorted by version at import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsvRange {
    pub events: Vec<OsvEvent>,
}

impl OsvRange {
    fn new(mut events: Vec<OsvEvent>) -> Self {
        events.sort_by(|a, b| event_order(a.version(), b.version()));
        OsvRange { events }
    }

    /// The OSV evaluation: walking the sorted events, `introduced` at or below the
    /// version opens the range, `fixed`/`limit` at or below it and `last_affected`
    /// below it close it.
    pub fn affects(&self, v: &pep440_rs::Version) -> bool {
        let mut affected = false;
        for event in &self.events {
            match event {
                OsvEvent::Introduced(x) if x.is_zero() || *v >= x.version => affected = true,
                OsvEvent::Fixed(x) | OsvEvent::Limit(x) if *v >= x.version => affected = false,
                OsvEvent::LastAffected(x) if *v > x.version => affected = false,
                _ => {}
            }
        }
        affected
    }
}

fn event_order(a: &PyVersion, b: &PyVersion) -> Ordering {
    match (a.is_zero(), b.is_zero()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.version.cmp(&b.version),
    }
}

/// Whether `version` is in the explicit list or any range. A version that is not
/// PEP 440 (a legacy one) matches the explicit list by its exact text only.
pub(super) fn affects(versions: &[String], ranges: &[OsvRange], version: &str) -> bool {
    let parsed = pep440_rs::Version::from_str(version.trim()).ok();
    let listed = versions.iter().any(|listed| {
        listed == version
            || parsed
                .as_ref()
                .is_some_and(|p| pep440_rs::Version::from_str(listed.trim()).is_ok_and(|l| l == *p))
    });
    listed || parsed.is_some_and(|p| ranges.iter().any(|r| r.affects(&p)))
}

/// Imports every `*.json` under `dir` (recursively) as an OSV advisory.
pub fn load_osv(dir: &Path) -> Result<Database, DbError> {
    let mut import = Import::new(dir);
    load_tree(&mut import, dir, 0)?;
    import.finish()
}

pub(super) fn load_tree(import: &mut Import, dir: &Path, depth: usize) -> Result<(), DbError> {
    if depth > MAX_DB_DEPTH {
        return Err(DbError::TooDeep {
            path: dir.display().to_string(),
            limit: MAX_DB_DEPTH,
        });
    }
    for entry in import.sorted_entries(dir)? {
        if entry.is_dir {
            load_tree(import, &entry.path, depth + 1)?;
        } else if entry.is_file && has_ext(&entry.path, "json") {
            load_file(import, &entry.path)?;
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct Record {
    id: String,
    summary: Option<String>,
    details: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    published: Option<String>,
    modified: Option<String>,
    withdrawn: Option<String>,
    #[serde(default)]
    severity: Vec<Severity>,
    #[serde(default)]
    affected: Vec<RawAffected>,
    #[serde(default)]
    references: Vec<Reference>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct Severity {
    #[serde(rename = "type")]
    kind: String,
    score: String,
}

#[derive(Deserialize)]
struct RawAffected {
    package: Option<RawPackage>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    ranges: Vec<RawRange>,
    #[serde(default)]
    severity: Vec<Severity>,
    database_specific: Option<Value>,
}

#[derive(Deserialize)]
struct RawPackage {
    ecosystem: String,
    name: String,
}

#[derive(Deserialize)]
struct RawRange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    events: Vec<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
struct Reference {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: String,
}

/// The `affected[]` entries of one package in one file.
#[derive(Default)]
struct Merged {
    versions: Vec<String>,
    ranges: Vec<OsvRange>,
    severity: Option<String>,
}

/// One OSV file: one advisory per PyPI package it names.
pub(super) fn load_file(import: &mut Import, path: &Path) -> Result<(), DbError> {
    let text = import.read(path)?;
    let record: Record = serde_json::from_str(&text)
        .map_err(|e| invalid(path, format!("not an OSV record: {e}")))?;
    let bad = |message: String| invalid(path, message);
    check_id(&record.id).map_err(bad)?;
    if record.withdrawn.is_some() {
        import.stats.withdrawn += 1;
        return Ok(());
    }
    // Several affected[] entries may name one package: their versions are one set.
    let mut packages: BTreeMap<String, Merged> = BTreeMap::new();
    for (i, affected) in record.affected.iter().enumerate() {
        let Some(package) = &affected.package else {
            continue;
        };
        if package.ecosystem != "PyPI" {
            import.stats.other_ecosystems += 1;
            continue;
        }
        let name = normalize_pypi_name(&package.name);
        if name.is_empty() {
            return Err(bad(format!("affected[{i}].package.name is empty")));
        }
        let ranges = ranges(&affected.ranges).map_err(|m| bad(format!("affected[{i}].{m}")))?;
        let merged = packages.entry(name).or_default();
        merged.versions.extend(affected.versions.iter().cloned());
        merged.ranges.extend(ranges);
        if merged.severity.is_none() {
            merged.severity =
                severity_text(&affected.severity, affected.database_specific.as_ref());
        }
    }
    let severity = severity_text(&record.severity, record.database_specific.as_ref());
    let advisories = packages
        .into_iter()
        .map(|(package, merged)| Advisory {
            id: record.id.clone(),
            ecosystem: Ecosystem::PyPI,
            package,
            title: title(&record),
            aliases: record.aliases.clone(),
            date: record.published.clone().or_else(|| record.modified.clone()),
            severity: severity.clone().or(merged.severity),
            informational: None,
            url: Some(url(&record)),
            file: import.rel(path),
            affects: Affects::Osv {
                versions: merged.versions,
                ranges: merged.ranges,
            },
        })
        .collect();
    import.add(path, advisories)
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "field `id` {id:?} is not an advisory ID (printable ASCII, at most {MAX_ID_BYTES} bytes)"
        ));
    }
    Ok(())
}

/// The ECOSYSTEM and SEMVER ranges, each event checked; GIT (commit) ranges dropped.
fn ranges(raw: &[RawRange]) -> Result<Vec<OsvRange>, String> {
    let mut out = Vec::new();
    for (j, range) in raw.iter().enumerate() {
        if !matches!(range.kind.as_str(), "ECOSYSTEM" | "SEMVER") {
            continue;
        }
        let mut events = Vec::new();
        for (k, event) in range.events.iter().enumerate() {
            let at = format!("ranges[{j}].events[{k}]");
            let mut fields = event.iter();
            let (Some((key, value)), None) = (fields.next(), fields.next()) else {
                return Err(format!("{at}: an event has exactly one field"));
            };
            let Some(text) = value.as_str() else {
                return Err(format!("{at}.{key}: not a string"));
            };
            let version = PyVersion::parse(text).map_err(|e| format!("{at}.{key}: {e}"))?;
            events.push(match key.as_str() {
                "introduced" => OsvEvent::Introduced(version),
                "fixed" => OsvEvent::Fixed(version),
                "last_affected" => OsvEvent::LastAffected(version),
                "limit" => OsvEvent::Limit(version),
                other => return Err(format!("{at}: unknown event {other:?}")),
            });
        }
        if !events.iter().any(|e| matches!(e, OsvEvent::Introduced(_))) {
            return Err(format!("ranges[{j}]: no `introduced` event"));
        }
        out.push(OsvRange::new(events));
    }
    Ok(out)
}

fn severity_text(scores: &[Severity], specific: Option<&Value>) -> Option<String> {
    if !scores.is_empty() {
        let parts: Vec<String> = scores
            .iter()
            .map(|s| format!("{} {}", s.kind, s.score))
            .collect();
        return Some(parts.join("; "));
    }
    specific
        .and_then(|v| v.get("severity"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn title(record: &Record) -> String {
    let text = record
        .summary
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| record.details.as_deref().and_then(|d| d.lines().next()))
        .unwrap_or("(no summary)")
        .trim();
    let clipped: String = text.chars().take(MAX_TITLE_CHARS).collect();
    if clipped.len() < text.len() {
        format!("{clipped}…")
    } else {
        clipped
    }
}

fn url(record: &Record) -> String {
    let of_kind = |kind: &str| {
        record
            .references
            .iter()
            .find(|r| r.kind.as_deref() == Some(kind))
            .map(|r| r.url.clone())
    };
    of_kind("ADVISORY")
        .or_else(|| of_kind("WEB"))
        .unwrap_or_else(|| format!("https://osv.dev/vulnerability/{}", record.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> pep440_rs::Version {
        pep440_rs::Version::from_str(s).unwrap()
    }

    fn range(events: &[(&str, &str)]) -> OsvRange {
        OsvRange::new(
            events
                .iter()
                .map(|(k, x)| {
                    let x = PyVersion::parse(x).unwrap();
                    match *k {
                        "introduced" => OsvEvent::Introduced(x),
                        "fixed" => OsvEvent::Fixed(x),
                        "last_affected" => OsvEvent::LastAffected(x),
                        _ => OsvEvent::Limit(x),
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn introduced_fixed_ranges_with_pre_releases() {
        let r = range(&[("introduced", "1.0"), ("fixed", "2.0.1")]);
        for (version, affected) in [
            ("0.9", false),
            ("1.0a1", false), // a pre-release of 1.0 comes before it
            ("1.0", true),
            ("1.0.0", true), // trailing zeros are insignificant
            ("1.5.post1", true),
            ("2.0.1rc1", true), // before the fix
            ("2.0.1.dev3", true),
            ("2.0.1", false),
            ("2.0.1.post1", false),
            ("3!0.1", false), // a later epoch is after everything of epoch 0
        ] {
            assert_eq!(r.affects(&v(version)), affected, "{version}");
        }
    }

    #[test]
    fn zero_last_affected_and_several_intervals() {
        let r = range(&[("introduced", "0"), ("last_affected", "1.4")]);
        assert!(r.affects(&v("0.dev0")));
        assert!(r.affects(&v("1.4")));
        assert!(!r.affects(&v("1.4.post1")));
        assert!(!r.affects(&v("1.5")));
        // Unsorted in the file; two intervals.
        let r = range(&[
            ("introduced", "2.0"),
            ("fixed", "2.5"),
            ("introduced", "1.0"),
            ("fixed", "1.5"),
        ]);
        for (version, affected) in [("1.2", true), ("1.7", false), ("2.2", true), ("2.6", false)] {
            assert_eq!(r.affects(&v(version)), affected, "{version}");
        }
        // Introduced with no end: everything after.
        let r = range(&[("introduced", "3.0b2")]);
        assert!(!r.affects(&v("3.0b1")));
        assert!(r.affects(&v("3.0b2")));
        assert!(r.affects(&v("99")));
    }

    #[test]
    fn explicit_versions_match_by_pep440_equality_or_text() {
        let listed = vec!["1.0".to_string(), "2004d".to_string()];
        assert!(affects(&listed, &[], "1.0.0"));
        assert!(affects(&listed, &[], "1.0"));
        assert!(affects(&listed, &[], "2004d"));
        assert!(!affects(&listed, &[], "1.0.1"));
        assert!(!affects(&listed, &[], "2004e"));
    }

    #[test]
    fn py_versions_round_trip_through_json() {
        let r = range(&[("introduced", "0"), ("fixed", "1.0.post2")]);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"events":[{"introduced":"0"},{"fixed":"1.0.post2"}]}"#
        );
        assert_eq!(serde_json::from_str::<OsvRange>(&json).unwrap(), r);
        let err = serde_json::from_str::<OsvRange>(r#"{"events":[{"fixed":"not a version"}]}"#)
            .unwrap_err();
        assert!(err.to_string().contains("not a PEP 440 version"), "{err}");
    }
}
