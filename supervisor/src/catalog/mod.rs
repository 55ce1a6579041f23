//! The permission catalog: the closed set of permissions, their risk, default and
//! scope shape, and the expiry/approval rules per risk, loaded from `permissions.toml`.

mod scope;

pub use scope::{
    argv_allowed, host_action_name, host_entry_parts, validate_config_key, validate_scope_entry,
    ScopeShape, PRIVATE_MARK,
};

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// Every permission a plugin can request. The set is closed: a manifest naming
/// anything else is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    FileRead,
    FileWrite,
    NetworkOutbound,
    DatabaseRead,
    DatabaseWrite,
    SystemConfig,
    UserManagement,
    PluginManagement,
    ExecuteCommands,
    SensitiveEvents,
}

impl Permission {
    pub const ALL: [Permission; 10] = [
        Permission::FileRead,
        Permission::FileWrite,
        Permission::NetworkOutbound,
        Permission::DatabaseRead,
        Permission::DatabaseWrite,
        Permission::SystemConfig,
        Permission::UserManagement,
        Permission::PluginManagement,
        Permission::ExecuteCommands,
        Permission::SensitiveEvents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::FileRead => "file_read",
            Permission::FileWrite => "file_write",
            Permission::NetworkOutbound => "network_outbound",
            Permission::DatabaseRead => "database_read",
            Permission::DatabaseWrite => "database_write",
            Permission::SystemConfig => "system_config",
            Permission::UserManagement => "user_management",
            Permission::PluginManagement => "plugin_management",
            Permission::ExecuteCommands => "execute_commands",
            Permission::SensitiveEvents => "sensitive_events",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}` (known: file_read, file_write, network_outbound, database_read, database_write, system_config, user_management, plugin_management, execute_commands, sensitive_events)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPermission(crate::audit::short(s).into_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// What a plugin gets without asking: nothing, or a policy-defined public subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    Denied,
    Limited,
}

#[derive(Debug, Clone)]
pub struct RiskPolicy {
    pub default_expiry: Duration,
    pub max_expiry: Duration,
    pub approvals: u8,
}

#[derive(Debug, Clone)]
pub struct PermissionSpec {
    pub permission: Permission,
    pub description: String,
    pub risk: Risk,
    pub default: DefaultAccess,
    pub scope: ScopeShape,
    /// Scope entries usable without a grant when `default` is `limited`.
    pub public_scope: Vec<String>,
}

/// The loaded, validated catalog. Every `Permission` has exactly one spec and
/// every risk level used has a policy.
#[derive(Debug, Clone)]
pub struct Catalog {
    specs: BTreeMap<Permission, PermissionSpec>,
    risks: BTreeMap<Risk, RiskPolicy>,
    /// Topic patterns whose events only plugins with a `sensitive_events` grant
    /// covering them receive.
    sensitive_topics: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read permission catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("permission catalog {path} is not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("permission catalog {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    risk: BTreeMap<Risk, RawRisk>,
    permission: Vec<RawPermission>,
    /// Required: a catalog that lost this section must not let sensitive events
    /// reach every subscriber.
    events: Option<RawEvents>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    /// Required too; `sensitive = []` is the explicit "none".
    sensitive: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    default_expiry: String,
    max_expiry: String,
    approvals: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermission {
    name: String,
    description: String,
    risk: Risk,
    default: DefaultAccess,
    scope: ScopeShape,
    #[serde(default)]
    public_scope: Vec<String>,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Catalog::parse(&text, &path.display().to_string())
    }

    /// Parses catalog text; `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError::Syntax {
            path: origin.to_string(),
            message: e.message().to_string(),
        })?;
        let invalid = |message: String| CatalogError::Invalid {
            path: origin.to_string(),
            message,
        };
        let mut risks = BTreeMap::new();
        for (risk, r) in raw.risk {
            let default_expiry = parse_duration(&r.default_expiry)
                .map_err(|e| invalid(format!("risk.{}.default_expiry: {e}", risk.as_str())))?;
            let max_expiry = parse_duration(&r.max_expiry)
                .map_err(|e| invalid(format!("risk.{}.max_expiry: {e}", risk.as_str())))?;
            if default_expiry > max_expiry {
                return Err(invalid(format!(
                    "risk.{}: default_expiry is longer than max_expiry",
                    risk.as_str()
                )));
            }
            if !(1..=2).contains(&r.approvals) {
                return Err(invalid(format!(
                    "risk.{}.approvals must be 1 or 2",
                    risk.as_str()
                )));
            }
            risks.insert(
                risk,
                RiskPolicy {
                    default_expiry,
                    max_expiry,
                    approvals: r.approvals,
                },
            );
        }
        let mut specs = BTreeMap::new();
        for (i, p) in raw.permission.into_iter().enumerate() {
            let permission: Permission = p
                .name
                .parse()
                .map_err(|e: UnknownPermission| invalid(format!("permission[{i}]: {e}")))?;
            if !risks.contains_key(&p.risk) {
                return Err(invalid(format!(
                    "permission `{permission}` has risk `{}` but there is no [risk.{}] table",
                    p.risk.as_str(),
                    p.risk.as_str()
                )));
            }
            if p.default == DefaultAccess::Denied && !p.public_scope.is_empty() {
                return Err(invalid(format!(
                    "permission `{permission}`: public_scope needs default = \"limited\""
                )));
            }
            for entry in &p.public_scope {
                validate_scope_entry(p.scope, entry)
                    .map_err(|e| invalid(format!("permission `{permission}`.public_scope: {e}")))?;
            }
            let spec = PermissionSpec {
                permission,
                description: p.description,
                risk: p.risk,
                default: p.default,
                scope: p.scope,
                public_scope: p.public_scope,
            };
            if specs.insert(permission, spec).is_some() {
                return Err(invalid(format!(
                    "permission `{permission}` is listed twice"
                )));
            }
        }
        if let Some(missing) = Permission::ALL.iter().find(|p| !specs.contains_key(p)) {
            return Err(invalid(format!("permission `{missing}` is missing")));
        }
        let sensitive = match raw.events {
            None => return Err(invalid(MISSING_EVENTS.into())),
            Some(RawEvents { sensitive: None }) => {
                return Err(invalid(format!(
                    "[events] has no `sensitive` key: {MISSING_EVENTS}"
                )))
            }
            Some(RawEvents {
                sensitive: Some(topics),
            }) => topics,
        };
        for t in &sensitive {
            crate::manifest::validate_topic_pattern(t)
                .map_err(|e| invalid(format!("events.sensitive: {e}")))?;
        }
        Ok(Catalog {
            specs,
            risks,
            sensitive_topics: sensitive,
        })
    }

    /// Whether events on `topic` need a `sensitive_events` grant.
    pub fn is_sensitive(&self, topic: &str) -> bool {
        self.sensitive_topics
            .iter()
            .any(|s| crate::manifest::topic_matches(s, topic))
    }

    /// The sensitive pattern a subscription pattern lies entirely within, if any.
    pub fn sensitive_containing(&self, pattern: &str) -> Option<&str> {
        self.sensitive_topics
            .iter()
            .find(|s| scope::topic_within(pattern, s))
            .map(String::as_str)
    }

    pub fn sensitive_topics(&self) -> &[String] {
        &self.sensitive_topics
    }

    pub fn spec(&self, permission: Permission) -> &PermissionSpec {
        // `parse` guarantees every permission has a spec.
        &self.specs[&permission]
    }

    pub fn risk_policy(&self, risk: Risk) -> &RiskPolicy {
        // `parse` guarantees every referenced risk has a policy.
        &self.risks[&risk]
    }

    pub fn policy_for(&self, permission: Permission) -> &RiskPolicy {
        self.risk_policy(self.spec(permission).risk)
    }
}

