//! Hostile-plugin suites (`hostile.rs`, `python_hostile.rs`): invoking an attack
//! command, reading its JSON verdict, collecting what got through, checking bystanders.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

pub fn invoke(d: &Daemon, plugin: &str, command: &str, arg: &str) -> Cli {
    d.cli(&[
        "--output",
        "json",
        "plugin",
        "invoke",
        plugin,
        command,
        arg,
        "--timeout",
        "10s",
    ])
}

/// The plugin's reply text of a successful `invoke --output json`.
pub fn reply_text(out: &Cli) -> Result<String, String> {
    invoke_output(&out.stdout)
}

/// Runs one command of the hostile `plugin` and parses its JSON verdict; `Err` when
/// there is no reply (the plugin died, e.g. an exec replaced it or the kernel killed it).
pub fn try_attack(d: &Daemon, plugin: &str, command: &str, arg: &str) -> Result<Value, String> {
    let out = invoke(d, plugin, command, arg);
    if !out.status.success() {
        return Err(format!(
            "`{command} {arg}`: no reply from {plugin} ({}): {} \
             (did the attack replace or kill the plugin process?)",
            out.status,
            out.stderr.trim()
        ));
    }
    let text = reply_text(&out).map_err(|e| format!("`{command} {arg}`: {e}"))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("`{command} {arg}`: the reply is not JSON ({e}): {text}"))
}

pub fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// What is wrong with the supervisor and the bystander after `after`; empty if nothing.
pub fn bystander_problems(d: &Daemon, after: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !process_alive(d.pid() as i32) {
        problems.push(format!(
            "after {after}: the supervisor (pid {}) is dead",
            d.pid()
        ));
        return problems;
    }
    let out = invoke(d, "echo", "echo", "still here");
    if !out.status.success() {
        problems.push(format!(
            "after {after}: the bystander's `echo` failed: {}",
            out.stderr.trim()
        ));
    } else {
        match reply_text(&out) {
            Ok(t) if t == "still here" => {}
            Ok(t) => problems.push(format!("after {after}: the bystander echoed {t:?}")),
            Err(e) => problems.push(format!("after {after}: bystander: {e}")),
        }
    }
    let list = d.cli(&["plugin", "list"]);
    if !list.status.success() {
        problems.push(format!(
            "after {after}: `plugin list` failed: {}",
            list.stderr.trim()
        ));
    }
    problems
}

