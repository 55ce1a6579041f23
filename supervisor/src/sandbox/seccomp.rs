//! seccomp allowlist policies: loading, compiling, installing, and serving denials.
//! Every syscall a policy does not allow is sent to the supervisor, answered EPERM, and reported.

// How it fits together: the supervisor calls `load_policies` at start (a bad policy stops
// it) and puts the chosen `CompiledPolicy`'s programs in the launch spec; the
// single-threaded trampoline calls `install` right before exec and hands the returned
// listener fd back over its control socket; the supervisor runs `serve_notifications` on
// it for the plugin's life.
//
// Policies are seccompiler JSON with one filter, `plugin`, whose `mismatch_action` is
// `{"trace": 24256}` (0x5EC0). seccompiler cannot emit `SECCOMP_RET_USER_NOTIF`, so that
// sentinel is rewritten into it after compiling. A second, fixed filter makes `clone3`
// fail with ENOSYS: its flags live in user memory a filter cannot inspect, and ENOSYS
// makes glibc fall back to `clone`, whose flags the main filter does check.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use seccompiler::{SeccompAction, SeccompFilter, TargetArch};
use serde::{Deserialize, Serialize};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::{bpf_tree, syscalls};

mod extends;

/// Name of the one filter every policy file must define.
pub const FILTER_NAME: &str = "plugin";

/// Name of the policy plugins get unless configured otherwise (`default.json`).
pub const DEFAULT_POLICY: &str = "default";

/// What [`CompiledPolicy::source`] says for the policy embedded in the binary.
pub const BUILTIN_SOURCE: &str = "<built-in>";

/// The `SECCOMP_RET_TRACE` data policies use as their mismatch action; only a marker,
/// since no tracer is ever attached: it becomes [`RET_USER_NOTIF`] after compiling.
pub const SENTINEL_DATA: u32 = 0x5EC0;

/// `SECCOMP_RET_TRACE | SENTINEL_DATA`: the return value the rewrite looks for.
const RET_SENTINEL: u32 = libc::SECCOMP_RET_TRACE | SENTINEL_DATA;

/// `SECCOMP_RET_USER_NOTIF`: suspend the syscall and ask the listener (the supervisor).
pub const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;

/// `AUDIT_ARCH_X86_64` (EM_X86_64 | 64-bit | little-endian), as in `seccomp_data.arch`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;

/// The kernel's limit on a classic BPF program (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// `BPF_RET | BPF_K`: return the constant `k`.
const BPF_RET_K: u16 = 0x06;

/// The embedded default policy, used when no policy directory is configured.
const BUILTIN_DEFAULT: &str = include_str!("../../../policies/seccomp/default.json");
/// The embedded policy of Python plugins: the default's, plus what CPython needs.
const BUILTIN_PYTHON3: &str = include_str!("../../../policies/seccomp/python3.json");

/// Syscalls a policy may never allow unconditionally, with why. Checked by name on the
/// parsed JSON so the error can say which rule is wrong. Most have no safe use in a
/// plugin and should not appear at all, but only unconditional rules can be refused
/// mechanically: what a condition lets through is the policy author's responsibility.
/// The last few are needed, but only with conditions like the default policy's.
const NEVER_UNCONDITIONAL: &[(&str, &str)] = &[
    (
        "io_uring_setup",
        "io_uring performs I/O that seccomp never sees",
    ),
    (
        "io_uring_enter",
        "io_uring performs I/O that seccomp never sees",
    ),
    (
        "io_uring_register",
        "io_uring performs I/O that seccomp never sees",
    ),
    ("ptrace", "it controls and inspects other processes"),
    ("process_vm_readv", "it reads other processes' memory"),
    ("process_vm_writev", "it writes other processes' memory"),
    (
        "pidfd_getfd",
        "it copies file descriptors out of other processes",
    ),
    ("bpf", "it loads programs into the kernel"),
    (
        "perf_event_open",
        "it is a large kernel attack surface and side channel",
    ),
    (
        "userfaultfd",
        "it is a standard tool for winning kernel races",
    ),
    ("keyctl", "kernel keyrings are shared, not namespaced"),
    ("add_key", "kernel keyrings are shared, not namespaced"),
    ("request_key", "kernel keyrings are shared, not namespaced"),
    ("mount", "the plugin's filesystem view is fixed before exec"),
    (
        "umount2",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "pivot_root",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "chroot",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "open_tree",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "move_mount",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "fsopen",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "fsconfig",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "fsmount",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "fspick",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "mount_setattr",
        "the plugin's filesystem view is fixed before exec",
    ),
    (
        "open_by_handle_at",
        "file handles bypass the mount namespace",
    ),
    ("unshare", "it creates namespaces"),
    ("setns", "it joins namespaces"),
    ("socket", "plugins talk only over the inherited broker fd"),
    ("init_module", "it loads kernel code"),
    ("finit_module", "it loads kernel code"),
    ("delete_module", "it unloads kernel code"),
    ("kexec_load", "it replaces the kernel"),
    ("kexec_file_load", "it replaces the kernel"),
    ("reboot", "it stops the host"),
    ("swapon", "it changes host memory"),
    ("swapoff", "it changes host memory"),
    ("acct", "it changes host accounting"),
    ("iopl", "it grants raw I/O port access"),
    ("ioperm", "it grants raw I/O port access"),
    ("setuid", "the plugin's credentials are fixed before exec"),
    ("setgid", "the plugin's credentials are fixed before exec"),
    ("setreuid", "the plugin's credentials are fixed before exec"),
    ("setregid", "the plugin's credentials are fixed before exec"),
    (
        "setresuid",
        "the plugin's credentials are fixed before exec",
    ),
    (
        "setresgid",
        "the plugin's credentials are fixed before exec",
    ),
    ("setfsuid", "the plugin's credentials are fixed before exec"),
    ("setfsgid", "the plugin's credentials are fixed before exec"),
    (
        "setgroups",
        "the plugin's credentials are fixed before exec",
    ),
    ("capset", "the plugin's credentials are fixed before exec"),
    (
        "personality",
        "it can disable address-space randomisation for the exec'd program",
    ),
    (
        "clone3",
        "its flags are in memory a filter cannot read; the fixed clone3 filter answers ENOSYS",
    ),
    (
        "clone",
        "it must carry a condition that refuses namespace flags",
    ),
    (
        "ioctl",
        "it must carry conditions that refuse TIOCSTI and TIOCLINUX",
    ),
    ("prctl", "it must be limited to harmless options"),
    (
        "execve",
        "a confined plugin must not exec anything; only the trampoline's execveat of it",
    ),
    (
        "execveat",
        "it must be limited to the trampoline's execveat(EXEC_FD, \"\", .., AT_EMPTY_PATH)",
    ),
    ("socketpair", "it must be limited to AF_UNIX"),
];

/// One classic BPF instruction (`struct sock_filter`), serialisable so a compiled program
/// can travel in the JSON launch spec to the trampoline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfInsn {
    /// Opcode (class, size/op, source).
    pub code: u16,
    /// Jump offset when a comparison is true.
    pub jt: u8,
    /// Jump offset when a comparison is false.
    pub jf: u8,
    /// Operand: a constant, offset, or the return value of a `RET`.
    pub k: u32,
}

