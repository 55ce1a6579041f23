//! `plexichat plugin config show|get|set|unset`: a plugin's declared settings, as a
//! table or JSON; a secret's value is never printed, only whether it is set.

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::{
    GetPluginSettingsRequest, PluginSetting, PluginSettings, SetPluginSettingRequest, SettingType,
    UnsetPluginSettingRequest,
};
use clap::Subcommand;

use super::commands::{emit, Session};
use super::output::{format_ms, or_none, Table, NONE};

#[derive(Debug, Subcommand)]
pub(super) enum PluginConfigCommand {
    /// Show every setting the plugin declares: type, current value (a secret shows
    /// only set/unset), default and description
    Show {
        /// Plugin name
        name: String,
    },
    /// Print the value the plugin sees for one setting (the operator's value, else
    /// the default); a secret prints only whether it is set
    Get {
        /// Plugin name
        name: String,
        /// A key the plugin declares in its [[settings]]
        key: String,
    },
    /// Set one setting, checked against its declared type (string, integer, number,
    /// boolean or enum); the plugin sees it at its next read, without a restart
    Set {
        /// Plugin name
        name: String,
        /// A key the plugin declares in its [[settings]]
        key: String,
        /// The new value as text, e.g. 42, 0.5, true, or one of an enum's choices
        #[arg(required_unless_present = "stdin")]
        value: Option<String>,
        /// Read the value from stdin instead (one trailing newline dropped), so a
        /// secret stays out of the shell history and the process list
        #[arg(long, conflicts_with = "value")]
        stdin: bool,
    },
    /// Remove the operator's value: the plugin sees the declared default again
    Unset {
        /// Plugin name
        name: String,
        /// A key the plugin declares in its [[settings]]
        key: String,
    },
}

impl PluginConfigCommand {
    pub(super) fn plugin_name(&self) -> &str {
        match self {
            PluginConfigCommand::Show { name }
            | PluginConfigCommand::Get { name, .. }
            | PluginConfigCommand::Set { name, .. }
            | PluginConfigCommand::Unset { name, .. } => name,
        }
    }
}

pub(super) async fn run(session: &Session, cmd: PluginConfigCommand) -> Result<()> {
    match cmd {
        PluginConfigCommand::Show { name } => show(session, name).await,
        PluginConfigCommand::Get { name, key } => get(session, name, key).await,
        PluginConfigCommand::Set {
            name,
            key,
            value,
            stdin,
        } => {
            let value = match value {
                Some(v) if !stdin => v,
                _ => value_from_stdin()?,
            };
            let request = SetPluginSettingRequest { name, key, value };
            let resp = session
                .connect()
                .await?
                .set_plugin_setting(request)
                .await?
                .into_inner();
            emit(&session.render(&resp, |s| format!("set {}", one_line(s)))?)
        }
        PluginConfigCommand::Unset { name, key } => {
            let request = UnsetPluginSettingRequest { name, key };
            let resp = session
                .connect()
                .await?
                .unset_plugin_setting(request)
                .await?
                .into_inner();
            emit(&session.render(&resp, |s| format!("unset {}", one_line(s)))?)
        }
    }
}

/// The value piped in, without the newline `echo` or a here-string adds.
fn value_from_stdin() -> Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_STDIN_BYTES)
        .read_to_string(&mut text)
        .context("reading the value from stdin (it must be UTF-8 text)")?;
    if text.len() as u64 >= MAX_STDIN_BYTES {
        bail!("the value on stdin is larger than the supervisor accepts (16 KiB)");
    }
    let trimmed = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t));
    Ok(trimmed.unwrap_or(&text).to_string())
}

/// One byte more than a setting value may have (16 KiB), so a longer one is seen.
const MAX_STDIN_BYTES: u64 = 16 * 1024 + 2;

async fn fetch(session: &Session, name: String) -> Result<PluginSettings> {
    Ok(session
        .connect()
        .await?
        .get_plugin_settings(GetPluginSettingsRequest { name })
        .await?
        .into_inner())
}