pub fn assert_bystanders_fine(d: &Daemon, after: &str) {
    let problems = bystander_problems(d, after);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The syscalls the `security.syscall_denied` audit records of `plugin` name (the
/// `syscall` field of their JSON detail).
pub fn denied_syscalls(d: &Daemon, plugin: &str) -> BTreeSet<String> {
    d.audit(Some(plugin))
        .iter()
        .filter(|r| r["action"] == "security.syscall_denied")
        .map(|r| {
            let detail = &r["detail"];
            detail["syscall"].as_str().map_or_else(
                || format!("<detail without a syscall: {detail}>"),
                str::to_string,
            )
        })
        .collect()
}

/// The quick attacks of one hostile plugin, collected: one report listing every
/// attack that got through (and every twin that failed).
pub struct Suite<'a> {
    pub d: &'a Daemon,
    /// The hostile plugin's name.
    pub plugin: &'a str,
    pub problems: Vec<String>,
}

impl<'a> Suite<'a> {
    pub fn new(d: &'a Daemon, plugin: &'a str) -> Suite<'a> {
        Suite {
            d,
            plugin,
            problems: Vec::new(),
        }
    }

    pub fn fail(&mut self, problem: String) {
        eprintln!("PROBLEM: {problem}");
        self.problems.push(problem);
    }

    /// Waits until the hostile plugin answers again after it died.
    pub fn recover(&mut self) {
        if !poll(Duration::from_secs(30), || {
            try_attack(self.d, self.plugin, "fds", "").is_ok()
        }) {
            self.fail(format!("{} did not come back within 30s", self.plugin));
        }
    }

    pub fn run(&mut self, command: &str, arg: &str) -> Option<Value> {
        match try_attack(self.d, self.plugin, command, arg) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(e);
                self.recover();
                None
            }
        }
    }

    /// The attack must report `blocked: true`.
    pub fn blocked(&mut self, command: &str, arg: &str) -> Option<Value> {
        let v = self.run(command, arg)?;
        if v["blocked"] != true {
            self.fail(format!(
                "`{command} {arg}` was NOT blocked: {}\n    reply: {v}",
                v["detail"]
            ));
            return None;
        }
        Some(v)
    }

    /// Blocked, and every step failed with `errno` (e.g. EPERM: the seccomp filter).
    pub fn blocked_with(
        &mut self,
        command: &str,
        arg: &str,
        errno: i32,
        why: &str,
    ) -> Option<Value> {
        let v = self.blocked(command, arg)?;
        let steps = v["steps"].as_array().cloned().unwrap_or_default();
        let wrong: Vec<String> = steps
            .iter()
            .filter(|s| s["ok"] == true || s["errno"] != errno)
            .map(|s| format!("{} -> {}", s["step"], s["detail"]))
            .collect();
        if steps.is_empty() || !wrong.is_empty() {
            self.fail(format!(
                "`{command} {arg}` was blocked, but not with errno {errno} ({why}): {}\n    reply: {v}",
                if steps.is_empty() { v["detail"].to_string() } else { wrong.join("; ") }
            ));
        }
        Some(v)
    }

    /// The legitimate twin must report `ok: true`.
    pub fn twin(&mut self, command: &str, arg: &str) {
        if let Some(v) = self.run(command, arg) {
            if v["ok"] != true {
                self.fail(format!(
                    "twin `{command} {arg}` failed: {}\n    reply: {v}",
                    v["detail"]
                ));
            }
        }
    }

    pub fn bystanders(&mut self, after: &str) {
        for p in bystander_problems(self.d, after) {
            self.fail(p);
        }
    }

    pub fn finish(self) {
        assert!(
            self.problems.is_empty(),
            "{} problem(s) with the sandbox:\n- {}",
            self.problems.len(),
            self.problems.join("\n- ")
        );
    }
}

fn has_action(d: &Daemon, plugin: &str, prefix: &str) -> bool {
    d.audit_actions(Some(plugin))
        .iter()
        .any(|(a, _)| a.starts_with(prefix))
}

/// `plugin` (with `pids = 16`) runs its fork bomb: stopped at pids.max with EAGAIN
/// after fewer than 32 forks, audited, and nobody else notices. Its verdict.
pub fn assert_fork_bomb_contained(d: &Daemon, plugin: &str) -> Value {
    let v = try_attack(d, plugin, "fork-bomb", "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["blocked"], true, "the fork bomb was not stopped: {v}");
    let forked = v["forked"]
        .as_u64()
        .unwrap_or_else(|| panic!("no fork count: {v}"));
    assert!(
        forked < 32,
        "with pids = 16 the plugin forked {forked} processes: {v}"
    );
    assert_eq!(
        v["errno"],
        libc::EAGAIN,
        "fork fails at pids.max with EAGAIN: {v}"
    );
    wait_until(
        Duration::from_secs(20),
        &format!("a security.pids_max audit record for {plugin}"),
        || has_action(d, plugin, "security.pids_max"),
    );
    assert_bystanders_fine(d, "the fork bomb");
    v
}

/// `plugin` balloons to 512 MiB far past its memory limit: it is OOM-killed without
/// answering, the kill audited, nobody else notices, and it is restarted.
pub fn assert_balloon_oom_killed_and_restarted(d: &Daemon, plugin: &str) {
    let before = d.wait_running(plugin);
    let out = invoke(d, plugin, "balloon", "512");
    assert!(
        !out.status.success(),
        "{plugin} touched 512 MiB past its memory limit and answered: {}",
        out.stdout
    );
    wait_until(
        Duration::from_secs(20),
        &format!("a security.oom* audit record for {plugin}"),
        || has_action(d, plugin, "security.oom"),
    );
    assert_bystanders_fine(d, "the OOM kill");
    wait_until(
        Duration::from_secs(30),
        &format!("{plugin} restarted after the OOM kill"),
        || d.runtime_of(plugin) == "running" && d.plugin_pid(plugin) != Some(before),
    );
}
