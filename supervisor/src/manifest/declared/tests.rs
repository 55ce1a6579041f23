use super::super::Manifest;
use super::*;
use crate::catalog::Catalog;

fn catalog() -> Catalog {
    Catalog::parse(
        include_str!("../../../../policies/permissions.toml"),
        "test",
    )
    .unwrap()
}

const HEAD: &str = "name = \"p\"\nversion = \"1.0.0\"\nentry = \"p\"\n";

const GOOD: &str = r#"
[[settings]]
key = "api_url"
type = "string"
default = "https://example.org"
description = "Where to ask"

[[settings]]
key = "retries"
type = "integer"
default = 3

[[settings]]
key = "ratio"
type = "number"
default = 1

[[settings]]
key = "verbose"
type = "boolean"
default = false

[[settings]]
key = "mode"
type = "enum"
choices = ["fast", "safe"]
default = "safe"

[[settings]]
key = "token"
type = "string"
secret = true

[[commands]]
name = "greet"
description = "Says hello"
arguments = [{ name = "who", description = "whom to greet", required = true }, { name = "loud" }]
"#;

fn parse(body: &str) -> Result<Manifest, Vec<String>> {
    Manifest::parse(&format!("{HEAD}{body}"), &catalog())
        .map_err(|e| e.0.into_iter().map(|f| f.to_string()).collect())
}

fn problems(body: &str) -> Vec<String> {
    parse(body).expect_err("should be refused")
}

#[test]
fn declared_settings_and_commands_parse_with_canonical_defaults() {
    let m = parse(GOOD).unwrap();
    let d = &m.declared;
    assert_eq!(d.settings.len(), 6);
    assert_eq!(d.setting("retries").unwrap().default.as_deref(), Some("3"));
    assert_eq!(d.setting("ratio").unwrap().default.as_deref(), Some("1"));
    assert_eq!(
        d.setting("verbose").unwrap().default.as_deref(),
        Some("false")
    );
    assert_eq!(d.setting("mode").unwrap().kind, SettingType::Enum);
    assert!(d.setting("token").unwrap().secret);
    let commands = &d.commands;
    assert_eq!(commands[0].arguments.len(), 2);
    assert!(commands[0].arguments[0].required && !commands[0].arguments[1].required);
}

#[test]
fn no_commands_and_an_empty_list_both_declare_none() {
    assert!(parse("").unwrap().declared.commands.is_empty());
    assert!(parse("commands = []").unwrap().declared.commands.is_empty());
}

#[test]
fn each_problem_names_its_field_path() {
    let cases = [
        (
            GOOD.replace("default = 3", "default = \"three\""),
            "settings[1].default: a string does not fit type integer",
        ),
        (
            GOOD.replace("default = false", "default = 1"),
            "settings[3].default: a integer does not fit type boolean",
        ),
        (
            GOOD.replace("default = \"safe\"", "default = \"slow\""),
            "settings[4].default: setting `mode`: `slow` is not one of fast, safe",
        ),
        (
            GOOD.replace("type = \"integer\"", "type = \"int\""),
            "settings[1].type: `int` is not a setting type",
        ),
        (
            GOOD.replace("key = \"ratio\"", "key = \"retries\""),
            "settings[2].key: `retries` is declared twice",
        ),
        (
            GOOD.replace("key = \"ratio\"", "key = \"Ratio!\""),
            "settings[2].key: `Ratio!` is not a valid key",
        ),
        (
            GOOD.replace("choices = [\"fast\", \"safe\"]", "choices = []"),
            "settings[4].choices: an enum has 1-64 choices",
        ),
        (
            GOOD.replace("choices = [\"fast\", \"safe\"]\n", ""),
            "settings[4].choices: an enum setting needs its choices",
        ),
        (
            GOOD.replace("secret = true", "secret = true\ndefault = \"x\""),
            "settings[5].default: a secret setting has no default",
        ),
        (
            GOOD.replace("name = \"greet\"", "name = \"Greet me\""),
            "commands[0].name: `Greet me` is not a valid name",
        ),
        (
            GOOD.replace("{ name = \"loud\" }", "{ name = \"who\" }"),
            "commands[0].arguments[1].name: `who` is declared twice",
        ),
    ];
    for (text, expected) in cases {
        let p = problems(&text);
        assert!(
            p.iter().any(|e| e.starts_with(expected)),
            "expected `{expected}` in {p:?}"
        );
    }
}

#[test]
fn unknown_fields_and_choices_on_other_types_are_errors() {
    let p = problems(&GOOD.replace("description = \"Where to ask\"", "help = \"x\""));
    assert!(
        p[0].starts_with("plugin.toml:") && p[0].contains("help"),
        "{p:?}"
    );
    let p = problems(&GOOD.replace("default = 3", "default = 3\nchoices = [\"3\"]"));
    assert!(
        p[0].starts_with("settings[1].choices: only an enum"),
        "{p:?}"
    );
}

#[test]
fn counts_and_lengths_are_bounded() {
    let many: String = (0..65)
        .map(|i| format!("[[settings]]\nkey = \"k{i}\"\ntype = \"string\"\n"))
        .collect();
    assert!(problems(&many)
        .iter()
        .any(|e| e.starts_with("settings: at most 64")));
    let long = format!(
        "[[commands]]\nname = \"c\"\ndescription = \"{}\"\n",
        "x".repeat(1025)
    );
    assert_eq!(
        problems(&long),
        ["commands[0].description: longer than 1024 bytes"]
    );
}

#[test]
fn values_are_checked_against_the_type_and_canonicalised() {
    let m = parse(GOOD).unwrap();
    let s = |k: &str| m.declared.setting(k).unwrap().clone();
    assert_eq!(s("retries").check(" 42 ").unwrap(), "42");
    let e = s("retries").check("4.5").unwrap_err();
    assert!(
        e.contains("setting `retries`") && e.contains("integer"),
        "{e}"
    );
    assert_eq!(s("ratio").check("0.50").unwrap(), "0.5");
    assert!(s("ratio").check("NaN").is_err());
    assert!(s("verbose")
        .check("yes")
        .unwrap_err()
        .contains("true or false"));
    assert_eq!(s("mode").check("fast").unwrap(), "fast");
    let e = s("token")
        .check(&"x".repeat(MAX_VALUE_BYTES + 1))
        .unwrap_err();
    assert!(e.contains("at most"), "{e}");
}

#[test]
fn a_secret_value_is_never_quoted_in_a_refusal() {
    let mut m = parse(GOOD).unwrap();
    let token = m
        .declared
        .settings
        .iter_mut()
        .find(|s| s.key == "token")
        .unwrap();
    token.kind = SettingType::Integer;
    let e = token.check("hunter2").unwrap_err();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn invocations_are_checked_against_the_declared_commands() {
    let m = parse(GOOD).unwrap();
    let d = &m.declared;
    assert!(d
        .check_invocation("p", "greet", b"{\"who\": \"ada\"}")
        .is_ok());
    assert!(
        d.check_invocation("p", "greet", b"ada").is_ok(),
        "unnamed args are not checked"
    );
    let e = d
        .check_invocation("p", "greet", b"{\"loud\": true}")
        .unwrap_err();
    assert!(e.to_string().contains("needs argument(s) who"), "{e}");
    let e = d.check_invocation("p", "wave", b"").unwrap_err();
    assert!(e.to_string().contains("declared commands: greet"), "{e}");
    let none = parse("").unwrap().declared;
    let e = none.check_invocation("p", "wave", b"").unwrap_err();
    assert!(
        e.to_string().contains("declares no commands, so `wave`"),
        "{e}"
    );
}
