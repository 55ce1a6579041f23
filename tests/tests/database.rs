//! End to end through the real daemon and a real plugin: the broker's database
//! service against a real SQLite application database, behind grants per table.

mod common;

use std::time::{Duration, Instant};

use common::*;

const SECOND_ADMIN: u32 = 65534;

/// Reads `messages`; with `notes`, also writes that table.
fn manifest(notes: bool) -> String {
    let mut m = r#"name = "db"
version = "1.0.0"
entry = "db"

[[permissions]]
name = "database_read"
justification = "shows recent messages"
scope = ["messages"]
"#
    .to_string();
    if notes {
        m.push_str(
            "\n[[permissions]]\nname = \"database_write\"\njustification = \"keeps its own notes\"\nscope = [\"notes\"]\n",
        );
    }
    m
}

fn app_db(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT);
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password_hash TEXT);
         INSERT INTO messages (body) VALUES ('hello'), ('world');
         INSERT INTO users (name, password_hash) VALUES ('alice', 'x');",
    )
    .unwrap();
}

fn count(path: &std::path::Path, table: &str) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn query(d: &Daemon, call: serde_json::Value) -> String {
    d.cli(&["plugin", "invoke", "db", "query", &call.to_string()])
        .ok()
        .stdout
        .trim()
        .to_string()
}

fn denied_records(d: &Daemon) -> usize {
    d.audit_actions(Some("db"))
        .iter()
        .filter(|(a, o)| a == "broker.database" && o == "denied")
        .count()
}

#[test]
fn plugins_reach_the_database_only_through_granted_tables() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    let db = d.root().join("state/app.db");
    app_db(&db);
    let pkg = d.package("db", &manifest(true), &bin("db_plugin"), "db");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&[
        "plugin",
        "approve",
        "db",
        "--comment",
        "messages and notes only",
    ])
    .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "db", "--comment", "second look"],
    )
    .ok();
    d.cli(&["plugin", "enable", "db"]).ok();
    d.wait_running("db");

    // Allowed: the granted table reads; the denied twin names permission and table.
    let ok = query(
        &d,
        serde_json::json!(["SELECT body FROM messages ORDER BY id"]),
    );
    assert_eq!(
        ok,
        r#"{"columns":["body"],"rows":[["hello"],["world"]],"rows_affected":0}"#
    );
    let denied = query(&d, serde_json::json!(["SELECT password_hash FROM users"]));
    assert!(
        denied.starts_with("ERR Some(PermissionDenied)")
            && denied.contains("database_read")
            && denied.contains("`users`"),
        "{denied}"
    );

    // Writes: only into `notes`; an injection attempt through a parameter stays data.
    let evil = "x'); DROP TABLE users; --";
    let wrote = query(
        &d,
        serde_json::json!(["INSERT INTO notes (text) VALUES (?1)", evil]),
    );
    assert!(wrote.contains(r#""rows_affected":1"#), "{wrote}");
    assert_eq!(count(&db, "notes"), 1);
    assert_eq!(count(&db, "users"), 1);
    let denied = query(
        &d,
        serde_json::json!(["INSERT INTO messages (body) VALUES (?1)", "spam"]),
    );
    assert!(denied.contains("database_write"), "{denied}");
    assert_eq!(count(&db, "messages"), 2, "nothing written");

    // What no grant allows.
    for sql in [
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT load_extension('/tmp/evil.so')",
        "DROP TABLE notes",
        "SELECT sql FROM sqlite_master",
    ] {
        let out = query(&d, serde_json::json!([sql]));
        assert!(
            out.starts_with("ERR Some(PermissionDenied)"),
            "{sql}: {out}"
        );
    }
    assert_eq!(count(&db, "notes"), 1);

    // A query that would run forever is stopped at the statement time limit.
    let t = Instant::now();
    let out = query(
        &d,
        serde_json::json!([
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        ]),
    );
    assert!(out.starts_with("ERR Some(DeadlineExceeded)"), "{out}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Every call is audited; refusals as denied, with the permission they needed.
    assert!(denied_records(&d) >= 7, "{:?}", d.audit_actions(Some("db")));
    let ok_records = d
        .audit_actions(Some("db"))
        .iter()
        .filter(|(a, o)| a == "broker.database" && o == "ok")
        .count();
    assert_eq!(ok_records, 2);

    // Revocation takes effect on the running plugin's next call.
    d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "db",
        "--comment",
        "incident",
    ])
    .ok();
    let after = query(&d, serde_json::json!(["SELECT body FROM messages"]));
    assert!(after.contains("database_read"), "{after}");
}

