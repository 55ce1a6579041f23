//! One test per rule: the invalid value is refused naming its key, and the valid
//! neighbour is accepted.

use std::path::Path;

use super::*;
use crate::config::DEFAULT_CONFIG;

fn host() -> Host {
    Host::with_accounts(
        &[
            ("root", 0),
            ("alice", 1000),
            ("nobody", 65534),
            ("svc", 300_500),
        ],
        &[
            ("root", 0),
            ("plexichat", 990),
            ("nogroup", 65534),
            ("grp", 400_000),
        ],
    )
}

/// `text` with `key` of `[section]` (`""`: the top level) set to `value`, a TOML
/// value: the line replaced, or added at the end of the section.
fn set(text: &str, section: &str, key: &str, value: &str) -> String {
    let wanted = if section.is_empty() {
        String::new()
    } else {
        format!("[{section}]")
    };
    let line_of = format!("{key} = {value}");
    let (mut current, mut done) = (String::new(), false);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('[') {
            if current == wanted && !done {
                out.push(line_of.clone());
                done = true;
            }
            current = line.trim().to_string();
        }
        if !done && current == wanted && line.starts_with(&format!("{key} =")) {
            out.push(line_of.clone());
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        out.push(line_of);
    }
    out.join("\n") + "\n"
}

fn problems_on(text: &str, base: &Path) -> Vec<Problem> {
    let cfg = Config::parse_unchecked(text, "t", base).expect("parses");
    validate(&cfg, &host())
}

fn problems(text: &str) -> Vec<Problem> {
    problems_on(text, Path::new("/srv/px"))
}

#[track_caller]
fn refused(section: &str, key: &str, value: &str, named: &str, says: &str) {
    let all = problems(&set(DEFAULT_CONFIG, section, key, value));
    assert!(
        all.iter()
            .any(|p| p.key == named && p.to_string().contains(says)),
        "{key} = {value}: expected `{named}` saying `{says}`, got {all:#?}"
    );
}

#[track_caller]
fn accepted(section: &str, key: &str, value: &str) {
    let all = problems(&set(DEFAULT_CONFIG, section, key, value));
    assert!(all.is_empty(), "{key} = {value}: {all:#?}");
}

#[test]
fn the_defaults_are_valid() {
    assert_eq!(problems(DEFAULT_CONFIG), vec![]);
}

#[test]
fn a_zero_health_interval_is_refused_with_the_key() {
    let all = problems(&set(DEFAULT_CONFIG, "runtime", "health_interval", "\"0s\""));
    assert_eq!(
        all.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec!["runtime.health_interval must be greater than 0 (got \"0s\")"]
    );
    accepted("runtime", "health_interval", "\"1ms\"");
    accepted("runtime", "health_interval", "\"1day\"");
    refused(
        "runtime",
        "health_interval",
        "\"25h\"",
        "runtime.health_interval",
        "at most 1day",
    );
}

#[test]
fn every_runtime_duration_is_positive_and_bounded() {
    for key in [
        "handshake_timeout",
        "stop_grace",
        "health_timeout",
        "command_timeout",
        "restart_backoff_initial",
        "restart_backoff_max",
        "quarantine_window",
    ] {
        refused(
            "runtime",
            key,
            "\"0s\"",
            &format!("runtime.{key}"),
            "greater than 0",
        );
    }
    refused(
        "runtime",
        "stop_grace",
        "\"300years\"",
        "runtime.stop_grace",
        "at most 5m",
    );
    accepted("runtime", "stop_grace", "\"5m\"");
    refused(
        "runtime",
        "handshake_timeout",
        "\"6m\"",
        "runtime.handshake_timeout",
        "at most 5m",
    );
    refused(
        "runtime",
        "quarantine_window",
        "\"31days\"",
        "runtime.quarantine_window",
        "at most 30days",
    );
    accepted("runtime", "quarantine_window", "\"30days\"");
}

