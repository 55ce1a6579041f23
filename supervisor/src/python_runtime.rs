//! The host CPython Python plugins run on: found and pinned at install (resolved path,
//! version, SHA-256, and the SDK bundle's tree digest), and how the plugin is run on it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::PythonConfig;
use crate::package::tree::{self, PinnedFile};
use crate::sandbox::rootfs::{BindAt, RoEntry};

/// Where the plugin's package appears inside its root (read-only, noexec).
pub const PACKAGE_MOUNT: &str = "/plugin";
/// Where the SDK bundle appears inside its root (read-only, noexec).
pub const SDK_MOUNT: &str = "/sdk";
/// The bundle's entry point: sets up sys.path and the import hook, then runs the entry.
pub const BOOT_SCRIPT: &str = "plexichat_boot.py";
/// How long the version probe may take before the interpreter is called unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The uid the version probe runs as: nobody, so a hostile "interpreter" gains nothing.
const PROBE_UID: u32 = 65534;

/// What a Python plugin was pinned to at install; stored with the plugin and checked
/// at every start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonPin {
    /// The interpreter, symlinks resolved.
    pub interpreter: PathBuf,
    pub version: String,
    pub sha256: String,
    /// The SDK bundle's directory and tree digest.
    pub sdk_dir: PathBuf,
    pub sdk_digest: String,
    /// The package's files as pinned (their digest is the plugin's `sha256`).
    pub files: Vec<PinnedFile>,
}

impl PythonPin {
    /// What audit records say of the pin (the file list only by count).
    pub fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.interpreter, "version": self.version, "sha256": self.sha256,
            "sdk_dir": self.sdk_dir, "sdk_digest": self.sdk_digest, "files": self.files.len(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("python.interpreter {path}: {message}")]
    Interpreter { path: String, message: String },
    #[error("python.sdk_dir {path}: {message} (build it with scripts/python-sdk-bundle.sh)")]
    Sdk { path: String, message: String },
}

/// The interpreter and SDK bundle as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPython {
    pub interpreter: PathBuf,
    pub version: String,
    pub sha256: String,
    pub sdk_dir: PathBuf,
    pub sdk_digest: String,
}

impl HostPython {
    /// Resolves and hashes the interpreter, asks it its version (as nobody, with no
    /// environment), and digests the SDK bundle, which must hold the boot script and
    /// no native code.
    pub fn probe(cfg: &PythonConfig) -> Result<HostPython, RuntimeError> {
        let bad = |message: String| RuntimeError::Interpreter {
            path: cfg.interpreter.display().to_string(),
            message,
        };
        let interpreter = cfg
            .interpreter
            .canonicalize()
            .map_err(|e| bad(format!("cannot resolve it: {e}")))?;
        let sha256 = crate::install::sha256_file(&interpreter)
            .map_err(|e| bad(format!("cannot read it: {e}")))?;
        let version = version_of(&interpreter).map_err(bad)?;
        let sdk_bad = |message: String| RuntimeError::Sdk {
            path: cfg.sdk_dir.display().to_string(),
            message,
        };
        let sdk_dir = cfg
            .sdk_dir
            .canonicalize()
            .map_err(|e| sdk_bad(format!("cannot resolve it: {e}")))?;
        if !sdk_dir.join(BOOT_SCRIPT).is_file() {
            return Err(sdk_bad(format!("has no {BOOT_SCRIPT}")));
        }
        let sdk = tree::pin(&sdk_dir).map_err(|e| sdk_bad(e.to_string()))?;
        if let Some(native) = sdk.native.first() {
            return Err(sdk_bad(format!(
                "holds native code ({native}); the bundle must be pure Python"
            )));
        }
        Ok(HostPython {
            interpreter,
            version,
            sha256,
            sdk_dir,
            sdk_digest: sdk.digest,
        })
    }

    /// The pin a package installed now gets.
    pub fn pin(self, files: Vec<PinnedFile>) -> PythonPin {
        PythonPin {
            interpreter: self.interpreter,
            version: self.version,
            sha256: self.sha256,
            sdk_dir: self.sdk_dir,
            sdk_digest: self.sdk_digest,
            files,
        }
    }
}

/// `X.Y.Z` as the interpreter itself reports it.
fn version_of(interpreter: &Path) -> Result<String, String> {
    use std::os::unix::process::CommandExt;
    let mut child = std::process::Command::new(interpreter)
        .args([
            "-I",
            "-S",
            "-B",
            "-c",
            "import sys; print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .env_clear()
        .current_dir("/")
        .uid(PROBE_UID)
        .gid(PROBE_UID)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not report its version within {}s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    };
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(64).read_to_string(&mut out);
    }
    let version = out.trim();
    let looks_right = status.success()
        && version.starts_with("3.")
        && version.split('.').count() == 3
        && version.split('.').all(|p| p.parse::<u32>().is_ok());
    if looks_right {
        Ok(version.to_string())
    } else {
        Err(format!(
            "is not a CPython 3 (asked for its version: {status}, {:?})",
            crate::text::prefix(version, 64)
        ))
    }
}

