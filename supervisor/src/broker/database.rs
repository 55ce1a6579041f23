//! The database service: one SQL statement with bound parameters against the
//! application database, behind SQLite's authorizer, a time limit and size limits.

// Every call opens its own connection (read-only unless some table may be written), so
// nothing a statement does outlives it. The authorizer sees every table and column the
// compiled statement touches, including through views and triggers, and allows only:
// reads of tables the plugin may read, INSERT/UPDATE/DELETE on tables it may write,
// SELECT, recursive CTEs and the functions of `sql_functions::ALLOWED`. ATTACH/DETACH,
// PRAGMA, schema changes, transactions, virtual tables, every other function and any
// sqlite_ internal table are refused, so are more than one statement and unbound
// parameters. The watchdog interrupts a statement at its time limit, and the
// connection's limits keep any single step (one function call) short.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OpenFlags};

/// How often (in SQLite VM steps) the progress handler checks the time limit, beside
/// the watchdog's interrupt.
const PROGRESS_STEPS: i32 = 1000;
/// Longest SQL text of one statement.
const MAX_SQL_BYTES: i32 = 100_000;
/// Most arguments of one function call.
const MAX_FUNCTION_ARGS: i32 = 64;
/// Longest LIKE/GLOB pattern: matching costs pattern x value length.
const MAX_LIKE_PATTERN_BYTES: i32 = 1024;
/// Deepest expression tree.
const MAX_EXPR_DEPTH: i32 = 200;

/// Why a statement did not run (or did not finish).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Exhausted(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
}

impl From<DbError> for tonic::Status {
    fn from(e: DbError) -> tonic::Status {
        match e {
            DbError::Invalid(m) => tonic::Status::invalid_argument(m),
            DbError::Denied(m) => tonic::Status::permission_denied(m),
            DbError::Exhausted(m) => tonic::Status::resource_exhausted(m),
            DbError::DeadlineExceeded(m) => tonic::Status::deadline_exceeded(m),
            DbError::Unavailable(m) => tonic::Status::unavailable(m),
            DbError::Failed(m) => tonic::Status::failed_precondition(m),
        }
    }
}

/// The tables one plugin may touch right now, lower-cased (SQLite names are
/// case-insensitive). A table it may write it may also read: UPDATE and DELETE read
/// the columns of their WHERE clause.
#[derive(Debug, Clone, Default)]
pub struct TableAccess {
    pub read: BTreeSet<String>,
    pub write: BTreeSet<String>,
}

impl TableAccess {
    pub fn new(read: &[String], write: &[String]) -> TableAccess {
        let lower = |v: &[String]| v.iter().map(|t| t.to_ascii_lowercase()).collect();
        TableAccess {
            read: lower(read),
            write: lower(write),
        }
    }

    fn may_read(&self, table: &str) -> bool {
        let t = table.to_ascii_lowercase();
        self.read.contains(&t) || self.write.contains(&t)
    }

    fn may_write(&self, table: &str) -> bool {
        self.write.contains(&table.to_ascii_lowercase())
    }
}

/// Bounds of one call.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    pub statement_time: Duration,
    pub max_rows: usize,
    pub max_bytes: usize,
    /// Longest string or blob any value may be (`SQLITE_LIMIT_LENGTH`): what keeps
    /// one function call (one VM step, which no interrupt splits) short.
    pub max_value_bytes: usize,
}

/// A statement's answer: its columns and rows (for a query) or the rows it changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub rows_affected: u64,
    /// Tables written, for the audit record.
    pub wrote: bool,
}

/// What the authorizer refused in a statement, in order, to name it in the error.
type Refused = Arc<Mutex<Vec<String>>>;

/// The refusal to report: SQLite touches its own tables while compiling schema
/// changes, so a refusal naming the statement itself beats one about sqlite_ tables.
fn main_refusal(refused: &Refused) -> Option<String> {
    let mut all = refused.lock().ok()?;
    let chosen = all
        .iter()
        .find(|r| !r.contains("internal table"))
        .or(all.first())
        .cloned();
    all.clear();
    chosen
}

fn schema(conn: &Connection) -> Result<Schema, DbError> {
    let names = conn
        .prepare("SELECT lower(name) FROM sqlite_schema WHERE type IN ('table', 'view')")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Schema>>()
        })
        .map_err(|e| DbError::Unavailable(format!("reading the database schema: {e}")))?;
    Ok(names)
}

/// Tables and views of the database, lower-cased. A name read that is not among them
/// is a CTE or subquery of the statement itself, whose own sources are checked anyway.
type Schema = BTreeSet<String>;

