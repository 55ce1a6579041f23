//! The audit log's hash chain: every record stores the hash of the record before it
//! and its own, so changing, removing or inserting a record breaks the chain there.

use sha2::{Digest, Sha256};

/// The stored columns a record's hash covers.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub ts: i64,
    pub actor: &'a str,
    pub role: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub action: &'a str,
    pub plugin: Option<&'a str>,
    pub permission: Option<&'a str>,
    pub outcome: &'a str,
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
    pub detail: Option<&'a str>,
}

/// SHA-256 over `prev` and every field, each length-prefixed (absent fields marked
/// apart from empty ones), as lowercase hex.
pub fn hash(prev: &str, f: &Fields<'_>) -> String {
    let mut h = Sha256::new();
    let ts = f.ts.to_string();
    for field in [
        Some(prev),
        Some(ts.as_str()),
        Some(f.actor),
        Some(f.role),
        f.on_behalf_of,
        Some(f.action),
        f.plugin,
        f.permission,
        Some(f.outcome),
        f.before,
        f.after,
        f.detail,
    ] {
        match field {
            None => h.update(b"-;"),
            Some(s) => {
                h.update(format!("{}:", s.len()).as_bytes());
                h.update(s.as_bytes());
                h.update(b";");
            }
        }
    }
    crate::install::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(detail: Option<&'a str>) -> Fields<'a> {
        Fields {
            ts: 1,
            actor: "supervisor",
            role: "system",
            on_behalf_of: None,
            action: "plugin.start",
            plugin: Some("p"),
            permission: None,
            outcome: "ok",
            before: None,
            after: None,
            detail,
        }
    }

    #[test]
    fn every_field_and_the_previous_hash_count() {
        let base = hash("", &fields(None));
        assert_eq!(base.len(), 64);
        assert_ne!(base, hash("x", &fields(None)), "previous hash");
        assert_ne!(
            base,
            hash("", &fields(Some(""))),
            "absent differs from empty"
        );
        assert_ne!(hash("", &fields(Some("ab"))), hash("", &fields(Some("a"))));
        assert_eq!(base, hash("", &fields(None)), "deterministic");
    }
}
