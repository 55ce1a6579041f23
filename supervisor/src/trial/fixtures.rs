//! The admin's canned HTTP answers for a trial: a JSON map of URL to status, headers
//! and body, looked up by exact URL; anything else is refused.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Largest fixture file and most entries: the daemon holds it for the trial.
pub const MAX_HTTP_FIXTURE_BYTES: usize = 512 * 1024;
const MAX_ENTRIES: usize = 256;

/// One canned answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Canned {
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

/// URL -> answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpFixture(BTreeMap<String, Canned>);

impl HttpFixture {
    pub fn parse(text: &str) -> Result<HttpFixture, String> {
        if text.len() > MAX_HTTP_FIXTURE_BYTES {
            return Err(format!(
                "at most {MAX_HTTP_FIXTURE_BYTES} bytes (got {})",
                text.len()
            ));
        }
        let map: BTreeMap<String, Canned> = serde_json::from_str(text).map_err(|e| {
            format!("expected {{\"URL\": {{\"status\": 200, \"headers\": {{}}, \"body\": \"...\"}}}}: {e}")
        })?;
        if map.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} URLs (got {})", map.len()));
        }
        for (url, canned) in &map {
            reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
            if !(100..=599).contains(&canned.status) {
                return Err(format!(
                    "`{url}`: status must be 100-599 (got {})",
                    canned.status
                ));
            }
        }
        Ok(HttpFixture(map))
    }

    /// The answer for `url` (compared as the URL parser normalises it).
    pub fn answer(&self, url: &str) -> Option<&Canned> {
        let wanted = reqwest::Url::parse(url).ok()?;
        self.0
            .iter()
            .find(|(k, _)| reqwest::Url::parse(k).is_ok_and(|u| u == wanted))
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_known_urls_only() {
        let f = HttpFixture::parse(
            r#"{"https://api.example.com/v1": {"status": 200, "body": "ok"},
                "http://x.test": {"status": 404, "headers": {"a": "b"}}}"#,
        )
        .unwrap();
        assert_eq!(f.answer("https://api.example.com/v1").unwrap().body, "ok");
        assert_eq!(f.answer("http://x.test/").unwrap().status, 404);
        assert!(f.answer("https://api.example.com/v2").is_none());
        assert!(HttpFixture::parse(r#"{"nope": {"status": 200}}"#).is_err());
        assert!(HttpFixture::parse(r#"{"http://a.test": {"status": 42}}"#).is_err());
    }
}
