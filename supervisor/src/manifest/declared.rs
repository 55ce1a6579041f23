//! The settings and commands a manifest declares (`[[settings]]`, `[[commands]]`):
//! their validated types, and the check of a setting value against its declared type.

use std::fmt;

use serde::Deserialize;

/// At most this many `[[settings]]`, `[[commands]]`, and arguments per command.
pub const MAX_SETTINGS: usize = 64;
pub const MAX_COMMANDS: usize = 64;
pub const MAX_ARGUMENTS: usize = 16;
/// A setting value (and a string default) is at most this many bytes.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
const MAX_DESCRIPTION_BYTES: usize = 1024;
const MAX_CHOICES: usize = 64;
const MAX_CHOICE_BYTES: usize = 128;

/// A setting's type: the closed set a settings form can render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    String,
    /// A signed 64-bit integer.
    Integer,
    /// A finite 64-bit float.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of the declared `choices`.
    Enum,
}

impl SettingType {
    const ALL: [SettingType; 5] = [
        SettingType::String,
        SettingType::Integer,
        SettingType::Number,
        SettingType::Boolean,
        SettingType::Enum,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Integer => "integer",
            SettingType::Number => "number",
            SettingType::Boolean => "boolean",
            SettingType::Enum => "enum",
        }
    }

    fn parse(s: &str) -> Result<SettingType, String> {
        SettingType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "`{}` is not a setting type (string, integer, number, boolean or enum)",
                    crate::audit::short(s)
                )
            })
    }
}

impl fmt::Display for SettingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared setting. `default` is kept in canonical text (what GetConfig answers).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    pub key: String,
    pub kind: SettingType,
    pub default: Option<String>,
    pub description: String,
    /// Its value is never shown, logged or audited; it has no default.
    pub secret: bool,
    /// The allowed values of an enum; empty for every other type.
    pub choices: Vec<String>,
}

impl Setting {
    /// `value` in canonical text when it fits this setting; else why not, naming the
    /// key and the expected type (never quoting a secret's value).
    pub fn check(&self, value: &str) -> Result<String, String> {
        let shown = if self.secret {
            "the value".to_string()
        } else {
            format!("`{}`", crate::audit::short(value))
        };
        let bad = |expected: String| format!("setting `{}`: {shown} is not {expected}", self.key);
        if value.len() > MAX_VALUE_BYTES {
            return Err(format!(
                "setting `{}`: values are at most {MAX_VALUE_BYTES} bytes",
                self.key
            ));
        }
        match self.kind {
            SettingType::String => Ok(value.to_string()),
            SettingType::Integer => value
                .trim()
                .parse::<i64>()
                .map(|n| n.to_string())
                .map_err(|_| bad("an integer (type integer, 64-bit signed)".into())),
            SettingType::Number => match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n.to_string()),
                _ => Err(bad("a finite number (type number)".into())),
            },
            SettingType::Boolean => match value.trim() {
                "true" => Ok("true".into()),
                "false" => Ok("false".into()),
                _ => Err(bad("true or false (type boolean)".into())),
            },
            SettingType::Enum if self.choices.iter().any(|c| c == value) => Ok(value.to_string()),
            SettingType::Enum => Err(bad(format!(
                "one of {} (type enum)",
                self.choices.join(", ")
            ))),
        }
    }
}

/// One declared command argument (documentation, and a presence check; see README).
#[derive(Debug, Clone, PartialEq)]
pub struct Argument {
    pub name: String,
    pub description: String,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    pub description: String,
    pub arguments: Vec<Argument>,
}

/// What a plugin declares besides permissions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub settings: Vec<Setting>,
    /// The only commands InvokeCommand passes on; none when the manifest declares none.
    pub commands: Vec<Command>,
}

/// Why an invocation is refused before it reaches the plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("plugin `{plugin}` declares no command `{command}`; its declared commands: {declared} (a command must be declared in the manifest's [[commands]] to be invoked)")]
    Undeclared {
        plugin: String,
        command: String,
        declared: String,
    },
    #[error("plugin `{plugin}` declares no commands, so `{command}` cannot be invoked: its manifest must declare it in [[commands]]")]
    NoneDeclared { plugin: String, command: String },
    #[error("command `{command}` of plugin `{plugin}` needs argument(s) {missing}: pass the arguments as a JSON object naming them")]
    MissingArguments {
        plugin: String,
        command: String,
        missing: String,
    },
}

