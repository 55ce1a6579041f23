//! The `hello` example plugin: answers `greet`, `has-permission` and `config`, and
//! greets every `chat.message` event with a `plugin.hello.greeted` event.

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};
use serde::Serialize;

#[derive(Serialize)]
struct Greeted<'a> {
    reply_to: &'a str,
    text: &'a str,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
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
        .run()
        .await
}

/// Command args as trimmed text; a typo'd trailing newline from a shell should not
/// become part of a name or a config key.
fn utf8_arg(args: Vec<u8>) -> Result<String, String> {
    String::from_utf8(args)
        .map(|s| s.trim().to_string())
        .map_err(|_| "arguments must be UTF-8 text".to_string())
}
