//! Policies that extend another (`{"extends": "default", "add": [...]}`): the base's
//! allowlist plus the added rules, each justified, so what a policy adds is its whole file.

use std::collections::BTreeMap;

use serde_json::Value;

use super::FILTER_NAME;

/// The policy text to compile: `text` itself, or for an extending policy the base's
/// filter with the added rules appended.
pub fn resolve(text: &str, sources: &BTreeMap<&str, &str>) -> Result<String, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(base_name) = root.get("extends") else {
        return Ok(text.to_string());
    };
    let base_name = base_name
        .as_str()
        .ok_or("`extends` must name a policy (a file stem)")?;
    if let Some(key) = root.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["extends", "comment", "add"].contains(&k.as_str()))
    }) {
        return Err(format!(
            "an extending policy has only `extends`, `comment` and `add`; found `{key}`"
        ));
    }
    let base_text = sources
        .get(base_name)
        .ok_or_else(|| format!("extends `{base_name}`, which is not among the policies"))?;
    let mut base: Value = serde_json::from_str(base_text)
        .map_err(|e| format!("its base `{base_name}` is not valid JSON: {e}"))?;
    if base.get("extends").is_some() {
        return Err(format!(
            "extends `{base_name}`, which extends another: one level only, so the added rules stay in view"
        ));
    }
    let added = root
        .get("add")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("`add` must be a non-empty list of rules")?;
    let rules = base[FILTER_NAME]["filter"]
        .as_array_mut()
        .ok_or_else(|| format!("its base `{base_name}` has no `{FILTER_NAME}.filter` list"))?;
    for (i, rule) in added.iter().enumerate() {
        check_added(rules, i, rule, base_name)?;
    }
    rules.extend(added.iter().cloned());
    Ok(base.to_string())
}

/// An added rule names a syscall, says why, and is not already allowed outright.
fn check_added(base: &[Value], i: usize, rule: &Value, base_name: &str) -> Result<(), String> {
    let syscall = rule["syscall"]
        .as_str()
        .ok_or_else(|| format!("add[{i}] names no syscall"))?;
    if rule["comment"].as_str().is_none_or(|c| c.trim().is_empty()) {
        return Err(format!(
            "add[{i}] ({syscall}) needs a `comment` saying why the runtime needs it"
        ));
    }
    let unconditional = |r: &Value| {
        r["syscall"] == syscall
            && r.get("args")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
    };
    if base.iter().any(unconditional) {
        return Err(format!(
            "add[{i}]: `{base_name}` already allows {syscall} outright"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"{"plugin": {"mismatch_action": {"trace": 24256}, "match_action": "allow",
        "filter": [{"syscall": "read"}]}}"#;

    fn sources() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([("default", BASE)])
    }

    #[test]
    fn an_extending_policy_is_its_base_plus_its_justified_rules() {
        let ext = r#"{"extends": "default", "comment": "x",
            "add": [{"syscall": "sysinfo", "comment": "python: os.cpu_count"}]}"#;
        let merged: Value = serde_json::from_str(&resolve(ext, &sources()).unwrap()).unwrap();
        let names: Vec<_> = merged["plugin"]["filter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["syscall"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["read", "sysinfo"]);
        assert_eq!(
            resolve(BASE, &sources()).unwrap(),
            BASE,
            "no extends: as is"
        );
    }

    #[test]
    fn a_bad_extension_is_refused_naming_the_problem() {
        for (ext, want) in [
            (
                r#"{"extends": "nope", "add": [{"syscall": "sysinfo", "comment": "c"}]}"#,
                "not among",
            ),
            (r#"{"extends": "default", "add": []}"#, "non-empty list"),
            (
                r#"{"extends": "default", "add": [{"syscall": "sysinfo"}]}"#,
                "needs a `comment`",
            ),
            (
                r#"{"extends": "default", "add": [{"syscall": "read", "comment": "c"}]}"#,
                "already allows read",
            ),
            (
                r#"{"extends": "default", "plugin": {}, "add": [{"syscall": "x", "comment": "c"}]}"#,
                "found `plugin`",
            ),
        ] {
            let err = resolve(ext, &sources()).unwrap_err();
            assert!(err.contains(want), "{ext}: {err}");
        }
        let chained = BTreeMap::from([
            ("default", BASE),
            (
                "mid",
                r#"{"extends": "default", "add": [{"syscall": "sysinfo", "comment": "c"}]}"#,
            ),
        ]);
        let err = resolve(
            r#"{"extends": "mid", "add": [{"syscall": "x", "comment": "c"}]}"#,
            &chained,
        )
        .unwrap_err();
        assert!(err.contains("one level only"), "{err}");
    }
}