#[test]
fn the_first_backoff_is_no_longer_than_the_last() {
    refused(
        "runtime",
        "restart_backoff_initial",
        "\"31s\"",
        "runtime.restart_backoff_initial",
        "must not exceed runtime.restart_backoff_max (\"30s\")",
    );
    accepted("runtime", "restart_backoff_initial", "\"30s\"");
}

#[test]
fn quarantine_after_counts_from_one() {
    refused(
        "runtime",
        "quarantine_after",
        "0",
        "runtime.quarantine_after",
        "at least 1 (got 0)",
    );
    accepted("runtime", "quarantine_after", "1");
    refused(
        "runtime",
        "quarantine_after",
        "1000001",
        "runtime.quarantine_after",
        "at most 1000000",
    );
}

#[test]
fn rates_are_finite_and_positive() {
    for bad in ["-1.0", "nan", "inf", "0.0", "-inf"] {
        refused(
            "broker",
            "rate_per_sec",
            bad,
            "broker.rate_per_sec",
            "finite number greater than 0",
        );
    }
    refused(
        "broker",
        "rate_per_sec",
        "2e9",
        "broker.rate_per_sec",
        "at most 1000000000",
    );
    accepted("broker", "rate_per_sec", "0.5");
    accepted("broker", "rate_per_sec", "1e9");
    refused("broker", "burst", "0", "broker.burst", "at least 1 (got 0)");
    accepted("broker", "burst", "1");
    refused("broker", "burst", "1000000001", "broker.burst", "at most");
}

#[test]
fn broker_limits_count_from_one_and_fit_one_message() {
    refused(
        "broker",
        "data_quota",
        "\"0\"",
        "broker.data_quota",
        "at least 1",
    );
    accepted("broker", "data_quota", "\"1\"");
    refused(
        "broker",
        "db_max_rows",
        "0",
        "broker.db_max_rows",
        "at least 1",
    );
    refused(
        "broker",
        "db_max_bytes",
        "\"2MiB\"",
        "broker.db_max_bytes",
        "at most 1MiB",
    );
    accepted("broker", "db_max_bytes", "\"1MiB\"");
    refused(
        "broker",
        "http_max_response_bytes",
        "\"1025KiB\"",
        "broker.http_max_response_bytes",
        "at most 1MiB",
    );
    refused(
        "broker",
        "exec_max_output_bytes",
        "\"513KiB\"",
        "broker.exec_max_output_bytes",
        "at most 512KiB",
    );
    accepted("broker", "exec_max_output_bytes", "\"512KiB\"");
    refused(
        "broker",
        "http_max_redirects",
        "21",
        "broker.http_max_redirects",
        "at most 20",
    );
    accepted("broker", "http_max_redirects", "0");
    refused(
        "broker",
        "database",
        "\"\"",
        "broker.database",
        "must not be empty",
    );
    for key in [
        "db_statement_time",
        "http_timeout",
        "exec_timeout",
        "call_timeout",
    ] {
        refused(
            "broker",
            key,
            "\"0s\"",
            &format!("broker.{key}"),
            "greater than 0",
        );
    }
    refused(
        "broker",
        "call_timeout",
        "\"2h\"",
        "broker.call_timeout",
        "at most 1h",
    );
}

