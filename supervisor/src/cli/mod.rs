//! The `plexichat` command-line client: parses the command line ([`args`]) and
//! dispatches each subcommand to its handler in [`commands`].

mod args;
mod client;
mod columns;
mod commands;
mod confirm;
mod failure;
mod generate;
mod json;
mod monitor;
mod operations;
mod output;
mod packages;
mod parse;
mod review;
mod security;
mod settings;
mod suggest;
mod trial;
mod trust;
mod upload;

use std::process::ExitCode;

use clap::Parser;

use args::*;
pub use args::{Cli, OutputFormat};
use commands::Session;

/// Entry point of the `plexichat` binary. Usage errors exit 2 (clap), failed
/// operations exit 1 with `error: ...` on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // One request at a time: a single-threaded runtime is all the CLI needs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return failure::report(anyhow::Error::new(e).context("starting the runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure::report(e),
    }
}

/// Runs one parsed command line against the supervisor.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let socket = client::socket_from_env(cli.socket);
    let session = Session::new(socket, cli.on_behalf_of, cli.output);
    match cli.command {
        Command::Whoami => commands::whoami(&session).await,
        Command::Plugin(cmd) => run_plugin(&session, cmd).await,
        Command::Trust(cmd) => trust::run(&session, cmd).await,
        Command::Advisories(AdvisoriesCommand::Import { dir }) => {
            review::import(&session, &dir).await
        }
        Command::Event(EventCommand::Publish { topic, payload }) => {
            commands::publish(&session, topic, payload.unwrap_or_default()).await
        }
        Command::Event(EventCommand::Watch { topics }) => {
            commands::watch_events(&session, topics).await
        }
        Command::Notifications(NotificationsCommand::Watch) => {
            commands::watch_notifications(&session).await
        }
        Command::Verify(VerifyCommand::SystemIntegrity) => {
            commands::verify_integrity(&session).await
        }
        Command::Security(SecurityCommand::PluginStatus { plugin }) => {
            let name = plugin.clone();
            let result = security::plugin_status(&session, plugin).await;
            suggest::plugin_name(&session, name.as_deref(), result).await
        }
        Command::Security(SecurityCommand::Alerts { all }) => {
            operations::alerts(&session, all).await
        }
        Command::Security(SecurityCommand::AckAlert { id, comment }) => {
            operations::acknowledge_alert(&session, id, comment.unwrap_or_default()).await
        }
        Command::Emergency(cmd) => run_emergency(&session, cmd).await,
        Command::Backup(BackupCommand::Create { comment }) => {
            operations::backup_create(&session, comment.unwrap_or_default()).await
        }
        Command::Backup(BackupCommand::List) => operations::backup_list(&session).await,
        Command::Restore {
            backup_id,
            exclude_plugins,
            comment,
            yes,
        } => {
            let question = format!(
                "restore backup {} over the current plugins, permissions and config",
                output::escape_line(&backup_id)
            );
            confirm::confirm(&question, yes)?;
            operations::restore(
                &session,
                backup_id,
                exclude_plugins,
                comment.unwrap_or_default(),
            )
            .await
        }
        Command::Monitor(MonitorCommand::Plugins {
            plugin,
            real_time,
            interval,
        }) => {
            let name = plugin.clone();
            let result = monitor::plugins(&session, plugin, real_time, interval).await;
            suggest::plugin_name(&session, name.as_deref(), result).await
        }
        Command::Config(ConfigCommand::Reload) => operations::config_reload(&session).await,
        // Generated from the definition alone: no supervisor is asked.
        Command::Completions { shell } => generate::completions(shell),
        Command::Manpage { dir } => generate::manpage(dir.as_deref()),
        Command::Audit(AuditCommand::Plugins(args)) => {
            // --output-format is this command's own spelling of --output.
            let session = session.with_format(args.output_format);
            match args.report {
                Some(ReportKind::Monthly) => {
                    commands::audit_report(&session, args.month.unwrap_or_default(), args.plugin)
                        .await
                }
                None => commands::audit(&session, args.plugin, args.since, args.limit).await,
            }
        }
    }
}

async fn run_plugin(session: &Session, cmd: PluginCommand) -> anyhow::Result<()> {
    let name = cmd.plugin_name().map(str::to_owned);
    let result = dispatch_plugin(session, cmd).await;
    suggest::plugin_name(session, name.as_deref(), result).await
}

