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
    /// The signal that killed it, or `None` when it exited (see `exit_code`).
    pub signal: Option<i32>,
    /// What it wrote to standard output (up to the operator's cap).
    pub stdout: Vec<u8>,
    /// What it wrote to standard error (up to the operator's cap).
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

    /// Runs `argv` on the host, through the supervisor, and waits for it to end.
    ///
    /// `argv[0]` must be an absolute path, and the whole argv must be allowed by an
    /// approved `execute_commands` entry: equal word for word (`/usr/bin/uptime`), or
    /// starting with an entry that ends in ` ...` (`/usr/bin/convert ...` allows any
    /// arguments after it). Nothing goes through a shell, so arguments are never
    /// re-split or expanded. The command runs as the plugin's uid, with its `/data`
    /// and its confinement; its stdout and stderr are captured up to the operator's
    /// cap (`truncated` says when more was dropped). A non-zero exit is not an error:
    /// read [`CommandOutput::exit_code`].
    ///
    /// ```no_run
    /// # async fn demo(ctx: plexichat_plugin_sdk::PluginContext) -> Result<(), plexichat_plugin_sdk::SdkError> {
    /// // Allowed by the manifest entry `scope = ["/usr/bin/uptime"]`.
    /// let out = ctx.commands().run(&["/usr/bin/uptime"]).await?;
    /// match out.exit_code {
    ///     Some(0) => println!("{}", String::from_utf8_lossy(&out.stdout)),
    ///     Some(code) => eprintln!("uptime exited {code}: {}", String::from_utf8_lossy(&out.stderr)),
    ///     None => eprintln!("uptime was killed by signal {:?}", out.signal),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) when no
    /// approved entry allows the argv (the message says which argv);
    /// [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument) for an empty
    /// argv or a relative `argv[0]`;
    /// [`ErrorCode::DeadlineExceeded`](crate::ErrorCode::DeadlineExceeded) when the
    /// command ran past the operator's timeout and was killed;
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) when too
    /// many commands are running; a transport error if the supervisor went away.
    pub async fn run(&self, argv: &[&str]) -> Result<CommandOutput, SdkError> {
        let r = self
            .client
            .clone()
            .execute(pb::ExecuteRequest {
                argv: argv.iter().map(|a| a.to_string()).collect(),
            })
            .await
            .map_err(crate::error::from_status)?
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
