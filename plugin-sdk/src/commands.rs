//! `Commands`: host commands the supervisor runs for the plugin, within its
//! `execute_commands` grant, confined like the plugin itself.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// The exit status, or `None` when a signal killed it (see `signal`).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Output beyond the operator's cap was dropped.
    pub truncated: bool,
}

/// Host commands through the supervisor's broker; obtain it with
/// [`PluginContext::commands`](crate::PluginContext::commands). Cheap to clone.
///
/// `argv[0]` is an absolute path. The argv must match an approved `execute_commands`
/// entry exactly, or start with an entry ending in ` ...`; arguments are compared
/// whole. The command runs with the plugin's `/data`, uid and confinement, and is
/// killed at the operator's timeout (`is_deadline_exceeded`).
///
/// ```no_run
/// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
/// let out = ctx.commands().run(&["/usr/bin/convert", "-resize", "64x64", "/data/in.png", "/data/out.png"]).await?;
/// assert_eq!(out.exit_code, Some(0));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Commands {
    client: BrokerClient<crate::connection::Limited>,
}

impl Commands {
    pub(crate) fn new(client: BrokerClient<crate::connection::Limited>) -> Commands {
        Commands { client }
    }

    pub async fn run(&self, argv: &[&str]) -> Result<CommandOutput, SdkError> {
        let r = self
            .client
            .clone()
            .execute(pb::ExecuteRequest {
                argv: argv.iter().map(|a| a.to_string()).collect(),
            })
            .await?
            .into_inner();
        Ok(CommandOutput {
            exit_code: r.exited.then_some(r.exit_code),
            signal: (!r.exited).then_some(r.signal),
            stdout: r.stdout,
            stderr: r.stderr,
            truncated: r.truncated,
        })
    }
}
