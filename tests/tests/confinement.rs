//! End to end: what the supervisor refuses to do rather than run a plugin less
//! confined than policy says, and what it enforces on a well-behaved plugin.

mod common;

use std::time::Duration;

use common::*;

fn install_hello_enabled(d: &Daemon) -> i32 {
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello")
}

#[test]
fn a_running_plugin_is_confined_and_plugin_status_says_so() {
    let d = Daemon::start();
    let trampoline = install_hello_enabled(&d);
    let plugin = plugin_process(trampoline).expect("the plugin is the trampoline's child");
    let status = std::fs::read_to_string(format!("/proc/{plugin}/status")).unwrap();
    for want in [
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
    ] {
        assert!(status.contains(want), "{want} missing in:\n{status}");
    }
    assert!(
        status.contains(&format!("NSpid:\t{plugin}\t1")),
        "pid 1 of its own pid namespace:\n{status}"
    );
    let v = d
        .cli(&["--output", "json", "security", "plugin-status"])
        .json();
    let uid = v["plugins"][0]["uid"].as_u64().unwrap().to_string();
    assert_ne!(uid, "0");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == uid),
        "{uid_line} vs {uid}"
    );
    for ns in ["mnt", "pid", "net", "ipc", "uts", "cgroup"] {
        let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = std::fs::read_link(format!("/proc/{plugin}/ns/{ns}")).unwrap();
        assert_ne!(ours, theirs, "{ns} namespace is shared with the host");
    }
    // Only fds 0-3 crossed over (the runtime opens its own after start: epoll and
    // friends are anonymous inodes, never inherited files or sockets).
    let root = std::fs::read_link(format!("/proc/{plugin}/root")).unwrap();
    assert_eq!(
        root,
        std::path::PathBuf::from("/"),
        "pivot_root leaves the plugin a / of its own"
    );
    let mounts = std::fs::read_to_string(format!("/proc/{plugin}/mountinfo")).unwrap();
    assert!(!mounts.contains(" /proc "), "no /proc:\n{mounts}");
    assert!(
        mounts.lines().next().unwrap().contains(" / ro,"),
        "read-only root:\n{mounts}"
    );

    let v = d
        .cli(&["--output", "json", "security", "plugin-status"])
        .json();
    let host = &v["host"];
    assert_eq!(host["confinement"], true);
    assert!(["v1", "v2"].contains(&host["cgroup_version"].as_str().unwrap()));
    let p = &v["plugins"][0];
    assert_eq!(p["confined"], true);
    assert_eq!(p["landlock_status"], "fully_enforced");
    assert_eq!(p["no_new_privs"], true);
    assert_eq!(p["seccomp_policy"], "default");
    assert_eq!(p["namespaces"].as_array().unwrap().len(), 6);
    assert_eq!(int(&p["memory_limit"]), 64 * 1024 * 1024, "{p}");
    assert_eq!(p["pids_limit"], 17, "16 requested + the trampoline: {p}");
    assert_eq!(p["cpu_limit"], 0.25);
    assert_eq!(p["plugin_pid"], plugin);
    let table = d.cli(&["security", "plugin-status"]).ok().stdout.clone();
    assert!(table.contains("fully enforced"), "{table}");

    // Network namespaces come from a pool made ahead of time: each start still gets
    // a fresh one of its own, holding nothing but loopback.
    let mut seen = vec![std::fs::read_link(format!("/proc/{plugin}/ns/net")).unwrap()];
    for _ in 0..3 {
        d.cli(&["plugin", "disable", "hello"]).ok();
        d.cli(&["plugin", "enable", "hello"]).ok();
        let plugin = plugin_process(d.wait_running("hello")).expect("plugin process");
        let net = std::fs::read_link(format!("/proc/{plugin}/ns/net")).unwrap();
        assert!(!seen.contains(&net), "{net:?} handed out twice: {seen:?}");
        seen.push(net);
        let dev = std::fs::read_to_string(format!("/proc/{plugin}/net/dev")).unwrap();
        let interfaces: Vec<&str> = dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(interfaces, ["lo"], "{dev}");
    }
}

#[test]
fn a_binary_changed_after_install_never_starts() {
    let d = Daemon::start();
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    // Tamper with the installed copy, keeping it a valid, runnable program.
    let installed = d.root().join("state/plugins/hello/0.1.0/hello");
    std::fs::copy(bin("echo_plugin"), &installed).unwrap();
    d.cli(&["plugin", "enable", "hello"]).ok();
    wait_until(
        Duration::from_secs(15),
        "tampered plugin quarantined",
        || d.plugin_json("hello")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED",
    );
    let show = d.plugin_json("hello");
    let reason = show["summary"]["state_reason"].as_str().unwrap();
    assert!(reason.contains("changed since install"), "{reason}");
    let actions = d.audit_actions(Some("hello"));
    assert!(
        !actions.iter().any(|(a, _)| a == "plugin.start"),
        "{actions:?}"
    );
    assert!(actions.contains(&("plugin.quarantine".into(), "ok".into())));

    // The untouched binary starts: the refusal was about the pin.
    let d2 = Daemon::start();
    install_hello_enabled(&d2);
}

