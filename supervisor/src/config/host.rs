//! The facts about this host that configuration values are checked against: its
//! users and groups (the local account files), online cores and RAM.

use std::path::Path;

/// What `validate` compares the configuration with. `current()` reads the host;
/// tests build one by hand so they do not depend on the machine they run on.
#[derive(Debug, Clone)]
pub struct Host {
    /// `(name, uid)` of every user in `/etc/passwd`.
    pub users: Vec<(String, u32)>,
    /// `(name, gid)` of every group in `/etc/group`.
    pub groups: Vec<(String, u32)>,
    /// Account files that could not be read: the uid range cannot be checked.
    pub unreadable: Vec<String>,
    /// Online CPUs.
    pub cpus: usize,
    /// Total RAM in bytes.
    pub memory_bytes: u64,
    /// Ask NSS for groups not in `/etc/group` (LDAP, sssd): only on the real host.
    nss_groups: bool,
}

impl Host {
    /// This machine. Users and groups come from the local files only: enumerating a
    /// directory service would be slow or disabled; `--check-config` says so.
    pub fn current() -> Host {
        let mut unreadable = Vec::new();
        let mut accounts = |path: &str| match std::fs::read_to_string(Path::new(path)) {
            Ok(text) => parse_accounts(&text),
            Err(e) => {
                unreadable.push(format!("{path}: {e}"));
                Vec::new()
            }
        };
        let users = accounts("/etc/passwd");
        let groups = accounts("/etc/group");
        Host {
            users,
            groups,
            unreadable,
            cpus: online_cpus(),
            memory_bytes: total_memory(),
            nss_groups: true,
        }
    }

    /// A host with the given accounts, 4 cores and 8 GiB, for tests.
    pub fn with_accounts(users: &[(&str, u32)], groups: &[(&str, u32)]) -> Host {
        let own = |list: &[(&str, u32)]| list.iter().map(|(n, i)| (n.to_string(), *i)).collect();
        Host {
            users: own(users),
            groups: own(groups),
            unreadable: Vec::new(),
            cpus: 4,
            memory_bytes: 8 << 30,
            nss_groups: false,
        }
    }

    /// Whether a group of this name exists (local file, then NSS on the real host).
    pub fn has_group(&self, name: &str) -> bool {
        self.groups.iter().any(|(n, _)| n == name)
            || (self.nss_groups && matches!(nix::unistd::Group::from_name(name), Ok(Some(_))))
    }
}

/// `name:x:id:...` lines of `/etc/passwd` or `/etc/group`; comments and malformed
/// lines are skipped (they name no account).
fn parse_accounts(text: &str) -> Vec<(String, u32)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut fields = l.split(':');
            let name = fields.next()?.trim();
            let id = fields.nth(1)?.trim().parse().ok()?;
            (!name.is_empty()).then(|| (name.to_string(), id))
        })
        .collect()
}

fn online_cpus() -> usize {
    // SAFETY: sysconf only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(1)
}

fn total_memory() -> u64 {
    // SAFETY: an all-zero sysinfo is a valid value, and sysinfo(2) only fills it.
    let (rc, info) = unsafe {
        let mut info: libc::sysinfo = std::mem::zeroed();
        (libc::sysinfo(&mut info), info)
    };
    if rc != 0 {
        return u64::MAX; // unknown: the RAM bounds then refuse nothing
    }
    info.totalram.saturating_mul(u64::from(info.mem_unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_files_are_read_by_name_and_id() {
        let text = "# comment\nroot:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/x\n\nbad\nweird:x:notanumber:1\n";
        assert_eq!(
            parse_accounts(text),
            vec![("root".to_string(), 0), ("nobody".to_string(), 65534)]
        );
    }

    #[test]
    fn this_host_has_root_some_cores_and_ram() {
        let h = Host::current();
        assert!(h.users.iter().any(|(n, id)| n == "root" && *id == 0));
        assert!(h.groups.iter().any(|(_, id)| *id == 0));
        assert!(h.cpus >= 1);
        assert!(h.memory_bytes > 64 << 20);
        assert!(h.has_group("root"));
        assert!(!h.has_group("no-such-group-plexichat-test"));
    }
}
