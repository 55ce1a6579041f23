//! The `moderator` example plugin, for host actions and sensitive events: it watches
//! private chats (`chat.private.*`, a sensitive topic needing `sensitive_events`) and
//! asks the PlexiChat server to ban a spammer (`user_management`, action `ban_user`).

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_event(
            "chat.private.*",
            |ctx: PluginContext, event: Event| async move {
                let text = String::from_utf8_lossy(&event.payload);
                if text.contains("buy cheap") {
                    let sender = event
                        .topic
                        .rsplit('.')
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    // The server performs the ban (the grant's scope `ban_user` names the whole
                    // action); the broker checked the grant first.
                    let result = ctx
                        .host()
                        .act("user_management", "ban_user", sender.as_bytes())
                        .await?;
                    ctx.info(&format!(
                        "banned {sender}: {}",
                        String::from_utf8_lossy(&result)
                    ))
                    .await?;
                }
                Ok::<(), SdkError>(())
            },
        )
        .run()
        .await
}
