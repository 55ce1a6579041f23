//! The audit trail: who did what to which plugin, with the outcome. Entries are
//! written to `audit_log` inside the store transaction that made the change, then
//! mirrored as JSON lines into the log directory (`system/`, `audit/`, `security/`, `plugins/`).

mod backlog;
mod bounded;
pub mod chain;
mod mirror;
pub mod report;
mod writer;

pub use backlog::Lag;
pub use bounded::{short, FIELD_BYTES, RECORD_BYTES};

pub use mirror::{LogFiles, Rotation};
pub use writer::{AuditQueue, AuditWriter, Commit, CommitFailure, Unavailable};

use serde::Serialize;

use crate::clock::now_ms;

/// Who acted: the admin-socket caller (or the supervisor itself), and for the
/// server role the end-user admin it acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub identity: String,
    pub role: Role,
    pub on_behalf_of: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Server,
    Viewer,
    /// The supervisor acting on its own (restarts, quarantine, expiry).
    System,
    /// A plugin acting through the broker.
    Plugin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Server => "server",
            Role::Viewer => "viewer",
            Role::System => "system",
            Role::Plugin => "plugin",
        }
    }
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            identity: "supervisor".into(),
            role: Role::System,
            on_behalf_of: None,
        }
    }

    pub fn plugin(name: &str) -> Actor {
        Actor {
            identity: format!("plugin:{name}"),
            role: Role::Plugin,
            on_behalf_of: None,
        }
    }

    /// The person an approval is attributed to: the end-user admin when the server
    /// acts for one, else the caller itself. Dual approval counts these.
    pub fn approver(&self) -> String {
        match &self.on_behalf_of {
            Some(user) => format!("{user} (via {})", self.identity),
            None => self.identity.clone(),
        }
    }

    pub fn approver_key(&self) -> &str {
        self.on_behalf_of.as_deref().unwrap_or(&self.identity)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One audit record, before it has an id.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub ts_ms: i64,
    pub actor: String,
    pub role: &'static str,
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub plugin: Option<String>,
    pub permission: Option<String>,
    pub outcome: Outcome,
    pub before: Option<String>,
    pub after: Option<String>,
    /// Serialised once per record by [`Committed`], for the store and the log files.
    #[serde(skip)]
    pub detail: serde_json::Value,
}

/// A record as committed: its id, and its detail serialised once for both the store
/// and the log files.
pub struct Committed {
    pub id: i64,
    pub entry: AuditEntry,
    pub detail: Option<String>,
}

impl Committed {
    /// The detail text of `entry`, as the store keeps it (nothing for a null detail).
    pub fn detail_text(entry: &AuditEntry) -> Option<String> {
        (!entry.detail.is_null()).then(|| entry.detail.to_string())
    }
}

impl AuditEntry {
    pub fn new(actor: &Actor, action: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            ts_ms: now_ms(),
            actor: actor.identity.clone(),
            role: actor.role.as_str(),
            on_behalf_of: actor.on_behalf_of.clone(),
            action: action.to_string(),
            plugin: None,
            permission: None,
            outcome,
            before: None,
            after: None,
            detail: serde_json::Value::Null,
        }
    }

    pub fn plugin(mut self, name: impl Into<String>) -> Self {
        self.plugin = Some(name.into());
        self
    }

    pub fn permission(mut self, p: impl Into<String>) -> Self {
        self.permission = Some(p.into());
        self
    }

    pub fn change(mut self, before: impl Into<String>, after: impl Into<String>) -> Self {
        self.before = Some(before.into());
        self.after = Some(after.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    /// The JSON-lines files this entry belongs in.
    fn categories(&self) -> Vec<Category> {
        let mut out = Vec::with_capacity(2);
        if self.action.starts_with("permission.") {
            out.push(Category::Permissions);
        } else if self.action.starts_with("broker.") {
            out.push(Category::Activity);
        } else {
            out.push(Category::System);
        }
        if self.outcome == Outcome::Denied || self.action.starts_with("security.") {
            out.push(Category::Security);
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Activity,
    Security,
    Permissions,
    System,
}

impl Category {
    const ALL: [Category; 4] = [
        Category::Activity,
        Category::Security,
        Category::Permissions,
        Category::System,
    ];

    fn rel_path(self) -> &'static str {
        match self {
            Category::Activity => "plugins/activity.log",
            Category::Security => "security/plugin_security.log",
            Category::Permissions => "audit/permissions.log",
            Category::System => "system/plugin_system.log",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_land_in_their_category_files() {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogFiles::open(dir.path()).unwrap();
        let admin = Actor {
            identity: "uid=0(root)".into(),
            role: Role::Admin,
            on_behalf_of: None,
        };
        let committed = |id, entry: AuditEntry| Committed {
            id,
            detail: Committed::detail_text(&entry),
            entry,
        };
        logs.append(&[
            committed(
                1,
                AuditEntry::new(&admin, "permission.approve", Outcome::Ok).plugin("p"),
            ),
            committed(
                2,
                AuditEntry::new(&admin, "plugin.enable", Outcome::Denied)
                    .plugin("p")
                    .detail(serde_json::json!({ "why": "a \"quoted\" reason" })),
            ),
        ]);
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        assert!(read("audit/permissions.log").contains("\"id\":1"));
        assert!(read("system/plugin_system.log").contains("\"id\":2"));
        assert!(read("security/plugin_security.log").contains("plugin.enable"));
        for line in read("system/plugin_system.log").lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).expect("one JSON object per line");
            assert_eq!(v["id"], 2);
            assert_eq!(v["detail"]["why"], "a \"quoted\" reason");
            assert_eq!(v["outcome"], "denied");
        }
        assert!(!read("security/plugin_security.log").contains("permission.approve"));
    }
}
