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

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    plugin().run().await
}

#[cfg(test)]
mod tests {
    use super::plugin;
    use plexichat_plugin_sdk::testing::TestBroker;
    use plexichat_plugin_sdk::{ErrorCode, SqlValue};

    /// The grants its manifest asks for.
    fn approved() -> TestBroker {
        TestBroker::new("notes")
            .grant("database_write", &["notes"])
            .grant("database_read", &["messages"])
    }

    #[tokio::test]
    async fn stores_notes_as_bound_parameters() {
        let notes = approved().start(plugin()).await.expect("starts");
        let sneaky = "x'); DROP TABLE notes; --";
        assert_eq!(
            notes.invoke_text("note", sneaky).await.as_deref(),
            Ok("stored 1")
        );
        let writes = notes.db_writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].sql, "INSERT INTO notes (text) VALUES (?1)");
        assert_eq!(writes[0].params, [SqlValue::Text(sneaky.into())]);
    }

    #[tokio::test]
    async fn lists_recent_notes_newest_first() {
        let rows = vec![
            vec!["newest".into()],
            vec![SqlValue::Null],
            vec!["older".into()],
        ];
        let notes = approved()
            .rows("FROM notes", &["text"], rows)
            .start(plugin())
            .await
            .expect("starts");
        // A NULL text is skipped, not printed as an empty line.
        assert_eq!(
            notes.invoke_text("recent", "").await.as_deref(),
            Ok("newest\nolder")
        );
    }

    #[tokio::test]
    async fn counts_messages_only_with_the_grant() {
        let counted = approved()
            .rows(
                "FROM messages",
                &["count(*)"],
                vec![vec![SqlValue::Integer(42)]],
            )
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            counted.invoke_text("count", "").await.as_deref(),
            Ok("Some([Integer(42)])")
        );

        let denied = TestBroker::new("notes")
            .grant("database_write", &["notes"])
            .start(plugin())
            .await
            .expect("starts");
        let out = denied.invoke_text("count", "").await.expect("answered");
        assert!(
            out.starts_with("not allowed: broker call failed: PERMISSION_DENIED: database_read is not granted for table `messages`"),
            "{out}"
        );
        // Without database_write the note is refused, and nothing is written.
        let read_only = TestBroker::new("notes")
            .grant("database_read", &["notes"])
            .start(plugin())
            .await
            .expect("starts");
        let err = read_only
            .invoke_text("note", "hi")
            .await
            .expect_err("refused");
        assert!(
            err.contains("database_write is not granted for table `notes`"),
            "{err}"
        );
        assert!(read_only.db_writes().is_empty());
    }

    #[tokio::test]
    async fn a_slow_statement_is_an_error_reply() {
        let notes = approved()
            .query_result(
                "FROM messages",
                Err((ErrorCode::DeadlineExceeded, "statement ran past 2s".into())),
            )
            .start(plugin())
            .await
            .expect("starts");
        let err = notes.invoke_text("count", "").await.expect_err("failed");
        assert!(
            err.contains("DEADLINE_EXCEEDED: statement ran past 2s"),
            "{err}"
        );
        // An unscripted SELECT on a granted table simply has no rows.
        assert_eq!(notes.invoke_text("recent", "").await.as_deref(), Ok(""));
    }
}
