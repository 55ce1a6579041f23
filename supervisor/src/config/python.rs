//! `[python]`: the host interpreter Python plugins run on, the SDK bundle mounted into
//! them at /sdk, and their seccomp policy.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PythonConfig {
    /// The CPython that runs `runtime = "python3"` plugins. Resolved (symlinks followed)
    /// and pinned by SHA-256 when a plugin is installed; a plugin whose interpreter
    /// changed since never starts.
    pub interpreter: PathBuf,
    /// The pure-Python SDK bundle (`scripts/python-sdk-bundle.sh`), bound read-only at
    /// /sdk and pinned by its tree digest at install like the interpreter.
    pub sdk_dir: PathBuf,
    /// The seccomp policy Python plugins get (a policy name, as `sandbox.seccomp_policy`).
    pub seccomp_policy: String,
}

impl Default for PythonConfig {
    fn default() -> Self {
        PythonConfig {
            interpreter: PathBuf::from("/usr/bin/python3"),
            sdk_dir: PathBuf::from("/usr/lib/plexichat/python-sdk"),
            seccomp_policy: "python3".into(),
        }
    }
}

impl PythonConfig {
    /// Absolute, non-empty paths; the policy a plain name. Whether the interpreter and
    /// bundle exist is checked at start-up, where a failure refuses Python plugins only.
    pub fn validate(&self) -> Result<(), String> {
        for (key, path) in [
            ("python.interpreter", &self.interpreter),
            ("python.sdk_dir", &self.sdk_dir),
        ] {
            if !path.is_absolute() {
                return Err(format!("{key} must be an absolute path"));
            }
        }
        let policy = &self.seccomp_policy;
        if policy.is_empty()
            || !policy
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        {
            return Err(format!(
                "python.seccomp_policy `{policy}` must be a plain name (a-z, 0-9, _ or -)"
            ));
        }
        Ok(())
    }
}