impl From<&seccompiler::sock_filter> for BpfInsn {
    fn from(f: &seccompiler::sock_filter) -> Self {
        BpfInsn {
            code: f.code,
            jt: f.jt,
            jf: f.jf,
            k: f.k,
        }
    }
}

/// A validated, compiled policy, ready for [`install`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledPolicy {
    /// Policy name: the file stem (`default` for `default.json`).
    pub name: String,
    /// The file it came from, or [`BUILTIN_SOURCE`].
    pub source: PathBuf,
    /// The main allowlist filter; anything it does not allow returns `SECCOMP_RET_USER_NOTIF`.
    pub main: Vec<BpfInsn>,
    /// The fixed filter making `clone3` fail with ENOSYS; installed before `main`.
    pub clone3: Vec<BpfInsn>,
    /// How many distinct syscalls the policy allows (unconditionally or not).
    pub allowed_syscalls: usize,
}

/// A policy that cannot be used. Display: `<file>: <problem>`; the supervisor must not
/// start with one, since it could not confine plugins as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct SeccompError {
    /// The policy file (or directory) at fault, or [`BUILTIN_SOURCE`].
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl SeccompError {
    fn new(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        SeccompError {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Loads and compiles every `*.json` policy in `dir` (name = file stem), or with `None`
/// the embedded `policies/seccomp/default.json` as policy [`DEFAULT_POLICY`].
///
/// Each policy must define exactly the filter `plugin`, with `match_action` `allow` and
/// `mismatch_action` `{"trace": 24256}`, and must not allow any of the dangerous syscalls
/// (ptrace, io_uring, mount, unshare, socket, clone3, ...) unconditionally. A directory
/// without any policy is an error too: the supervisor must not run plugins unconfined.
pub fn load_policies(dir: Option<&Path>) -> Result<BTreeMap<String, CompiledPolicy>, SeccompError> {
    let clone3 = clone3_filter()?;
    let sources = match dir {
        None => builtin_sources(),
        Some(dir) => dir_sources(dir)?,
    };
    let texts: BTreeMap<&str, &str> = sources
        .iter()
        .map(|(name, (_, text))| (name.as_str(), text.as_str()))
        .collect();
    let mut policies = BTreeMap::new();
    for (name, (path, text)) in &sources {
        let resolved = extends::resolve(text, &texts).map_err(|e| SeccompError::new(path, e))?;
        let policy = compile_policy(name, path, &resolved, &clone3)?;
        policies.insert(name.clone(), policy);
    }
    Ok(policies)
}

type Sources = BTreeMap<String, (PathBuf, String)>;

fn builtin_sources() -> Sources {
    [
        (DEFAULT_POLICY, BUILTIN_DEFAULT),
        ("python3", BUILTIN_PYTHON3),
    ]
    .into_iter()
    .map(|(name, text)| {
        (
            name.to_string(),
            (PathBuf::from(BUILTIN_SOURCE), text.to_string()),
        )
    })
    .collect()
}

/// Every `*.json` in `dir`, by file stem, sorted so errors and logs come out in a
/// stable order.
fn dir_sources(dir: &Path) -> Result<Sources, SeccompError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| SeccompError::new(dir, format!("cannot read the policy directory: {e}")))?;
    let mut sources = Sources::new();
    for entry in entries {
        let entry = entry.map_err(|e| SeccompError::new(dir, format!("cannot list: {e}")))?;
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                SeccompError::new(&path, "the policy name (file stem) must be non-empty UTF-8")
            })?
            .to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SeccompError::new(&path, format!("cannot read: {e}")))?;
        sources.insert(name, (path, text));
    }
    if sources.is_empty() {
        return Err(SeccompError::new(dir, "no *.json seccomp policy found"));
    }
    Ok(sources)
}

/// Validates one policy's JSON, compiles it and rewrites the sentinel.
fn compile_policy(
    name: &str,
    source: &Path,
    text: &str,
    clone3: &[BpfInsn],
) -> Result<CompiledPolicy, SeccompError> {
    let err = |problem: String| SeccompError::new(source, problem);
    let allowed_syscalls = validate_policy_json(text).map_err(err)?;

    let mut programs = seccompiler::compile_from_json(text.as_bytes(), TargetArch::x86_64)
        .map_err(|e| err(format!("does not compile: {e}")))?;
    let program = programs
        .remove(FILTER_NAME)
        .ok_or_else(|| err(format!("no filter `{FILTER_NAME}` after compiling")))?;
    let mut main: Vec<BpfInsn> = program.iter().map(BpfInsn::from).collect();
    let rewritten = rewrite_sentinel(&mut main);
    if rewritten == 0 {
        // Cannot happen for a validated policy (every syscall chain ends in the mismatch
        // action), but a filter that never notifies would hide denials, so make sure.
        return Err(err("compiled filter has no deny path to rewrite".into()));
    }
    let main = as_tree(text, &main).map_err(|e| err(format!("laying out the filter: {e}")))?;
    if main.len() > BPF_MAXINSNS {
        return Err(err(format!(
            "compiles to {} BPF instructions; the kernel takes at most {BPF_MAXINSNS}",
            main.len()
        )));
    }
    Ok(CompiledPolicy {
        name: name.to_string(),
        source: source.to_path_buf(),
        main,
        clone3: clone3.to_vec(),
        allowed_syscalls,
    })
}

/// Re-lays seccompiler's linear program as a binary search over syscall numbers (see
/// `bpf_tree` for why), compiling each syscall that has argument checks on its own, and
/// refuses to go on unless both programs decide every syscall alike.
fn as_tree(text: &str, linear: &[BpfInsn]) -> Result<Vec<BpfInsn>, String> {
    let root: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let filter = &root[FILTER_NAME];
    let mut by_nr: BTreeMap<u32, Vec<&serde_json::Value>> = BTreeMap::new();
    for rule in filter["filter"].as_array().into_iter().flatten() {
        let nr = rule["syscall"]
            .as_str()
            .and_then(syscalls::number)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("a rule names no known syscall")?;
        by_nr.entry(nr).or_default().push(rule);
    }
    let load_nr = BpfInsn {
        code: 0x20,
        jt: 0,
        jf: 0,
        k: 0,
    };
    let prologue_len = linear
        .iter()
        .position(|i| *i == load_nr)
        .map(|i| i + 1)
        .ok_or("seccompiler's program never loads the syscall number")?;
    let prologue = &linear[..prologue_len];
    let mut leaves = BTreeMap::new();
    let mut with_args = Vec::new();
    let mut values = Vec::new();
    for (nr, rules) in by_nr {
        let unconditional = rules.iter().any(|r| {
            r.get("args")
                .and_then(|a| a.as_array())
                .is_none_or(|a| a.is_empty())
        });
        if unconditional {
            leaves.insert(nr, bpf_tree::Leaf::Always);
            continue;
        }
        with_args.push(nr);
        let single = serde_json::json!({ FILTER_NAME: {
            "mismatch_action": { "trace": SENTINEL_DATA },
            "match_action": "allow",
            "filter": rules,
        }});
        let mut programs =
            seccompiler::compile_from_json(single.to_string().as_bytes(), TargetArch::x86_64)
                .map_err(|e| format!("syscall {nr} alone does not compile: {e}"))?;
        let program: Vec<BpfInsn> = programs
            .remove(FILTER_NAME)
            .ok_or("no filter after compiling")?
            .iter()
            .map(BpfInsn::from)
            .collect();
        if program.get(..prologue_len) != Some(prologue) {
            return Err(format!(
                "syscall {nr} alone compiles with a different prologue"
            ));
        }
        let mut chain = program[prologue_len..].to_vec();
        rewrite_sentinel(&mut chain);
        values.extend(bpf_tree::probe_values(&chain));
        leaves.insert(nr, bpf_tree::Leaf::Chain(chain));
    }
    let tree = bpf_tree::layout(prologue, &leaves, libc::SECCOMP_RET_ALLOW, RET_USER_NOTIF)
        .map_err(|e| e.to_string())?;
    let max_nr = syscalls::all().last().map_or(512, |(n, _)| *n as u32 + 64);
    values.sort_unstable();
    values.dedup();
    bpf_tree::check_equivalent(linear, &tree, max_nr, &with_args, &values)?;
    Ok(tree)
}

