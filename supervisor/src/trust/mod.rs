//! Publisher trust: the keys admins trust to sign plugin packages, which plugin names
//! each may sign, and the signer recorded for every installed plugin.

mod ledger;
mod verify;

pub use ledger::{
    add_key, bootstrap_key, end_key, Added, Ending, KeyRequest, TrustError, REVOKED_RULE,
};
pub use verify::{check_continuity, verify, SignatureCheck};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The SSHSIG namespace of a plugin package signature (`ssh-keygen -Y sign -n ...`):
/// a signature made for anything else (a git commit, a file) is never one of these.
pub const NAMESPACE: &str = "plexichat-plugin";

/// Who signed an installed plugin, as recorded at install or update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signer {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub publisher: String,
}

impl Signer {
    /// The signer as an audit record shows it.
    pub fn audit_detail(signer: Option<&Signer>) -> serde_json::Value {
        match signer {
            Some(s) => {
                serde_json::json!({ "fingerprint": s.fingerprint, "publisher": s.publisher })
            }
            None => serde_json::Value::Null,
        }
    }
}

/// Where a key is in its life. Proposed needs a second admin; removed and revoked
/// keys sign nothing new, and a revoked one flags every plugin it signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Proposed,
    Trusted,
    Removed,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Proposed => "proposed",
            KeyState::Trusted => "trusted",
            KeyState::Removed => "removed",
            KeyState::Revoked => "revoked",
        }
    }
}

impl FromStr for KeyState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "proposed" => Ok(KeyState::Proposed),
            "trusted" => Ok(KeyState::Trusted),
            "removed" => Ok(KeyState::Removed),
            "revoked" => Ok(KeyState::Revoked),
            other => Err(format!("unknown key state `{other}`")),
        }
    }
}

/// One publisher key as the store keeps it, with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub fingerprint: String,
    pub publisher: String,
    pub plugins: NamePattern,
    /// The key in OpenSSH's one-line form.
    pub public_key: String,
    pub state: KeyState,
    pub comment: String,
    pub proposed_by: String,
    pub proposed_at: i64,
    pub approved_by: Option<String>,
    pub approved_at: Option<i64>,
    /// Who removed or revoked it, when and why.
    pub ended_by: Option<String>,
    pub ended_at: Option<i64>,
    pub end_comment: Option<String>,
}

/// The plugin names a key may sign: a name, or a glob whose `*` matches any run of
/// name characters (`acme-*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern(String);

impl NamePattern {
    pub fn parse(raw: &str) -> Result<NamePattern, String> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'*');
        if ok {
            Ok(NamePattern(raw.to_string()))
        } else {
            Err(format!(
                "plugin pattern `{}`: use a plugin name or a glob of a-z, 0-9, `-` and `*` (at most 64 bytes), e.g. `acme-*`",
                crate::package::clip(raw)
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*`-only glob matching, iterative with one backtrack point (linear enough for
/// 64-byte patterns and names).
fn glob(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pattern.len() && pattern[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A publisher's public key as an admin hands it in (`id_ed25519.pub`).
#[derive(Debug, Clone)]
pub struct PublisherKey {
    key: ssh_key::PublicKey,
}

impl PublisherKey {
    /// Parses one OpenSSH public key line; only Ed25519 keys (plain or FIDO) sign
    /// packages.
    pub fn parse(text: &str) -> Result<PublisherKey, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or("the key file holds no key")?;
        // Named before parsing: this build reads no other key type.
        let kind = line.split_whitespace().next().unwrap_or_default();
        if !ACCEPTED.contains(&kind) {
            return Err(format!(
                "a `{}` key cannot sign plugin packages: only Ed25519 keys can (`ssh-keygen -t ed25519`, or `-t ed25519-sk` for a hardware key)",
                crate::package::clip(kind)
            ));
        }
        let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| {
            format!("not an OpenSSH public key (the one line of an `id_ed25519.pub`): {e}")
        })?;
        Ok(PublisherKey { key })
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.key.key_data())
    }

    /// The key without its comment, as it is stored.
    pub fn openssh(&self) -> String {
        let mut key = self.key.clone();
        key.set_comment("");
        key.to_openssh()
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default()
    }

    pub(crate) fn ssh(&self) -> &ssh_key::PublicKey {
        &self.key
    }
}

/// The key types that sign packages: Ed25519, plain or on a FIDO token.
const ACCEPTED: [&str; 2] = ["ssh-ed25519", "sk-ssh-ed25519@openssh.com"];

/// `SHA256:...` of a key, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &ssh_key::public::KeyData) -> String {
    key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
}

/// A publisher name: what admins call the key's owner (`Acme Corp`, `acme`).
pub fn check_publisher(raw: &str) -> Result<(), String> {
    let ok = !raw.trim().is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "publisher name `{}`: use 1 to 64 letters, digits, spaces and `._-@`",
            crate::package::clip(raw)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names_by_glob() {
        let p = |s: &str| NamePattern::parse(s).unwrap();
        assert!(p("*").matches("anything"));
        assert!(p("acme-*").matches("acme-hello"));
        assert!(p("acme-*").matches("acme-"));
        assert!(!p("acme-*").matches("evil-acme-x"));
        assert!(p("*-bot").matches("acme-bot"));
        assert!(!p("*-bot").matches("acme-bots"));
        assert!(p("a*b*c").matches("axxbyyc"));
        assert!(!p("a*b*c").matches("axxbyy"));
        assert!(p("hello").matches("hello"));
        assert!(!p("hello").matches("hello2"));
        for bad in ["", "Acme", "a b", "a/b", &"x".repeat(65)] {
            assert!(NamePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_ed25519_keys_are_accepted() {
        let ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILsRk0TzAKbA1ZZ67sScmcwYepb6guMtrAUDXVPjk/yl someone@host";
        let key = PublisherKey::parse(&format!("# a comment\n\n{ed}\n")).unwrap();
        assert!(
            key.fingerprint().starts_with("SHA256:"),
            "{}",
            key.fingerprint()
        );
        assert!(!key.openssh().contains("someone"), "{}", key.openssh());
        let ecdsa = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBM+mSpbMlpB55bXWyQZjxc8xp5jMJdaOvyyHHg/CFkOdslzUdpXsYyrTZKSGGWJlDmZOHxiwx49BYa0wv5nI1AQ= root@vm";
        let e = PublisherKey::parse(ecdsa).unwrap_err();
        assert!(e.contains("only Ed25519"), "{e}");
        assert!(PublisherKey::parse("").unwrap_err().contains("no key"));
        assert!(PublisherKey::parse("ssh-ed25519 notbase64")
            .unwrap_err()
            .contains("not an OpenSSH"));
        assert!(PublisherKey::parse("garbage")
            .unwrap_err()
            .contains("only Ed25519"));
        assert!(check_publisher("Acme Corp.").is_ok());
        assert!(check_publisher("").is_err());
        assert!(check_publisher("a\nb").is_err());
    }
}
