//! One plugin's topic subscriptions: a set of exact topics and of `prefix.*` patterns,
//! capped in number, matched by lookups (one per dot in the topic), never by a scan.

use std::collections::BTreeSet;
use std::collections::HashSet;

/// An immutable snapshot of a plugin's subscriptions; a change builds a new one.
#[derive(Debug, Default, Clone)]
pub struct Subscriptions {
    exact: HashSet<String>,
    /// `prefix.*` patterns, stored as `prefix` (without the `.*`).
    prefixes: HashSet<String>,
}

/// More subscriptions than a plugin may keep.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a plugin keeps at most {max} subscriptions (broker.max_subscriptions); it has {held} and this call would add {adding} more")]
pub struct TooMany {
    pub max: usize,
    pub held: usize,
    pub adding: usize,
}

impl Subscriptions {
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefixes.len()
    }

    /// This set plus `patterns` (already validated), or nothing at all if the result
    /// would hold more than `max`.
    pub fn with(&self, patterns: &[String], max: usize) -> Result<Subscriptions, TooMany> {
        let mut next = self.clone();
        for p in patterns {
            match p.strip_suffix(".*") {
                Some(prefix) => next.prefixes.insert(prefix.to_string()),
                None => next.exact.insert(p.clone()),
            };
        }
        if next.len() > max {
            return Err(TooMany {
                max,
                held: self.len(),
                adding: next.len() - self.len(),
            });
        }
        Ok(next)
    }

    /// Whether any pattern matches `topic`: the exact topic, or a `prefix.*` whose
    /// prefix is the topic cut at one of its dots.
    pub fn matches(&self, topic: &str) -> bool {
        if self.exact.contains(topic) {
            return true;
        }
        if self.prefixes.is_empty() {
            return false;
        }
        topic
            .match_indices('.')
            .any(|(i, _)| self.prefixes.contains(&topic[..i]))
    }

    /// Every pattern, sorted, as the plugin wrote them.
    pub fn patterns(&self) -> Vec<String> {
        let all: BTreeSet<String> = self
            .exact
            .iter()
            .cloned()
            .chain(self.prefixes.iter().map(|p| format!("{p}.*")))
            .collect();
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::topic_matches;

    fn set(patterns: &[&str]) -> Subscriptions {
        let p: Vec<String> = patterns.iter().map(|s| s.to_string()).collect();
        Subscriptions::default()
            .with(&p, 256)
            .expect("within the cap")
    }

    #[test]
    fn matches_like_topic_matches() {
        let patterns = ["chat.*", "user.joined", "a.b.*"];
        let s = set(&patterns);
        for topic in [
            "chat.message",
            "chat.private.dm",
            "chat",
            "chatter.x",
            "user.joined",
            "user.joined.x",
            "user.left",
            "a.b",
            "a.b.c",
            "a.bc.d",
            "x.a.b.c",
        ] {
            let want = patterns.iter().any(|p| topic_matches(p, topic));
            assert_eq!(s.matches(topic), want, "{topic}");
        }
    }

    #[test]
    fn deduplicates_and_caps_all_or_nothing() {
        let s = set(&["a.b", "a.b", "c.*"]);
        assert_eq!(s.patterns(), ["a.b", "c.*"]);
        let more: Vec<String> = (0..3).map(|i| format!("t.{i}")).collect();
        let err = s.with(&more, 4).expect_err("over the cap");
        assert_eq!(
            err,
            TooMany {
                max: 4,
                held: 2,
                adding: 3
            }
        );
        assert!(err.to_string().contains("broker.max_subscriptions"));
        // Patterns already held do not count again.
        let again: Vec<String> = vec!["a.b".into(), "c.*".into(), "t.0".into()];
        assert_eq!(s.with(&again, 3).expect("fits").len(), 3);
    }
}