/// Checks what seccompiler would accept but the supervisor must not: returns the number
/// of distinct allowed syscalls, or the problem as text.
fn validate_policy_json(text: &str) -> Result<usize, String> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let filters = root
        .as_object()
        .ok_or("top level must be an object of filters")?;
    let names: Vec<&str> = filters.keys().map(String::as_str).collect();
    if names != [FILTER_NAME] {
        return Err(format!(
            "must define exactly one filter, `{FILTER_NAME}` (found: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ));
    }
    let filter = filters[FILTER_NAME]
        .as_object()
        .ok_or_else(|| format!("filter `{FILTER_NAME}` must be an object"))?;

    // seccompiler also accepts the aliases `default_action`/`filter_action`.
    let mismatch = filter
        .get("mismatch_action")
        .or_else(|| filter.get("default_action"));
    let sentinel = serde_json::json!({ "trace": SENTINEL_DATA });
    if mismatch != Some(&sentinel) {
        return Err(format!(
            "mismatch_action must be {sentinel} (rewritten to SECCOMP_RET_USER_NOTIF) so denials are reported; found {}",
            mismatch.map_or("nothing".to_string(), |v| v.to_string())
        ));
    }
    let matched = filter
        .get("match_action")
        .or_else(|| filter.get("filter_action"));
    if matched != Some(&serde_json::json!("allow")) {
        return Err(format!(
            "match_action must be \"allow\" (a policy is an allowlist); found {}",
            matched.map_or("nothing".to_string(), |v| v.to_string())
        ));
    }

    let rules = filter
        .get("filter")
        .and_then(|r| r.as_array())
        .ok_or_else(|| format!("filter `{FILTER_NAME}` needs a `filter` array of rules"))?;
    let mut allowed = BTreeSet::new();
    for (i, rule) in rules.iter().enumerate() {
        let syscall = rule
            .get("syscall")
            .and_then(|s| s.as_str())
            .ok_or_else(|| format!("rule {} has no `syscall` name", i + 1))?;
        if syscalls::number(syscall).is_none() {
            return Err(format!(
                "rule {}: unknown x86_64 syscall `{syscall}`",
                i + 1
            ));
        }
        // Absent or empty `args` means the rule matches whatever the arguments are.
        let unconditional = rule
            .get("args")
            .and_then(|a| a.as_array())
            .is_none_or(|a| a.is_empty());
        if unconditional {
            if let Some((_, why)) = NEVER_UNCONDITIONAL.iter().find(|(n, _)| *n == syscall) {
                return Err(format!(
                    "rule {} allows `{syscall}` unconditionally, which is refused: {why}",
                    i + 1
                ));
            }
        }
        allowed.insert(syscall);
    }
    if allowed.is_empty() {
        return Err("the allowlist is empty; a plugin could not even exit".into());
    }
    Ok(allowed.len())
}

/// Replaces every `RET SECCOMP_RET_TRACE|0x5EC0` with `RET SECCOMP_RET_USER_NOTIF`;
/// returns how many were replaced.
fn rewrite_sentinel(program: &mut [BpfInsn]) -> usize {
    let mut count = 0;
    for insn in program.iter_mut() {
        // Only RET instructions carry actions; a K operand elsewhere that happens to
        // equal the sentinel (a compared argument value) must stay as it is.
        if insn.code == BPF_RET_K && insn.k == RET_SENTINEL {
            insn.k = RET_USER_NOTIF;
            count += 1;
        }
    }
    count
}

/// The fixed `clone3` → ENOSYS filter, everything else allowed (the main filter, stacked
/// with it, decides those). ERRNO outranks USER_NOTIF when filters disagree, so `clone3`
/// never reaches the supervisor and is not reported: glibc calls it in every
/// `pthread_create` and retries with `clone` on ENOSYS.
fn clone3_filter() -> Result<Vec<BpfInsn>, SeccompError> {
    let err = |e: seccompiler::BackendError| {
        SeccompError::new(BUILTIN_SOURCE, format!("clone3 filter: {e}"))
    };
    let rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    let program: seccompiler::BpfProgram = filter.try_into().map_err(err)?;
    Ok(program.iter().map(BpfInsn::from).collect())
}

/// Installs the two filters on the calling thread and returns the notification listener.
///
/// Call it in the single-threaded trampoline right before exec. It sets
/// `PR_SET_NO_NEW_PRIVS` itself (idempotent; seccomp requires it without CAP_SYS_ADMIN,
/// and the design wants it anyway), then installs `clone3` and then `policy_main` with
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`. No `SECCOMP_FILTER_FLAG_TSYNC`: a filter applies
/// to the calling thread and everything it later creates or execs, which in a
/// single-threaded trampoline is the whole plugin.
///
/// From the moment this returns, every syscall the policy does not allow blocks until
/// the supervisor answers on the listener. So the caller should only: send the
/// listener to the supervisor (`sendmsg` with SCM_RIGHTS is allowed), close its own copy
/// (it is close-on-exec anyway; the plugin must never hold it, or it could answer its own
/// notifications), and exec. Anything else must be done before `install`.
pub fn install(policy_main: &[BpfInsn], clone3: &[BpfInsn]) -> io::Result<OwnedFd> {
    if !cfg!(target_arch = "x86_64") {
        // The programs check for AUDIT_ARCH_X86_64 and would kill the process at once.
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "seccomp policies are compiled for x86_64 only",
        ));
    }
    // Converted before anything is installed, so a bad program changes nothing.
    let mut main = to_sock_filters(policy_main)?;
    let mut clone3 = to_sock_filters(clone3)?;

    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes integers only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    set_filter(&mut clone3, 0)?;
    let fd = set_filter(&mut main, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER)?;
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("seccomp returned a bad fd"))?;
    // SAFETY: with NEW_LISTENER the kernel returned a new fd (close-on-exec) that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn to_sock_filters(program: &[BpfInsn]) -> io::Result<Vec<libc::sock_filter>> {
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a seccomp program needs 1..={BPF_MAXINSNS} instructions, got {}",
                program.len()
            ),
        ));
    }
    Ok(program
        .iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`; returns the syscall's result
/// (the listener fd with NEW_LISTENER, else 0).
fn set_filter(program: &mut [libc::sock_filter], flags: libc::c_ulong) -> io::Result<libc::c_long> {
    let prog = libc::sock_fprog {
        // to_sock_filters bounded the length to BPF_MAXINSNS, well within u16.
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `program`, valid for the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// A syscall a confined plugin made that its policy does not allow; it got EPERM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Denial {
    /// The calling thread's id in the supervisor's pid namespace (the process id for a
    /// single-threaded plugin; 0 if the thread is not visible there).
    pub pid: u32,
    /// The syscall number as the filter saw it (x32 calls include bit 0x40000000).
    pub nr: i64,
    /// Its name: from the syscall table, `x32:<name>` for x32 calls, else `unknown(<nr>)`.
    pub name: String,
    /// The raw arguments (pointers are addresses in the plugin; never dereferenced).
    pub args: [u64; 6],
    /// `seccomp_data.arch`; always [`AUDIT_ARCH_X86_64`], the filter kills any other.
    pub arch: u32,
}

/// Answers every notification on `listener` with EPERM, calling `on_denial` for each,
/// until every process the filter confines is gone (the fd hangs up; kernel >= 5.10),
/// then returns `Ok`. Needs a Tokio runtime with I/O enabled; never blocks it.
///
/// `on_denial` runs on the runtime before the answer is sent, and the plugin's syscall
/// waits until then: keep it quick and non-blocking (e.g. push to a channel). A plugin
/// can make denied calls in a loop, so rate-limit what it feeds into the audit trail.
///
/// If this stops being served while the plugin lives, the plugin's denied syscalls
/// hang until the listener is closed, after which they fail with ENOSYS: still denied,
/// but no longer reported. So run it for the plugin's whole life and drop it after.
pub async fn serve_notifications(
    listener: OwnedFd,
    mut on_denial: impl FnMut(Denial) + Send + 'static,
) -> io::Result<()> {
    let (notif_size, resp_size) = notif_sizes()?;
    // u64 storage keeps the buffers aligned for the kernel structs read out of them.
    let mut notif_buf = vec![0u64; notif_size.div_ceil(8)];
    let mut resp_buf = vec![0u64; resp_size.div_ceil(8)];
    // SAFETY: an OwnedFd is a valid fd that stays open, and always the same one, until
    // the AsyncFd owning it is dropped.
    let listener = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE) }?;
    loop {
        let mut guard = listener.readable().await?;
        let fd = listener.get_ref().as_raw_fd();
        // Tokio's readiness is edge-triggered and may be stale, and RECV blocks when
        // nothing is pending, so ask the fd itself before receiving.
        let revents = poll_now(fd)?;
        if revents & libc::POLLIN == 0 {
            if revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                return Ok(());
            }
            guard.clear_ready();
            continue;
        }
        // POLLIN means a notification is pending, and the kernel counts pending
        // notifications for RECV, so this RECV does not block: it returns it, or ENOENT
        // if the caller was killed or interrupted in between.
        let notif = match recv_notif(fd, &mut notif_buf) {
            Ok(n) => n,
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINTR)) => continue,
            Err(e) => return Err(e),
        };
        let nr = i64::from(notif.data.nr);
        on_denial(Denial {
            pid: notif.pid,
            nr,
            name: syscalls::describe(nr),
            args: notif.data.args,
            arch: notif.data.arch,
        });
        send_eperm(fd, notif.id, &mut resp_buf)?;
        // Readiness stays set: the next turn polls again and drains further pending ones.
    }
}