/// The interpreter's arguments for a plugin whose entry is `entry`: isolated mode
/// (no PYTHON* variables, no user site, no script directory on sys.path), no `site`
/// (no host site-packages), no bytecode written; the boot script does the rest.
pub fn interpreter_args(entry: &Path) -> Vec<String> {
    vec![
        "-I".into(),
        "-S".into(),
        "-B".into(),
        format!("{SDK_MOUNT}/{BOOT_SCRIPT}"),
        Path::new(PACKAGE_MOUNT).join(entry).display().to_string(),
    ]
}

/// The package at /plugin and the SDK bundle at /sdk.
pub fn binds(package: &Path, pin: &PythonPin) -> Vec<BindAt> {
    vec![
        BindAt {
            source: package.to_path_buf(),
            target: PathBuf::from(PACKAGE_MOUNT),
        },
        BindAt {
            source: pin.sdk_dir.clone(),
            target: PathBuf::from(SDK_MOUNT),
        },
    ]
}

/// The host's site-packages directories the library binds would show: hidden, so the
/// plugin sees the standard library and nothing installed beside it.
pub fn masked_site_dirs(version: &str, read_only: &[RoEntry]) -> Vec<PathBuf> {
    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let candidates = [
        "/usr/lib/python3/dist-packages".to_string(),
        format!("/usr/lib/python{minor}/site-packages"),
        format!("/usr/lib/python{minor}/dist-packages"),
        format!("/usr/local/lib/python{minor}/dist-packages"),
        format!("/usr/local/lib/python{minor}/site-packages"),
    ];
    let bound = |p: &Path| {
        read_only
            .iter()
            .any(|e| matches!(e, RoEntry::Bind(dir) if p.starts_with(dir)))
    };
    candidates
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.is_dir() && bound(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdk(dir: &Path) -> PathBuf {
        let sdk = dir.join("sdk");
        std::fs::create_dir_all(sdk.join("plexichat_plugin")).unwrap();
        std::fs::write(sdk.join(BOOT_SCRIPT), "print('boot')\n").unwrap();
        std::fs::write(sdk.join("plexichat_plugin/__init__.py"), "").unwrap();
        sdk
    }

    #[test]
    fn the_host_python_is_resolved_hashed_and_asked_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PythonConfig {
            sdk_dir: sdk(dir.path()),
            ..PythonConfig::default()
        };
        let Ok(host) = HostPython::probe(&cfg) else {
            eprintln!("no {} here: skipped", cfg.interpreter.display());
            return;
        };
        assert!(host.interpreter.is_absolute() && !host.interpreter.is_symlink());
        assert!(host.version.starts_with("3."), "{}", host.version);
        assert_eq!(host.sha256.len(), 64);
        // Native code in the bundle is refused, naming the file.
        std::fs::write(cfg.sdk_dir.join("_x.so"), "x").unwrap();
        let err = HostPython::probe(&cfg).unwrap_err().to_string();
        assert!(err.contains("native code (_x.so)"), "{err}");
    }

    #[test]
    fn what_is_not_a_python_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = PythonConfig {
            interpreter: PathBuf::from("/bin/true"),
            sdk_dir: sdk(dir.path()),
            ..PythonConfig::default()
        };
        let err = HostPython::probe(&cfg).unwrap_err().to_string();
        assert!(err.contains("is not a CPython 3"), "{err}");
        let cfg = PythonConfig {
            interpreter: PathBuf::from("/nonexistent/python3"),
            ..cfg
        };
        let err = HostPython::probe(&cfg).unwrap_err().to_string();
        assert!(
            err.starts_with("python.interpreter /nonexistent/python3: cannot resolve"),
            "{err}"
        );
        let cfg = PythonConfig {
            sdk_dir: dir.path().join("nothing"),
            ..PythonConfig::default()
        };
        let err = HostPython::probe(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("python.sdk_dir") && err.contains("python-sdk-bundle.sh"),
            "{err}"
        );
    }

    #[test]
    fn the_interpreter_runs_the_boot_script_in_isolated_mode() {
        assert_eq!(
            interpreter_args(Path::new("app/main.py")),
            [
                "-I",
                "-S",
                "-B",
                "/sdk/plexichat_boot.py",
                "/plugin/app/main.py"
            ]
        );
    }
}
