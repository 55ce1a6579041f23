//! What every subsystem of a running supervisor shares: configuration (as read at
//! start, and the live part a reload changes), the catalog, store, hub and alerts.

use crate::audit::AuditWriter;
use crate::broker::host_actions::HostActions;
use crate::broker::Hub;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::sandbox::host::SandboxHost;
use crate::store::Store;

pub struct Shared {
    /// The configuration read at start. Access roles and limits, `[broker]` limits and
    /// alert rules change on reload: read those from `live`, never from here.
    pub cfg: Config,
    pub live: std::sync::Arc<crate::live::Live>,
    pub catalog: Catalog,
    pub store: Store,
    /// Batched audit of brokered calls into `store` (see `audit::writer`).
    pub audit: AuditWriter,
    pub hub: Hub,
    /// The PlexiChat server's channel for plugins' host actions.
    pub host_actions: HostActions,
    /// The policy files loaded at start and their SHA-256, for integrity checks.
    pub policy_digests: Vec<(std::path::PathBuf, String)>,
    /// Brokered calls per plugin and service, for monitoring.
    pub counters: std::sync::Arc<crate::monitor::Counters>,
    /// The configured alert rules and their windows.
    pub alerts: std::sync::Arc<crate::alerts::Alerts>,
    /// Serialises lifecycle commands per plugin; a restore excludes them all.
    pub locks: crate::lifecycle::Locks,
    /// `None` only when `sandbox.confine = false`.
    pub sandbox: Option<SandboxHost>,
}
