//! Tests of advisory import and matching: RustSec and OSV files in temporary
//! directories, the fixture database, and refusals that name the file.

use std::fs;

use super::*;
use crate::advisories::test_support::{auditable_test_binary, fixture_db, FIXTURE_ITOA_VERSION};
use crate::advisories::{python_dependencies, rust_dependencies};

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn rustsec_file(id: &str, package: &str, extra: &str, versions: &str) -> String {
    format!(
        "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{package}\"\ndate = \"2024-01-02\"\n\
         {extra}\n\n[versions]\n{versions}\n```\n\n# {id} title\n\nDescription.\n"
    )
}

fn dep(ecosystem: Ecosystem, name: &str, version: &str) -> Dependency {
    Dependency {
        ecosystem,
        name: name.into(),
        version: version.into(),
    }
}

fn ids(findings: &[Finding]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (f.advisory_id.clone(), f.version.clone()))
        .collect()
}

#[test]
fn rustsec_patched_unaffected_withdrawn_informational() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(
        root,
        "crates/demo/RUSTSEC-2024-0001.md",
        &rustsec_file(
            "RUSTSEC-2024-0001",
            "demo",
            "cvss = \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N\"\naliases = [\"CVE-2024-1\"]",
            "patched = [\">= 1.2.3, < 1.3.0\", \">= 1.3.4\"]\nunaffected = [\"< 0.5.0\"]",
        ),
    );
    put(
        root,
        "crates/demo/RUSTSEC-2024-0002.md",
        &rustsec_file(
            "RUSTSEC-2024-0002",
            "demo",
            "withdrawn = \"2024-02-01\"",
            "patched = []",
        ),
    );
    put(
        root,
        "crates/old/RUSTSEC-2024-0003.md",
        &rustsec_file(
            "RUSTSEC-2024-0003",
            "old",
            "informational = \"unmaintained\"",
            "patched = []",
        ),
    );
    put(
        root,
        "crates/winonly/RUSTSEC-2024-0004.md",
        &rustsec_file("RUSTSEC-2024-0004", "winonly", "", "patched = []")
            .replace("[versions]", "[affected]\nos = [\"windows\"]\n\n[versions]"),
    );
    // Not advisories: skipped.
    put(root, "crates/demo/notes.txt", "not toml");
    put(root, "README.md", "# advisory-db");
    let db = load_dir(root).unwrap();
    assert_eq!(db.len(), 3, "{:#?}", db.advisories);
    assert_eq!(db.stats.withdrawn, 1);
    assert_eq!(db.stats.files, 4);

    let deps: Vec<Dependency> = [
        "0.4.0",
        "1.0.0",
        "1.2.5",
        "1.3.2",
        "1.3.4",
        "2.0.0",
        "1.3.0-rc.1",
        "1.3.4-rc.1",
    ]
    .iter()
    .map(|v| dep(Ecosystem::CratesIo, "demo", v))
    .chain([
        dep(Ecosystem::CratesIo, "old", "9.9.9"),
        dep(Ecosystem::CratesIo, "winonly", "1.0.0"),
        // Another ecosystem's package of the same name is another package.
        dep(Ecosystem::PyPI, "demo", "1.0.0"),
    ])
    .collect();
    let found = db.matches(&deps);
    assert_eq!(
        ids(&found),
        [
            ("RUSTSEC-2024-0001".into(), "1.0.0".into()),
            // Pre-releases sit where precedence puts them: 1.3.0-rc.1 is inside
            // the patched ">= 1.2.3, < 1.3.0", 1.3.4-rc.1 before the fix in 1.3.4.
            ("RUSTSEC-2024-0001".into(), "1.3.2".into()),
            ("RUSTSEC-2024-0001".into(), "1.3.4-rc.1".into()),
            ("RUSTSEC-2024-0003".into(), "9.9.9".into()),
        ]
    );
    let first = &found[0];
    assert_eq!(first.title, "RUSTSEC-2024-0001 title");
    assert_eq!(first.patched, "patched: >=1.2.3, <1.3.0; >=1.3.4");
    assert_eq!(
        first.severity.as_deref(),
        Some("high 7.5 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N)")
    );
    assert_eq!(first.aliases, ["CVE-2024-1"]);
    assert_eq!(first.informational, None);
    assert_eq!(
        first.url.as_deref(),
        Some("https://rustsec.org/advisories/RUSTSEC-2024-0001")
    );
    assert_eq!(
        first.to_string(),
        "RUSTSEC-2024-0001 demo 1.0.0 (crates.io): RUSTSEC-2024-0001 title \
         [high 7.5 (CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N)] \
         (patched: >=1.2.3, <1.3.0; >=1.3.4) https://rustsec.org/advisories/RUSTSEC-2024-0001"
    );
    let old = &found[3];
    assert_eq!(old.informational.as_deref(), Some("unmaintained"));
    assert_eq!(old.patched, "no patched version");
    assert!(
        old.to_string().contains("[informational: unmaintained]"),
        "{old}"
    );
}

