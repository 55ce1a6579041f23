//! The supervisor's domain enums as the admin API's enums: one conversion each, so
//! a new state or role is a compile error here rather than a string nobody maps.

use broker_proto::admin::v1 as api;

use crate::audit::{Outcome, Role};
use crate::catalog::Risk;
use crate::runtime::Phase;
use crate::store::{PermissionRow, PermissionStatus, PluginState};

impl From<PluginState> for api::PluginState {
    fn from(s: PluginState) -> Self {
        match s {
            PluginState::Disabled => api::PluginState::Disabled,
            PluginState::Enabled => api::PluginState::Enabled,
            PluginState::Quarantined => api::PluginState::Quarantined,
            PluginState::ChangesRequested => api::PluginState::ChangesRequested,
        }
    }
}

impl From<Phase> for api::RuntimePhase {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Starting => api::RuntimePhase::Starting,
            Phase::Running => api::RuntimePhase::Running,
            Phase::Backoff => api::RuntimePhase::Backoff,
            Phase::Stopping => api::RuntimePhase::Stopping,
            Phase::Stopped => api::RuntimePhase::Stopped,
        }
    }
}

impl From<Role> for api::Role {
    fn from(r: Role) -> Self {
        match r {
            Role::Admin => api::Role::Admin,
            Role::Server => api::Role::Server,
            Role::Viewer => api::Role::Viewer,
            Role::System => api::Role::System,
            Role::Plugin => api::Role::Plugin,
        }
    }
}

impl From<Outcome> for api::Outcome {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Ok => api::Outcome::Ok,
            Outcome::Denied => api::Outcome::Denied,
            Outcome::Failed => api::Outcome::Failed,
        }
    }
}

impl From<Risk> for api::Risk {
    fn from(r: Risk) -> Self {
        match r {
            Risk::Low => api::Risk::Low,
            Risk::Medium => api::Risk::Medium,
            Risk::High => api::Risk::High,
            Risk::Critical => api::Risk::Critical,
        }
    }
}

/// An audit row's outcome as stored (text); one this version does not write is
/// UNSPECIFIED rather than a guess.
pub fn outcome(stored: &str) -> api::Outcome {
    [Outcome::Ok, Outcome::Denied, Outcome::Failed]
        .into_iter()
        .find(|o| o.as_str() == stored)
        .map_or(api::Outcome::Unspecified, api::Outcome::from)
}

/// Where a permission stands at `now`: a grant past its expiry is EXPIRED.
pub fn permission_status(p: &PermissionRow, now: i64) -> api::PermissionStatus {
    match p.status {
        PermissionStatus::Pending => api::PermissionStatus::Pending,
        PermissionStatus::Granted if !p.is_live(now) => api::PermissionStatus::Expired,
        PermissionStatus::Granted => api::PermissionStatus::Granted,
        PermissionStatus::Denied => api::PermissionStatus::Denied,
        PermissionStatus::Revoked => api::PermissionStatus::Revoked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_outcomes_map_to_their_enum_and_unknown_ones_to_unspecified() {
        assert_eq!(outcome("ok"), api::Outcome::Ok);
        assert_eq!(outcome("denied"), api::Outcome::Denied);
        assert_eq!(outcome("failed"), api::Outcome::Failed);
        assert_eq!(outcome("maybe"), api::Outcome::Unspecified);
    }
}
