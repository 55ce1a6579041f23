//! Events delivered to a plugin, the `Events` client, and the topic patterns
//! (`exact.topic`, `prefix.*`) that decide which handler sees which event.

use serde::de::DeserializeOwned;

use broker_proto::broker::v1 as pb;

use crate::SdkError;

/// An event pushed by the supervisor on the session stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique id assigned by the supervisor; use it to correlate replies.
    pub id: String,
    /// The topic it was published on, e.g. `chat.message`.
    pub topic: String,
    /// The payload as published (often JSON; see [`Event::json`]).
    pub payload: Vec<u8>,
    /// `"server"` for events from the PlexiChat server, else `"plugin:<name>"`.
    pub source: String,
    /// Unix milliseconds at which the event was published.
    pub timestamp_ms: i64,
}

impl Event {
    /// Decodes the payload as JSON.
    ///
    /// # Errors
    /// [`SdkError::Json`] when the payload is not JSON of type `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, SdkError> {
        Ok(serde_json::from_slice(&self.payload)?)
    }

    /// The payload as UTF-8 text, if it is valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

impl Event {
    /// From the wire form (a function, so no broker-proto type is in the public API).
    pub(crate) fn from_pb(e: pb::Event) -> Event {
        Event {
            id: e.id,
            topic: e.topic,
            payload: e.payload.into(),
            source: e.source,
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// Whether `topic` is selected by `pattern`: either the exact topic, or `prefix.*`,
/// which matches `prefix.<anything non-empty>` (including deeper `prefix.a.b`) but
/// not `prefix` itself.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('.') => {
            topic.len() > prefix.len() && topic.starts_with(prefix)
        }
        _ => pattern == topic,
    }
}

/// Rejects patterns the broker could never honour, so a typo fails at startup rather
/// than silently never matching. The broker still has the final say on what is allowed.
pub(crate) fn validate_pattern(pattern: &str) -> Result<(), String> {
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    let well_formed = !body.is_empty()
        && body.split('.').all(|segment| !segment.is_empty())
        && body
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '*');
    if well_formed {
        Ok(())
    } else {
        Err(format!(
            "`{pattern}` is not a topic pattern (expected `a.topic` or `a.prefix.*`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_patterns_match_only_themselves() {
        assert!(topic_matches("chat.message", "chat.message"));
        assert!(!topic_matches("chat.message", "chat.message.edited"));
        assert!(!topic_matches("chat.message", "chat"));
        assert!(!topic_matches("chat.message", "chat.messages"));
    }

    #[test]
    fn prefix_patterns_match_children_only() {
        assert!(topic_matches("chat.*", "chat.message"));
        assert!(topic_matches("chat.*", "chat.message.edited"));
        assert!(!topic_matches("chat.*", "chat"));
        assert!(!topic_matches("chat.*", "chat."));
        assert!(!topic_matches("chat.*", "chatter.message"));
        assert!(!topic_matches("chat.*", "user.chat.message"));
    }

    #[test]
    fn a_star_without_a_dot_is_literal() {
        // Only `.*` is a wildcard; `chat*` would never validate, and must not match `chatter`.
        assert!(!topic_matches("chat*", "chatter"));
        assert!(validate_pattern("chat*").is_err());
    }

    #[test]
    fn validates_patterns() {
        for ok in [
            "chat.message",
            "chat.*",
            "plugin.hello.greeted",
            "a.b.*",
            "user",
        ] {
            assert!(validate_pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "*",
            ".*",
            "chat.",
            ".chat",
            "chat..message",
            "chat.*.x",
            "chat message",
            "chat.**",
            "a\nb",
        ] {
            assert!(validate_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn decodes_json_payloads() {
        let event = Event {
            id: "e1".into(),
            topic: "chat.message".into(),
            payload: br#"{"text":"hi"}"#.to_vec(),
            source: "server".into(),
            timestamp_ms: 1,
        };
        let v: serde_json::Value = event.json().expect("valid json");
        assert_eq!(v["text"], "hi");
        assert_eq!(event.text(), Some(r#"{"text":"hi"}"#));
        let bad = Event {
            payload: b"\xff".to_vec(),
            ..event
        };
        assert!(matches!(
            bad.json::<serde_json::Value>(),
            Err(SdkError::Json(_))
        ));
        assert_eq!(bad.text(), None);
    }
}

/// Events through the supervisor's broker; obtain it with
/// [`PluginContext::events`](crate::PluginContext::events). Cheap to clone.
///
/// A plugin emits only under its own namespace (`plugin.<name>.`) and may subscribe to
/// any topic; events on topics the operator marks sensitive (shipped: `user.*`,
/// `moderation.*`, `chat.private.*`) reach it only with a `sensitive_events` grant
/// covering them, and subscribing entirely inside one without it is
/// `is_permission_denied`.
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// let events = ctx.events();
/// events.subscribe(&["chat.*"]).await?;
/// let id = events.emit("summary.ready", b"{}").await?; // topic plugin.<name>.summary.ready
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Events {
    ctx: crate::PluginContext,
}

impl Events {
    pub(crate) fn new(ctx: crate::PluginContext) -> Events {
        Events { ctx }
    }

    /// Publishes `payload` on `plugin.<name>.<name>`; returns the event id.
    ///
    /// # Errors
    /// As [`PluginContext::emit`](crate::PluginContext::emit).
    pub async fn emit(&self, name: &str, payload: &[u8]) -> Result<String, crate::SdkError> {
        self.ctx.emit(name, payload).await
    }

    /// [`emit`](Self::emit) with `value` encoded as JSON.
    ///
    /// # Errors
    /// As [`PluginContext::emit_json`](crate::PluginContext::emit_json).
    pub async fn emit_json<T: serde::Serialize + ?Sized>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<String, crate::SdkError> {
        self.ctx.emit_json(name, value).await
    }

    /// Adds subscriptions (exact topics or `prefix.*`); returns all the broker delivers.
    ///
    /// # Errors
    /// As [`PluginContext::subscribe`](crate::PluginContext::subscribe).
    pub async fn subscribe(&self, topics: &[&str]) -> Result<Vec<String>, crate::SdkError> {
        self.ctx.subscribe(topics).await
    }
}