fn decide(access: &TableAccess, schema: &Schema, ctx: &AuthContext<'_>) -> Result<(), String> {
    let internal = |t: &str| t.to_ascii_lowercase().starts_with("sqlite_");
    let read = |t: &str| {
        if internal(t) {
            Err(format!("SQLite's internal table `{t}` is not accessible"))
        } else if access.may_read(t) || !schema.contains(&t.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(format!(
                "database_read is not granted for table `{t}` (and the policy does not mark it public)"
            ))
        }
    };
    let write = |t: &str| {
        if internal(t) {
            // Only DDL writes SQLite's own tables, and SQLite asks about that first.
            Err(format!(
                "schema changes are not available (the statement would write `{t}`)"
            ))
        } else if access.may_write(t) {
            Ok(())
        } else {
            Err(format!("database_write is not granted for table `{t}`"))
        }
    };
    match &ctx.action {
        AuthAction::Select | AuthAction::Recursive => Ok(()),
        AuthAction::Read { table_name, .. } => read(table_name),
        AuthAction::Insert { table_name }
        | AuthAction::Delete { table_name }
        | AuthAction::Update { table_name, .. } => write(table_name),
        AuthAction::Function { function_name } => {
            if super::sql_functions::allowed(function_name) {
                Ok(())
            } else {
                Err(format!(
                    "the SQL function `{}` is not available (only the ordinary scalar, aggregate, date, math and JSON functions are)",
                    crate::audit::short(function_name)
                ))
            }
        }
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => {
            Err("ATTACH and DETACH are not available".into())
        }
        AuthAction::Pragma { pragma_name, .. } => {
            Err(format!("PRAGMA {pragma_name} is not available"))
        }
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(
            "transactions are not available: each call is one statement, committed on its own"
                .into(),
        ),
        other => Err(format!("{other:?} is not available (no schema changes)")),
    }
}

fn open(path: &Path, access: &TableAccess, limits: DbLimits) -> Result<Connection, DbError> {
    let mode = if access.write.is_empty() {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
    };
    let conn = Connection::open_with_flags(
        path,
        mode | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(|e| {
        DbError::Unavailable(format!(
            "the application database {} cannot be opened: {e}",
            path.display()
        ))
    })?;
    conn.busy_timeout(limits.statement_time)
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
    // Belt and braces beside the authorizer: nothing can be attached at all. The rest
    // bound what one VM step can cost: the quadratic functions (instr, replace, like)
    // take value length x argument length, so the value length caps one call.
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, value_limit(limits));
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES);
    conn.set_limit(Limit::SQLITE_LIMIT_FUNCTION_ARG, MAX_FUNCTION_ARGS);
    conn.set_limit(
        Limit::SQLITE_LIMIT_LIKE_PATTERN_LENGTH,
        MAX_LIKE_PATTERN_BYTES,
    );
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, MAX_EXPR_DEPTH);
    Ok(conn)
}

/// The longest value: the smaller of the value and result limits, at least 1 KiB.
fn value_limit(limits: DbLimits) -> i32 {
    i32::try_from(limits.max_value_bytes.min(limits.max_bytes))
        .unwrap_or(i32::MAX)
        .max(1024)
}