const OSV: &str = r#"{
  "id": "GHSA-aaaa-bbbb-cccc",
  "summary": "Flask-SQLAlchemy does a bad thing",
  "aliases": ["CVE-2024-2"],
  "database_specific": {"severity": "MODERATE"},
  "affected": [
    {"package": {"ecosystem": "PyPI", "name": "Flask_SQLAlchemy"},
     "versions": ["0.9.1", "legacy-1"],
     "ranges": [
       {"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}, {"fixed": "2.5.1"}]},
       {"type": "ECOSYSTEM", "events": [{"introduced": "3.0.0a1"}, {"last_affected": "3.0.2"}]},
       {"type": "GIT", "repo": "x", "events": [{"introduced": "0"}, {"fixed": "deadbeef"}]}
     ]},
    {"package": {"ecosystem": "npm", "name": "flask-sqlalchemy"},
     "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}]}
  ],
  "references": [{"type": "WEB", "url": "https://example.invalid/w"},
                 {"type": "ADVISORY", "url": "https://example.invalid/a"}]
}"#;

#[test]
fn osv_versions_ranges_last_affected_and_pre_releases() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "pypi/GHSA-aaaa-bbbb-cccc.json", OSV);
    let db = load_dir(dir.path()).unwrap();
    assert_eq!(db.len(), 1);
    assert_eq!(db.stats.other_ecosystems, 1);
    assert_eq!(db.advisories[0].package, "flask-sqlalchemy");
    let deps: Vec<Dependency> = [
        "0.9.1",
        "0.9.2",
        "legacy-1",
        "1.9",
        "2.0",
        "2.5.1rc1",
        "2.5.1",
        "3.0.0a1",
        "3.0.2",
        "3.0.2.post1",
    ]
    .iter()
    .map(|v| dep(Ecosystem::PyPI, "flask-sqlalchemy", v))
    .collect();
    let found: Vec<String> = db.matches(&deps).into_iter().map(|f| f.version).collect();
    assert_eq!(
        found,
        ["0.9.1", "2.0", "2.5.1rc1", "3.0.0a1", "3.0.2", "legacy-1"]
    );
    let f = &db.matches(&deps[..1])[0];
    assert_eq!(f.severity.as_deref(), Some("MODERATE"));
    assert_eq!(f.url.as_deref(), Some("https://example.invalid/a"));
    assert_eq!(f.patched, "fixed in 2.5.1");
    assert_eq!(f.title, "Flask-SQLAlchemy does a bad thing");
}

#[test]
fn osv_withdrawn_and_load_osv_anywhere_below() {
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "a/b/one.json", OSV);
    put(
        dir.path(),
        "two.json",
        &OSV.replace("GHSA-aaaa-bbbb-cccc", "PYSEC-2024-9").replacen(
            "\"summary\"",
            "\"withdrawn\": \"2024-05-01T00:00:00Z\", \"summary\"",
            1,
        ),
    );
    let db = load_osv(dir.path()).unwrap();
    assert_eq!(db.len(), 1);
    assert_eq!(db.stats.withdrawn, 1);
    // load_dir reads only the top level, osv/ and pypi/: a/b is not an OSV directory.
    let db = load_dir(dir.path()).unwrap();
    assert_eq!((db.len(), db.stats.withdrawn), (0, 1));
}

/// Loads a directory holding one good advisory and `bad` at `rel`; the whole import
/// must be refused with an error naming `rel` and containing `why`.
fn refused(rel: &str, bad: &str, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "crates/good/RUSTSEC-2024-0100.md",
        &rustsec_file("RUSTSEC-2024-0100", "good", "", "patched = []"),
    );
    put(dir.path(), rel, bad);
    let err = load_dir(dir.path()).unwrap_err().to_string();
    eprintln!("refused: {err}");
    assert!(err.contains(rel), "{rel}: error names the file: {err}");
    assert!(err.contains(why), "{rel}: {why:?} not in: {err}");
}

