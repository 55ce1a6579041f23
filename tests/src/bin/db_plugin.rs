//! Test plugin for the broker's database service: `query` takes a JSON array
//! `[sql, param...]` and answers the rows as JSON, or `ERR <gRPC code>: <error>`.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError, SqlValue};

fn param(v: &serde_json::Value) -> SqlValue {
    match v {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or(0.0))),
        serde_json::Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn json(v: &SqlValue) -> serde_json::Value {
    match v {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(i) => (*i).into(),
        SqlValue::Real(r) => (*r).into(),
        SqlValue::Text(t) => t.clone().into(),
        SqlValue::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}

async fn query(ctx: &PluginContext, args: &[u8]) -> Result<String, String> {
    let call: Vec<serde_json::Value> =
        serde_json::from_slice(args).map_err(|e| format!("args: {e}"))?;
    let (sql, params) = call.split_first().ok_or("args: [sql, params...]")?;
    let sql = sql.as_str().ok_or("args: sql must be a string")?;
    let result: Result<_, SdkError> = ctx.db().query(sql, params.iter().map(param)).await;
    Ok(match result {
        Ok(r) => serde_json::json!({
            "columns": r.columns,
            "rows": r.rows.iter().map(|row| row.iter().map(json).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "rows_affected": r.rows_affected,
        })
        .to_string(),
        Err(e) => format!("ERR {:?}: {e}", e.code()),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("query", |ctx: PluginContext, args: Vec<u8>| async move {
            query(&ctx, &args).await
        })
        .run()
        .await
}