/// Runs `sql` with `params` for a plugin allowed `access`, within `limits`.
pub fn run(
    path: &Path,
    sql: &str,
    params: &[Value],
    access: &TableAccess,
    limits: DbLimits,
) -> Result<QueryOutput, DbError> {
    let conn = open(path, access, limits)?;
    let schema = schema(&conn)?;
    let refused: Refused = Arc::default();
    {
        let (access, refused) = (access.clone(), Arc::clone(&refused));
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            match decide(&access, &schema, &ctx) {
                Ok(()) => Authorization::Allow,
                Err(why) => {
                    if let Ok(mut all) = refused.lock() {
                        all.push(why);
                    }
                    Authorization::Deny
                }
            }
        }));
    }
    let started = Instant::now();
    let budget = limits.statement_time;
    let watchdog = super::watchdog::Watchdog::shared()
        .ok_or_else(|| DbError::Unavailable("the statement watchdog is not running".into()))?;
    // Held until the connection is dropped: an interrupt always finds it open.
    let _armed = watchdog.arm(started + budget, conn.get_interrupt_handle());
    conn.progress_handler(PROGRESS_STEPS, Some(move || started.elapsed() > budget));
    let explain = |e: rusqlite::Error| sql_error(e, &refused, limits);

    let mut batch = rusqlite::Batch::new(&conn, sql);
    let mut stmt = batch
        .next()
        .map_err(explain)?
        .ok_or_else(|| DbError::Invalid("no SQL statement given".into()))?;
    if !matches!(batch.next(), Ok(None)) {
        main_refusal(&refused);
        return Err(DbError::Invalid(
            "exactly one SQL statement per call".into(),
        ));
    }
    let expected = stmt.parameter_count();
    if expected != params.len() {
        return Err(DbError::Invalid(format!(
            "the statement has {expected} parameter(s), {} given",
            params.len()
        )));
    }
    let writes = !stmt.readonly();
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let mut out = QueryOutput {
        columns,
        wrote: writes,
        ..QueryOutput::default()
    };
    if out.columns.is_empty() {
        out.rows_affected = stmt
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(explain)? as u64;
        return Ok(out);
    }
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(explain)?;
    let mut bytes = 0usize;
    while let Some(row) = rows.next().map_err(explain)? {
        if out.rows.len() == limits.max_rows {
            return Err(DbError::Exhausted(format!(
                "the result has more than {} rows; narrow it (LIMIT/OFFSET)",
                limits.max_rows
            )));
        }
        let mut values = Vec::with_capacity(out.columns.len());
        for i in 0..out.columns.len() {
            let v = row.get_ref(i).map_err(explain)?;
            bytes += value_size(v);
            values.push(Value::from(v));
        }
        if bytes > limits.max_bytes {
            return Err(DbError::Exhausted(format!(
                "the result exceeds {} bytes; narrow it (fewer columns, LIMIT)",
                limits.max_bytes
            )));
        }
        out.rows.push(values);
    }
    if writes {
        out.rows_affected = conn.changes();
    }
    Ok(out)
}

fn value_size(v: ValueRef<'_>) -> usize {
    match v {
        ValueRef::Null => 1,
        ValueRef::Integer(_) | ValueRef::Real(_) => 8,
        ValueRef::Text(t) | ValueRef::Blob(t) => t.len(),
    }
}