#[test]
fn malformed_rustsec_files_refuse_the_import() {
    let good = rustsec_file("RUSTSEC-2024-0200", "bad", "", "patched = [\">= 1.0\"]");
    refused(
        "crates/bad/RUSTSEC-2024-0200.md",
        &good.replace("date = \"2024-01-02\"", "date = 2024-01-02x"),
        "line 5:",
    );
    refused(
        "crates/bad/RUSTSEC-2024-0200.md",
        &good.replace("date = \"2024-01-02\"\n", ""),
        "date",
    );
    refused(
        "crates/bad/RUSTSEC-2024-0200.md",
        &good.replace(">= 1.0", "not a requirement"),
        "line 9:",
    );
    refused(
        "crates/bad/RUSTSEC-2024-0200.md",
        &good.replace("# RUSTSEC-2024-0200 title", "no title here"),
        "header",
    );
    // A multi-byte character across byte 20 of a file without the fence: rustsec
    // would panic slicing it for its message.
    refused(
        "crates/bad/RUSTSEC-2024-0200.md",
        "not an advisory at aéé all, really",
        "line 1: a RustSec advisory starts with a ```toml",
    );
}

#[test]
fn malformed_osv_files_refuse_the_import() {
    refused(
        "osv/x.json",
        "{\"id\": \"X-1\",\n \"affected\": [}",
        "line 2 column",
    );
    refused(
        "osv/x.json",
        "{\"summary\": \"no id\"}",
        "missing field `id`",
    );
    refused(
        "pypi/x.json",
        &OSV.replace("\"fixed\": \"2.5.1\"", "\"fixed\": \"two point five\""),
        "affected[0].ranges[0].events[1].fixed: \"two point five\" is not a PEP 440 version",
    );
    refused(
        "top.json",
        &OSV.replace("{\"introduced\": \"2.0\"}, ", ""),
        "affected[0].ranges[0]: no `introduced` event",
    );
    refused(
        "top.json",
        &OSV.replace(
            "{\"introduced\": \"2.0\"}",
            "{\"introduced\": \"2.0\", \"fixed\": \"3\"}",
        ),
        "exactly one field",
    );
    refused(
        "top.json",
        &OSV.replace("GHSA-aaaa-bbbb-cccc", "has space"),
        "field `id`",
    );
    refused("top.json", "\u{feff}not json", "not an OSV record");
}

#[test]
fn links_caps_duplicates_and_empty_imports_are_refused() {
    // The same ID in two files.
    refused(
        "crates/other/RUSTSEC-2024-0100.md",
        &rustsec_file("RUSTSEC-2024-0100", "other", "", "patched = []"),
        "advisory RUSTSEC-2024-0100 is in both crates/good/RUSTSEC-2024-0100.md and",
    );
    // One file over the per-file cap.
    refused(
        "osv/big.json",
        &" ".repeat(MAX_DB_FILE_BYTES as usize + 1),
        "cap on one advisory file",
    );
    // Not UTF-8.
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "osv/ok.json", OSV);
    fs::write(dir.path().join("osv/latin1.json"), b"{\"id\": \"caf\xe9\"}").unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("latin1.json: not UTF-8"), "{err}");
    // A symbolic link anywhere walked.
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "osv/ok.json", OSV);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("osv/passwd.json")).unwrap();
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DbError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("osv/passwd.json"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/tmp", dir.path().join("crates")).unwrap();
    assert!(matches!(load_dir(dir.path()), Err(DbError::Symlink { .. })));
    // Nothing to import: refused rather than replacing a database with nothing.
    let dir = tempfile::tempdir().unwrap();
    put(dir.path(), "README.md", "hello");
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DbError::Empty { .. }), "{err}");
    assert!(matches!(
        load_rustsec(dir.path()),
        Err(DbError::Empty { .. })
    ));
    // Too deep.
    let dir = tempfile::tempdir().unwrap();
    let deep: Vec<String> = (0..=MAX_DB_DEPTH).map(|i| format!("d{i}")).collect();
    put(&dir.path().join("osv").join(deep.join("/")), "x.json", OSV);
    let err = load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DbError::TooDeep { .. }), "{err}");
}

