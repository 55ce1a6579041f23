//! `[install]`: what a package must bring to be installed or updated (a publisher's
//! signature from the trust store, by default).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstallConfig {
    /// Refuse a package (install or update) that no trusted publisher key signed.
    /// An update of a plugin installed signed must be signed by the same publisher
    /// whatever this says (key continuity).
    pub require_signature: bool,
}

impl Default for InstallConfig {
    fn default() -> Self {
        InstallConfig {
            require_signature: true,
        }
    }
}
