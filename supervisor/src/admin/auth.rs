//! Who is calling the admin socket: SO_PEERCRED uid/gid mapped to a role by the
//! config, the optional on-behalf-of identity of the server role, and what each
//! role may do. Refusals are audited with the caller's identity.

use broker_proto::ON_BEHALF_OF_HEADER;
use tonic::transport::server::UdsConnectInfo;
use tonic::{Request, Status};

use crate::audit::{Actor, AuditEntry, AuditWriter, Outcome, Role};
use crate::config::Access;
use crate::store::Store;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Look at plugins, approvals, audit: any role.
    Read,
    /// The PlexiChat server's data plane (publish, invoke, watch events): server or admin.
    Serve,
    /// Change anything: admin, or the server acting for a named end-user admin.
    Change,
}

impl Need {
    fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Serve => "serve",
            Need::Change => "change",
        }
    }
}

pub fn role_of(access: &Access, uid: u32, gid: u32) -> Option<Role> {
    if access.admin.matches(uid, gid) {
        Some(Role::Admin)
    } else if access.server.matches(uid, gid) {
        Some(Role::Server)
    } else if access.viewer.matches(uid, gid) {
        Some(Role::Viewer)
    } else {
        None
    }
}

pub fn allowed(actor: &Actor, need: Need) -> bool {
    match (actor.role, need) {
        (Role::Admin, _) => true,
        (Role::Server, Need::Read | Need::Serve) => true,
        (Role::Server, Need::Change) => actor.on_behalf_of.is_some(),
        (Role::Viewer, Need::Read) => true,
        _ => false,
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "?".into())
}

fn on_behalf_of<T>(req: &Request<T>) -> Result<Option<String>, Status> {
    let Some(value) = req.metadata().get(ON_BEHALF_OF_HEADER) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Status::invalid_argument(format!("{ON_BEHALF_OF_HEADER} must be ASCII")))?
        .trim();
    let valid = !text.is_empty()
        && text.len() <= 128
        && text.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if !valid {
        return Err(Status::invalid_argument(format!(
            "{ON_BEHALF_OF_HEADER} must be 1-128 printable characters"
        )));
    }
    Ok(Some(text.to_string()))
}

/// Identifies the caller and checks `need`; a refusal is audited and returned as
/// PERMISSION_DENIED naming the role and what it lacked.
pub fn authorize<T>(
    access: &Access,
    store: &Store,
    writer: &AuditWriter,
    req: &Request<T>,
    method: &str,
    need: Need,
) -> Result<Actor, Status> {
    let cred = req
        .extensions()
        .get::<UdsConnectInfo>()
        .and_then(|i| i.peer_cred)
        .ok_or_else(|| Status::unauthenticated("no peer credentials on this connection"))?;
    let (uid, gid) = (cred.uid(), cred.gid());
    let identity = format!("uid={uid}({})", user_name(uid));
    let obo = on_behalf_of(req)?;
    let role = role_of(access, uid, gid);
    let refusal = match role {
        None => Some(format!("{identity} has no role on this supervisor")),
        Some(r) if obo.is_some() && r != Role::Server => Some(format!(
            "only the server role may act on behalf of someone (caller is {})",
            r.as_str()
        )),
        Some(r) => {
            let actor = Actor {
                identity: identity.clone(),
                role: r,
                on_behalf_of: obo.clone(),
            };
            (!allowed(&actor, need)).then(|| match (r, need) {
                (Role::Server, Need::Change) => format!(
                    "the server role changes state only on behalf of an admin ({ON_BEHALF_OF_HEADER})"
                ),
                _ => format!("role `{}` may not {method}", r.as_str()),
            })
        }
    };
    let actor = Actor {
        identity,
        role: role.unwrap_or(Role::Viewer),
        on_behalf_of: obo,
    };
    if let Some(reason) = refusal {
        let mut entry = AuditEntry::new(&actor, "admin.refused", Outcome::Denied).detail(
            serde_json::json!({ "method": method, "need": need.as_str(), "reason": reason, "pid": cred.pid() }),
        );
        // The record says what the caller really is, including nothing at all.
        entry.role = role.map_or("none", Role::as_str);
        if let Err(failure) = store.audit(vec![entry]) {
            // Refused either way; the caller learns the refusal could not be recorded,
            // and the count is written once the store takes records again.
            writer.count_refusal(&actor.identity, "admin.refused");
            return Err(Status::unavailable(format!(
                "{reason}; and the refusal could not be recorded ({})",
                failure.error
            )));
        }
        return Err(Status::permission_denied(reason));
    }
    Ok(actor)
}

/// The gate in front of the standard services (health, reflection): any role may
/// call them, as it may read; a caller without one is refused and audited as for
/// any other admin RPC. `service` names what was refused in the record.
pub fn read_gate(
    shared: std::sync::Arc<crate::context::Shared>,
    service: &'static str,
) -> impl tonic::service::Interceptor + Clone {
    move |req: Request<()>| {
        authorize(
            &shared.live.load().access,
            &shared.store,
            &shared.audit,
            &req,
            service,
            Need::Read,
        )?;
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Principals;

    #[test]
    fn roles_and_their_rights() {
        let access = Access {
            admin: Principals {
                uids: vec![0],
                ..Default::default()
            },
            server: Principals {
                uids: vec![100],
                ..Default::default()
            },
            viewer: Principals {
                gids: vec![200],
                ..Default::default()
            },
            socket_mode: 0o660,
            socket_group: None,
            connections: Default::default(),
        };
        assert_eq!(role_of(&access, 0, 0), Some(Role::Admin));
        assert_eq!(role_of(&access, 100, 5), Some(Role::Server));
        assert_eq!(role_of(&access, 7, 200), Some(Role::Viewer));
        assert_eq!(role_of(&access, 7, 7), None);
        // root's group list includes group `root`.
        let by_group = Principals {
            groups: vec!["root".into()],
            ..Default::default()
        };
        assert!(by_group.matches(0, 0));
        assert!(!by_group.matches(65534, 65534));
        let actor = |role, obo: Option<&str>| Actor {
            identity: "x".into(),
            role,
            on_behalf_of: obo.map(String::from),
        };
        assert!(allowed(&actor(Role::Viewer, None), Need::Read));
        assert!(!allowed(&actor(Role::Viewer, None), Need::Change));
        assert!(!allowed(&actor(Role::Viewer, None), Need::Serve));
        assert!(allowed(&actor(Role::Server, None), Need::Serve));
        assert!(!allowed(&actor(Role::Server, None), Need::Change));
        assert!(allowed(&actor(Role::Server, Some("alice")), Need::Change));
        assert!(allowed(&actor(Role::Admin, None), Need::Change));
    }
}