/// The kernel's sizes of `struct seccomp_notif` and `seccomp_notif_resp`, never smaller
/// than libc's: a newer kernel may use larger structs and copies all of them.
fn notif_sizes() -> io::Result<(usize, usize)> {
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES writes one seccomp_notif_sizes to the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        usize::from(sizes.seccomp_notif).max(std::mem::size_of::<libc::seccomp_notif>()),
        usize::from(sizes.seccomp_notif_resp).max(std::mem::size_of::<libc::seccomp_notif_resp>()),
    ))
}

/// `poll(fd, POLLIN, 0)`: the fd's current readiness, without waiting.
fn poll_now(fd: RawFd) -> io::Result<libc::c_short> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, zero timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, 0) };
        if rc >= 0 {
            return Ok(pfd.revents);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

fn recv_notif(fd: RawFd, buf: &mut [u64]) -> io::Result<libc::seccomp_notif> {
    // The kernel refuses (EINVAL) a RECV buffer that is not all zeroes.
    buf.fill(0);
    // SAFETY: buf is at least the kernel's seccomp_notif size (notif_sizes) and writable.
    let rc = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: buf is 8-byte aligned, at least size_of::<seccomp_notif>() long, and the
    // kernel filled it; the struct is plain integers, valid for any bit pattern.
    Ok(unsafe { std::ptr::read(buf.as_ptr().cast::<libc::seccomp_notif>()) })
}

fn send_eperm(fd: RawFd, id: u64, buf: &mut [u64]) -> io::Result<()> {
    // Zeroed so any fields a newer kernel's larger struct has stay 0 (their defaults).
    buf.fill(0);
    let resp = libc::seccomp_notif_resp {
        id,
        val: 0,
        error: -libc::EPERM,
        flags: 0,
    };
    // SAFETY: buf is 8-byte aligned and at least size_of::<seccomp_notif_resp>() long.
    unsafe { std::ptr::write(buf.as_mut_ptr().cast::<libc::seccomp_notif_resp>(), resp) };
    loop {
        // SAFETY: buf holds a seccomp_notif_resp of at least the kernel's size.
        let rc = unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, buf.as_mut_ptr()) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            // The caller died or was interrupted meanwhile: nothing left to answer.
            Some(libc::ENOENT) => return Ok(()),
            _ => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{IoSlice, IoSliceMut, Write};
    use std::os::unix::net::UnixStream;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    fn builtin() -> CompiledPolicy {
        let mut all = load_policies(None).expect("built-in policy loads");
        all.remove(DEFAULT_POLICY)
            .expect("built-in policy is `default`")
    }

    fn load_text(text: &str) -> Result<BTreeMap<String, CompiledPolicy>, SeccompError> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("x.json"), text).expect("write policy");
        load_policies(Some(dir.path()))
    }

    /// A policy in the default's shape with `rules` as its filter.
    fn policy_with(rules: &str) -> String {
        format!(
            r#"{{"plugin": {{"mismatch_action": {{"trace": 24256}}, "match_action": "allow",
                "filter": [{{"syscall": "exit_group"}}, {rules}]}}}}"#
        )
    }

    // ---- loading and validation ----

    #[test]
    fn builtin_policy_loads() {
        let p = builtin();
        assert_eq!(p.name, "default");
        assert_eq!(p.source, Path::new(BUILTIN_SOURCE));
        assert_eq!(p.allowed_syscalls, 125);
        assert!(p.main.len() > 100 && p.main.len() <= BPF_MAXINSNS);
        assert!(!p.clone3.is_empty());
    }

    #[test]
    fn the_default_policy_is_a_search_tree_that_decides_like_the_table() {
        use bpf_tree::{eval, SeccompData};
        let p = builtin();
        // seccompiler's linear table is 657 instructions; the tree about half that.
        assert!(p.main.len() < 400, "{} instructions", p.main.len());
        let decide = |name: &str, args: [u64; 6]| {
            let nr = syscalls::number(name).expect("known syscall") as u32;
            let data = SeccompData {
                nr,
                arch: AUDIT_ARCH_X86_64,
                args,
                ..SeccompData::default()
            };
            eval(&p.main, &data).expect("runs")
        };
        let allow = libc::SECCOMP_RET_ALLOW;
        assert_eq!(decide("read", [0; 6]), allow);
        assert_eq!(decide("exit_group", [0; 6]), allow);
        assert_eq!(decide("socket", [2, 1, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(decide("ptrace", [0; 6]), RET_USER_NOTIF);
        // The argument checks survive the re-layout.
        assert_eq!(decide("clone", [0x3d0f00, 0, 0, 0, 0, 0]), allow);
        let newuser = libc::CLONE_NEWUSER as u64;
        assert_eq!(decide("clone", [newuser, 0, 0, 0, 0, 0]), RET_USER_NOTIF);
        assert_eq!(decide("ioctl", [0, 0x5421, 0, 0, 0, 0]), allow, "FIONBIO");
        let tiocsti_high = (1u64 << 32) | 0x5412;
        assert_eq!(
            decide("ioctl", [0, tiocsti_high, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(decide("socketpair", [1, 1, 0, 0, 0, 0]), allow);
        assert_eq!(decide("socketpair", [2, 1, 0, 0, 0, 0]), RET_USER_NOTIF);
        // Another architecture is killed before any syscall is looked at.
        let i386 = SeccompData {
            arch: 0x4000_0003,
            ..SeccompData::default()
        };
        assert_eq!(eval(&p.main, &i386), Ok(libc::SECCOMP_RET_KILL_PROCESS));
    }

    #[test]
    fn repository_policy_dir_matches_builtin() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/seccomp");
        let all = load_policies(Some(&dir)).expect("repository policies load");
        let p = &all[DEFAULT_POLICY];
        assert_eq!(p.source, dir.join("default.json"));
        assert_eq!(p.main, builtin().main);
    }

    #[test]
    fn malformed_json_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        std::fs::write(&path, "{ \"plugin\": ").expect("write");
        let err = load_policies(Some(dir.path())).expect_err("malformed policy is refused");
        assert_eq!(err.path, path);
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}: not valid JSON", path.display())),
            "{shown}"
        );
    }

    #[test]
    fn policy_without_sentinel_is_refused() {
        let text = r#"{"plugin": {"mismatch_action": {"errno": 1}, "match_action": "allow",
                      "filter": [{"syscall": "read"}]}}"#;
        let err = load_text(text).expect_err("refused").to_string();
        assert!(err.contains("x.json: mismatch_action must be"), "{err}");
        assert!(err.contains("so denials are reported"), "{err}");
    }

    #[test]
    fn policy_allowing_ptrace_unconditionally_is_refused() {
        let err = load_text(&policy_with(r#"{"syscall": "ptrace"}"#)).expect_err("refused");
        assert!(err.path.ends_with("x.json"));
        assert!(err.problem.contains("`ptrace` unconditionally"), "{err}");
        // An empty condition list counts as unconditional too.
        let err =
            load_text(&policy_with(r#"{"syscall": "ptrace", "args": []}"#)).expect_err("refused");
        assert!(err.problem.contains("`ptrace`"), "{err}");
    }

    #[test]
    fn every_forbidden_syscall_is_known_and_refused() {
        for (name, _) in NEVER_UNCONDITIONAL {
            assert!(
                syscalls::number(name).is_some(),
                "`{name}` is not in the table"
            );
            let rule = format!(r#"{{"syscall": "{name}"}}"#);
            let err = load_text(&policy_with(&rule)).expect_err(name);
            assert!(err.problem.contains(&format!("`{name}`")), "{err}");
        }
    }

    #[test]
    fn other_shape_errors_are_refused() {
        let cases = [
            (
                r#"{"other": {}}"#,
                "exactly one filter, `plugin` (found: other)",
            ),
            (
                r#"{"plugin": {"mismatch_action": {"trace": 24256}, "match_action": "log", "filter": []}}"#,
                "match_action must be \"allow\"",
            ),
            (
                &policy_with(r#"{"syscall": "no_such_call"}"#),
                "unknown x86_64 syscall `no_such_call`",
            ),
            (
                r#"{"plugin": {"mismatch_action": {"trace": 24256}, "match_action": "allow", "filter": []}}"#,
                "allowlist is empty",
            ),
            // Passes our checks, fails seccompiler's: reported with the file too.
            (
                &policy_with(r#"{"syscall": "read", "bogus": 1}"#),
                "does not compile",
            ),
        ];
        for (text, expected) in cases {
            let err = load_text(text).expect_err(expected).to_string();
            assert!(err.contains(expected), "{err}");
            assert!(err.contains("x.json: "), "{err}");
        }
    }

    #[test]
    fn empty_policy_dir_is_refused_and_other_files_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("README.md"), "not a policy").expect("write");
        let err = load_policies(Some(dir.path())).expect_err("refused");
        assert!(err.problem.contains("no *.json"), "{err}");
        std::fs::write(
            dir.path().join("strict.json"),
            policy_with(r#"{"syscall": "read"}"#),
        )
        .expect("write");
        let all = load_policies(Some(dir.path())).expect("loads");
        assert_eq!(all.keys().collect::<Vec<_>>(), ["strict"]);
        assert_eq!(all["strict"].allowed_syscalls, 2);
    }

    #[test]
    fn compiled_policy_survives_json() {
        let p = builtin();
        let json = serde_json::to_string(&p).expect("serialize");
        let back: CompiledPolicy = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, p);
    }

    // ---- the compiled programs, run through a small classic-BPF interpreter ----

    #[test]
    fn sentinel_is_rewritten_to_user_notif() {
        let p = builtin();
        let rets: Vec<u32> = p
            .main
            .iter()
            .filter(|i| i.code == BPF_RET_K)
            .map(|i| i.k)
            .collect();
        assert!(!rets.contains(&RET_SENTINEL));
        assert!(!rets
            .iter()
            .any(|k| k & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_TRACE));
        assert!(rets.contains(&RET_USER_NOTIF));
        // The only outcomes: allow, ask the supervisor, or (wrong arch) kill.
        for k in rets {
            assert!(
                [
                    libc::SECCOMP_RET_ALLOW,
                    RET_USER_NOTIF,
                    libc::SECCOMP_RET_KILL_PROCESS
                ]
                .contains(&k),
                "unexpected action {k:#x}"
            );
        }
    }

    /// `struct seccomp_data` as the kernel lays it out for the filter.
    fn seccomp_data(nr: i64, arch: u32, args: [u64; 6]) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&(nr as i32).to_le_bytes());
        d[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        d
    }

    /// Runs a seccomp program the way the kernel does, for the opcodes seccompiler emits.
    fn run_bpf(program: &[BpfInsn], data: &[u8; 64]) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let insn = program.get(pc).copied().expect("program ran off its end");
            pc += 1;
            let jump = |taken: bool| usize::from(if taken { insn.jt } else { insn.jf });
            match insn.code {
                0x20 => {
                    // BPF_LD | BPF_W | BPF_ABS
                    let at = insn.k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
                }
                0x54 => acc &= insn.k,             // BPF_ALU | BPF_AND | BPF_K
                0x05 => pc += insn.k as usize,     // BPF_JMP | BPF_JA
                0x15 => pc += jump(acc == insn.k), // BPF_JEQ
                0x25 => pc += jump(acc > insn.k),  // BPF_JGT
                0x35 => pc += jump(acc >= insn.k), // BPF_JGE
                0x45 => pc += jump(acc & insn.k != 0), // BPF_JSET
                BPF_RET_K => return insn.k,
                other => panic!("opcode {other:#x} not supported by the test interpreter"),
            }
        }
    }

    fn verdict(program: &[BpfInsn], name: &str, args: [u64; 6]) -> u32 {
        let nr = syscalls::number(name).expect("known syscall");
        run_bpf(program, &seccomp_data(nr, AUDIT_ARCH_X86_64, args))
    }

    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[test]
    fn policy_allows_what_a_tokio_plugin_needs() {
        let p = builtin();
        for name in [
            "read",
            "write",
            "mmap",
            "futex",
            "epoll_wait",
            "eventfd2",
            "recvfrom",
            "sendto",
            "openat",
            "statx",
            "getrandom",
            "link",
            "exit_group",
            "rt_sigreturn",
        ] {
            assert_eq!(verdict(&p.main, name, [0; 6]), ALLOW, "{name}");
        }
        // Every rule without conditions in the shipped JSON allows with any arguments.
        let json: serde_json::Value = serde_json::from_str(BUILTIN_DEFAULT).expect("json");
        for rule in json["plugin"]["filter"].as_array().expect("rules") {
            if rule.get("args").is_none() {
                let name = rule["syscall"].as_str().expect("name");
                assert_eq!(verdict(&p.main, name, [u64::MAX; 6]), ALLOW, "{name}");
            }
        }
    }

    #[test]
    fn policy_denies_the_dangerous_syscalls() {
        let p = builtin();
        for (name, _) in NEVER_UNCONDITIONAL {
            if ["clone", "ioctl", "prctl", "socketpair"].contains(name) {
                continue; // conditional, checked below
            }
            assert_eq!(verdict(&p.main, name, [0; 6]), RET_USER_NOTIF, "{name}");
        }
        for name in [
            "socket", "connect", "bind", "listen", "accept4", "seccomp", "setsid",
        ] {
            assert_eq!(verdict(&p.main, name, [0; 6]), RET_USER_NOTIF, "{name}");
        }
    }

    #[test]
    fn clone_is_allowed_only_without_namespace_flags() {
        let p = builtin();
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        assert_eq!(verdict(&p.main, "clone", [thread, 0, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            verdict(&p.main, "clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
            ALLOW
        );
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            0x80, /* CLONE_NEWTIME */
        ] {
            let flags = flag as u64 | libc::SIGCHLD as u64;
            assert_eq!(
                verdict(&p.main, "clone", [flags, 0, 0, 0, 0, 0]),
                RET_USER_NOTIF,
                "{flag:#x}"
            );
        }
    }

    #[test]
    fn exec_is_only_the_trampolines_execveat_of_exec_fd() {
        let p = builtin();
        let exec_fd = crate::launcher::EXEC_FD as u64;
        let empty = libc::AT_EMPTY_PATH as u64;
        assert_eq!(
            verdict(&p.main, "execveat", [exec_fd, 0, 0, 0, empty, 0]),
            ALLOW
        );
        let at_fdcwd = libc::AT_FDCWD as u32 as u64; // an int: the kernel reads 32 bits
        for args in [
            [at_fdcwd, 0, 0, 0, 0, 0],
            [at_fdcwd, 0, 0, 0, empty, 0],
            [3, 0, 0, 0, empty, 0],
            [exec_fd, 0, 0, 0, 0, 0],
            [
                exec_fd,
                0,
                0,
                0,
                empty | libc::AT_SYMLINK_NOFOLLOW as u64,
                0,
            ],
        ] {
            assert_eq!(
                verdict(&p.main, "execveat", args),
                RET_USER_NOTIF,
                "{args:?}"
            );
        }
        assert_eq!(verdict(&p.main, "execve", [0; 6]), RET_USER_NOTIF);
        // The policy hard-codes the launcher's EXEC_FD; keep them in step.
        let json: serde_json::Value = serde_json::from_str(BUILTIN_DEFAULT).expect("json");
        let rule = json["plugin"]["filter"]
            .as_array()
            .and_then(|rules| rules.iter().find(|r| r["syscall"] == "execveat"))
            .expect("an execveat rule");
        assert_eq!(rule["args"][0]["val"], exec_fd);
    }

    #[test]
    fn ioctl_never_passes_tiocsti_or_tioclinux() {
        let p = builtin();
        for req in [libc::TIOCSTI, libc::TIOCLINUX] {
            let req: u64 = req;
            for high in [0u64, 1 << 32, 0xffff_ffff << 32] {
                assert_eq!(
                    verdict(&p.main, "ioctl", [0, req | high, 0, 0, 0, 0]),
                    RET_USER_NOTIF
                );
            }
        }
        for req in [libc::FIONBIO, libc::FIONREAD, libc::TCGETS] {
            assert_eq!(verdict(&p.main, "ioctl", [1, req, 0, 0, 0, 0]), ALLOW);
        }
    }

    #[test]
    fn prctl_socketpair_prlimit_are_conditional() {
        let p = builtin();
        for option in [
            libc::PR_SET_NAME as u64,
            libc::PR_GET_NAME as u64,
            0x5356_4d41,
        ] {
            assert_eq!(verdict(&p.main, "prctl", [option, 0, 0, 0, 0, 0]), ALLOW);
        }
        for option in [
            libc::PR_SET_SECCOMP,
            libc::PR_SET_DUMPABLE,
            libc::PR_SET_PTRACER,
            libc::PR_SET_MM,
        ] {
            assert_eq!(
                verdict(&p.main, "prctl", [option as u64, 0, 0, 0, 0, 0]),
                RET_USER_NOTIF
            );
        }
        assert_eq!(
            verdict(&p.main, "socketpair", [libc::AF_UNIX as u64, 1, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            verdict(&p.main, "socketpair", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
        assert_eq!(verdict(&p.main, "prlimit64", [0, 3, 0, 0, 0, 0]), ALLOW);
        assert_eq!(
            verdict(&p.main, "prlimit64", [1, 3, 0, 0, 0, 0]),
            RET_USER_NOTIF
        );
    }

    #[test]
    fn x32_and_foreign_arches_are_not_allowed() {
        let p = builtin();
        for nr in [39, 0, 1, 202] {
            let x32 = syscalls::X32_SYSCALL_BIT | nr;
            assert_eq!(
                run_bpf(&p.main, &seccomp_data(x32, AUDIT_ARCH_X86_64, [0; 6])),
                RET_USER_NOTIF
            );
        }
        const AUDIT_ARCH_I386: u32 = 0x4000_0003;
        for prog in [&p.main, &p.clone3] {
            assert_eq!(
                run_bpf(prog, &seccomp_data(20, AUDIT_ARCH_I386, [0; 6])),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
    }

    #[test]
    fn clone3_filter_answers_enosys_and_allows_the_rest() {
        let p = builtin();
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        assert_eq!(verdict(&p.clone3, "clone3", [0; 6]), enosys);
        for name in ["clone", "ptrace", "read", "socket"] {
            assert_eq!(verdict(&p.clone3, name, [0; 6]), ALLOW, "{name}");
        }
        // Stacked, the kernel takes the highest-precedence action: ERRNO (lower value)
        // beats USER_NOTIF, so clone3 never reaches the supervisor.
        let main = verdict(&p.main, "clone3", [0; 6]);
        assert_eq!(main, RET_USER_NOTIF);
        assert!((enosys as i32) < (main as i32));
    }

    #[test]
    fn install_refuses_bad_programs_before_touching_the_thread() {
        let p = builtin();
        let err = install(&[], &p.clone3).expect_err("empty");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let huge = vec![p.main[0]; BPF_MAXINSNS + 1];
        assert_eq!(
            install(&huge, &p.clone3).expect_err("huge").kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            install(&p.main, &[]).expect_err("empty").kind(),
            io::ErrorKind::InvalidInput
        );
    }

    // ---- real enforcement, in a re-executed copy of this test binary ----

    /// Set (to the fd number of the socket to the parent) only in the child.
    const CHILD_ENV: &str = "PLEXICHAT_SECCOMP_CHILD_FD";
    const RESULT_PREFIX: &str = "SECCOMP-RESULT";

    fn child_test_name() -> String {
        // libtest names tests by module path without the crate name.
        let module = module_path!();
        let module = module.split_once("::").map_or(module, |(_, rest)| rest);
        format!("{module}::enforcement_child")
    }

    /// "ok" or "errno=<n>" for a raw syscall's return value.
    fn outcome(rc: libc::c_long) -> String {
        if rc == -1 {
            format!(
                "errno={}",
                io::Error::last_os_error().raw_os_error().unwrap_or(0)
            )
        } else {
            "ok".to_string()
        }
    }

    fn report(label: &str, result: &str) {
        println!("{RESULT_PREFIX} {label} {result}");
    }

    /// Tries `ptrace(PTRACE_TRACEME)` in a forked copy of the calling thread (which
    /// inherits its filter) and reports the outcome. Forked because, if enforcement were
    /// missing, the caller would become a tracee of the parent test, which would never
    /// resume or reap it; a forked process just exits. The fork only makes raw syscalls
    /// and `_exit`s, which is safe even though this process has several threads.
    fn probe_traceme(label: &str) {
        // SAFETY: fork, then only async-signal-safe calls in the new process.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: integer arguments only; the exit code carries the errno (0 = worked).
            unsafe {
                let rc = libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0);
                let code = if rc == -1 {
                    *libc::__errno_location()
                } else {
                    0
                };
                libc::_exit(code);
            }
        }
        if pid < 0 {
            report(
                label,
                &format!("fork failed: {}", io::Error::last_os_error()),
            );
            return;
        }
        let mut status = 0;
        // SAFETY: waits for the process forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let result = match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
            Some(0) => "ok".to_string(),
            Some(errno) => format!("errno={errno}"),
            None => format!("died (status {status:#x})"),
        };
        report(label, &result);
    }

    /// The confined side: installs the default policy on this thread, hands the listener
    /// to the parent, then tries allowed and forbidden syscalls and prints the outcomes.
    #[test]
    #[ignore = "only runs as the child of enforcement_blocks_forbidden_syscalls"]
    fn enforcement_child() {
        let Some(fd) = std::env::var(CHILD_ENV)
            .ok()
            .and_then(|v| v.parse::<RawFd>().ok())
        else {
            // Run directly (e.g. --include-ignored): do not confine the test harness.
            return;
        };
        // SAFETY: the parent made `fd` inheritable for us, and nothing else here owns it.
        let parent = unsafe { UnixStream::from_raw_fd(fd) };
        let policy = builtin();

        let listener = install(&policy.main, &policy.clone3).expect("install");
        let fds = [listener.as_raw_fd()];
        nix::sys::socket::sendmsg::<()>(
            parent.as_raw_fd(),
            &[IoSlice::new(b"L")],
            &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
            nix::sys::socket::MsgFlags::empty(),
            None,
        )
        .expect("send listener");
        // As the trampoline must: the confined side never keeps the listener.
        drop(listener);
        drop(parent);

        // Allowed.
        let wrote = std::io::stdout().write_all(b"child: filter installed\n");
        report("write", if wrote.is_ok() { "ok" } else { "failed" });
        // SAFETY (all raw syscalls below): integer arguments, or pointers to locals that
        // outlive the call; the forking ones are handled so a child only _exits.
        report(
            "getpid",
            &outcome(unsafe { libc::syscall(libc::SYS_getpid) }),
        );
        let mut fds = [0 as libc::c_int; 2];
        let rc = unsafe {
            libc::syscall(
                libc::SYS_socketpair,
                libc::AF_UNIX,
                libc::SOCK_STREAM,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc == 0 {
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
        }
        report("socketpair_unix", &outcome(rc));
        let name = b"confined\0";
        report(
            "prctl_set_name",
            &outcome(unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr()) }),
        );
        let mut termios = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // stdout is a pipe: allowed through the filter, so the kernel says ENOTTY.
        report(
            "ioctl_tcgets_pipe",
            &outcome(unsafe {
                libc::syscall(libc::SYS_ioctl, 1, libc::TCGETS, termios.as_mut_ptr())
            }),
        );

        // Denied by the supervisor (EPERM).
        probe_traceme("ptrace_traceme");
        let rc = unsafe { libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_STREAM, 0) };
        if rc >= 0 {
            unsafe { libc::close(rc as libc::c_int) };
        }
        report("socket_inet", &outcome(rc));
        let rc = unsafe {
            libc::syscall(
                libc::SYS_socketpair,
                libc::AF_INET,
                libc::SOCK_STREAM,
                0,
                fds.as_mut_ptr(),
            )
        };
        report("socketpair_inet", &outcome(rc));
        let c = 0u8;
        // stdin is /dev/null, so even if this got through it could not inject anything.
        let tiocsti_high = libc::TIOCSTI | (1 << 32);
        report(
            "ioctl_tiocsti_high_bits",
            &outcome(unsafe { libc::syscall(libc::SYS_ioctl, 0, tiocsti_high, &c) }),
        );
        report(
            "x32_getpid",
            &outcome(unsafe { libc::syscall(syscalls::X32_SYSCALL_BIT | libc::SYS_getpid) }),
        );
        report(
            "unshare_newuser",
            &outcome(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) }),
        );
        let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
        let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0) };
        if rc == 0 {
            // Only if enforcement failed: we are the new process; leave at once.
            unsafe { libc::_exit(0) };
        }
        if rc > 0 {
            unsafe { libc::waitpid(rc as libc::pid_t, std::ptr::null_mut(), 0) };
        }
        report("clone_newuser", &outcome(rc));
        // Paths that do not exist: were exec let through, the kernel would say ENOENT and
        // this process would still not be replaced.
        let nowhere = b"/nonexistent/plexichat-seccomp-probe\0";
        let argv = [nowhere.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<u8>()];
        report(
            "execve",
            &outcome(unsafe {
                libc::syscall(
                    libc::SYS_execve,
                    nowhere.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                )
            }),
        );
        report(
            "execveat_cwd",
            &outcome(unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    libc::AT_FDCWD,
                    nowhere.as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    0,
                )
            }),
        );
        report(
            "prctl_get_dumpable",
            &outcome(unsafe { libc::syscall(libc::SYS_prctl, libc::PR_GET_DUMPABLE) }),
        );

        // ENOSYS from the clone3 filter, without bothering the supervisor. A NULL/0 call
        // would be EINVAL if it got through, and can never create a process.
        report(
            "clone3",
            &outcome(unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) }),
        );

        // Threads still work (glibc falls back from clone3 to clone), and inherit the filter.
        match std::thread::spawn(|| probe_traceme("thread_ptrace")).join() {
            Ok(()) => report("thread_spawn", "ok"),
            Err(_) => report("thread_spawn", "panicked"),
        }
        report("done", "ok");
    }

    /// Reads a child's pipe to the end in a task, so a full pipe never stalls the child
    /// and a hung child's partial output can still be shown.
    fn drain<R>(pipe: Option<R>) -> tokio::task::JoinHandle<String>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        use tokio::io::AsyncReadExt;
        tokio::spawn(async move {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                // A read error just truncates what is shown.
                let _ = pipe.read_to_end(&mut bytes).await;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }

    /// Receives one fd sent with SCM_RIGHTS.
    fn receive_fd(socket: &UnixStream) -> io::Result<OwnedFd> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(io::Error::from)?;
        for cmsg in msg.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: SCM_RIGHTS just installed this fd in our table for us.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the child sent no listener fd",
        ))
    }

    #[test]
    fn enforcement_blocks_forbidden_syscalls() {
        let exe = std::env::current_exe().expect("current_exe");
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        ours.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let their_fd = theirs.as_raw_fd();

        let mut cmd = tokio::process::Command::new(exe);
        cmd.args([
            "--exact",
            &child_test_name(),
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, their_fd.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
        // SAFETY: fcntl is async-signal-safe. This runs in the forked child only, so
        // exactly that child inherits `theirs` (close-on-exec everywhere else).
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(their_fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (status, stdout, stderr, served, denials) = rt.block_on(async move {
            let mut child = cmd.spawn().expect("spawn child");
            drop(theirs);
            let stdout = drain(child.stdout.take());
            let stderr = drain(child.stderr.take());
            let received = tokio::task::spawn_blocking(move || receive_fd(&ours))
                .await
                .expect("join");
            let denials = Arc::new(Mutex::new(Vec::new()));
            let sink = Arc::clone(&denials);
            let (serve, receive_error) = match received {
                Ok(listener) => {
                    let serve = tokio::spawn(serve_notifications(listener, move |d| {
                        if let Ok(mut v) = sink.lock() {
                            v.push(d);
                        }
                    }));
                    (Some(serve), None)
                }
                Err(e) => (None, Some(e)),
            };
            let status = match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
                Ok(status) => Some(status.expect("wait for the child")),
                Err(_) => {
                    let _ = child.start_kill();
                    None
                }
            };
            let text = |task: tokio::task::JoinHandle<String>| async move {
                tokio::time::timeout(Duration::from_secs(10), task)
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or_default()
            };
            let (stdout, stderr) = (text(stdout).await, text(stderr).await);
            if let Some(e) = receive_error {
                panic!("no listener from the child ({e}); child said:\n{stdout}\n{stderr}");
            }
            // The child is reaped, so the listener hangs up and serving ends by itself.
            let served = match (serve, status.is_some()) {
                (Some(serve), true) => Some(
                    tokio::time::timeout(Duration::from_secs(30), serve)
                        .await
                        .expect("serve_notifications did not return after the child exited")
                        .expect("join"),
                ),
                (Some(serve), false) => {
                    serve.abort();
                    None
                }
                (None, _) => None,
            };
            let denials = denials.lock().map(|v| v.clone()).unwrap_or_default();
            (status, stdout, stderr, served, denials)
        });

        let context =
            format!("child stdout:\n{stdout}\nchild stderr:\n{stderr}\ndenials: {denials:#?}");
        let status = status.unwrap_or_else(|| panic!("the child hung and was killed\n{context}"));
        assert!(status.success(), "child failed: {status}\n{context}");
        let served = served.unwrap_or_else(|| panic!("serving never started\n{context}"));
        served.expect("serve_notifications");
        let results: BTreeMap<&str, &str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix(RESULT_PREFIX))
            .filter_map(|l| l.trim().split_once(' '))
            .collect();
        let eperm = format!("errno={}", libc::EPERM);
        let expected = [
            ("write", "ok".to_string()),
            ("getpid", "ok".to_string()),
            ("socketpair_unix", "ok".to_string()),
            ("prctl_set_name", "ok".to_string()),
            ("ioctl_tcgets_pipe", format!("errno={}", libc::ENOTTY)),
            ("ptrace_traceme", eperm.clone()),
            ("socket_inet", eperm.clone()),
            ("socketpair_inet", eperm.clone()),
            ("ioctl_tiocsti_high_bits", eperm.clone()),
            ("x32_getpid", eperm.clone()),
            ("unshare_newuser", eperm.clone()),
            ("clone_newuser", eperm.clone()),
            ("prctl_get_dumpable", eperm.clone()),
            ("execve", eperm.clone()),
            ("execveat_cwd", eperm.clone()),
            ("clone3", format!("errno={}", libc::ENOSYS)),
            ("thread_spawn", "ok".to_string()),
            ("thread_ptrace", eperm.clone()),
            ("done", "ok".to_string()),
        ];
        for (label, want) in &expected {
            assert_eq!(
                results.get(label).copied(),
                Some(want.as_str()),
                "{label}\n{context}"
            );
        }

        // The supervisor side saw exactly the forbidden calls, by name; never clone3.
        let names: BTreeSet<&str> = denials.iter().map(|d| d.name.as_str()).collect();
        let want: BTreeSet<&str> = [
            "ptrace",
            "socket",
            "socketpair",
            "ioctl",
            "x32:getpid",
            "unshare",
            "clone",
            "prctl",
            "execve",
            "execveat",
        ]
        .into();
        assert_eq!(names, want, "{context}");
        assert_eq!(
            denials.iter().filter(|d| d.name == "ptrace").count(),
            2,
            "{context}"
        );
        for d in &denials {
            assert_eq!(d.arch, AUDIT_ARCH_X86_64);
            assert_ne!(d.pid, 0);
        }
        let find = |name: &str| denials.iter().find(|d| d.name == name).expect(name);
        assert_eq!(find("socket").args[0], libc::AF_INET as u64);
        assert_eq!(find("ioctl").args[1], libc::TIOCSTI | (1 << 32));
        assert_eq!(
            find("x32:getpid").nr,
            syscalls::X32_SYSCALL_BIT | libc::SYS_getpid
        );
        assert_eq!(
            find("clone").args[0] & libc::CLONE_NEWUSER as u64,
            libc::CLONE_NEWUSER as u64
        );
    }

    #[test]
    fn child_test_name_is_the_libtest_path() {
        assert_eq!(
            child_test_name(),
            "sandbox::seccomp::tests::enforcement_child"
        );
        // And that name really exists in this binary (the parent relies on it).
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--list", "--ignored", "--exact", &child_test_name()])
            .output()
            .expect("list");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            listed.lines().any(|l| l.starts_with(&child_test_name())),
            "{listed}"
        );
    }
}