async fn show(session: &Session, name: String) -> Result<()> {
    let resp = fetch(session, name).await?;
    emit(&session.render(&resp, settings_table)?)
}

async fn get(session: &Session, name: String, key: String) -> Result<()> {
    let resp = fetch(session, name).await?;
    let Some(setting) = resp.settings.into_iter().find(|s| s.key == key) else {
        bail!(
            "plugin `{}` declares no setting `{}` (see plexichat plugin config show {})",
            resp.plugin,
            key,
            resp.plugin
        );
    };
    emit(&session.render(&setting, value_text)?)
}

fn type_text(s: &PluginSetting) -> String {
    match SettingType::try_from(s.r#type).unwrap_or(SettingType::Unspecified) {
        SettingType::Enum => format!("enum({})", s.choices.join("|")),
        SettingType::String => "string".into(),
        SettingType::Integer => "integer".into(),
        SettingType::Number => "number".into(),
        SettingType::Boolean => "boolean".into(),
        SettingType::Unspecified => "?".into(),
    }
}

/// What the plugin sees, as the operator may be shown it.
fn value_text(s: &PluginSetting) -> String {
    match (s.secret, s.is_set, &s.value) {
        (true, true, _) => "(secret: set)".into(),
        (true, false, _) => "(secret: unset)".into(),
        (false, _, Some(v)) => v.clone(),
        (false, _, None) => NONE.into(),
    }
}

fn source_text(s: &PluginSetting) -> &'static str {
    match (s.is_set, &s.default_value) {
        (true, _) => "set",
        (false, Some(_)) => "default",
        (false, None) => "unset",
    }
}

fn one_line(s: &PluginSetting) -> String {
    format!(
        "{} = {} ({})",
        super::output::escape_line(&s.key),
        super::output::escape_line(&value_text(s)),
        source_text(s)
    )
}

fn settings_table(r: &PluginSettings) -> String {
    if r.settings.is_empty() {
        return format!(
            "plugin {} declares no settings\n",
            super::output::escape_line(&r.plugin)
        );
    }
    let mut table = Table::new(&[
        "KEY",
        "TYPE",
        "VALUE",
        "SOURCE",
        "DEFAULT",
        "UPDATED",
        "DESCRIPTION",
    ]);
    for s in &r.settings {
        table.row([
            s.key.clone(),
            type_text(s),
            value_text(s),
            source_text(s).to_string(),
            s.default_value.clone().unwrap_or_else(|| NONE.into()),
            updated_text(s),
            or_none(&s.description),
        ]);
    }
    table.render()
}

fn updated_text(s: &PluginSetting) -> String {
    if s.updated_at_ms == 0 {
        NONE.into()
    } else {
        format!("{} by {}", format_ms(s.updated_at_ms), s.updated_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(key: &str, secret: bool, value: Option<&str>, is_set: bool) -> PluginSetting {
        PluginSetting {
            key: key.into(),
            r#type: SettingType::String.into(),
            secret,
            value: value.map(str::to_string),
            is_set,
            ..Default::default()
        }
    }

    #[test]
    fn a_secret_shows_only_whether_it_is_set() {
        let table = settings_table(&PluginSettings {
            plugin: "p".into(),
            settings: vec![
                setting("token", true, None, true),
                setting("other", true, None, false),
                setting("url", false, Some("https://x"), false),
            ],
        });
        assert!(table.contains("(secret: set)"), "{table}");
        assert!(table.contains("(secret: unset)"), "{table}");
        assert!(table.contains("https://x"), "{table}");
    }

    #[test]
    fn enums_show_their_choices() {
        let mut s = setting("mode", false, Some("fast"), true);
        s.r#type = SettingType::Enum.into();
        s.choices = vec!["fast".into(), "safe".into()];
        assert_eq!(type_text(&s), "enum(fast|safe)");
        assert_eq!(one_line(&s), "mode = fast (set)");
    }
}