#[test]
fn sandbox_limits_are_at_least_one_and_within_the_host() {
    refused(
        "sandbox",
        "max_pids",
        "0",
        "sandbox.max_pids",
        "at least 1 (got 0)",
    );
    accepted("sandbox", "max_pids", "1");
    refused(
        "sandbox",
        "max_pids",
        "4097",
        "sandbox.max_pids",
        "at most 4096",
    );
    for bad in ["0.0", "-1.0", "nan"] {
        refused(
            "sandbox",
            "max_cpu",
            bad,
            "sandbox.max_cpu",
            "greater than 0",
        );
    }
    refused(
        "sandbox",
        "max_cpu",
        "0.001",
        "sandbox.max_cpu",
        "at least 0.01",
    );
    accepted("sandbox", "max_cpu", "0.01");
    // The test host has 4 cores and 8 GiB.
    accepted("sandbox", "max_cpu", "4.0");
    refused("sandbox", "max_cpu", "4.5", "sandbox.max_cpu", "at most 4");
    refused(
        "sandbox",
        "max_memory",
        "\"1MiB\"",
        "sandbox.max_memory",
        "at least 4MiB",
    );
    accepted("sandbox", "max_memory", "\"8GiB\"");
    refused(
        "sandbox",
        "max_memory",
        "\"9GiB\"",
        "sandbox.max_memory",
        "at most 8GiB",
    );
    refused(
        "sandbox",
        "tmp_size",
        "\"0\"",
        "sandbox.tmp_size",
        "at least 1MiB",
    );
    accepted("sandbox", "tmp_size", "\"1MiB\"");
    refused(
        "sandbox",
        "warm_trampolines",
        "100000",
        "sandbox.warm_trampolines",
        "at most 64",
    );
    accepted("sandbox", "warm_trampolines", "64");
    accepted("sandbox", "warm_trampolines", "0");
    refused(
        "sandbox",
        "landlock_minimum_abi",
        "0",
        "sandbox.landlock_minimum_abi",
        "at least 1",
    );
    accepted("sandbox", "landlock_minimum_abi", "1");
    refused(
        "sandbox",
        "seccomp_policy",
        "\"../etc/x\"",
        "sandbox.seccomp_policy",
        "simple name",
    );
    refused(
        "sandbox",
        "cgroup_name",
        "\"a/b\"",
        "sandbox.cgroup_name",
        "simple name",
    );
}

#[test]
fn plugin_ids_belong_to_nobody_else() {
    let uid = |base: u32, count: u32| {
        set(
            &set(DEFAULT_CONFIG, "sandbox", "uid_base", &base.to_string()),
            "sandbox",
            "uid_count",
            &count.to_string(),
        )
    };
    let says = |text: String, what: &str| {
        let all = problems(&text);
        assert!(
            all.iter()
                .any(|p| p.key == "sandbox.uid_base" && p.message.contains(what)),
            "expected `{what}`: {all:#?}"
        );
    };
    says(uid(65534, 10_000), "include 65534 (nobody)");
    says(uid(60_000, 10_000), "include 65534 (nobody)");
    says(uid(999, 1), "at least 1000");
    says(uid(0, 1), "plugins never run as root");
    says(uid(1000, 10), "existing users: alice (1000)");
    says(uid(300_000, 1000), "existing users: svc (300500)");
    says(uid(399_999, 2), "existing groups: grp (400000)");
    says(uid(u32::MAX - 100, 10_000), "must stay below 4294967295");
    says(uid(u32::MAX - 100, 100), "must stay below 4294967295");
    assert_eq!(problems(&uid(1001, 64_533)), vec![], "1001..65534 is free");
    assert_eq!(
        problems(&uid(300_501, 99_499)),
        vec![],
        "right after svc, up to grp"
    );
    assert_eq!(problems(&uid(u32::MAX - 101, 100)), vec![]);
    let all = problems(&uid(2_000_000, 0));
    assert!(all.iter().any(|p| p.key == "sandbox.uid_count"), "{all:#?}");
    let all = problems(&uid(2_000_000, 1_000_001));
    assert!(all.iter().any(|p| p.key == "sandbox.uid_count"), "{all:#?}");
}

#[test]
fn unreadable_account_files_refuse_the_range() {
    let mut h = host();
    h.unreadable.push("/etc/passwd: permission denied".into());
    let cfg = Config::parse_unchecked(DEFAULT_CONFIG, "t", Path::new("/srv")).unwrap();
    let all = validate(&cfg, &h);
    assert!(
        all.iter()
            .any(|p| p.key == "sandbox.uid_base" && p.message.contains("/etc/passwd")),
        "{all:#?}"
    );
}

