//! Grant expiry as an event: a grant stops working at its expiry on its own (every
//! check reads the clock); this records the moment and tells the admins.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::clock::{now_ms, rfc3339_ms};
use crate::context::Shared;

/// How often expiries are looked for; a record trails the expiry by at most this.
pub const TICK: Duration = Duration::from_secs(2);

/// Watches for grants passing their expiry while the supervisor runs.
pub fn watch(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut since = now_ms();
        loop {
            tokio::time::sleep(TICK).await;
            let now = now_ms();
            if let Err(e) = record_expired(&shared, since, now) {
                tracing::error!(error = %e, "checking grant expiry failed");
                continue;
            }
            since = now;
        }
    })
}

/// Audits and announces each grant whose expiry fell in `(since, now]`.
fn record_expired(shared: &Shared, since: i64, now: i64) -> Result<(), crate::store::StoreError> {
    let system = Actor::system();
    let expired = shared.store.permissions_where(|p| {
        p.status == crate::store::PermissionStatus::Granted
            && p.expires_at.is_some_and(|at| at > since && at <= now)
    })?;
    let mut entries = Vec::with_capacity(expired.len());
    for (plugin, perm) in expired {
        let at = perm.expires_at.unwrap_or(now);
        let message = format!(
            "{} of {} expired at {}",
            perm.permission,
            plugin.name,
            rfc3339_ms(at)
        );
        shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::PermissionExpired,
            &plugin.name,
            message,
        );
        entries.push(
            AuditEntry::new(&system, "permission.expired", Outcome::Ok)
                .plugin(&plugin.name)
                .permission(perm.permission.as_str())
                .change("granted", "expired")
                .detail(serde_json::json!({ "expired_at": rfc3339_ms(at), "scope": perm.granted_scope })),
        );
    }
    if !entries.is_empty() {
        shared.store.audit(entries)?;
    }
    Ok(())
}
