//! The `moderator` example plugin, for host actions and sensitive events: it watches
//! private chats (`chat.private.*`, a sensitive topic needing `sensitive_events`) and
//! asks the PlexiChat server to ban a spammer (`user_management`, action `ban_user`).

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
    Plugin::new().on_event(
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
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    plugin().run().await
}

#[cfg(test)]
mod tests {
    use super::plugin;
    use plexichat_plugin_sdk::testing::{EventFailure, TestBroker};
    use plexichat_plugin_sdk::ErrorCode;

    fn approved() -> TestBroker {
        TestBroker::new("moderator")
            .grant("sensitive_events", &["chat.private.*"])
            .grant("user_management", &["ban_user"])
            .host_answer("user_management", "ban_user", "", Ok(b"banned".to_vec()))
    }

    #[tokio::test]
    async fn bans_the_sender_of_spam_and_nobody_else() {
        let moderator = approved().start(plugin()).await.expect("starts");
        moderator
            .event("chat.private.mallory", "buy cheap watches")
            .await
            .expect("handled");
        let calls = moderator.host_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(
            (
                calls[0].permission.as_str(),
                calls[0].target.as_str(),
                calls[0].payload.as_slice()
            ),
            ("user_management", "ban_user", b"mallory".as_slice())
        );
        assert_eq!(moderator.logs()[0].message, "banned mallory: banned");

        moderator
            .event("chat.private.alice", "see you at noon")
            .await
            .expect("handled");
        assert_eq!(
            moderator.host_calls().len(),
            1,
            "an innocent message bans nobody"
        );
        moderator.shutdown().await.expect("clean shutdown");
    }

    #[tokio::test]
    async fn without_user_management_the_ban_is_refused_before_the_server() {
        let moderator = TestBroker::new("moderator")
            .grant("sensitive_events", &["chat.private.*"])
            .start(plugin())
            .await
            .expect("starts");
        let failed = moderator
            .event("chat.private.mallory", "buy cheap watches")
            .await;
        match failed {
            Err(EventFailure::HandlerFailed(errors)) => assert!(
                errors[0]
                    .contains("PERMISSION_DENIED: user_management is not granted for `ban_user`"),
                "{errors:?}"
            ),
            other => panic!("expected a refused ban, got {other:?}"),
        }
        assert!(moderator.host_calls().is_empty());
        // The SDK reports the failed handler to the supervisor log.
        assert!(moderator
            .logs()
            .iter()
            .any(|l| l.message.contains("failed")));
    }

    #[tokio::test]
    async fn without_sensitive_events_it_cannot_even_subscribe() {
        let refused = TestBroker::new("moderator")
            .grant("user_management", &["ban_user"])
            .start(plugin())
            .await
            .expect_err("refused");
        assert_eq!(
            refused.code(),
            Some(ErrorCode::PermissionDenied),
            "{refused}"
        );
        assert!(
            refused
                .to_string()
                .contains("sensitive_events is not granted"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_server_refusal_is_the_handlers_error() {
        let moderator = TestBroker::new("moderator")
            .grant("sensitive_events", &["chat.private.*"])
            .grant("user_management", &["ban_user"])
            .host_answer(
                "user_management",
                "ban_user",
                "",
                Err((ErrorCode::FailedPrecondition, "mallory is an admin".into())),
            )
            .start(plugin())
            .await
            .expect("starts");
        let failed = moderator.event("chat.private.mallory", "buy cheap").await;
        assert!(
            matches!(&failed, Err(EventFailure::HandlerFailed(e)) if e[0].contains("mallory is an admin")),
            "{failed:?}"
        );
    }
}
