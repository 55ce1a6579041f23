//! The admin API's enums as people read them (CLI tables, Prometheus labels): the
//! value's name without its type's prefix, in lower case (`changes_requested`).

use crate::admin::v1::{
    NotificationKind, Outcome, PermissionStatus, PluginState, Risk, Role, RuntimeKind,
    RuntimePhase, TrustState,
};

/// What an unspecified (or unknown) value reads as.
pub const NONE: &str = "-";

/// An admin-API enum and the prefix protoc style puts on its values' names.
pub trait ApiEnum: Copy {
    /// The prefix of every value's name, e.g. `PLUGIN_STATE_`.
    const PREFIX: &'static str;
    /// The value's name in the proto, e.g. `PLUGIN_STATE_ENABLED`.
    fn proto_name(self) -> &'static str;
    /// The zero value, which the supervisor never sends.
    fn is_unspecified(self) -> bool;
}

macro_rules! api_enum {
    ($($t:ty => $prefix:literal),* $(,)?) => {$(
        impl ApiEnum for $t {
            const PREFIX: &'static str = $prefix;
            fn proto_name(self) -> &'static str {
                self.as_str_name()
            }
            fn is_unspecified(self) -> bool {
                self == <$t>::Unspecified
            }
        }
    )*};
}

api_enum! {
    PluginState => "PLUGIN_STATE_",
    RuntimePhase => "RUNTIME_PHASE_",
    Role => "ROLE_",
    Outcome => "OUTCOME_",
    Risk => "RISK_",
    PermissionStatus => "PERMISSION_STATUS_",
    NotificationKind => "NOTIFICATION_KIND_",
    RuntimeKind => "RUNTIME_KIND_",
    TrustState => "TRUST_STATE_",
}

/// The lower-case short name, or `-` for an unspecified (or unknown) value.
pub fn label<E: ApiEnum>(value: E) -> String {
    if value.is_unspecified() {
        return NONE.to_string();
    }
    let name = value.proto_name();
    name.strip_prefix(E::PREFIX)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_short_lower_case_names() {
        assert_eq!(label(PluginState::ChangesRequested), "changes_requested");
        assert_eq!(label(RuntimePhase::Running), "running");
        assert_eq!(label(NotificationKind::OomKill), "oom_kill");
        assert_eq!(label(PermissionStatus::Expired), "expired");
        assert_eq!(label(Role::Unspecified), "-");
    }
}
