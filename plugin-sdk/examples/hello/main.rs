//! The `hello` example plugin: answers `greet`, `has-permission` and `config`, and
//! greets every `chat.message` event with a `plugin.hello.greeted` event.

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};
use serde::Serialize;

#[derive(Serialize)]
struct Greeted<'a> {
    reply_to: &'a str,
    text: &'a str,
}

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
    Plugin::new()
        .on_command("greet", |_ctx: PluginContext, args: Vec<u8>| async move {
            let name = utf8_arg(args)?;
            let name = if name.is_empty() { "world" } else { &name };
            Ok::<String, String>(format!("Hello, {name}!"))
        })
        .on_command(
            "has-permission",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let permission = utf8_arg(args)?;
                let granted = ctx.has_permission(&permission).await?;
                Ok::<String, String>(granted.to_string())
            },
        )
        .on_command("config", |ctx: PluginContext, args: Vec<u8>| async move {
            let arg = utf8_arg(args)?;
            match arg.split_once('=') {
                Some((key, value)) => {
                    ctx.config_set(key, value).await?;
                    Ok::<String, String>(String::new())
                }
                None => Ok(ctx.config_get(&arg).await?.unwrap_or_default()),
            }
        })
        .on_event(
            "chat.message",
            |ctx: PluginContext, event: Event| async move {
                let greeted = Greeted {
                    reply_to: &event.id,
                    text: "Hello from hello!",
                };
                let id = ctx.emit_json("greeted", &greeted).await?;
                ctx.info(&format!("greeted chat message {} as event {id}", event.id))
                    .await?;
                Ok::<(), SdkError>(())
            },
        )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    plugin().run().await
}

/// Command args as trimmed text; a typo'd trailing newline from a shell should not
/// become part of a name or a config key.
fn utf8_arg(args: Vec<u8>) -> Result<String, String> {
    String::from_utf8(args)
        .map(|s| s.trim().to_string())
        .map_err(|_| "arguments must be UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::plugin;
    use plexichat_plugin_sdk::testing::{EventFailure, TestBroker};
    use plexichat_plugin_sdk::LogLevel;

    fn broker() -> TestBroker {
        TestBroker::new("hello").grant("database_read", &["messages"])
    }

    #[tokio::test]
    async fn greets_by_name_and_refuses_binary_names() {
        let hello = broker().start(plugin()).await.expect("starts");
        assert_eq!(
            hello.invoke_text("greet", "Ada\n").await.as_deref(),
            Ok("Hello, Ada!")
        );
        assert_eq!(
            hello.invoke_text("greet", "").await.as_deref(),
            Ok("Hello, world!")
        );
        assert_eq!(
            hello.invoke("greet", b"\xff").await,
            Err("arguments must be UTF-8 text".to_string())
        );
        assert_eq!(
            hello.invoke("wave", b"").await,
            Err("unknown command `wave`".to_string())
        );
        hello.shutdown().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn reports_permissions_as_the_broker_sees_them_now() {
        let hello = broker().start(plugin()).await.expect("starts");
        assert_eq!(
            hello
                .invoke_text("has-permission", "database_read")
                .await
                .as_deref(),
            Ok("true")
        );
        assert_eq!(
            hello
                .invoke_text("has-permission", "network_outbound")
                .await
                .as_deref(),
            Ok("false")
        );
        // Revoked while running: the next answer changes, without a restart.
        hello.revoke("database_read");
        assert_eq!(
            hello
                .invoke_text("has-permission", "database_read")
                .await
                .as_deref(),
            Ok("false")
        );
    }

    #[tokio::test]
    async fn stores_and_reads_config() {
        let hello = broker()
            .config("color", "red")
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            hello.invoke_text("config", "color").await.as_deref(),
            Ok("red")
        );
        assert_eq!(
            hello.invoke_text("config", "color=blue").await.as_deref(),
            Ok("")
        );
        assert_eq!(hello.config("color").as_deref(), Some("blue"));
        assert_eq!(
            hello.invoke_text("config", "unset").await.as_deref(),
            Ok("")
        );
        // The broker refuses an empty key; the reply carries its code and message.
        let err = hello
            .invoke_text("config", "=x")
            .await
            .expect_err("refused");
        assert!(err.contains("INVALID_ARGUMENT"), "{err}");
    }

    #[tokio::test]
    async fn greets_chat_messages_with_an_event() {
        let hello = broker().start(plugin()).await.expect("starts");
        assert_eq!(hello.subscriptions(), ["chat.message"]);
        hello
            .event("chat.message", r#"{"text":"hi"}"#)
            .await
            .expect("handled");
        let emitted = hello.emitted();
        assert_eq!(emitted.len(), 1);
        assert_eq!(emitted[0].topic, "plugin.hello.greeted");
        let body: serde_json::Value = emitted[0].json().expect("json");
        assert_eq!(body["text"], "Hello from hello!");
        assert!(body["reply_to"]
            .as_str()
            .is_some_and(|id| id.starts_with("event-")));
        let logs = hello.logs();
        assert_eq!(logs[0].level, LogLevel::Info);
        assert!(logs[0].message.contains(&emitted[0].id), "{logs:?}");

        // Not subscribed: the broker would never deliver it, and nothing runs.
        let missed = hello.event("chat.typing", "{}").await;
        assert!(
            matches!(missed, Err(EventFailure::NotDelivered(_))),
            "{missed:?}"
        );
        assert_eq!(hello.emitted().len(), 1);
    }
}