fn sql_error(e: rusqlite::Error, refused: &Refused, limits: DbLimits) -> DbError {
    use rusqlite::ffi::ErrorCode;
    if let Some(why) = main_refusal(refused) {
        return DbError::Denied(why);
    }
    match &e {
        rusqlite::Error::MultipleStatement => {
            DbError::Invalid("exactly one SQL statement per call".into())
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::OperationInterrupted => {
            DbError::DeadlineExceeded(format!(
                "the statement ran longer than {} ms (broker.db_statement_time) and was stopped",
                limits.statement_time.as_millis()
            ))
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::TooBig => {
            DbError::Exhausted(format!(
                "a string or blob would exceed {} bytes (broker.db_max_value_bytes, broker.db_max_bytes): {e}",
                value_limit(limits)
            ))
        }
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ReadOnly => DbError::Denied(
            "database_write is not granted for any table (the database is open read-only)".into(),
        ),
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::DatabaseBusy => {
            DbError::Unavailable(format!("the application database is busy: {e}"))
        }
        // rusqlite's own text quotes the whole statement: name the place instead.
        rusqlite::Error::SqlInputError {
            msg, sql, offset, ..
        } => DbError::Invalid(format!(
            "{} at offset {offset} of `{}`",
            bounded(msg),
            crate::audit::short(sql)
        )),
        rusqlite::Error::InvalidParameterCount(..) => DbError::Invalid(e.to_string()),
        _ => DbError::Failed(bounded(&e.to_string()).into_owned()),
    }
}

/// SQLite's message, which may quote a token of the statement, cut to 256 chars.
fn bounded(message: &str) -> std::borrow::Cow<'_, str> {
    match message.char_indices().nth(256) {
        None => message.into(),
        Some((end, _)) => format!("{}…", &message[..end]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: DbLimits = DbLimits {
        statement_time: Duration::from_millis(300),
        max_rows: 100,
        max_bytes: 64 * 1024,
        max_value_bytes: 64 * 1024,
    };

    fn app_db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.db");
        let c = Connection::open(&path).expect("create");
        c.execute_batch(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);
             CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, password_hash TEXT);
             CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT);
             CREATE VIEW user_names AS SELECT id, name FROM users;
             INSERT INTO messages (body) VALUES ('hello'), ('world');
             INSERT INTO users (name, password_hash) VALUES ('alice', 'secret');",
        )
        .expect("schema");
        (dir, path)
    }

    fn access(read: &[&str], write: &[&str]) -> TableAccess {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        TableAccess::new(&s(read), &s(write))
    }

    fn count(path: &Path, table: &str) -> i64 {
        Connection::open(path)
            .expect("open")
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_granted_table_reads_and_an_ungranted_one_is_denied_by_name() {
        let (_d, path) = app_db();
        let a = access(&["messages"], &[]);
        let out = run(
            &path,
            "SELECT body FROM messages ORDER BY id",
            &[],
            &a,
            LIMITS,
        )
        .expect("granted read");
        assert_eq!(out.columns, ["body"]);
        assert_eq!(
            out.rows,
            [[Value::Text("hello".into())], [Value::Text("world".into())]]
        );
        let err = run(&path, "SELECT name FROM users", &[], &a, LIMITS).expect_err("denied");
        assert!(
            matches!(&err, DbError::Denied(m) if m.contains("database_read") && m.contains("`users`")),
            "{err:?}"
        );
        // Through a view, or hidden in a subquery, the underlying table is still checked.
        for sql in [
            "SELECT * FROM user_names",
            "SELECT body, (SELECT password_hash FROM users LIMIT 1) FROM messages",
        ] {
            let err = run(&path, sql, &[], &a, LIMITS).expect_err(sql);
            assert!(
                matches!(&err, DbError::Denied(m) if m.contains("`users`")),
                "{sql}: {err:?}"
            );
        }
    }

    #[test]
    fn writes_need_database_write_on_that_table_and_change_nothing_otherwise() {
        let (_d, path) = app_db();
        let ins = "INSERT INTO messages (body) VALUES (?1)";
        let param = [Value::Text("new".into())];
        let err =
            run(&path, ins, &param, &access(&["messages"], &[]), LIMITS).expect_err("read-only");
        assert!(
            matches!(&err, DbError::Denied(m) if m.contains("database_write")),
            "{err:?}"
        );
        assert_eq!(count(&path, "messages"), 2);
        let w = access(&[], &["messages"]);
        let out = run(&path, ins, &param, &w, LIMITS).expect("granted write");
        assert_eq!(out.rows_affected, 1);
        assert!(out.wrote);
        assert_eq!(count(&path, "messages"), 3);
        // The grant is per table: the same plugin cannot touch users.
        let err = run(&path, "DELETE FROM users", &[], &w, LIMITS).expect_err("other table");
        assert!(
            matches!(&err, DbError::Denied(m) if m.contains("`users`")),
            "{err:?}"
        );
        assert_eq!(count(&path, "users"), 1);
    }

    #[test]
    fn injection_through_a_parameter_stays_data() {
        let (_d, path) = app_db();
        let w = access(&[], &["messages"]);
        let evil = "x'); DROP TABLE users; --";
        run(
            &path,
            "INSERT INTO messages (body) VALUES (?1)",
            &[Value::Text(evil.into())],
            &w,
            LIMITS,
        )
        .expect("inserted as text");
        assert_eq!(count(&path, "users"), 1, "users survived");
        let out = run(
            &path,
            "SELECT body FROM messages WHERE body = ?1",
            &[Value::Text(evil.into())],
            &w,
            LIMITS,
        )
        .expect("found");
        assert_eq!(out.rows.len(), 1);
        // And stacking a second statement is refused outright.
        let err = run(&path, "SELECT 1; DROP TABLE users", &[], &w, LIMITS).expect_err("two");
        assert!(matches!(err, DbError::Invalid(_)), "{err:?}");
        assert_eq!(count(&path, "users"), 1);
    }

    #[test]
    fn attach_pragma_extensions_schema_and_internals_are_refused() {
        let (d, path) = app_db();
        let everything = access(&["messages", "users"], &["messages", "users"]);
        let other = d.path().join("other.db");
        let cases = [
            (
                format!("ATTACH DATABASE '{}' AS o", other.display()),
                "ATTACH",
            ),
            ("PRAGMA writable_schema = 1".to_string(), "PRAGMA"),
            ("PRAGMA table_info(users)".to_string(), "PRAGMA"),
            (
                "SELECT load_extension('/tmp/evil.so')".to_string(),
                "load_extension",
            ),
            ("CREATE TABLE t (x)".to_string(), "schema"),
            ("DROP TABLE messages".to_string(), "schema"),
            ("ALTER TABLE users ADD COLUMN x".to_string(), "schema"),
            ("SELECT sql FROM sqlite_master".to_string(), "internal"),
            ("SELECT * FROM sqlite_schema".to_string(), "internal"),
            ("BEGIN".to_string(), "transactions"),
        ];
        for (sql, why) in cases {
            let err = run(&path, &sql, &[], &everything, LIMITS).expect_err(&sql);
            assert!(
                matches!(&err, DbError::Denied(m) if m.contains(why)),
                "{sql}: {err:?}"
            );
        }
        assert!(!other.exists(), "ATTACH created nothing");
        assert_eq!(count(&path, "messages"), 2);
    }

    #[test]
    fn a_query_that_would_run_forever_is_stopped_at_the_time_limit() {
        let (_d, path) = app_db();
        let t = Instant::now();
        let err = run(
            &path,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
            &[],
            &access(&[], &[]),
            LIMITS,
        )
        .expect_err("stopped");
        assert!(matches!(err, DbError::DeadlineExceeded(_)), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        // The same shape with an end runs fine.
        let out = run(
            &path,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10) SELECT count(*) FROM c",
            &[],
            &access(&[], &[]),
            LIMITS,
        )
        .expect("finite");
        assert_eq!(out.rows, [[Value::Integer(10)]]);
    }

    #[test]
    fn only_allowlisted_functions_run_and_fts3_tokenizer_is_refused_by_name() {
        let (_d, path) = app_db();
        let a = access(&["messages"], &[]);
        let err = run(
            &path,
            "SELECT fts3_tokenizer(?1)",
            &[Value::Text("simple".into())],
            &a,
            LIMITS,
        )
        .expect_err("pointer");
        assert!(
            matches!(&err, DbError::Denied(m) if m.contains("`fts3_tokenizer`")),
            "{err:?}"
        );
        for sql in ["SELECT sqlite_compileoption_get(1)", "SELECT fts5(?1)"] {
            let p = if sql.contains("?1") {
                vec![Value::Null]
            } else {
                vec![]
            };
            let err = run(&path, sql, &p, &a, LIMITS).expect_err(sql);
            assert!(matches!(err, DbError::Denied(_)), "{sql}: {err:?}");
        }
        let out = run(
            &path,
            "SELECT lower('AB'), count(*), substr(max(body), 1, 2), json_extract('{\"a\":3}', '$.a') FROM messages",
            &[],
            &a,
            LIMITS,
        )
        .expect("ordinary functions");
        assert_eq!(
            out.rows,
            [[
                Value::Text("ab".into()),
                Value::Integer(2),
                Value::Text("wo".into()),
                Value::Integer(3)
            ]]
        );
    }

    #[test]
    fn one_slow_function_call_is_refused_by_the_value_limit_and_many_are_stopped_in_time() {
        let (_d, path) = app_db();
        let a = access(&[], &[]);
        let t = Instant::now();
        let err = run(
            &path,
            "SELECT instr(zeroblob(900000), zeroblob(450000)||x'01')",
            &[],
            &a,
            LIMITS,
        )
        .expect_err("too big");
        assert!(
            matches!(&err, DbError::Exhausted(m) if m.contains("db_max_value_bytes")),
            "{err:?}"
        );
        assert!(t.elapsed() < LIMITS.statement_time, "{:?}", t.elapsed());
        // Calls at the value limit, one after another: the watchdog stops the statement
        // within its time and one call.
        let t = Instant::now();
        let err = run(
            &path,
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             SELECT sum(instr(zeroblob(60000), zeroblob(30000)||x'01')) FROM c",
            &[],
            &a,
            LIMITS,
        )
        .expect_err("stopped");
        let took = t.elapsed();
        assert!(matches!(err, DbError::DeadlineExceeded(_)), "{err:?}");
        assert!(
            took >= LIMITS.statement_time && took < LIMITS.statement_time * 3,
            "{took:?}"
        );
    }

    #[test]
    fn row_and_byte_limits_refuse_oversized_results() {
        let (_d, path) = app_db();
        let a = access(&[], &[]);
        let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 500) SELECT x FROM c";
        let err = run(&path, many, &[], &a, LIMITS).expect_err("too many rows");
        assert!(
            matches!(&err, DbError::Exhausted(m) if m.contains("100 rows")),
            "{err:?}"
        );
        let err = run(&path, "SELECT zeroblob(100000)", &[], &a, LIMITS).expect_err("too big");
        assert!(matches!(err, DbError::Exhausted(_)), "{err:?}");
    }

    #[test]
    fn parameter_count_must_match() {
        let (_d, path) = app_db();
        let a = access(&["messages"], &[]);
        let err = run(
            &path,
            "SELECT body FROM messages WHERE id = ?1",
            &[],
            &a,
            LIMITS,
        )
        .expect_err("unbound");
        assert!(
            matches!(&err, DbError::Invalid(m) if m.contains("1 parameter")),
            "{err:?}"
        );
    }

    #[test]
    fn a_missing_database_is_unavailable_and_not_created() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("none.db");
        let err = run(&path, "SELECT 1", &[], &access(&[], &["x"]), LIMITS).expect_err("missing");
        assert!(matches!(err, DbError::Unavailable(_)), "{err:?}");
        assert!(!path.exists());
    }
}
