//! Plugin manifests (`plugin.toml`): parsing into validated types whose errors name
//! the offending field. Owns `PluginName` and `Version`; checks scopes against the catalog.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::catalog::{validate_scope_entry, Catalog, Permission};

mod declared;
pub use declared::{
    Argument, Command, CommandRefusal, Declared, Setting, SettingType, MAX_VALUE_BYTES,
};

pub const MANIFEST_FILE: &str = "plugin.toml";
const MAX_MANIFEST_BYTES: u64 = 64 * 1024;

/// A plugin name: lowercase ASCII, starting with a letter, 1-48 chars of
/// `[a-z0-9_-]`. Names appear in paths, topics and cgroup names, so nothing else passes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginName(String);

impl PluginName {
    pub fn new(s: &str) -> Result<PluginName, String> {
        let mut bytes = s.bytes();
        let valid = matches!(bytes.next(), Some(b'a'..=b'z'))
            && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
            && s.len() <= 48;
        if valid {
            Ok(PluginName(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a valid plugin name (1-48 chars of a-z, 0-9, _ or -, starting with a letter)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PluginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A semantic version `MAJOR.MINOR.PATCH[-PRERELEASE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(String);

impl Version {
    pub fn new(s: &str) -> Result<Version, String> {
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let parts: Vec<&str> = core.split('.').collect();
        let numeric = |p: &&str| {
            !p.is_empty()
                && p.len() <= 9
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
        };
        let pre_ok = pre.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 32
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        });
        if parts.len() == 3 && parts.iter().all(numeric) && pre_ok {
            Ok(Version(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not a valid version (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Semantic-version precedence: MAJOR.MINOR.PATCH numerically, then a release
    /// above its pre-releases, pre-release identifiers compared numerically when
    /// both are numbers, else as text (numbers first), then by count.
    pub fn precedence(&self, other: &Version) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        let split = |v: &Version| {
            let (core, pre) = match v.0.split_once('-') {
                Some((c, p)) => (c.to_string(), Some(p.to_string())),
                None => (v.0.clone(), None),
            };
            let nums: Vec<u64> = core.split('.').filter_map(|p| p.parse().ok()).collect();
            (nums, pre)
        };
        let ((a, a_pre), (b, b_pre)) = (split(self), split(other));
        a.cmp(&b).then_with(|| match (a_pre, b_pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => {
                let ident = |s: &str| -> (bool, u64, String) {
                    match s.parse::<u64>() {
                        Ok(n) => (false, n, String::new()),
                        Err(_) => (true, 0, s.to_string()),
                    }
                };
                let (xs, ys): (Vec<_>, Vec<_>) = (
                    x.split('.').map(ident).collect(),
                    y.split('.').map(ident).collect(),
                );
                xs.cmp(&ys)
            }
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resources a plugin asks for; the supervisor caps them by policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Resources {
    /// CPU in cores (0.5 = half a core).
    pub cpu: f64,
    pub memory_bytes: u64,
    pub pids: u32,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: 0.5,
            memory_bytes: 128 * 1024 * 1024,
            pids: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRequest {
    pub permission: Permission,
    pub justification: String,
    pub scope: Vec<String>,
}

/// What runs a plugin's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Runtime {
    /// The entry is an executable (an ELF binary), exec'd itself.
    #[default]
    Native,
    /// The entry is a Python file, run by the host CPython the supervisor records.
    Python3,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Native => "native",
            Runtime::Python3 => "python3",
        }
    }

    fn parse(s: &str) -> Result<Runtime, String> {
        match s {
            "native" => Ok(Runtime::Native),
            "python3" => Ok(Runtime::Python3),
            other => Err(format!(
                "`{other}` is not a runtime (expected `native`, the default, or `python3`)"
            )),
        }
    }
}

/// A validated manifest. Construct it with [`Manifest::parse`].
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: PluginName,
    pub version: Version,
    pub description: String,
    pub author: String,
    /// Entry binary (native) or `.py` file (python3), relative to the plugin
    /// directory, normalised.
    pub entry: PathBuf,
    pub runtime: Runtime,
    pub core: bool,
    pub resources: Resources,
    pub topics: Vec<String>,
    pub permissions: Vec<PermissionRequest>,
    /// `[[settings]]` and `[[commands]]`.
    pub declared: Declared,
}

/// Every problem found in a manifest, each naming its field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid plugin manifest:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ManifestError(pub Vec<FieldError>);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl ManifestError {
    fn one(field: &str, problem: impl Into<String>) -> ManifestError {
        ManifestError(vec![FieldError {
            field: field.to_string(),
            problem: problem.into(),
        }])
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    author: String,
    entry: String,
    #[serde(default)]
    runtime: Option<String>,
    #[serde(default)]
    core: bool,
    #[serde(default)]
    resources: Option<RawResources>,
    #[serde(default)]
    events: Option<RawEvents>,
    #[serde(default)]
    permissions: Vec<RawPermission>,
    #[serde(default)]
    settings: Vec<declared::RawSetting>,
    #[serde(default)]
    commands: Vec<declared::RawCommand>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpu: Option<f64>,
    memory: Option<String>,
    pids: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    #[serde(default)]
    subscribe: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPermission {
    name: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    scope: Vec<String>,
}

impl Manifest {
    /// Parses and validates manifest text against the catalog. Checks that need
    /// the plugin directory (the entry binary) are in [`Manifest::load_dir`].
    pub fn parse(text: &str, catalog: &Catalog) -> Result<Manifest, ManifestError> {
        let raw: RawManifest =
            toml::from_str(text).map_err(|e| ManifestError::one("plugin.toml", e.message()))?;
        let mut errors = Vec::new();
        let mut err = |field: String, problem: String| errors.push(FieldError { field, problem });

        let name = PluginName::new(&raw.name)
            .map_err(|e| err("name".into(), e))
            .ok();
        let version = Version::new(&raw.version)
            .map_err(|e| err("version".into(), e))
            .ok();
        if raw.description.len() > 4096 {
            err("description".into(), "longer than 4096 bytes".into());
        }
        if raw.author.len() > 256 {
            err("author".into(), "longer than 256 bytes".into());
        }
        let runtime = raw
            .runtime
            .as_deref()
            .map_or(Ok(Runtime::Native), Runtime::parse)
            .map_err(|e| err("runtime".into(), e))
            .unwrap_or_default();
        let entry = normalise_entry(&raw.entry)
            .and_then(|e| check_entry_kind(&e, runtime).map(|()| e))
            .map_err(|e| err("entry".into(), e))
            .ok();
        let resources = parse_resources(raw.resources, &mut err);
        let topics = raw.events.map(|e| e.subscribe).unwrap_or_default();
        for (i, t) in topics.iter().enumerate() {
            if let Err(e) = validate_topic_pattern(t) {
                err(format!("events.subscribe[{i}]"), e);
            }
        }
        let mut permissions: Vec<PermissionRequest> = Vec::new();
        for (i, p) in raw.permissions.into_iter().enumerate() {
            let field = format!("permissions[{i}]");
            let permission = match p.name.parse::<Permission>() {
                Ok(perm) => perm,
                Err(e) => {
                    err(format!("{field}.name"), e.to_string());
                    continue;
                }
            };
            if permissions.iter().any(|q| q.permission == permission) {
                err(
                    format!("{field}.name"),
                    format!("`{permission}` is requested twice"),
                );
            }
            let justification = p.justification.trim().to_string();
            if justification.is_empty() {
                err(
                    format!("{field}.justification"),
                    format!("`{permission}` needs a justification saying why the plugin needs it"),
                );
            } else if justification.len() > 2048 {
                err(
                    format!("{field}.justification"),
                    "longer than 2048 bytes".into(),
                );
            }
            let shape = catalog.spec(permission).scope;
            if p.scope.is_empty() {
                err(
                    format!("{field}.scope"),
                    format!(
                        "`{permission}` needs at least one {} in its scope",
                        shape.noun()
                    ),
                );
            }
            for (j, entry) in p.scope.iter().enumerate() {
                if let Err(e) = validate_scope_entry(shape, entry) {
                    err(
                        format!("{field}.scope[{j}]"),
                        format!(
                            "{e} (scope of `{permission}` is a list of {}s)",
                            shape.noun()
                        ),
                    );
                }
            }
            permissions.push(PermissionRequest {
                permission,
                justification,
                scope: p.scope,
            });
        }
        let declared = Declared {
            settings: declared::parse_settings(raw.settings, &mut err),
            commands: declared::parse_commands(raw.commands, &mut err),
        };
        match (name, version, entry) {
            (Some(name), Some(version), Some(entry)) if errors.is_empty() => Ok(Manifest {
                name,
                version,
                description: raw.description,
                author: raw.author,
                entry,
                runtime,
                core: raw.core,
                resources,
                topics,
                permissions,
                declared,
            }),
            _ => Err(ManifestError(errors)),
        }
    }

    /// Reads `plugin.toml` from a plugin directory and checks that the entry binary is
    /// a regular executable file inside that directory (symlinks may not leave it).
    pub fn load_dir(dir: &Path, catalog: &Catalog) -> Result<Manifest, ManifestError> {
        Manifest::load_dir_text(dir, catalog).map(|(m, _)| m)
    }

    /// [`Manifest::load_dir`], also returning the manifest's text.
    pub fn load_dir_text(
        dir: &Path,
        catalog: &Catalog,
    ) -> Result<(Manifest, String), ManifestError> {
        let text = read_manifest(&dir.join(MANIFEST_FILE))?;
        let manifest = Manifest::parse(&text, catalog)?;
        check_entry_inside(dir, &manifest.entry, manifest.runtime)?;
        Ok((manifest, text))
    }
}

/// Opens without blocking (a FIFO cannot hang the reader) and without following a
/// symlink, checks with fstat that it is a regular file, and reads at most
/// [`MAX_MANIFEST_BYTES`] + 1 bytes, so the size is known before it is parsed.
fn read_manifest(path: &Path) -> Result<String, ManifestError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |why: String| ManifestError::one("plugin.toml", why);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(fail(format!("{} is not a regular file", path.display())));
    }
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(fail(format!("larger than {MAX_MANIFEST_BYTES} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| fail("is not UTF-8".into()))
}

/// A Python entry is a `.py` file: the interpreter runs it as `__main__`.
fn check_entry_kind(entry: &Path, runtime: Runtime) -> Result<(), String> {
    match runtime {
        Runtime::Python3 if entry.extension().is_none_or(|x| x != "py") => Err(format!(
            "`{}` must be a .py file for runtime `python3`",
            entry.display()
        )),
        _ => Ok(()),
    }
}

fn check_entry_inside(dir: &Path, entry: &Path, runtime: Runtime) -> Result<(), ManifestError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |p: String| ManifestError::one("entry", p);
    let root = dir
        .canonicalize()
        .map_err(|e| fail(format!("plugin directory {}: {e}", dir.display())))?;
    let full = root
        .join(entry)
        .canonicalize()
        .map_err(|e| fail(format!("`{}` does not exist: {e}", entry.display())))?;
    if !full.starts_with(&root) {
        return Err(fail(format!(
            "`{}` resolves outside the plugin directory",
            entry.display()
        )));
    }
    let meta = std::fs::metadata(&full).map_err(|e| fail(e.to_string()))?;
    if !meta.is_file() {
        return Err(fail(format!("`{}` is not a regular file", entry.display())));
    }
    // A Python entry is read by the interpreter, never exec'd.
    if runtime == Runtime::Native && meta.permissions().mode() & 0o111 == 0 {
        return Err(fail(format!("`{}` is not executable", entry.display())));
    }
    Ok(())
}

fn normalise_entry(entry: &str) -> Result<PathBuf, String> {
    let p = Path::new(entry);
    if entry.is_empty() {
        return Err("must name the plugin's binary".into());
    }
    if p.is_absolute() {
        return Err(format!(
            "`{entry}` must be relative to the plugin directory"
        ));
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return Err(format!("`{entry}` leaves the plugin directory")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("must name the plugin's binary".into());
    }
    Ok(out)
}

fn parse_resources(raw: Option<RawResources>, err: &mut impl FnMut(String, String)) -> Resources {
    let mut r = Resources::default();
    let Some(raw) = raw else { return r };
    if let Some(cpu) = raw.cpu {
        if cpu.is_finite() && cpu > 0.0 && cpu <= 64.0 {
            r.cpu = cpu;
        } else {
            err(
                "resources.cpu".into(),
                format!("{cpu} is not a core count in (0, 64]"),
            );
        }
    }
    if let Some(mem) = raw.memory {
        match parse_bytes(&mem) {
            Some(b) if b >= 4 * 1024 * 1024 => r.memory_bytes = b,
            Some(_) => err("resources.memory".into(), "must be at least 4MiB".into()),
            None => err(
                "resources.memory".into(),
                format!("`{mem}` is not a size (e.g. 64MiB, 1GiB)"),
            ),
        }
    }
    if let Some(pids) = raw.pids {
        if (1..=4096).contains(&pids) {
            r.pids = pids;
        } else {
            err(
                "resources.pids".into(),
                format!("{pids} is not in 1..=4096"),
            );
        }
    }
    r
}

/// Parses `512KiB`, `64MiB`, `1GiB`, `64M`, `1G` or a plain byte count.
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A topic is dot-separated `[a-z0-9_-]` segments; a subscription may end in `.*`.
pub fn validate_topic_pattern(t: &str) -> Result<(), String> {
    let base = t.strip_suffix(".*").unwrap_or(t);
    let ok = !base.is_empty()
        && base.len() <= 200
        && base.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid topic (dot-separated a-z, 0-9, _ or -, optionally ending in .*)",
            crate::audit::short(t)
        ))
    }
}

/// Whether a subscription pattern (exact or `prefix.*`) matches a topic.
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(prefix) => topic
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.')),
        None => pattern == topic,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_order_by_semantic_precedence() {
        use std::cmp::Ordering::*;
        let v = |s: &str| Version::new(s).unwrap();
        assert_eq!(v("1.10.0").precedence(&v("1.9.9")), Greater);
        assert_eq!(v("1.0.0").precedence(&v("1.0.0-rc.1")), Greater);
        assert_eq!(v("1.0.0-rc.2").precedence(&v("1.0.0-rc.10")), Less);
        assert_eq!(v("1.0.0-alpha").precedence(&v("1.0.0-1")), Greater);
        assert_eq!(v("1.0.0-alpha").precedence(&v("1.0.0-alpha.1")), Less);
        assert_eq!(v("2.0.0").precedence(&v("2.0.0")), Equal);
    }

    use super::*;

    fn catalog() -> Catalog {
        Catalog::parse(include_str!("../../../policies/permissions.toml"), "test").unwrap()
    }

    const GOOD: &str = r#"
name = "hello"
version = "1.2.3"
description = "greets"
author = "Ada"
entry = "bin/hello"
[resources]
cpu = 0.25
memory = "64MiB"
pids = 16
[events]
subscribe = ["chat.message", "chat.user.*"]
[[permissions]]
name = "database_read"
justification = "count messages"
scope = ["messages"]
"#;

    fn problems(text: &str) -> Vec<String> {
        Manifest::parse(text, &catalog())
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_good_manifest_parses() {
        let m = Manifest::parse(GOOD, &catalog()).unwrap();
        assert_eq!(m.name.as_str(), "hello");
        assert_eq!(m.entry, PathBuf::from("bin/hello"));
        assert_eq!(m.resources.memory_bytes, 64 << 20);
        assert_eq!(m.permissions[0].permission, Permission::DatabaseRead);
    }

    #[test]
    fn a_python_plugin_names_its_runtime_and_a_py_entry() {
        assert_eq!(
            Manifest::parse(GOOD, &catalog()).unwrap().runtime,
            Runtime::Native
        );
        let py = GOOD.replace(
            "entry = \"bin/hello\"",
            "runtime = \"python3\"\nentry = \"main.py\"",
        );
        assert_eq!(
            Manifest::parse(&py, &catalog()).unwrap().runtime,
            Runtime::Python3
        );
        let p = problems(&py.replace("main.py", "main"));
        assert_eq!(
            p,
            ["entry: `main` must be a .py file for runtime `python3`"]
        );
        let p = problems(&py.replace("python3", "python2"));
        assert!(
            p[0].starts_with("runtime: `python2` is not a runtime"),
            "{p:?}"
        );
        // A Python entry is read, not exec'd: it need not be executable.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), &py).unwrap();
        std::fs::write(dir.path().join("main.py"), "print('hi')\n").unwrap();
        Manifest::load_dir(dir.path(), &catalog()).unwrap();
    }

    #[test]
    fn each_problem_names_its_field() {
        let p = problems(&GOOD.replace("database_read", "root_access"));
        assert!(
            p[0].starts_with("permissions[0].name: unknown permission"),
            "{p:?}"
        );
        let p = problems(&GOOD.replace("justification = \"count messages\"", ""));
        assert!(p[0].starts_with("permissions[0].justification"), "{p:?}");
        let p = problems(&GOOD.replace("name = \"hello\"", "name = \"Hello World\""));
        assert!(p[0].starts_with("name:"), "{p:?}");
        let p = problems(&GOOD.replace("1.2.3", "1.2"));
        assert!(p[0].starts_with("version:"), "{p:?}");
        let p = problems(&GOOD.replace("[\"messages\"]", "[\"/etc/passwd\"]"));
        assert!(p[0].starts_with("permissions[0].scope[0]"), "{p:?}");
        let p = problems(&GOOD.replace("bin/hello", "../../bin/sh"));
        assert!(p[0].starts_with("entry:"), "{p:?}");
        let p = problems(&GOOD.replace("bin/hello", "/bin/sh"));
        assert!(p[0].starts_with("entry:"), "{p:?}");
        let p = problems(&GOOD.replace("author", "writer"));
        assert!(p[0].starts_with("plugin.toml:"), "{p:?}");
        let p = problems(&GOOD.replace("scope = [\"messages\"]", "scope = []"));
        assert!(p[0].starts_with("permissions[0].scope:"), "{p:?}");
    }

    #[test]
    fn several_problems_are_all_reported() {
        let text = GOOD.replace("1.2.3", "x").replace("database_read", "nope");
        assert_eq!(problems(&text).len(), 2);
    }

    #[test]
    fn topics_match_by_segment() {
        assert!(topic_matches("chat.user.*", "chat.user.joined"));
        assert!(!topic_matches("chat.user.*", "chat.username"));
        assert!(topic_matches("chat.message", "chat.message"));
        assert!(validate_topic_pattern("chat..x").is_err());
    }

    #[test]
    fn names_and_versions() {
        assert!(PluginName::new("a").is_ok());
        assert!(PluginName::new("../x").is_err());
        assert!(PluginName::new("").is_err());
        assert!(Version::new("1.0.0-beta.1").is_ok());
        assert!(Version::new("01.0.0").is_err());
    }
}