impl Declared {
    pub fn setting(&self, key: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.key == key)
    }

    /// Whether `command` may be invoked with `args`. Required arguments are checked
    /// only when `args` is a JSON object (the only form in which they are named).
    pub fn check_invocation(
        &self,
        plugin: &str,
        command: &str,
        args: &[u8],
    ) -> Result<(), CommandRefusal> {
        let command_shown = || crate::audit::short(command).into_owned();
        if self.commands.is_empty() {
            return Err(CommandRefusal::NoneDeclared {
                plugin: plugin.to_string(),
                command: command_shown(),
            });
        }
        let Some(declared) = self.commands.iter().find(|c| c.name == command) else {
            let names: Vec<&str> = self.commands.iter().map(|c| c.name.as_str()).collect();
            return Err(CommandRefusal::Undeclared {
                plugin: plugin.to_string(),
                command: command_shown(),
                declared: names.join(", "),
            });
        };
        let Ok(serde_json::Value::Object(named)) = serde_json::from_slice(args) else {
            return Ok(());
        };
        let missing: Vec<&str> = declared
            .arguments
            .iter()
            .filter(|a| a.required && !named.contains_key(&a.name))
            .map(|a| a.name.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(CommandRefusal::MissingArguments {
                plugin: plugin.to_string(),
                command: command.to_string(),
                missing: missing.join(", "),
            })
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSetting {
    key: String,
    #[serde(rename = "type")]
    kind: String,
    default: Option<toml::Value>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    secret: bool,
    choices: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCommand {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    arguments: Vec<RawArgument>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArgument {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    required: bool,
}

type Err<'a> = dyn FnMut(String, String) + 'a;

/// `[a-z][a-z0-9_.-]*`, 1-64 bytes, and a valid plugin config key.
fn check_key(key: &str) -> Result<(), String> {
    let mut bytes = key.bytes();
    let shaped = matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'))
        && key.len() <= 64;
    if shaped && crate::catalog::validate_config_key(key).is_ok() {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid key (1-64 chars of a-z, 0-9, _, . or -, starting with a letter)",
            crate::audit::short(key)
        ))
    }
}

/// `[a-z0-9][a-z0-9_-]*`, 1-64 bytes: command and argument names.
fn check_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid name (1-64 chars of a-z, 0-9, _ or -, starting with a letter or digit)",
            crate::audit::short(name)
        ))
    }
}

fn check_description(field: &str, text: &str, err: &mut Err<'_>) {
    if text.len() > MAX_DESCRIPTION_BYTES {
        err(
            format!("{field}.description"),
            format!("longer than {MAX_DESCRIPTION_BYTES} bytes"),
        );
    }
}

