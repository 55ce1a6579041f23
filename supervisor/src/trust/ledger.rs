//! Changes to the trust store, each in one audited transaction: a key proposed by one
//! admin and trusted by a second, removed, revoked (flagging what it signed), or
//! seeded offline by the host's root.

use super::{KeyRow, KeyState, NamePattern, PublisherKey};
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::now_ms;
use crate::store::{self, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The request conflicts with the key's state (named).
    #[error("{0}")]
    Conflict(String),
    #[error("no key {0} is in the trust store (`plexichat trust list`)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an `add-key` did.
#[derive(Debug)]
pub enum Added {
    /// The first admin's proposal: a second, different admin must add it too.
    Proposed(KeyRow),
    /// The second admin's: the key signs packages from now on.
    Trusted(KeyRow),
}

/// The alert rule a revocation raises under, one alert per plugin the key signed.
pub const REVOKED_RULE: &str = "signing_key_revoked";

/// What a request to add a key says.
#[derive(Clone, Copy)]
pub struct KeyRequest<'a> {
    pub key: &'a PublisherKey,
    pub publisher: &'a str,
    pub plugins: &'a NamePattern,
    pub comment: &'a str,
}

/// Proposes the key, or trusts it when another admin proposed exactly this.
pub fn add_key(store: &Store, actor: &Actor, req: &KeyRequest<'_>) -> Result<Added, TrustError> {
    let fpr = req.key.fingerprint();
    store.write(|tx| {
        let now = now_ms();
        let existing = store::trusted_key(&tx.sql, &fpr)?;
        let (row, added) = match existing {
            None => proposal(actor, req, &fpr, now),
            Some(k) if k.state == KeyState::Removed => proposal(actor, req, &fpr, now),
            Some(k) => match k.state {
                KeyState::Trusted => {
                    return Err(TrustError::Conflict(format!(
                        "key {fpr} is already trusted, as {} for `{}`",
                        k.publisher, k.plugins
                    )))
                }
                KeyState::Revoked => {
                    return Err(TrustError::Conflict(format!(
                        "key {fpr} was revoked by {} ({}): a revoked key is never trusted again; the publisher needs a new key",
                        k.ended_by.as_deref().unwrap_or("an admin"),
                        k.end_comment.as_deref().unwrap_or("no reason given")
                    )))
                }
                _ => second_admin(actor, req, k, now)?,
            },
        };
        store::put_trusted_key(&tx.sql, &row)?;
        let action = match added {
            true => "trust.key_added",
            false => "trust.key_proposed",
        };
        tx.audit(
            AuditEntry::new(actor, action, Outcome::Ok)
                .change(
                    if added { "proposed" } else { "absent" },
                    row.state.as_str(),
                )
                .detail(key_detail(&row, req.comment)),
        );
        Ok(if added {
            Added::Trusted(row)
        } else {
            Added::Proposed(row)
        })
    })
}

fn proposal(actor: &Actor, req: &KeyRequest<'_>, fpr: &str, now: i64) -> (KeyRow, bool) {
    let row = KeyRow {
        fingerprint: fpr.to_string(),
        publisher: req.publisher.to_string(),
        plugins: req.plugins.clone(),
        public_key: req.key.openssh(),
        state: KeyState::Proposed,
        comment: req.comment.to_string(),
        proposed_by: actor.approver_key().to_string(),
        proposed_at: now,
        approved_by: None,
        approved_at: None,
        ended_by: None,
        ended_at: None,
        end_comment: None,
    };
    (row, false)
}

