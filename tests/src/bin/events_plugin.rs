//! Test plugin for event delivery: subscribes to `chat.*` (which overlaps the
//! sensitive `chat.private.*`), and `subscribe <pattern>` replaces its subscription,
//! answering the broker's refusal as `ERR <code>: <error>`.

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_event("chat.*", |_ctx: PluginContext, _event: Event| async {})
        .on_command(
            "subscribe",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let pattern = String::from_utf8_lossy(&args).trim().to_string();
                Ok::<String, String>(match ctx.subscribe(&[pattern.as_str()]).await {
                    Ok(topics) => topics.join(","),
                    Err(e) => format!("ERR {:?}: {e}", e.code()),
                })
            },
        )
        .run()
        .await
}