/// A TOML default as the text `Setting::check` takes; `None` when its TOML type
/// cannot be that setting's.
fn default_text(kind: SettingType, value: &toml::Value) -> Option<String> {
    match (kind, value) {
        (SettingType::String | SettingType::Enum, toml::Value::String(s)) => Some(s.clone()),
        (SettingType::Integer | SettingType::Number, toml::Value::Integer(n)) => {
            Some(n.to_string())
        }
        (SettingType::Number, toml::Value::Float(f)) => Some(f.to_string()),
        (SettingType::Boolean, toml::Value::Boolean(b)) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_choices(
    field: &str,
    kind: SettingType,
    raw: Option<Vec<String>>,
    err: &mut Err<'_>,
) -> Vec<String> {
    let field = format!("{field}.choices");
    match (kind, raw) {
        (SettingType::Enum, None) => {
            err(field, "an enum setting needs its choices".into());
            Vec::new()
        }
        (SettingType::Enum, Some(choices)) => {
            if choices.is_empty() || choices.len() > MAX_CHOICES {
                err(
                    field.clone(),
                    format!("an enum has 1-{MAX_CHOICES} choices"),
                );
            }
            for (j, c) in choices.iter().enumerate() {
                if c.is_empty() || c.len() > MAX_CHOICE_BYTES {
                    err(
                        format!("{field}[{j}]"),
                        format!("a choice is 1-{MAX_CHOICE_BYTES} bytes"),
                    );
                } else if choices[..j].contains(c) {
                    err(format!("{field}[{j}]"), format!("`{c}` is listed twice"));
                }
            }
            choices
        }
        (_, Some(_)) => {
            err(
                field,
                format!("only an enum has choices (this setting is {kind})"),
            );
            Vec::new()
        }
        (_, None) => Vec::new(),
    }
}

fn parse_setting(field: &str, raw: RawSetting, err: &mut Err<'_>) -> Option<Setting> {
    if let Err(e) = check_key(&raw.key) {
        err(format!("{field}.key"), e);
    }
    check_description(field, &raw.description, err);
    let kind = SettingType::parse(&raw.kind)
        .map_err(|e| err(format!("{field}.type"), e))
        .ok()?;
    let choices = parse_choices(field, kind, raw.choices, err);
    let mut setting = Setting {
        key: raw.key,
        kind,
        default: None,
        description: raw.description,
        secret: raw.secret,
        choices,
    };
    // An enum without choices is already reported; its default cannot be judged.
    let judged = kind != SettingType::Enum || !setting.choices.is_empty();
    if let Some(value) = raw.default.filter(|_| judged) {
        let field = format!("{field}.default");
        if setting.secret {
            err(
                field,
                "a secret setting has no default (the operator sets it: plexichat plugin config set)"
                    .into(),
            );
        } else {
            match default_text(kind, &value).map(|text| setting.check(&text)) {
                Some(Ok(canonical)) => setting.default = Some(canonical),
                Some(Err(e)) => err(field, e),
                None => err(
                    field,
                    format!("a {} does not fit type {kind}", value.type_str()),
                ),
            }
        }
    }
    Some(setting)
}

pub(super) fn parse_settings(raw: Vec<RawSetting>, err: &mut Err<'_>) -> Vec<Setting> {
    if raw.len() > MAX_SETTINGS {
        err(
            "settings".into(),
            format!("at most {MAX_SETTINGS} settings"),
        );
    }
    let mut out: Vec<Setting> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let field = format!("settings[{i}]");
        if out.iter().any(|s| s.key == r.key) {
            err(
                format!("{field}.key"),
                format!("`{}` is declared twice", crate::audit::short(&r.key)),
            );
        }
        if let Some(s) = parse_setting(&field, r, err) {
            out.push(s);
        }
    }
    out
}

fn parse_arguments(field: &str, raw: Vec<RawArgument>, err: &mut Err<'_>) -> Vec<Argument> {
    if raw.len() > MAX_ARGUMENTS {
        err(
            format!("{field}.arguments"),
            format!("at most {MAX_ARGUMENTS} arguments"),
        );
    }
    let mut out: Vec<Argument> = Vec::new();
    for (j, a) in raw.into_iter().enumerate() {
        let field = format!("{field}.arguments[{j}]");
        if let Err(e) = check_name(&a.name) {
            err(format!("{field}.name"), e);
        } else if out.iter().any(|b| b.name == a.name) {
            err(
                format!("{field}.name"),
                format!("`{}` is declared twice", a.name),
            );
        }
        check_description(&field, &a.description, err);
        out.push(Argument {
            name: a.name,
            description: a.description,
            required: a.required,
        });
    }
    out
}

pub(super) fn parse_commands(raw: Vec<RawCommand>, err: &mut Err<'_>) -> Vec<Command> {
    if raw.len() > MAX_COMMANDS {
        err(
            "commands".into(),
            format!("at most {MAX_COMMANDS} commands"),
        );
    }
    let mut out: Vec<Command> = Vec::new();
    for (i, c) in raw.into_iter().enumerate() {
        let field = format!("commands[{i}]");
        if let Err(e) = check_name(&c.name) {
            err(format!("{field}.name"), e);
        } else if out.iter().any(|d| d.name == c.name) {
            err(
                format!("{field}.name"),
                format!("`{}` is declared twice", c.name),
            );
        }
        check_description(&field, &c.description, err);
        let arguments = parse_arguments(&field, c.arguments, err);
        out.push(Command {
            name: c.name,
            description: c.description,
            arguments,
        });
    }
    out
}

#[cfg(test)]
mod tests;
