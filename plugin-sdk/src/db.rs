//! `Db`: the broker's database service. One SQL statement per call with bound
//! parameters; the supervisor checks every table the statement touches.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;
use pb::sql_value::Kind;

use crate::SdkError;

/// One SQLite value, as a parameter or in a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}

impl From<f64> for SqlValue {
    fn from(v: f64) -> Self {
        SqlValue::Real(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> Self {
        SqlValue::Blob(v)
    }
}

impl SqlValue {
    /// The wire form (a method, so no broker-proto type is in the public API).
    pub(crate) fn into_pb(self) -> pb::SqlValue {
        let kind = match self {
            SqlValue::Null => Kind::Null(true),
            SqlValue::Integer(i) => Kind::Integer(i),
            SqlValue::Real(r) => Kind::Real(r),
            SqlValue::Text(t) => Kind::Text(t),
            SqlValue::Blob(b) => Kind::Blob(b),
        };
        pb::SqlValue { kind: Some(kind) }
    }

    /// From the wire form.
    pub(crate) fn from_pb(v: pb::SqlValue) -> SqlValue {
        match v.kind {
            None | Some(Kind::Null(_)) => SqlValue::Null,
            Some(Kind::Integer(i)) => SqlValue::Integer(i),
            Some(Kind::Real(r)) => SqlValue::Real(r),
            Some(Kind::Text(t)) => SqlValue::Text(t),
            Some(Kind::Blob(b)) => SqlValue::Blob(b),
        }
    }
}

/// What a statement returned: its columns and rows, or how many rows it changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    /// Column names of a SELECT, in order; empty for a write.
    pub columns: Vec<String>,
    /// The rows of a SELECT, each with one value per column.
    pub rows: Vec<Vec<SqlValue>>,
    /// Rows an INSERT, UPDATE or DELETE changed; 0 for a SELECT.
    pub rows_affected: u64,
}

/// The application database through the supervisor's broker; obtain it with
/// [`PluginContext::db`](crate::PluginContext::db). Cheap to clone.
///
/// Reading a table needs a live `database_read` grant naming it (or the table being
/// public by the operator's policy); INSERT, UPDATE and DELETE need `database_write` on
/// the table. Always pass values as parameters (`?1`, `?2`...), never by formatting them
/// into the SQL. ATTACH, PRAGMA, schema changes, transactions, `load_extension` and
/// SQLite's internal tables are refused; a statement that runs too long is stopped
/// (`is_deadline_exceeded`), and a result beyond the row or byte limit is
/// `is_resource_exhausted`.
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// let db = ctx.db();
/// let rows = db
///     .query("SELECT id, body FROM messages WHERE channel = ?1 LIMIT 50", ["general".into()])
///     .await?;
/// for row in rows.rows {
///     println!("{row:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Db {
    client: BrokerClient<crate::connection::Limited>,
}

impl Db {
    pub(crate) fn new(client: BrokerClient<crate::connection::Limited>) -> Db {
        Db { client }
    }

    /// Runs one statement with `params` bound in order.
    ///
    /// # Errors
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) when a table the
    /// statement touches is not granted (the message names it) or the statement is refused
    /// (ATTACH, PRAGMA, schema changes...); [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument)
    /// for SQL that does not parse or more than one statement;
    /// [`ErrorCode::DeadlineExceeded`](crate::ErrorCode::DeadlineExceeded) when it runs too long;
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) over the row or byte
    /// limit; [`ErrorCode::Unavailable`](crate::ErrorCode::Unavailable) with no application database.
    pub async fn query(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = SqlValue>,
    ) -> Result<QueryResult, SdkError> {
        let reply = self
            .client
            .clone()
            .query(pb::QueryRequest {
                sql: sql.to_string(),
                params: params.into_iter().map(SqlValue::into_pb).collect(),
            })
            .await
            .map_err(crate::error::from_status)?
            .into_inner();
        Ok(QueryResult {
            columns: reply.columns,
            rows: reply
                .rows
                .into_iter()
                .map(|r| r.values.into_iter().map(SqlValue::from_pb).collect())
                .collect(),
            rows_affected: reply.rows_affected,
        })
    }

    /// Runs an INSERT, UPDATE or DELETE; returns the number of rows changed.
    ///
    /// # Errors
    /// As [`query`](Self::query).
    pub async fn execute(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = SqlValue>,
    ) -> Result<u64, SdkError> {
        Ok(self.query(sql, params).await?.rows_affected)
    }
}