#[test]
fn read_only_entries_are_absolute_existing_and_never_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("lib");
    std::fs::create_dir(&existing).unwrap();
    let ro = |list: &str| set(DEFAULT_CONFIG, "sandbox", "read_only", list);
    let says = |list: &str, what: &str| {
        let all = problems(&ro(list));
        assert!(
            all.iter()
                .any(|p| p.key == "sandbox.read_only[0]" && p.message.contains(what)),
            "{list}: expected `{what}`: {all:#?}"
        );
    };
    says("[\"/\"]", "must not be /");
    says("[\"//\"]", "must not be /");
    says("[\"usr/lib\"]", "absolute");
    says("[\"/usr/../\"]", "`.` or `..`");
    says("[\"/no/such/plexichat/path\"]", "does not exist");
    let ok = format!("[{:?}]", existing.display().to_string());
    assert_eq!(problems(&ro(&ok)), vec![]);
    assert_eq!(problems(&ro("[]")), vec![], "no binds at all is allowed");
    // The supervisor's own files are never shown to plugins.
    let all = problems_on(&ro(&format!("[{:?}]", dir.path())), dir.path());
    assert!(
        all.iter()
            .any(|p| p.key == "sandbox.read_only[0]"
                && p.message.contains("must not contain state_dir")),
        "{all:#?}"
    );
}

#[test]
fn paths_are_non_empty_and_fit() {
    refused("", "state_dir", "\"\"", "state_dir", "must not be empty");
    refused("", "log_dir", "\"\"", "log_dir", "must not be empty");
    refused(
        "",
        "admin_socket",
        "\"\"",
        "admin_socket",
        "must not be empty",
    );
    refused("", "policy_dir", "\"\"", "policy_dir", "must not be empty");
    refused("", "state_dir", "\"/\"", "state_dir", "below /");
    let long = format!("\"/run/{}.sock\"", "s".repeat(100));
    refused(
        "",
        "admin_socket",
        &long,
        "admin_socket",
        "at most 107 bytes",
    );
    accepted(
        "",
        "admin_socket",
        &format!("\"/run/{}.sock\"", "s".repeat(97)),
    );
}

#[test]
fn the_socket_group_must_exist() {
    refused(
        "access",
        "socket_group",
        "\"nope\"",
        "access.socket_group",
        "does not exist",
    );
    accepted("access", "socket_group", "\"plexichat\"");
}

#[test]
fn operator_sections_are_bounded() {
    refused("backup", "keep", "0", "backup.keep", "must be in 1..=10000");
    accepted("backup", "keep", "1");
    refused(
        "monitor",
        "prometheus_listen",
        "\"127.0.0.1:0\"",
        "monitor.prometheus_listen",
        "needs a port",
    );
    accepted("monitor", "prometheus_listen", "\"127.0.0.1:9464\"");
    let rule = |threshold: u64, window: &str| {
        format!(
            "{DEFAULT_CONFIG}\n[[alert]]\nname = \"extra\"\nkind = \"crashes\"\nthreshold = {threshold}\nwindow = \"{window}\"\n"
        )
    };
    let keys = |text: String| {
        problems(&text)
            .into_iter()
            .map(|p| p.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(rule(1_000_001, "1m")), vec!["alert[4].threshold"]);
    assert_eq!(keys(rule(0, "1m")), vec!["alert[4].threshold"]);
    assert_eq!(keys(rule(5, "31days")), vec!["alert[4].window"]);
    assert_eq!(keys(rule(5, "0s")), vec!["alert[4].window"]);
    assert_eq!(keys(rule(1_000_000, "30days")), Vec::<String>::new());
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let text = set(DEFAULT_CONFIG, "runtime", "health_interval", "\"0s\"");
    let text = set(&text, "broker", "burst", "0");
    let text = set(&text, "sandbox", "max_pids", "0");
    let err = Config::parse_on(&text, "/etc/px.toml", Path::new("/srv"), &host())
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config /etc/px.toml: 3 problems:"), "{err}");
    for key in [
        "runtime.health_interval",
        "broker.burst",
        "sandbox.max_pids",
    ] {
        assert!(err.contains(&format!("\n  {key} must")), "{key}: {err}");
    }
}
