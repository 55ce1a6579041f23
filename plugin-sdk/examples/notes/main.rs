//! The `notes` example plugin, for the database permission family: `note <text>`
//! stores a note (database_write on `notes`), `recent` lists the last ten
//! (database_read is implied for a table the plugin may write), and `count` counts
//! the server's messages (database_read on `messages`).

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError, SqlValue};

fn text(args: Vec<u8>) -> Result<String, String> {
    String::from_utf8(args).map_err(|_| "arguments must be UTF-8".to_string())
}

async fn recent(ctx: &PluginContext) -> Result<String, SdkError> {
    let out = ctx
        .db()
        .query(
            "SELECT text FROM notes ORDER BY id DESC LIMIT ?1",
            [SqlValue::Integer(10)],
        )
        .await?;
    Ok(out
        .rows
        .iter()
        .filter_map(|row| match row.first() {
            Some(SqlValue::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("note", |ctx: PluginContext, args: Vec<u8>| async move {
            // Always a bound parameter: the text is data, whatever it contains.
            let n = ctx
                .db()
                .execute("INSERT INTO notes (text) VALUES (?1)", [text(args)?.into()])
                .await?;
            Ok::<String, String>(format!("stored {n}"))
        })
        .on_command("recent", |ctx: PluginContext, _args: Vec<u8>| async move {
            Ok::<String, String>(recent(&ctx).await?)
        })
        .on_command("count", |ctx: PluginContext, _args: Vec<u8>| async move {
            match ctx.db().query("SELECT count(*) FROM messages", []).await {
                Ok(out) => Ok(format!("{:?}", out.rows.first())),
                // Without the grant the broker says which permission and table.
                Err(e) if e.is_permission_denied() => Ok(format!("not allowed: {e}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .run()
        .await
}