impl PluginCommand {
    /// The installed plugin this command names, if any.
    fn plugin_name(&self) -> Option<&str> {
        match self {
            PluginCommand::Show { name }
            | PluginCommand::Review { name }
            | PluginCommand::RequestChanges { name, .. }
            | PluginCommand::RepinRuntime { name, .. }
            | PluginCommand::Update { name, .. }
            | PluginCommand::Enable { name, .. }
            | PluginCommand::Disable { name, .. }
            | PluginCommand::Remove { name, .. }
            | PluginCommand::Invoke { name, .. } => Some(name),
            PluginCommand::Trial(args) => Some(&args.name),
            PluginCommand::Config(cmd) => Some(cmd.plugin_name()),
            PluginCommand::Approve(args) => Some(&args.decision.name),
            PluginCommand::Deny(args) => Some(&args.name),
            PluginCommand::RevokePermission { name, .. } => name.as_deref(),
            PluginCommand::Install { .. }
            | PluginCommand::Pack { .. }
            | PluginCommand::Contents { .. }
            | PluginCommand::Pending { .. }
            | PluginCommand::List
            | PluginCommand::DisableAll { .. } => None,
        }
    }
}

async fn dispatch_plugin(session: &Session, cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Install { dir, signature } => {
            let package = upload::Package {
                path: &dir,
                signature: signature.as_deref(),
            };
            commands::install(session, &package).await
        }
        PluginCommand::Pack { dir, archive } => packages::pack(&dir, archive.as_deref()),
        PluginCommand::Contents { package } => packages::contents(&package),
        PluginCommand::Pending { expiring_within } => {
            commands::pending(session, expiring_within.unwrap_or(0)).await
        }
        PluginCommand::List => commands::list(session).await,
        PluginCommand::Show { name } => commands::show(session, name).await,
        PluginCommand::Review { name } => review::review(session, name).await,
        PluginCommand::Approve(args) => {
            let expiry = commands::Expiry {
                at_ms: args.expires.unwrap_or(0),
                in_secs: args.expires_in.unwrap_or(0),
            };
            let mut request = decision(args.decision, expiry);
            request.scope = args.scope;
            commands::approve(session, request).await
        }
        PluginCommand::RequestChanges { name, comment } => {
            commands::request_changes(session, name, comment.unwrap_or_default()).await
        }
        PluginCommand::RepinRuntime { name, comment } => {
            commands::repin_runtime(session, name, comment.unwrap_or_default()).await
        }
        PluginCommand::Deny(args) => {
            commands::deny(session, decision(args, commands::Expiry::default())).await
        }
        PluginCommand::RevokePermission {
            permission,
            name,
            all,
            comment,
        } => commands::revoke(session, permission, name, all, comment.unwrap_or_default()).await,
        PluginCommand::Update {
            name,
            dir,
            signature,
        } => {
            let package = upload::Package {
                path: &dir,
                signature: signature.as_deref(),
            };
            operations::update(session, name, &package).await
        }
        PluginCommand::Enable {
            name,
            verify_security,
        } => operations::enable(session, name, verify_security).await,
        PluginCommand::DisableAll {
            except_core,
            force,
            comment,
        } => {
            operations::disable_all(session, except_core, force, comment.unwrap_or_default()).await
        }
        PluginCommand::Disable { name, force } => commands::disable(session, name, force).await,
        PluginCommand::Remove { name, yes } => {
            let question = format!(
                "remove plugin {} and delete its data",
                output::escape_line(&name)
            );
            confirm::confirm(&question, yes)?;
            commands::remove(session, name).await
        }
        PluginCommand::Config(cmd) => settings::run(session, cmd).await,
        PluginCommand::Invoke {
            name,
            command,
            args,
            timeout,
        } => commands::invoke(session, name, command, args.unwrap_or_default(), timeout).await,
        PluginCommand::Trial(args) => trial::run(session, args).await,
    }
}

async fn run_emergency(session: &Session, cmd: EmergencyCommand) -> anyhow::Result<()> {
    match cmd {
        EmergencyCommand::DisableAllPlugins { comment } => {
            operations::disable_all(session, false, true, comment.unwrap_or_default()).await
        }
        EmergencyCommand::RevokeAllPermissions { comment } => {
            operations::revoke_all(session, comment.unwrap_or_default()).await
        }
        EmergencyCommand::EnableSafeMode { comment } => {
            operations::safe_mode(session, true, comment.unwrap_or_default()).await
        }
        EmergencyCommand::DisableSafeMode { comment } => {
            operations::safe_mode(session, false, comment.unwrap_or_default()).await
        }
        EmergencyCommand::SecurityReport => operations::security_report(session).await,
    }
}

fn decision(
    args: DecisionArgs,
    expiry: commands::Expiry,
) -> broker_proto::admin::v1::DecisionRequest {
    broker_proto::admin::v1::DecisionRequest {
        name: args.name,
        permissions: args.permissions,
        // Sent even when empty: the daemon owns the "comment required" rule
        // and its refusal is shown verbatim.
        comment: args.comment.unwrap_or_default(),
        expires_at_ms: expiry.at_ms,
        expires_in_secs: expiry.in_secs,
        scope: Vec::new(),
    }
}
