//! `Host`: actions the PlexiChat server executes for the plugin (user management,
//! system configuration, other plugins), each checked against the plugin's grant.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// Host actions through the supervisor's broker; obtain it with
/// [`PluginContext::host`](crate::PluginContext::host). Cheap to clone.
///
/// `permission` is `user_management`, `system_config` or `plugin_management`, and
/// `target` is what the grant's scope must cover: an action name, a configuration key
/// or a plugin name. The broker refuses a target the grant does not cover
/// (`is_permission_denied`) before the server sees anything; with no PlexiChat server
/// connected the call is `is_unavailable`, and a server that does not answer in time
/// is `is_deadline_exceeded`.
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// let answer = ctx
///     .host()
///     .call("user_management", "ban_user", "ban", br#"{"user": "spammer"}"#)
///     .await?;
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

    /// Asks the server to perform `action` on `target` under `permission`; returns
    /// the server's result.
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
            .await?
            .into_inner()
            .result)
    }
}