#[test]
fn database_json_round_trip_and_refusals() {
    let db = load_dir(&fixture_db()).unwrap();
    let json = db.to_json().unwrap();
    let back = Database::from_json(&json).unwrap();
    assert_eq!(back, db);
    let deps = [
        dep(Ecosystem::CratesIo, "itoa", FIXTURE_ITOA_VERSION),
        dep(Ecosystem::PyPI, "Requests", "2.31.0"),
    ];
    assert_eq!(back.matches(&deps), db.matches(&deps));
    let err = Database::from_json(&json.replace("\"format\":1", "\"format\":9")).unwrap_err();
    assert!(err.to_string().contains("format 9"), "{err}");
    let err = Database::from_json(&json.replace(">=1.0.20", "nonsense")).unwrap_err();
    assert!(matches!(err, DbError::Stored(_)), "{err}");
    let err = Database::from_json(&json.replace("\"2.32.0\"", "\"x.y\"")).unwrap_err();
    assert!(err.to_string().contains("PEP 440"), "{err}");
}

#[test]
fn fixture_database_flags_exactly_the_fixture_versions() {
    let db = load_dir(&fixture_db()).unwrap();
    assert_eq!(db.len(), 3, "{:#?}", db.advisories);
    assert_eq!(db.stats.withdrawn, 1);
    let deps = [
        dep(Ecosystem::CratesIo, "itoa", FIXTURE_ITOA_VERSION),
        dep(Ecosystem::CratesIo, "itoa", "1.0.20"),
        dep(Ecosystem::CratesIo, "memchr", "2.8.3"),
        dep(Ecosystem::CratesIo, "serde_json", "1.0.154"),
        dep(Ecosystem::PyPI, "requests", "2.31.0"),
        dep(Ecosystem::PyPI, "requests", "2.32.0"),
    ];
    assert_eq!(
        ids(&db.matches(&deps)),
        [
            ("PYSEC-2099-1".into(), "2.31.0".into()),
            ("RUSTSEC-2099-0001".into(), FIXTURE_ITOA_VERSION.into()),
        ]
    );
    // A vendored dist-info, read as install reads it, matches too.
    let pkg = tempfile::tempdir().unwrap();
    put(
        pkg.path(),
        "vendor/requests-2.31.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n",
    );
    let found = db.matches(&python_dependencies(pkg.path()).unwrap());
    assert_eq!(ids(&found), [("PYSEC-2099-1".into(), "2.31.0".into())]);
}

#[test]
fn real_auditable_binary_matches_the_fixture_database() {
    let Some(bin) = auditable_test_binary() else {
        return;
    };
    let db = load_dir(&fixture_db()).unwrap();
    let deps = rust_dependencies(&bin).unwrap().dependencies();
    let found = db.matches(&deps);
    assert_eq!(
        ids(&found),
        [("RUSTSEC-2099-0001".into(), FIXTURE_ITOA_VERSION.into())],
        "{found:#?}"
    );
    assert_eq!(found[0].package, "itoa");
    assert!(found[0]
        .severity
        .as_deref()
        .unwrap_or("")
        .starts_with("critical 9.8"));
}

/// The real RustSec advisory-db imports whole: PLEXICHAT_TEST_ADVISORY_DB=<checkout>.
#[test]
fn real_advisory_db_imports_when_given() {
    let Some(dir) = std::env::var_os("PLEXICHAT_TEST_ADVISORY_DB") else {
        eprintln!("SKIP: PLEXICHAT_TEST_ADVISORY_DB is not set (a RustSec advisory-db checkout)");
        return;
    };
    let started = std::time::Instant::now();
    let db = load_dir(Path::new(&dir)).unwrap();
    eprintln!(
        "{} advisories, {:?}, in {:?}",
        db.len(),
        db.stats,
        started.elapsed()
    );
    assert!(db.len() > 500);
}

/// Nesting a parser would recurse into is refused by the parsers' own depth limits,
/// not a stack overflow (which would abort the daemon).
#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep =
        |open: &str, close: &str| format!("{}{}", open.repeat(200_000), close.repeat(200_000));
    let toml = rustsec_file(
        "RUSTSEC-2024-0300",
        "deep",
        &format!("x = {}", deep("[", "]")),
        "patched = []",
    );
    let json = format!(
        "{{\"id\": \"X-1\", \"database_specific\": {}}}",
        deep("[", "]")
    );
    for (rel, text, why) in [
        ("crates/deep/RUSTSEC-2024-0300.md", toml, "recursion"),
        ("osv/deep.json", json, "recursion limit"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), rel, &text);
        let err = load_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains(rel) && err.contains(why), "{err}");
    }
}