const MISSING_EVENTS: &str = "the [events] section must state the sensitive topics explicitly, e.g. `[events]` `sensitive = [\"user.*\"]` (`sensitive = []` for none)";

/// Parses a duration such as `90d`, `12h`, `30m`, `45s` or `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../policies/permissions.toml");

    #[test]
    fn shipped_catalog_has_the_ten_permissions_with_design_risks() {
        let c = Catalog::parse(SHIPPED, "shipped").expect("shipped catalog parses");
        let risk = |p| c.spec(p).risk;
        assert_eq!(risk(Permission::FileRead), Risk::Medium);
        assert_eq!(risk(Permission::FileWrite), Risk::High);
        assert_eq!(risk(Permission::NetworkOutbound), Risk::Medium);
        assert_eq!(risk(Permission::DatabaseRead), Risk::Medium);
        assert_eq!(risk(Permission::DatabaseWrite), Risk::High);
        for p in [
            Permission::SystemConfig,
            Permission::UserManagement,
            Permission::PluginManagement,
            Permission::ExecuteCommands,
        ] {
            assert_eq!(risk(p), Risk::Critical);
        }
        assert_eq!(
            c.spec(Permission::DatabaseRead).default,
            DefaultAccess::Limited
        );
        assert_eq!(c.policy_for(Permission::FileWrite).approvals, 2);
        assert_eq!(risk(Permission::SensitiveEvents), Risk::Medium);
        assert!(c.is_sensitive("user.created"));
        assert!(c.is_sensitive("chat.private.dm"));
        assert!(!c.is_sensitive("chat.message"));
        assert_eq!(c.sensitive_containing("user.admin.*"), Some("user.*"));
        assert_eq!(c.sensitive_containing("chat.*"), None, "only overlaps");
    }

    #[test]
    fn permission_names_round_trip_and_unknown_is_rejected() {
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        assert!("root_access".parse::<Permission>().is_err());
    }

    #[test]
    fn malformed_catalogs_are_refused_with_the_reason() {
        let missing = SHIPPED.replace("name = \"execute_commands\"", "name = \"file_read\"");
        let err = Catalog::parse(&missing, "x").unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");

        let unknown = SHIPPED.replace("name = \"execute_commands\"", "name = \"root\"");
        let err = Catalog::parse(&unknown, "x").unwrap_err().to_string();
        assert!(err.contains("unknown permission `root`"), "{err}");

        let bad_risk = SHIPPED.replace("risk = \"high\"", "risk = \"extreme\"");
        assert!(matches!(
            Catalog::parse(&bad_risk, "x"),
            Err(CatalogError::Syntax { .. })
        ));

        let inverted = SHIPPED.replace("max_expiry = \"90d\"", "max_expiry = \"1d\"");
        let err = Catalog::parse(&inverted, "x").unwrap_err().to_string();
        assert!(err.contains("longer than max_expiry"), "{err}");

        assert!(Catalog::parse("not toml [", "x").is_err());
    }

    #[test]
    fn the_sensitive_topics_must_be_written_out() {
        let (head, _) = SHIPPED.split_once("[events]").expect("shipped [events]");
        let err = Catalog::parse(head, "/etc/px/permissions.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/etc/px/permissions.toml") && err.contains("[events] section must state"),
            "{err}"
        );
        let no_key = format!("{head}[events]\n");
        let err = Catalog::parse(&no_key, "p.toml").unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("no `sensitive` key"),
            "{err}"
        );
        let none = format!("{head}[events]\nsensitive = []\n");
        let c = Catalog::parse(&none, "p.toml").expect("an explicit empty list is allowed");
        assert!(!c.is_sensitive("user.created"));
        let bad = format!("{head}[events]\nsensitive = [\"User.*\"]\n");
        let err = Catalog::parse(&bad, "p.toml").unwrap_err().to_string();
        assert!(err.contains("events.sensitive"), "{err}");
    }
}