/// The second admin's add: it must be another admin, for the same publisher and names.
fn second_admin(
    actor: &Actor,
    req: &KeyRequest<'_>,
    k: KeyRow,
    now: i64,
) -> Result<(KeyRow, bool), TrustError> {
    if k.proposed_by == actor.approver_key() {
        return Err(TrustError::Conflict(format!(
            "key {} was proposed by {}: a second, different admin must add it too",
            k.fingerprint, k.proposed_by
        )));
    }
    if k.publisher != req.publisher || &k.plugins != req.plugins {
        return Err(TrustError::Conflict(format!(
            "key {} was proposed as {} for `{}`; a second admin trusts exactly that (--name {:?} --plugins {:?}), or removes the proposal",
            k.fingerprint, k.publisher, k.plugins, k.publisher, k.plugins.as_str()
        )));
    }
    let row = KeyRow {
        state: KeyState::Trusted,
        approved_by: Some(actor.approver_key().to_string()),
        approved_at: Some(now),
        ..k
    };
    Ok((row, true))
}

fn key_detail(row: &KeyRow, comment: &str) -> serde_json::Value {
    serde_json::json!({
        "fingerprint": row.fingerprint,
        "publisher": row.publisher,
        "plugins": row.plugins.as_str(),
        "proposed_by": row.proposed_by,
        "approved_by": row.approved_by,
        "comment": comment,
    })
}

/// Remove (signs nothing new; what it signed stays as it is) or revoke (also flags
/// and alerts on every installed plugin it signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Remove,
    Revoke,
}

/// Ends a key's trust. Returns the key as it is now and the installed plugins it
/// signed (for a revocation, the ones flagged).
pub fn end_key(
    store: &Store,
    actor: &Actor,
    fingerprint: &str,
    ending: Ending,
    comment: &str,
) -> Result<(KeyRow, Vec<String>), TrustError> {
    store.write(|tx| {
        let k = store::trusted_key(&tx.sql, fingerprint)?
            .ok_or_else(|| TrustError::NotFound(fingerprint.to_string()))?;
        let next = match ending {
            Ending::Remove => KeyState::Removed,
            Ending::Revoke => KeyState::Revoked,
        };
        if k.state == KeyState::Revoked || k.state == next {
            return Err(TrustError::Conflict(format!(
                "key {fingerprint} is already {}",
                k.state.as_str()
            )));
        }
        let before = k.state;
        let now = now_ms();
        let row = KeyRow {
            state: next,
            ended_by: Some(actor.approver_key().to_string()),
            ended_at: Some(now),
            end_comment: Some(comment.to_string()),
            ..k
        };
        store::put_trusted_key(&tx.sql, &row)?;
        let signed = store::plugins_signed_by(&tx.sql, fingerprint)?;
        let action = match ending {
            Ending::Remove => "trust.key_removed",
            Ending::Revoke => "trust.key_revoked",
        };
        let mut detail = key_detail(&row, comment);
        detail["signed_plugins"] = serde_json::json!(signed);
        tx.audit(
            AuditEntry::new(actor, action, Outcome::Ok)
                .change(before.as_str(), next.as_str())
                .detail(detail),
        );
        if ending == Ending::Revoke {
            for plugin in &signed {
                raise_revoked(tx, &row, plugin)?;
            }
        }
        Ok((row, signed))
    })
}

/// One alert for a plugin whose installed version a revoked key signed.
fn raise_revoked(tx: &mut store::Tx<'_>, row: &KeyRow, plugin: &str) -> Result<(), StoreError> {
    let message = format!(
        "{plugin} was signed by {}'s key {}, revoked by {}: review it, and remove it or update it from a trusted key",
        row.publisher,
        row.fingerprint,
        row.ended_by.as_deref().unwrap_or("an admin")
    );
    let detail = serde_json::json!({ "fingerprint": row.fingerprint, "publisher": row.publisher });
    crate::alerts::raise_event(tx, plugin, REVOKED_RULE, message, detail)?;
    Ok(())
}