#[test]
fn a_host_with_weaker_landlock_than_policy_refuses_plugins_loudly() {
    let d = Daemon::start_with(Settings {
        landlock_minimum_abi: 99,
        ..Settings::default()
    });
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    wait_until(Duration::from_secs(10), "plugin refused", || {
        d.plugin_json("hello")["summary"]["state"] == "PLUGIN_STATE_QUARANTINED"
    });
    let reason = d.plugin_json("hello")["summary"]["state_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        reason.contains("below sandbox.landlock_minimum_abi 99"),
        "{reason}"
    );
    let v = d
        .cli(&["--output", "json", "security", "plugin-status"])
        .json();
    assert!(
        v["host"]["refusal"].as_str().unwrap().contains("Landlock"),
        "{v}"
    );
    assert!(d.log().contains("plugins are refused"));
}

#[test]
fn malformed_policies_stop_the_supervisor_naming_the_file() {
    let settings = Settings {
        own_policies: true,
        ..Settings::default()
    };
    let (status, out) = Daemon::start_failing(settings.clone(), |root| {
        std::fs::write(
            root.join("policies/seccomp/default.json"),
            "{ \"plugin\": [ nope",
        )
        .unwrap();
    });
    assert!(!status.success());
    assert!(out.contains("default.json"), "{out}");

    let (status, out) = Daemon::start_failing(settings.clone(), |root| {
        let p = root.join("policies/permissions.toml");
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"critical\"", "\"apocalyptic\"");
        std::fs::write(p, text).unwrap();
    });
    assert!(!status.success());
    assert!(out.contains("permissions.toml"), "{out}");

    // The same policies unbroken start fine.
    let d = Daemon::start_with(settings);
    d.cli(&["plugin", "list"]).ok();
}

#[test]
fn leftover_cgroups_of_a_killed_supervisor_are_cleaned_at_start() {
    let mut d = Daemon::start();
    let trampoline = install_hello_enabled(&d);
    let plugin = plugin_process(trampoline).unwrap();
    d.crash();
    wait_until(
        Duration::from_secs(5),
        "plugin dies with the supervisor",
        || !process_alive(plugin),
    );
    d.restart();
    assert!(
        d.log()
            .contains("removed cgroups left by a previous supervisor"),
        "{}",
        d.log()
    );
    let again = d.wait_running("hello");
    assert_ne!(again, trampoline);
}

#[test]
fn trampolines_wait_in_cgroups_of_their_own_and_nothing_is_left_at_stop() {
    let mut d = Daemon::start();
    install_hello_enabled(&d);
    let status = d
        .cli(&["--output", "json", "security", "plugin-status"])
        .json();
    let paths = status["plugins"][0]["cgroup_path"]
        .as_str()
        .unwrap()
        .to_string();
    let memory = paths
        .split(',')
        .map(std::path::PathBuf::from)
        .find(|p| p.to_string_lossy().contains("/memory/"))
        .expect("a memory cgroup (v1 host)");
    assert!(
        memory.ends_with("hello"),
        "renamed to the plugin's: {paths}"
    );
    let parent = memory.parent().unwrap().to_path_buf();
    wait_until(Duration::from_secs(10), "two trampolines ready", || {
        warm_cgroups(&parent).len() == 2
    });
    for warm in warm_cgroups(&parent) {
        let procs = std::fs::read_to_string(warm.join("cgroup.procs")).unwrap();
        // The trampoline and pid 1 of its pid namespace, waiting for a spec.
        assert_eq!(procs.lines().count(), 2, "{}: {procs}", warm.display());
    }
    // A restart takes a ready one: the plugin's cgroup is a renamed pool cgroup.
    let before = warm_cgroups(&parent);
    d.cli(&["plugin", "disable", "hello"]).ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello");
    let after = warm_cgroups(&parent);
    assert!(
        before.iter().any(|w| !after.contains(w)),
        "one of {before:?} was taken (now {after:?})"
    );
    let procs = std::fs::read_to_string(memory.join("cgroup.procs")).unwrap();
    assert!(
        !procs.trim().is_empty(),
        "the plugin runs in its own cgroup"
    );
    let limit = std::fs::read_to_string(memory.join("memory.limit_in_bytes")).unwrap();
    assert_ne!(
        limit.trim(),
        "9223372036854771712",
        "limited, not the pool's unlimited"
    );
    d.stop();
    assert!(
        !parent.exists() || warm_cgroups(&parent).is_empty(),
        "waiting trampolines and their cgroups are gone after stop"
    );
}
