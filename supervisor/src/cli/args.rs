//! The `plexichat` command line as clap parses it: global options, every subcommand
//! with its arguments and help text, and the examples `--help` shows.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Heading that keeps the global options apart in every subcommand's help.
pub(super) const GLOBAL: &str = "Global options";

pub(super) const AFTER_HELP: &str = "\
Examples:
  plexichat plugin install ./echo-plugin
  plexichat plugin pending
  plexichat plugin approve echo --comment \"reviewed, ticket SEC-42\" --expires-in 30d
  plexichat plugin enable echo
  plexichat audit plugins --plugin echo --since 1h
  plexichat monitor plugins --real-time
  plexichat emergency enable-safe-mode --comment \"incident 7\"";

/// Manage plugins of the PlexiChat plugin supervisor.
///
/// Talks to the supervisor daemon over its admin socket. What you may do
/// depends on the role the daemon maps your Unix user to (admin, server or
/// viewer); `plexichat whoami` shows it.
#[derive(Debug, Parser)]
#[command(name = "plexichat", version)]
#[command(arg_required_else_help = true, after_help = AFTER_HELP)]
pub struct Cli {
    /// Admin socket of the supervisor [default: $PLEXICHAT_SOCKET, else
    /// /run/plexichat/supervisor.sock]
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL)]
    pub(super) socket: Option<PathBuf>,

    /// Output format: aligned text, or the response message as JSON (streams:
    /// one object per line)
    #[arg(long, global = true, value_enum, value_name = "FORMAT", help_heading = GLOBAL)]
    #[arg(default_value_t = OutputFormat::Table)]
    pub(super) output: OutputFormat,

    /// Act for this end-user admin (server role only); the audit trail records
    /// both you and NAME
    #[arg(long, global = true, value_name = "NAME", help_heading = GLOBAL)]
    #[arg(value_parser = super::parse::on_behalf_of)]
    pub(super) on_behalf_of: Option<String>,

    #[command(subcommand)]
    pub(super) command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Show the identity and role the supervisor sees for you
    Whoami,
    /// Install, review, approve, run and remove plugins
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Publisher keys trusted to sign plugin packages
    #[command(subcommand)]
    Trust(TrustCommand),
    /// The offline advisory database plugins' dependencies are matched against
    #[command(subcommand)]
    Advisories(AdvisoriesCommand),
    /// Publish events to plugins or watch the events they emit
    #[command(subcommand)]
    Event(EventCommand),
    /// Follow supervisor notifications (approvals needed, crashes, quarantines)
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Query the security audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// What confinement is enforced, for the host and each plugin
    #[command(subcommand)]
    Security(SecurityCommand),
    /// Check that nothing was tampered with
    #[command(subcommand)]
    Verify(VerifyCommand),
    /// Incident response: stop everything, revoke everything, safe mode, a report
    #[command(subcommand)]
    Emergency(EmergencyCommand),
    /// Back up the supervisor's store (plugins, grants, config, audit log)
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore plugins, their permissions and config from a backup, with the
    /// supervisor running (the audit log is kept; the current state is backed up first)
    Restore {
        /// Backup id, as `plexichat backup list` shows it
        #[arg(long, value_name = "ID")]
        backup_id: String,
        /// Start no plugin afterwards: each is left disabled, to be enabled one by
        /// one with `plugin enable NAME --verify-security`
        #[arg(long)]
        exclude_plugins: bool,
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Resource use and broker activity per plugin
    #[command(subcommand)]
    Monitor(MonitorCommand),
    /// The supervisor's own configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the shell completion script for SHELL (for installers)
    #[command(hide = true)]
    Completions {
        #[arg(value_enum)]
        shell: super::generate::Shell,
    },
    /// Print the man page, plexichat(1), in roff; with --dir, write it and one page
    /// per subcommand there (for installers)
    #[command(hide = true)]
    Manpage {
        /// Write every page into this directory instead
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Re-read the configuration file as SIGHUP does (admin only): print the changed
    /// keys applied now and those that wait for a restart; a file that fails
    /// validation is refused with its problems and nothing changes
    Reload,
}

#[derive(Debug, Subcommand)]
pub(super) enum EmergencyCommand {
    /// Kill every plugin, core ones included, and disable it
    DisableAllPlugins {
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Revoke every granted or pending permission of every plugin
    RevokeAllPermissions {
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Kill every plugin and start none until safe mode is off (kept across restarts)
    EnableSafeMode {
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Leave safe mode: the enabled plugins start again
    DisableSafeMode {
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Safe mode, host enforcement, plugins, integrity, open alerts and the last
    /// day's security events in one report
    SecurityReport,
}

#[derive(Debug, Subcommand)]
pub(super) enum BackupCommand {
    /// Take a backup of the store now (SQLite online backup)
    Create {
        /// Kept with the backup and in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// List the backups kept, oldest first
    List,
}

#[derive(Debug, Subcommand)]
pub(super) enum MonitorCommand {
    /// CPU, memory, pids, brokered calls, denials, restarts and open alerts per plugin
    Plugins {
        /// Only this plugin
        #[arg(long, value_name = "NAME")]
        plugin: Option<String>,
        /// A refreshing terminal view (q quits, s changes the order)
        #[arg(long)]
        real_time: bool,
        /// Time between samples (CPU is measured over it)
        #[arg(long, value_name = "DURATION", value_parser = super::parse::duration, default_value = "1s")]
        interval: Duration,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum VerifyCommand {
    /// Plugin binaries against their pins, the audit hash chain, SQLite's integrity
    /// check and the policy files; exits 1 naming whatever fails
    SystemIntegrity,
}

#[derive(Debug, Subcommand)]
pub(super) enum SecurityCommand {
    /// Namespaces, uid, Landlock, seccomp, cgroup limits and usage per plugin
    PluginStatus {
        /// Only this plugin
        #[arg(long, value_name = "NAME")]
        plugin: Option<String>,
    },
    /// Alerts raised by the configured rules (open ones; --all for every one)
    Alerts {
        /// Also the acknowledged ones
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge an alert: it is no longer open
    AckAlert {
        /// Alert id, as `plexichat security alerts` shows it
        id: i64,
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AdvisoriesCommand {
    /// Replace the advisory database with a directory read here: a RustSec
    /// advisory-db checkout (its crates/) and/or OSV PyPI *.json files; every
    /// installed plugin it matches raises an alert
    Import {
        /// The directory
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TrustCommand {
    /// Trust a publisher's Ed25519 key to sign packages of the plugins PATTERN
    /// matches. The first admin proposes it; a second, different admin running the
    /// same command trusts it
    AddKey {
        /// The publisher's OpenSSH public key file (`id_ed25519.pub`)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Who the key belongs to
        #[arg(long, value_name = "PUBLISHER")]
        name: String,
        /// The plugin names it may sign: a name or a glob (`acme-*`); default `*`
        #[arg(long, value_name = "PATTERN")]
        plugins: Option<String>,
        /// Why it is trusted (required; audited)
        #[arg(long)]
        comment: Option<String>,
    },
    /// List every key with its state and history, and the plugins each signed
    List,
    /// Stop trusting a key for new packages; what it signed stays as it is
    Remove {
        /// The key's fingerprint (SHA256:...)
        fingerprint: String,
        /// Why (required; audited)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Revoke a compromised key: it is never trusted again, and every installed
    /// plugin it signed is flagged with an alert
    Revoke {
        /// The key's fingerprint (SHA256:...)
        fingerprint: String,
        /// Why (required; audited)
        #[arg(long)]
        comment: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PluginCommand {
    /// Install a plugin from a `.pxp` archive or a directory (read by the CLI with
    /// your rights and uploaded); it stays disabled until `plugin enable`, which
    /// needs its permission requests approved first
    Install {
        /// A `.pxp` archive (`plugin pack`) or a directory containing plugin.toml
        #[arg(value_name = "PACKAGE")]
        dir: PathBuf,
        /// The publisher's detached signature (`ssh-keygen -Y sign`); default:
        /// PACKAGE.sig when it exists
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Pack a plugin directory into one deterministic `.pxp` archive (its content
    /// list first) for signing and installing; needs no supervisor
    Pack {
        /// The plugin directory (plugin.toml plus its files)
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The archive to write (default: NAME-VERSION.pxp here)
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        archive: Option<PathBuf>,
    },
    /// Print a package's content list, the text a publisher signs:
    /// `plexichat plugin contents X.pxp | ssh-keygen -Y sign -n plexichat-plugin -f KEY > X.pxp.sig`
    Contents {
        /// A `.pxp` archive or a plugin directory
        #[arg(value_name = "PACKAGE")]
        package: PathBuf,
    },
    /// List permission requests waiting for review, or with --expiring-within the
    /// grants that expire soon
    Pending {
        /// List granted permissions expiring within this long instead (e.g. 14d)
        #[arg(long, value_name = "DURATION", value_parser = super::parse::expires_in_secs)]
        expiring_within: Option<u64>,
    },
    /// List installed plugins and their runtime state
    List,
    /// Show one plugin in detail, including its permissions
    Show {
        /// Plugin name
        name: String,
    },
    /// The dossier to read before approving: each request and what approving it
    /// allows, the signer and its key's history, the files and what the entry
    /// links, dependencies and advisories, settings and commands, and what an update
    /// changed
    Review {
        /// Plugin name
        name: String,
    },
    /// Grant a plugin's pending permission requests
    Approve(ApproveArgs),
    /// Refuse a plugin's pending permission requests
    Deny(DecisionArgs),
    /// Send a plugin back to its author: it stops and cannot be enabled or approved
    /// until a new version is installed
    RequestChanges {
        /// Plugin name
        name: String,
        /// What the author must change (required)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Pin a Python plugin to the interpreter and SDK bundle this host has now, after
    /// upgrading either (its package must still match its own pin)
    RepinRuntime {
        /// Plugin name
        name: String,
        /// Why the runtime changed (required; audited)
        #[arg(long)]
        comment: Option<String>,
    },
    /// Revoke a permission from one plugin, or from every plugin with --all;
    /// running plugins lose it at their next call
    RevokePermission {
        /// Permission name, e.g. network_outbound
        permission: String,
        /// Plugin name (or --all)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Revoke it from every plugin
        #[arg(long)]
        all: bool,
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Install a newer version of an installed plugin: grown permissions go back
    /// to review (the plugin stops until they are approved), the rest carry over
    Update {
        /// Plugin name
        name: String,
        /// The new version: a `.pxp` archive or a directory
        #[arg(value_name = "PACKAGE")]
        dir: PathBuf,
        /// The publisher's detached signature; default: PACKAGE.sig when it exists
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
    },
    /// Enable a plugin and start it
    Enable {
        /// Plugin name
        name: String,
        /// Re-verify the binary against its pin and the host's enforcement first,
        /// and the running process's confinement after; stop it if anything fails
        #[arg(long)]
        verify_security: bool,
    },
    /// Disable every enabled plugin
    DisableAll {
        /// Leave core plugins running
        #[arg(long)]
        except_core: bool,
        /// Kill at once instead of asking plugins to stop
        #[arg(long)]
        force: bool,
        /// Why, kept in the audit trail
        #[arg(long)]
        comment: Option<String>,
    },
    /// Stop a plugin and keep it from starting again (core plugins too)
    Disable {
        /// Plugin name
        name: String,
        /// Kill it at once instead of asking it to stop and waiting up to
        /// runtime.stop_grace (recorded as plugin.disable_force)
        #[arg(long)]
        force: bool,
    },
    /// Stop and uninstall a plugin, deleting its record, its installed files and its
    /// data directory (asks first on a terminal)
    Remove {
        /// Plugin name
        name: String,
        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// See and change a plugin's declared settings (its manifest's [[settings]])
    #[command(subcommand)]
    Config(super::settings::PluginConfigCommand),
    /// Run a command a plugin provides and print its output
    Invoke {
        /// Plugin name
        name: String,
        /// Command name, as declared by the plugin
        command: String,
        /// Arguments, passed to the plugin as UTF-8 text
        args: Option<String>,
        /// Give up after this long (e.g. 5s, 2m; at most 5m, longer is cut to 5m)
        /// [default: the supervisor's runtime.command_timeout]
        #[arg(long, value_name = "DURATION", value_parser = super::parse::duration)]
        timeout: Option<Duration>,
    },
    /// Run an installed plugin that is not running, confined, with no grants and a
    /// throwaway data dir; report what it tried against what it requested
    Trial(super::trial::TrialArgs),
}

/// Which requests a decision applies to, and why.
#[derive(Debug, Args)]
pub(super) struct DecisionArgs {
    /// Plugin name
    pub(super) name: String,
    /// Decide only this permission (repeatable) [default: all pending]
    #[arg(long = "permission", value_name = "PERMISSION")]
    pub(super) permissions: Vec<String>,
    /// Reason for the decision, kept in the audit trail (the supervisor
    /// requires one)
    #[arg(long, value_name = "TEXT")]
    pub(super) comment: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ApproveArgs {
    #[command(flatten)]
    pub(super) decision: DecisionArgs,
    /// Grant only this narrower scope (repeatable; exactly one --permission; each
    /// entry must lie within the request)
    #[arg(long = "scope", value_name = "ENTRY")]
    pub(super) scope: Vec<String>,
    /// Grant until this time: RFC 3339 (2027-01-31T00:00:00Z) or YYYY-MM-DD
    /// (midnight UTC) [default: the catalog's]
    #[arg(long, value_name = "DATE", value_parser = super::parse::date_ms, conflicts_with = "expires_in")]
    pub(super) expires: Option<i64>,
    /// Grant for this long from now (e.g. 30d, 12h) [default: the catalog's]
    #[arg(long, value_name = "DURATION", value_parser = super::parse::expires_in_secs)]
    pub(super) expires_in: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub(super) enum EventCommand {
    /// Publish an event to the plugins subscribed to TOPIC
    Publish {
        /// Event topic
        topic: String,
        /// Event payload, sent as UTF-8 text [default: empty]
        payload: Option<String>,
    },
    /// Print plugin events as they happen, until interrupted
    Watch {
        /// Only these topics; "prefix.*" matches a whole family [default: all]
        #[arg(value_name = "TOPIC")]
        topics: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum NotificationsCommand {
    /// Print notifications as they happen, until interrupted
    Watch,
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Query plugin-related audit records, newest last
    Plugins(AuditArgs),
}

#[derive(Debug, Args)]
pub(super) struct AuditArgs {
    /// Output format of this command (overrides --output)
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(super) output_format: Option<OutputFormat>,
    /// Only records about this plugin
    #[arg(long, value_name = "NAME")]
    pub(super) plugin: Option<String>,
    /// Only records from TIME on: RFC 3339, YYYY-MM-DD, or a duration ago
    /// (1h, 30m)
    #[arg(long, value_name = "TIME", value_parser = super::parse::since_ms)]
    pub(super) since: Option<i64>,
    /// The newest N records, 1 to 1000000, fetched page by page [default: 1000]
    #[arg(long, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=i64::from(super::commands::MAX_AUDIT_LIMIT)))]
    pub(super) limit: Option<u32>,
    /// A summary instead of records: `monthly` gives, per plugin, its calls and the
    /// permissions they used, its denials and its incidents
    #[arg(long, value_enum, value_name = "KIND", conflicts_with_all = ["since", "limit"])]
    pub(super) report: Option<ReportKind>,
    /// The month of the report (UTC) [default: the current month]
    #[arg(long, value_name = "YYYY-MM", requires = "report")]
    pub(super) month: Option<String>,
}

/// The summaries `audit plugins --report` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ReportKind {
    Monthly,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;
    use std::path::PathBuf;
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("plexichat").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_parse_anywhere() {
        let cli = parse(&[
            "plugin",
            "list",
            "--output",
            "json",
            "--socket",
            "/tmp/s.sock",
        ])
        .unwrap();
        assert_eq!(cli.output, OutputFormat::Json);
        assert_eq!(cli.socket, Some(PathBuf::from("/tmp/s.sock")));
        let cli = parse(&["--on-behalf-of", "alice", "whoami"]).unwrap();
        assert_eq!(cli.on_behalf_of.as_deref(), Some("alice"));
        assert_eq!(cli.output, OutputFormat::Table);
    }

    #[test]
    fn approve_parses_permissions_comment_and_expiry() {
        let cli = parse(&[
            "plugin",
            "approve",
            "echo",
            "--permission",
            "net.http",
            "--permission",
            "fs.read",
            "--comment",
            "ok",
            "--expires",
            "2027-01-31",
        ])
        .unwrap();
        let Command::Plugin(PluginCommand::Approve(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.decision.permissions, ["net.http", "fs.read"]);
        assert_eq!(args.decision.comment.as_deref(), Some("ok"));
        assert_eq!(args.expires, Some(1_801_353_600_000));
        assert_eq!(args.expires_in, None);
    }

    #[test]
    fn approve_without_comment_still_parses() {
        // The daemon, not the CLI, enforces the comment requirement.
        assert!(parse(&["plugin", "approve", "echo"]).is_ok());
    }

    #[test]
    fn approve_rejects_both_expiry_forms() {
        let err = parse(&[
            "plugin",
            "approve",
            "echo",
            "--expires",
            "2027-01-31",
            "--expires-in",
            "30d",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn approve_rejects_bad_expiry_values() {
        let err = parse(&["plugin", "approve", "echo", "--expires", "next week"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        assert!(parse(&["plugin", "approve", "echo", "--expires-in", "forever"]).is_err());
    }

    #[test]
    fn deny_has_no_expiry() {
        assert!(parse(&["plugin", "deny", "echo", "--comment", "no"]).is_ok());
        assert!(parse(&["plugin", "deny", "echo", "--expires-in", "1d"]).is_err());
    }

    #[test]
    fn audit_output_format_parses_and_overrides() {
        let cli = parse(&[
            "audit",
            "plugins",
            "--output-format",
            "json",
            "--plugin",
            "echo",
            "--since",
            "1h",
            "--limit",
            "5",
        ])
        .unwrap();
        let Command::Audit(AuditCommand::Plugins(args)) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.output_format, Some(OutputFormat::Json));
        assert_eq!(args.plugin.as_deref(), Some("echo"));
        assert!(args.since.is_some_and(|ms| ms > 0));
        assert_eq!(args.limit, Some(5));
        assert!(parse(&["audit", "plugins", "--output-format", "yaml"]).is_err());
    }

    #[test]
    fn invoke_and_disable_parse() {
        let cli = parse(&[
            "plugin",
            "invoke",
            "echo",
            "say",
            "hello world",
            "--timeout",
            "5s",
        ])
        .unwrap();
        let Command::Plugin(PluginCommand::Invoke { args, timeout, .. }) = cli.command else {
            panic!("wrong command: {:?}", cli.command);
        };
        assert_eq!(args.as_deref(), Some("hello world"));
        assert_eq!(timeout, Some(Duration::from_secs(5)));
        let cli = parse(&["plugin", "disable", "core-auth", "--force"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Plugin(PluginCommand::Disable { force: true, .. })
        ));
    }

    #[test]
    fn event_and_notification_commands_parse() {
        let cli = parse(&["event", "watch", "chat.*", "user.joined"]).unwrap();
        assert!(
            matches!(cli.command, Command::Event(EventCommand::Watch { ref topics }) if topics.len() == 2)
        );
        assert!(parse(&["event", "publish", "chat.message", "{\"text\":\"hi\"}"]).is_ok());
        assert!(parse(&["notifications", "watch"]).is_ok());
    }

    #[test]
    fn operator_commands_parse() {
        let cli = parse(&["plugin", "enable", "echo", "--verify-security"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Plugin(PluginCommand::Enable {
                verify_security: true,
                ..
            })
        ));
        assert!(parse(&["plugin", "disable-all", "--except-core"]).is_ok());
        assert!(parse(&["plugin", "update", "echo", "/tmp/echo-2"]).is_ok());
        for cmd in [
            "disable-all-plugins",
            "revoke-all-permissions",
            "enable-safe-mode",
            "disable-safe-mode",
            "security-report",
        ] {
            assert!(parse(&["emergency", cmd]).is_ok(), "{cmd}");
        }
        assert!(parse(&["backup", "create", "--comment", "before upgrade"]).is_ok());
        assert!(parse(&["backup", "list"]).is_ok());
        let cli = parse(&[
            "restore",
            "--backup-id",
            "20261129-101010-001",
            "--exclude-plugins",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Restore {
                exclude_plugins: true,
                ..
            }
        ));
        assert_eq!(
            parse(&["restore"]).unwrap_err().exit_code(),
            2,
            "the id is required"
        );
        let cli = parse(&["monitor", "plugins", "--real-time", "--interval", "500ms"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Monitor(MonitorCommand::Plugins { real_time: true, interval, .. })
                if interval == Duration::from_millis(500)
        ));
        assert!(parse(&["security", "ack-alert", "3"]).is_ok());
        assert!(parse(&["security", "ack-alert", "three"]).is_err());
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(parse(&["plugin", "frobnicate"]).unwrap_err().exit_code(), 2);
        assert_eq!(
            parse(&["--output", "xml", "whoami"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(
            parse(&["--on-behalf-of", "", "whoami"])
                .unwrap_err()
                .exit_code(),
            2
        );
    }
}