/// Trusts a key without a second admin: only the host's root, with the supervisor
/// stopped (the caller holds the state directory's lock), seeds a host's first key.
pub fn bootstrap_key(store: &Store, req: &KeyRequest<'_>) -> Result<KeyRow, TrustError> {
    let actor = Actor::system();
    let fpr = req.key.fingerprint();
    store.write(|tx| {
        if let Some(k) = store::trusted_key(&tx.sql, &fpr)? {
            if k.state == KeyState::Trusted
                && k.publisher == req.publisher
                && &k.plugins == req.plugins
            {
                return Ok(k);
            }
            if k.state == KeyState::Revoked {
                return Err(TrustError::Conflict(format!(
                    "key {fpr} was revoked: a revoked key is never trusted again"
                )));
            }
        }
        let now = now_ms();
        let (row, _) = proposal(&actor, req, &fpr, now);
        let row = KeyRow {
            state: KeyState::Trusted,
            proposed_by: "root (offline bootstrap)".into(),
            approved_by: Some("root (offline bootstrap)".into()),
            approved_at: Some(now),
            ..row
        };
        store::put_trusted_key(&tx.sql, &row)?;
        tx.audit(
            AuditEntry::new(&actor, "trust.key_added", Outcome::Ok)
                .change("absent", "trusted")
                .detail(key_detail(&row, req.comment)),
        );
        Ok(row)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(name: &str) -> Actor {
        let mut a = Actor::system();
        a.identity = name.into();
        a
    }

    #[test]
    fn two_admins_trust_a_key_and_a_revocation_flags_what_it_signed() {
        let (_dir, store) = crate::store::tests::store();
        let (private, row) = super::super::verify::tests::keypair(3, "acme", "acme-*");
        let key = PublisherKey::parse(&private.public_key().to_openssh().unwrap()).unwrap();
        let pattern = row.plugins.clone();
        let req = KeyRequest {
            key: &key,
            publisher: "acme",
            plugins: &pattern,
            comment: "vetted",
        };
        let (a, b) = (admin("uid:1001"), admin("uid:1002"));
        assert!(matches!(
            add_key(&store, &a, &req).unwrap(),
            Added::Proposed(_)
        ));
        let again = add_key(&store, &a, &req).unwrap_err();
        assert!(
            again.to_string().contains("second, different admin"),
            "{again}"
        );
        let other_name = KeyRequest {
            publisher: "acme2",
            ..req
        };
        assert!(add_key(&store, &b, &other_name)
            .unwrap_err()
            .to_string()
            .contains("was proposed as acme"));
        let Added::Trusted(k) = add_key(&store, &b, &req).unwrap() else {
            panic!("not trusted")
        };
        assert_eq!(k.approved_by.as_deref(), Some("uid:1002"));
        assert!(add_key(&store, &b, &req)
            .unwrap_err()
            .to_string()
            .contains("already trusted"));

        let mut plugin = crate::store::tests::row("acme-hi");
        plugin.signer = Some(super::super::Signer {
            fingerprint: k.fingerprint.clone(),
            publisher: "acme".into(),
        });
        store
            .write(|tx| store::insert_plugin(&tx.sql, &plugin))
            .unwrap();
        let (revoked, flagged) =
            end_key(&store, &a, &k.fingerprint, Ending::Revoke, "leaked").unwrap();
        assert_eq!(revoked.state, KeyState::Revoked);
        assert_eq!(flagged, ["acme-hi"]);
        let alerts = store
            .read(|c| store::open_alert(c, "acme-hi", REVOKED_RULE))
            .unwrap();
        assert!(alerts.is_some_and(|a| a.message.contains("revoked")));
        assert!(end_key(&store, &a, &k.fingerprint, Ending::Remove, "x")
            .unwrap_err()
            .to_string()
            .contains("already revoked"));
        assert!(add_key(&store, &a, &req)
            .unwrap_err()
            .to_string()
            .contains("never trusted again"));
        assert!(matches!(
            end_key(&store, &a, "SHA256:none", Ending::Remove, "x"),
            Err(TrustError::NotFound(_))
        ));
    }
}
