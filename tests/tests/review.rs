//! The review workbench end to end: dependencies read from a `cargo auditable` binary
//! and a Python package's vendored distributions, an offline advisory database
//! matched at install and at import, and `plugin review` of an update.

mod common;

use std::path::{Path, PathBuf};

use common::{copy_tree, Daemon, Settings};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_db() -> PathBuf {
    repo().join("tests/fixtures/advisory-db")
}

/// The test plugin `make auditable` builds with `cargo auditable` (`make test` runs it
/// first).
fn audited_binary() -> PathBuf {
    let bin = repo().join("target/auditable/audited_plugin");
    assert!(
        bin.is_file(),
        "{} is missing: run `make auditable` (make test does)",
        bin.display()
    );
    bin
}

fn audited_package(d: &Daemon, name: &str) -> PathBuf {
    let manifest = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"audited\"\n");
    d.package(name, &manifest, &audited_binary(), "audited")
}

fn alerts(d: &Daemon) -> String {
    d.cli(&["--output", "json", "security", "alerts"])
        .json()
        .to_string()
}

#[test]
fn an_auditable_plugin_is_flagged_at_install_and_alerted_after_a_later_import() {
    let d = Daemon::start_with(Settings::default());
    // Before any database: the dependencies are listed, nothing is matched.
    let first = audited_package(&d, "audited");
    let out = d.cli(&["plugin", "install", s(&first)]);
    out.ok();
    assert!(
        out.stdout.contains("packages embedded by cargo auditable"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("ADVISORY"), "{}", out.stdout);
    let shown = d
        .cli(&["--output", "json", "plugin", "show", "audited"])
        .json();
    let deps = shown["dependencies"]["dependencies"].to_string();
    assert!(deps.contains("\"itoa\""), "{deps}");
    assert!(!alerts(&d).contains("vulnerable_dependency"));

    // A plugin with no embedded list says so.
    let hello = d.hello_package();
    let out = d.cli(&["plugin", "install", s(&hello)]);
    out.ok();
    assert!(
        out.stdout.contains("dependencies unknown"),
        "{}",
        out.stdout
    );

    // A malformed database is refused whole and changes nothing.
    let bad = d.root().join("bad-db");
    copy_tree(&fixture_db(), &bad);
    std::fs::write(bad.join("osv/broken.json"), "{ not json").unwrap();
    let refused = d.cli(&["advisories", "import", s(&bad)]);
    assert!(
        !refused.status.success(),
        "a malformed database was imported"
    );
    assert!(refused.stderr.contains("broken.json"), "{}", refused.stderr);

    // The import matches the installed plugin and raises its alert.
    let imported = d.cli(&["advisories", "import", s(&fixture_db())]);
    imported.ok();
    assert!(
        imported.stdout.contains("FLAGGED audited")
            && imported.stdout.contains("RUSTSEC-2099-0001 itoa 1.0.19"),
        "{}",
        imported.stdout
    );
    // Withdrawn (memchr) and patched (serde_json) advisories flag nothing.
    assert!(
        !imported.stdout.contains("RUSTSEC-2099-0002")
            && !imported.stdout.contains("RUSTSEC-2099-0003")
    );
    let raised = alerts(&d);
    assert!(
        raised.contains("vulnerable_dependency") && raised.contains("RUSTSEC-2099-0001"),
        "{raised}"
    );
    assert!(
        !raised.contains("\"hello\""),
        "hello has no known dependencies: {raised}"
    );

    // Installed after the import: flagged at install.
    let second = audited_package(&d, "audited-two");
    let out = d.cli(&["plugin", "install", s(&second)]);
    out.ok();
    assert!(
        out.stdout
            .contains("ADVISORY: RUSTSEC-2099-0001 itoa 1.0.19"),
        "{}",
        out.stdout
    );
    let audit = d.audit(Some("audited-two"));
    let install = audit
        .iter()
        .find(|r| r["action"] == "plugin.install")
        .expect("install record");
    assert!(
        install["detail"].to_string().contains("RUSTSEC-2099-0001"),
        "{install}"
    );
    let report = d
        .cli(&["--output", "json", "emergency", "security-report"])
        .json();
    let flagged = report["advisories"].to_string();
    assert!(
        flagged.contains("audited-two") && flagged.contains("RUSTSEC-2099-0001"),
        "{flagged}"
    );
    assert_eq!(report["advisory_database"]["advisories"], 3, "{report}");
    assert!(d
        .audit(None)
        .iter()
        .any(|r| r["action"] == "advisories.imported"));
}

#[test]
fn a_python_package_is_matched_by_its_vendored_distributions() {
    let d = Daemon::start_with(Settings::default());
    d.cli(&["advisories", "import", s(&fixture_db())]).ok();
    let pkg = d.python_package("hello-py", &repo().join("plugin-sdk-python/examples/hello"));
    let dist = pkg.join("vendor/requests-2.31.0.dist-info");
    std::fs::create_dir_all(&dist).unwrap();
    std::fs::write(
        dist.join("METADATA"),
        "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\nbody\n",
    )
    .unwrap();
    let out = d.cli(&["plugin", "install", s(&pkg)]);
    out.ok();
    assert!(
        out.stdout
            .contains("ADVISORY: PYSEC-2099-1 requests 2.31.0 (PyPI)"),
        "{}",
        out.stdout
    );
    assert!(alerts(&d).contains("PYSEC-2099-1"));
}

#[test]
fn the_review_of_an_update_shows_what_grew() {
    let d = Daemon::start_with(Settings::default());
    let v1 = "name = \"rev\"\nversion = \"1.0.0\"\nentry = \"rev\"\n\
        [[permissions]]\nname = \"file_read\"\njustification = \"reads reports\"\nscope = [\"/srv/reports/daily\"]\n\
        [[permissions]]\nname = \"database_read\"\njustification = \"counts\"\nscope = [\"messages\", \"users\"]\n";
    let pkg = d.package("rev-1", v1, &audited_binary(), "rev");
    d.cli(&["plugin", "install", s(&pkg)]).ok();
    let first = d.cli(&["plugin", "review", "rev"]);
    first.ok();
    let text = &first.stdout;
    assert!(
        text.contains("approving allows: Read files outside the plugin data directory: /srv/reports/daily and everything below it"),
        "{text}"
    );
    assert!(
        text.contains(
            "approving allows: Read application database tables: every row of table `messages`"
        ),
        "{text}"
    );
    assert!(
        text.contains("format: ELF 64-bit x86-64") && text.contains("libc.so.6"),
        "{text}"
    );
    assert!(
        text.contains("signed by: unsigned") || text.contains("\nunsigned\n"),
        "{text}"
    );
    assert!(
        text.contains("packages embedded by cargo auditable"),
        "{text}"
    );
    assert!(!text.contains("what the update"), "no update yet: {text}");

    let v2 = v1
        .replace("1.0.0", "1.1.0")
        .replace("[\"/srv/reports/daily\"]", "[\"/srv/reports\"]")
        .replace("[\"messages\", \"users\"]", "[\"messages\"]")
        + "[[permissions]]\nname = \"network_outbound\"\njustification = \"uploads\"\nscope = [\"api.example.com\"]\n";
    let pkg2 = d.package("rev-2", &v2, &audited_binary(), "rev");
    d.cli(&["plugin", "update", "rev", s(&pkg2)]).ok();
    let review = d.cli(&["plugin", "review", "rev"]);
    review.ok();
    let text = &review.stdout;
    assert!(
        text.contains("== what the update from 1.0.0 changed =="),
        "{text}"
    );
    assert!(
        text.contains("permission file_read GROWN: /srv/reports/daily -> /srv/reports"),
        "{text}"
    );
    assert!(
        text.contains("permission database_read NARROWED: messages,users -> messages"),
        "{text}"
    );
    assert!(
        text.contains("permission network_outbound NEW: - -> api.example.com"),
        "{text}"
    );
    assert!(text.contains("file plugin.toml: changed"), "{text}");
    assert!(
        !text.contains("file rev: changed"),
        "the binary is the same: {text}"
    );
    let json = d
        .cli(&["--output", "json", "plugin", "review", "rev"])
        .json();
    let grown = json["update"]["permissions"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["permission"] == "file_read"))
        .cloned()
        .expect("file_read in the update's changes");
    assert_eq!(grown["change"], "grown");
    assert_eq!(json["update"]["previous_version"], "1.0.0");
    // (JSON leaves a false field out.)
    assert_ne!(json["package"]["entry"]["static_binary"], true);
    assert!(
        json["package"]["entry"]["needed"]
            .to_string()
            .contains("libc.so.6"),
        "{json}"
    );
}
