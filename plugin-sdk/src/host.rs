//! `Host`: actions the PlexiChat server executes for the plugin (user management,
//! system configuration, other plugins), each checked against the plugin's grant.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// Host actions through the supervisor's broker; obtain it with
/// [`PluginContext::host`](crate::PluginContext::host). Cheap to clone.
///
/// `permission` is `user_management`, `system_config` or `plugin_management`, and
/// `target` is an action name, a configuration key or a plugin name. The grant's
/// scope must cover the whole action the server executes: a scope entry `target`
/// covers the target with no action ([`Host::act`]), an entry `target:action` covers
/// exactly that action on it ([`Host::call`]); `warn_user` does not cover
/// `warn_user` with action `delete_account`. The broker refuses what the grant does not
/// cover (`is_permission_denied`) before the server sees anything; with no PlexiChat
/// server connected the call is `is_unavailable`, and a server that does not answer in
/// time is `is_deadline_exceeded`.
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// // Needs `user_management` with scope `ban_user`.
/// let answer = ctx
///     .host()
///     .act("user_management", "ban_user", br#"{"user": "spammer"}"#)
///     .await?;
/// // Needs `system_config` with scope `smtp.host:get` (or `smtp.*:get`).
/// let host = ctx.host().call("system_config", "smtp.host", "get", b"").await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Host {
    client: BrokerClient<crate::connection::Limited>,
}

impl Host {
    pub(crate) fn new(client: BrokerClient<crate::connection::Limited>) -> Host {
        Host { client }
    }

    /// Asks the server to perform the action `target` names (no further action) under
    /// `permission`; the grant's scope must hold `target`. Returns the server's result.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    pub async fn act(
        &self,
        permission: &str,
        target: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, SdkError> {
        self.call(permission, target, "", payload).await
    }

    /// Asks the server to perform `action` on `target` under `permission`; the grant's
    /// scope must hold `target:action` (or just `target` when `action` is empty).
    /// Returns the server's result.
    ///
    /// # Errors
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) when the grant does not
    /// cover the action (nothing reaches the server); [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument)
    /// for an unknown permission or a malformed target; [`ErrorCode::Unavailable`](crate::ErrorCode::Unavailable)
    /// with no PlexiChat server connected; [`ErrorCode::DeadlineExceeded`](crate::ErrorCode::DeadlineExceeded)
    /// when the server does not answer in time; the server's own refusal with its code.
    pub async fn call(
        &self,
        permission: &str,
        target: &str,
        action: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, SdkError> {
        Ok(self
            .client
            .clone()
            .host_action(pb::HostActionRequest {
                permission: permission.to_string(),
                target: target.to_string(),
                action: action.to_string(),
                payload: payload.to_vec(),
            })
            .await
            .map_err(crate::error::from_status)?
            .into_inner()
            .result)
    }
}
