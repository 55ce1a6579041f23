//! Bounds on what an audit record keeps of caller-chosen text: each field at most
//! 1 KiB, a record's detail at most 8 KiB, with the full length and SHA-256 of a cut.

// Applied to every record at the writer's door (`AuditWriter::record` and the admin
// transactions' `Tx::audit`), so no handler can forget it: a plugin that sends a
// 1 MiB path, scope or argv leaves a record of about one KiB, still readable by
// `audit plugins`, that proves what was sent (its length and hash) without keeping it.
// `short` is the companion for error messages, which quote input at most 96 chars.

use std::borrow::Cow;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::AuditEntry;
use crate::text::prefix;

/// Most bytes one field keeps (its JSON text for a list or an object).
pub const FIELD_BYTES: usize = 1024;
/// Most bytes a record's detail keeps in all.
pub const RECORD_BYTES: usize = 8 * 1024;
/// Most characters of input an error message quotes.
pub const QUOTED_CHARS: usize = 96;

/// `s`, or its first [`QUOTED_CHARS`] characters and "…": for quoting input in errors.
pub fn short(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(QUOTED_CHARS) {
        None => Cow::Borrowed(s),
        Some((end, _)) => Cow::Owned(format!("{}…", &s[..end])),
    }
}

/// What a cut field becomes: the start of its text, its full length and its hash.
fn cut(text: &str, keep: usize) -> Value {
    let digest = Sha256::digest(text.as_bytes());
    serde_json::json!({
        "cut": format!("{}…", prefix(text, keep)),
        "bytes": text.len(),
        "sha256": crate::install::hex(&digest),
    })
}

/// `value` within `keep` bytes: itself if it fits, else its cut form.
fn bound_value(value: Value, keep: usize) -> Value {
    match value {
        Value::String(s) if s.len() > keep => cut(&s, keep),
        Value::String(_) | Value::Null | Value::Bool(_) | Value::Number(_) => value,
        other => {
            let text = other.to_string();
            if text.len() > keep {
                cut(&text, keep)
            } else {
                other
            }
        }
    }
}

/// A record's detail within the caps: every top-level field within [`FIELD_BYTES`],
/// then the whole within [`RECORD_BYTES`] (cut as one text if many fields still
/// exceed it).
pub fn bound_detail(detail: Value) -> Value {
    let bounded = match detail {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| {
                    let key = prefix(&k, 128).to_string();
                    (key, bound_value(v, FIELD_BYTES))
                })
                .collect::<Map<String, Value>>(),
        ),
        other => bound_value(other, FIELD_BYTES),
    };
    let text = bounded.to_string();
    if text.len() <= RECORD_BYTES {
        bounded
    } else {
        serde_json::json!({ "detail": cut(&text, FIELD_BYTES) })
    }
}

/// A text column (before/after, on_behalf_of) within [`FIELD_BYTES`].
fn bound_text(text: &mut Option<String>) {
    if let Some(t) = text.as_mut().filter(|t| t.len() > FIELD_BYTES) {
        let digest = crate::install::hex(&Sha256::digest(t.as_bytes()));
        *t = format!(
            "{}… ({} bytes, sha256 {digest})",
            prefix(t, FIELD_BYTES),
            t.len()
        );
    }
}

impl AuditEntry {
    /// This record within the caps of [`bound_detail`]; its other caller-chosen
    /// texts within [`FIELD_BYTES`] each.
    pub fn bounded(mut self) -> AuditEntry {
        self.detail = bound_detail(std::mem::take(&mut self.detail));
        for text in [
            &mut self.before,
            &mut self.after,
            &mut self.on_behalf_of,
            &mut self.permission,
            &mut self.plugin,
        ] {
            bound_text(text);
        }
        if self.action.len() > FIELD_BYTES {
            let mut action = Some(std::mem::take(&mut self.action));
            bound_text(&mut action);
            self.action = action.unwrap_or_default();
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, Outcome};

    fn sha(s: &str) -> String {
        crate::install::hex(&Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn small_fields_stay_and_large_ones_keep_a_prefix_their_length_and_hash() {
        let path = "/srv/".to_string() + &"é".repeat(600_000);
        let argv: Vec<String> = (0..300).map(|i| format!("--arg-{i}")).collect();
        let entry = AuditEntry::new(&Actor::plugin("p"), "broker.file_read", Outcome::Denied)
            .detail(serde_json::json!({
                "op": "read",
                "bytes": 3,
                "path": path,
                "argv": argv,
            }))
            .bounded();
        let d = &entry.detail;
        assert_eq!(d["op"], "read");
        assert_eq!(d["bytes"], 3);
        assert_eq!(d["path"]["bytes"], path.len());
        assert_eq!(d["path"]["sha256"], sha(&path));
        let kept = d["path"]["cut"].as_str().expect("prefix");
        assert!(kept.len() <= FIELD_BYTES + '…'.len_utf8(), "{}", kept.len());
        assert!(path.starts_with(kept.trim_end_matches('…')));
        let argv_text = serde_json::to_string(&argv).expect("json");
        assert_eq!(d["argv"]["bytes"], argv_text.len());
        assert_eq!(d["argv"]["sha256"], sha(&argv_text));
        assert!(d.to_string().len() <= RECORD_BYTES);
    }

    #[test]
    fn many_fields_together_stay_within_the_record_cap() {
        let mut detail = Map::new();
        for i in 0..40 {
            detail.insert(format!("f{i}"), "x".repeat(1000).into());
        }
        let detail = Value::Object(detail);
        let whole = detail.to_string();
        let bounded = bound_detail(detail);
        assert!(bounded.to_string().len() <= RECORD_BYTES);
        assert_eq!(bounded["detail"]["bytes"], whole.len());
        assert_eq!(bounded["detail"]["sha256"], sha(&whole));
    }

    #[test]
    fn columns_and_error_quotes_are_short() {
        let long = "a".repeat(5000);
        let entry = AuditEntry::new(&Actor::plugin("p"), "x", Outcome::Ok)
            .change(long.clone(), "b")
            .bounded();
        let before = entry.before.expect("before");
        assert!(before.len() < FIELD_BYTES + 120, "{}", before.len());
        assert!(before.contains("5000 bytes") && before.contains(&sha(&long)));
        assert_eq!(entry.after.as_deref(), Some("b"));
        assert_eq!(short("abc"), "abc");
        let quoted = short(&long);
        assert_eq!(quoted.chars().count(), QUOTED_CHARS + 1);
        assert!(quoted.ends_with('…'));
    }
}