#[test]
fn an_expired_grant_stops_working_on_the_next_call_of_the_running_plugin() {
    let d = Daemon::start();
    let db = d.root().join("state/app.db");
    app_db(&db);
    let pkg = d.package("db", &manifest(false), &bin("db_plugin"), "db");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    let approved = Instant::now();
    d.cli(&[
        "plugin",
        "approve",
        "db",
        "--comment",
        "short trial",
        "--expires-in",
        "3s",
    ])
    .ok();
    d.cli(&["plugin", "enable", "db"]).ok();
    d.wait_running("db");
    let select = serde_json::json!(["SELECT count(*) FROM messages"]);
    let ok = query(&d, select.clone());
    assert!(ok.contains(r#""rows":[[2]]"#), "{ok}");
    std::thread::sleep(
        Duration::from_secs(3).saturating_sub(approved.elapsed()) + Duration::from_millis(300),
    );
    let after = query(&d, select);
    assert!(
        after.starts_with("ERR Some(PermissionDenied)") && after.contains("database_read"),
        "{after}"
    );
    assert!(denied_records(&d) >= 1);
}

#[test]
fn the_notes_example_plugin_keeps_notes_through_its_grants() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    app_db(&d.root().join("state/app.db"));
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../plugin-sdk/examples/notes/plugin.toml"),
    )
    .unwrap();
    let pkg = d.package("notes", &manifest, &example("notes"), "notes");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "notes", "--comment", "ok"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "notes", "--comment", "ok too"],
    )
    .ok();
    d.cli(&["plugin", "enable", "notes"]).ok();
    d.wait_running("notes");
    let run = |cmd: &str, arg: &str| {
        d.cli(&["plugin", "invoke", "notes", cmd, arg])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(run("note", "buy milk"), "stored 1");
    assert_eq!(run("note", "x'); DROP TABLE notes; --"), "stored 1");
    assert_eq!(run("recent", ""), "x'); DROP TABLE notes; --\nbuy milk");
    assert_eq!(run("count", ""), "Some([Integer(2)])");
    d.cli(&[
        "plugin",
        "revoke-permission",
        "database_read",
        "notes",
        "--comment",
        "no longer needed",
    ])
    .ok();
    let after = run("count", "");
    assert!(
        after.starts_with("not allowed") && after.contains("`messages`"),
        "{after}"
    );
    assert_eq!(
        run("recent", ""),
        "x'); DROP TABLE notes; --\nbuy milk",
        "writes imply reads of notes"
    );
}

/// Milliseconds one CLI round trip of `call` takes, and its answer.
fn timed(d: &Daemon, call: serde_json::Value) -> (Duration, String) {
    let t = Instant::now();
    let out = query(d, call);
    (t.elapsed(), out)
}

#[test]
fn functions_are_an_allowlist_and_a_statement_stops_at_its_time_whatever_it_does() {
    let d = Daemon::start();
    let db = d.root().join("state/app.db");
    app_db(&db);
    let pkg = d.package("db", &manifest(false), &bin("db_plugin"), "db");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "db", "--comment", "messages"])
        .ok();
    d.cli(&["plugin", "enable", "db"]).ok();
    d.wait_running("db");

    // fts3_tokenizer with a bound 'simple' would return a code pointer of the
    // supervisor: refused, naming the function. So are the other non-allowlisted ones.
    let out = query(
        &d,
        serde_json::json!(["SELECT fts3_tokenizer(?1)", "simple"]),
    );
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("`fts3_tokenizer`"),
        "{out}"
    );
    for sql in ["SELECT fts5(NULL)", "SELECT load_extension('/tmp/x.so')"] {
        let out = query(&d, serde_json::json!([sql]));
        assert!(
            out.starts_with("ERR Some(PermissionDenied)"),
            "{sql}: {out}"
        );
    }
    // The ordinary twins answer.
    let out = query(
        &d,
        serde_json::json!([
            "SELECT lower('HeLLo'), count(*), substr(max(body), 2, 3), json_extract(?1, '$.n') FROM messages",
            r#"{"n": 7}"#
        ]),
    );
    assert!(out.contains(r#""rows":[["hello",2,"orl",7]]"#), "{out}");

    // A quick statement's round trip through the CLI, for the margins below.
    let (quick, _) = timed(&d, serde_json::json!(["SELECT 1"]));
    let limit = Duration::from_secs(1); // broker.db_statement_time, the default
                                        // The issue's one slow call (4.2 s against 1 s before): refused at once by the
                                        // value limit, since a call in progress is one step no interrupt can split.
    let (took, out) = timed(
        &d,
        serde_json::json!(["SELECT instr(zeroblob(900000), zeroblob(450000)||x'01')"]),
    );
    println!("quick round trip {quick:?}; the 900000-byte instr: {took:?}");
    assert!(
        out.starts_with("ERR Some(ResourceExhausted)") && out.contains("db_max_value_bytes"),
        "{out}"
    );
    assert!(took < limit, "{took:?}");
    // Calls at the value limit, one after another: stopped at the limit.
    let (took, out) = timed(
        &d,
        serde_json::json!([
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT sum(instr(zeroblob(60000), zeroblob(30000)||x'01')) FROM c"
        ]),
    );
    println!("slow calls in a loop: {took:?} (limit {limit:?})");
    assert!(out.starts_with("ERR Some(DeadlineExceeded)"), "{out}");
    let margin = Duration::from_millis(500).max(quick * 2);
    assert!(
        took >= limit && took <= limit + margin,
        "stopped after {took:?}, limit {limit:?} + margin {margin:?}"
    );
}
