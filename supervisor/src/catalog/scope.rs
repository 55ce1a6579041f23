//! Scope shapes: the syntax of each permission's scope entries and the rule that
//! decides whether a granted entry covers a concrete target (a path, host:port, table...).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeShape {
    /// Absolute, normalised path prefixes: `/srv/data` covers `/srv/data/x`, not `/srv/database`.
    Paths,
    /// `host`, `host:port`, `*.domain` or `*.domain:port`. No port means 80 and 443.
    Hosts,
    /// SQL table names.
    Tables,
    /// Configuration keys, exact or `prefix.*`.
    Keys,
    /// Action names, e.g. `suspend_user`.
    Actions,
    /// Plugin names.
    Plugins,
    /// An exact argv, space separated (`/usr/bin/uname -s`), or an argv prefix when it
    /// ends in ` ...` (`/usr/bin/convert -resize ...`).
    Commands,
    /// Event topics, exact or `prefix.*`.
    Topics,
}

impl ScopeShape {
    pub fn noun(self) -> &'static str {
        match self {
            ScopeShape::Paths => "absolute path",
            ScopeShape::Hosts => "host[:port]",
            ScopeShape::Tables => "table name",
            ScopeShape::Keys => "config key",
            ScopeShape::Actions => "action name",
            ScopeShape::Plugins => "plugin name",
            ScopeShape::Commands => "absolute command line",
            ScopeShape::Topics => "topic pattern",
        }
    }

    /// Whether `entry` (already validated) covers `target`.
    pub fn covers(self, entry: &str, target: &str) -> bool {
        if self.names_operations() {
            // `target` or `target:operation`: the operation must match exactly, and an
            // entry without one covers only calls without one.
            let ((entry, entry_op), (target, target_op)) =
                (split_operation(entry), split_operation(target));
            return entry_op == target_op && self.covers_target(entry, target);
        }
        self.covers_target(entry, target)
    }

    /// The shapes of host actions, whose entries may name the one operation allowed.
    fn names_operations(self) -> bool {
        matches!(
            self,
            ScopeShape::Keys | ScopeShape::Actions | ScopeShape::Plugins
        )
    }

    fn covers_target(self, entry: &str, target: &str) -> bool {
        match self {
            ScopeShape::Paths => path_covers(entry, target),
            ScopeShape::Hosts => host_covers(entry, target),
            ScopeShape::Tables => entry.eq_ignore_ascii_case(target),
            ScopeShape::Keys => match entry.strip_suffix(".*") {
                Some(prefix) => target
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
                None => entry == target,
            },
            ScopeShape::Actions | ScopeShape::Plugins => entry == target,
            ScopeShape::Topics => topic_within(target, entry),
            ScopeShape::Commands => {
                argv_allowed(entry, &target.split_whitespace().collect::<Vec<_>>())
            }
        }
    }

    /// Whether every target `narrow` covers is also covered by `wide`.
    pub fn entry_within(self, narrow: &str, wide: &str) -> bool {
        match self {
            ScopeShape::Topics => topic_within(narrow, wide),
            ScopeShape::Commands => {
                let ((n, n_open), (w, w_open)) = (command_parts(narrow), command_parts(wide));
                if w_open {
                    n.len() >= w.len() && n[..w.len()] == w[..]
                } else {
                    !n_open && n == w
                }
            }
            ScopeShape::Hosts => {
                // Reaching internal addresses is a widening: only within a wide entry
                // that allows it too.
                let ((narrow, n_private), (wide, w_private)) =
                    (host_entry_parts(narrow), host_entry_parts(wide));
                if n_private && !w_private {
                    return false;
                }
                let (nh, np) = split_host_port(narrow);
                let (wh, wp) = split_host_port(wide);
                let host_ok = if let Some(nd) = nh.strip_prefix("*.") {
                    match wh.strip_prefix("*.") {
                        Some(wd) => nd == wd || nd.ends_with(&format!(".{wd}")),
                        None => false,
                    }
                } else {
                    host_covers(&wh, &format!("{nh}:{}", np.unwrap_or(443)))
                        || host_covers(&wh, &format!("{nh}:80"))
                };
                let port_ok = match (np, wp) {
                    (_, None) => np.is_none_or(|p| p == 80 || p == 443),
                    (Some(n), Some(w)) => n == w,
                    (None, Some(_)) => false,
                };
                host_ok && port_ok
            }
            ScopeShape::Keys => narrow == wide || self.covers(wide, narrow.trim_end_matches(".*")),
            _ => self.covers(wide, narrow),
        }
    }
}

/// A host-action entry or call name split at its operation: `ban_user:ban` is
/// (`ban_user`, Some(`ban`)), `ban_user` is (`ban_user`, None).
fn split_operation(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once(':') {
        Some((target, op)) => (target, Some(op)),
        None => (entry, None),
    }
}

/// What a host action's grant must cover: `target`, or `target:action` when the call
/// names an action. The target must be a valid entry without an operation, the action
/// an identifier.
pub fn host_action_name(shape: ScopeShape, target: &str, action: &str) -> Result<String, String> {
    if target.contains(':') {
        return Err(format!(
            "the target `{}` cannot contain `:` (it separates the action in a grant's scope)",
            crate::audit::short(target)
        ));
    }
    validate_scope_entry(shape, target)?;
    if action.is_empty() {
        return Ok(target.to_string());
    }
    if !is_identifier(action) {
        return Err(format!(
            "`{}` is not a valid action name (letters, digits and _, at most 64)",
            crate::audit::short(action)
        ));
    }
    Ok(format!("{target}:{action}"))
}

/// A plugin config key: a `keys` entry without a wildcard or an operation.
pub fn validate_config_key(key: &str) -> Result<(), String> {
    if key.contains(':') {
        return Err(format!(
            "`{}` is not a valid config key",
            crate::audit::short(key)
        ));
    }
    validate_scope_entry(ScopeShape::Keys, key)
}

/// Checks one scope entry against its shape; the error says what was expected.
pub fn validate_scope_entry(shape: ScopeShape, entry: &str) -> Result<(), String> {
    if shape.names_operations() {
        if let (target, Some(op)) = split_operation(entry) {
            return if is_identifier(op) && validate_target(shape, target) {
                Ok(())
            } else {
                Err(format!(
                    "`{}` is not a valid {} with an action (`target:action`)",
                    crate::audit::short(entry),
                    shape.noun()
                ))
            };
        }
    }
    if validate_target(shape, entry) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid {}",
            crate::audit::short(entry),
            shape.noun()
        ))
    }
}

fn validate_target(shape: ScopeShape, entry: &str) -> bool {
    match shape {
        ScopeShape::Paths => is_normal_absolute_path(entry),
        ScopeShape::Hosts => is_host_entry(entry),
        ScopeShape::Tables => {
            is_identifier(entry) && !entry.to_ascii_lowercase().starts_with("sqlite_")
        }
        ScopeShape::Keys => {
            let key = entry.strip_suffix(".*").unwrap_or(entry);
            !key.is_empty()
                && key.len() <= 128
                && key.split('.').all(|part| {
                    !part.is_empty()
                        && part.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                        })
                })
        }
        ScopeShape::Actions => is_identifier(entry),
        ScopeShape::Topics => crate::manifest::validate_topic_pattern(entry).is_ok(),
        ScopeShape::Plugins => crate::manifest::PluginName::new(entry).is_ok(),
        ScopeShape::Commands => {
            let (argv, _) = command_parts(entry);
            argv.first()
                .is_some_and(|argv0| argv0.starts_with('/') && is_normal_absolute_path(argv0))
                && !argv.contains(&ANY_ARGS)
                && !entry.contains(['\n', '\0'])
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 64
}

fn is_normal_absolute_path(p: &str) -> bool {
    if !p.starts_with('/') || p.contains('\0') || p.len() > 4096 {
        return false;
    }
    if p == "/" {
        return true;
    }
    !p.ends_with('/')
        && p[1..]
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn path_covers(entry: &str, target: &str) -> bool {
    if !is_normal_absolute_path(target) {
        return false;
    }
    entry == "/"
        || target == entry
        || target
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn split_host_port(entry: &str) -> (String, Option<u16>) {
    match entry.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(port) => (h.to_ascii_lowercase(), Some(port)),
            Err(_) => (entry.to_ascii_lowercase(), None),
        },
        None => (entry.to_ascii_lowercase(), None),
    }
}

fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// The last word of a commands entry that allows more arguments after it.
pub const ANY_ARGS: &str = "...";

/// A commands entry's fixed argv, and whether it ends in ` ...`.
fn command_parts(entry: &str) -> (Vec<&str>, bool) {
    let mut argv: Vec<&str> = entry.split_whitespace().collect();
    let open = argv.last() == Some(&ANY_ARGS);
    if open {
        argv.pop();
    }
    (argv, open)
}

/// Whether a commands entry allows running `argv`: exactly that argv, or any argv
/// starting with it when the entry ends in ` ...`. Arguments are compared whole, so
/// `-resize 10` as one argument never matches the two words `-resize 10`.
pub fn argv_allowed(entry: &str, argv: &[&str]) -> bool {
    let (want, open) = command_parts(entry);
    if open {
        argv.len() >= want.len() && argv[..want.len()] == want[..]
    } else {
        argv == want.as_slice()
    }
}

/// Whether every topic `narrow` (a topic or `prefix.*`) matches is matched by `wide`.
pub fn topic_within(narrow: &str, wide: &str) -> bool {
    match wide.strip_suffix(".*") {
        None => narrow == wide,
        Some(prefix) => {
            let base = narrow.strip_suffix(".*").unwrap_or(narrow);
            base.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.') || (rest.is_empty() && narrow != base))
        }
    }
}

/// The marker on a hosts entry that lets it reach loopback, private, link-local and
/// other internal addresses (`private:localhost:8080`); without it they are refused.
pub const PRIVATE_MARK: &str = "private:";

/// A hosts entry without its `private:` marker, and whether it had one.
pub fn host_entry_parts(entry: &str) -> (&str, bool) {
    match entry.strip_prefix(PRIVATE_MARK) {
        Some(rest) => (rest, true),
        None => (entry, false),
    }
}

fn is_host_entry(entry: &str) -> bool {
    let (entry, _) = host_entry_parts(entry);
    let (host, port) = split_host_port(entry);
    if entry.contains(':') && port.is_none_or(|p| p == 0) {
        return false;
    }
    match host.strip_prefix("*.") {
        // A wildcard must name at least a registrable-looking domain.
        Some(domain) => is_hostname(domain) && domain.contains('.'),
        None => is_hostname(&host),
    }
}

fn host_covers(entry: &str, target: &str) -> bool {
    let (entry, _) = host_entry_parts(entry);
    let (eh, ep) = split_host_port(entry);
    let (th, tp) = split_host_port(target);
    let Some(tp) = tp else { return false };
    let port_ok = match ep {
        Some(p) => p == tp,
        None => tp == 80 || tp == 443,
    };
    let host_ok = match eh.strip_prefix("*.") {
        Some(domain) => th
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => eh == th,
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_prefixes_respect_component_boundaries() {
        let s = ScopeShape::Paths;
        assert!(s.covers("/srv/data", "/srv/data"));
        assert!(s.covers("/srv/data", "/srv/data/a/b"));
        assert!(!s.covers("/srv/data", "/srv/database"));
        assert!(!s.covers("/srv/data", "/srv/data/../etc/shadow"));
        assert!(validate_scope_entry(s, "/srv/../etc").is_err());
        assert!(validate_scope_entry(s, "relative/path").is_err());
        assert!(validate_scope_entry(s, "/srv/data").is_ok());
    }

    #[test]
    fn host_wildcards_do_not_match_lookalikes() {
        let s = ScopeShape::Hosts;
        assert!(s.covers("*.example.com", "api.example.com:443"));
        assert!(!s.covers("*.example.com", "example.com:443"));
        assert!(!s.covers("*.example.com", "example.com.evil.net:443"));
        assert!(!s.covers("*.example.com", "evilexample.com:443"));
        assert!(s.covers("api.example.com", "api.example.com:80"));
        assert!(!s.covers("api.example.com", "api.example.com:8080"));
        assert!(s.covers("api.example.com:8080", "api.example.com:8080"));
        assert!(validate_scope_entry(s, "*.com").is_err());
        assert!(validate_scope_entry(s, "https://x.com").is_err());
        assert!(validate_scope_entry(s, "x.com:0").is_err());
    }

    #[test]
    fn narrowing_is_checked_per_shape() {
        assert!(ScopeShape::Paths.entry_within("/srv/data/a", "/srv/data"));
        assert!(!ScopeShape::Paths.entry_within("/srv", "/srv/data"));
        assert!(ScopeShape::Hosts.entry_within("a.example.com", "*.example.com"));
        assert!(ScopeShape::Hosts.entry_within("*.a.example.com", "*.example.com"));
        assert!(!ScopeShape::Hosts.entry_within("*.example.com", "a.example.com"));
        assert!(!ScopeShape::Hosts.entry_within("a.example.com:8080", "*.example.com"));
        assert!(ScopeShape::Commands.entry_within("/bin/echo hi", "/bin/echo ..."));
        assert!(ScopeShape::Commands.entry_within("/bin/echo hi ...", "/bin/echo ..."));
        assert!(!ScopeShape::Commands.entry_within("/bin/echo hi", "/bin/echo"));
        assert!(!ScopeShape::Commands.entry_within("/bin/echo ...", "/bin/echo"));
        assert!(!ScopeShape::Commands.entry_within("/bin/sh", "/bin/echo ..."));
        assert!(ScopeShape::Keys.entry_within("chat.limits.max", "chat.*"));
    }

    #[test]
    fn tables_and_commands_validate() {
        assert!(validate_scope_entry(ScopeShape::Tables, "messages").is_ok());
        assert!(validate_scope_entry(ScopeShape::Tables, "sqlite_master").is_err());
        assert!(validate_scope_entry(ScopeShape::Tables, "x; DROP TABLE y").is_err());
        assert!(validate_scope_entry(ScopeShape::Commands, "/usr/bin/convert -resize").is_ok());
        assert!(validate_scope_entry(ScopeShape::Commands, "convert").is_err());
        assert!(validate_scope_entry(ScopeShape::Commands, "/usr/bin/convert ... -x").is_err());
        assert!(ScopeShape::Commands.covers("/bin/echo hi ...", "/bin/echo hi there"));
        assert!(
            !ScopeShape::Commands.covers("/bin/echo hi", "/bin/echo hi there"),
            "exact"
        );
        assert!(ScopeShape::Commands.covers("/bin/echo hi", "/bin/echo hi"));
        assert!(!ScopeShape::Commands.covers("/bin/echo hi ...", "/bin/echo"));
        assert!(!argv_allowed(
            "/usr/bin/convert -resize 10 ...",
            &["/usr/bin/convert", "-resize 10"]
        ));
    }

    #[test]
    fn the_private_marker_is_validated_matched_and_never_a_narrowing() {
        let h = ScopeShape::Hosts;
        assert!(validate_scope_entry(h, "private:localhost:8080").is_ok());
        assert!(validate_scope_entry(h, "private:").is_err());
        assert!(h.covers("private:localhost:8080", "localhost:8080"));
        assert!(!h.covers("private:localhost:8080", "localhost:8081"));
        assert!(h.entry_within("localhost:8080", "private:localhost:8080"));
        assert!(!h.entry_within("private:localhost:8080", "localhost:8080"));
        assert_eq!(host_entry_parts("private:a.example"), ("a.example", true));
        assert_eq!(host_entry_parts("a.example"), ("a.example", false));
    }

    #[test]
    fn a_wildcard_covers_subdomains_only_never_lookalikes() {
        let h = ScopeShape::Hosts;
        assert!(h.covers("*.example.com", "api.example.com:443"));
        assert!(!h.covers("*.example.com", "example.com:443"));
        assert!(!h.covers("*.example.com", "example.com.evil.net:443"));
        assert!(!h.covers("*.example.com", "evilexample.com:443"));
        assert!(!h.covers("example.com", "example.com.evil.net:443"));
        assert!(!h.covers("example.com", "api.example.com:443"));
        assert!(
            !h.covers("example.com", "example.com:8443"),
            "port 443/80 only without one"
        );
    }

    #[test]
    fn topic_patterns_cover_what_they_match() {
        let t = ScopeShape::Topics;
        assert!(validate_scope_entry(t, "user.*").is_ok());
        assert!(validate_scope_entry(t, "User.*").is_err());
        assert!(t.covers("user.*", "user.created"));
        assert!(t.covers("user.created", "user.created"));
        assert!(!t.covers("user.*", "username.changed"));
        assert!(!t.covers("user.*", "user"));
        assert!(t.entry_within("user.*", "user.*"));
        assert!(t.entry_within("user.admin.*", "user.*"));
        assert!(t.entry_within("user.created", "user.*"));
        assert!(!t.entry_within("user.*", "user.created"));
        assert!(!t.entry_within("users.*", "user.*"));
    }
}

#[cfg(test)]
mod host_action_tests {
    use super::*;

    #[test]
    fn a_host_action_grant_covers_its_target_and_exactly_the_action_it_names() {
        let name = |shape, t, a| host_action_name(shape, t, a).expect("valid");
        let a = ScopeShape::Actions;
        assert!(a.covers("warn_user", &name(a, "warn_user", "")));
        assert!(!a.covers("warn_user", &name(a, "warn_user", "delete_account")));
        assert!(a.covers("ban_user:ban", &name(a, "ban_user", "ban")));
        assert!(!a.covers("ban_user:ban", &name(a, "ban_user", "")));
        assert!(!a.covers("ban_user:ban", &name(a, "ban_user", "unban")));
        let k = ScopeShape::Keys;
        assert!(k.covers("smtp.*:get", &name(k, "smtp.host", "get")));
        assert!(!k.covers("smtp.*:get", &name(k, "smtp.host", "set")));
        assert!(!k.covers("smtp.*", &name(k, "smtp.host", "set")));
        assert!(k.entry_within("smtp.host:get", "smtp.*:get"));
        assert!(!k.entry_within("smtp.host:set", "smtp.*:get"));
        assert!(!a.entry_within("ban_user:ban", "ban_user"));
        for entry in ["ban_user:ban", "warn_user"] {
            assert!(validate_scope_entry(a, entry).is_ok(), "{entry}");
        }
        for entry in ["ban_user:", "ban_user:b:c", ":ban", "ban user:x"] {
            assert!(validate_scope_entry(a, entry).is_err(), "{entry}");
        }
        assert!(host_action_name(a, "warn_user:x", "").is_err());
        assert!(host_action_name(a, "warn_user", "drop table").is_err());
        assert!(validate_config_key("a:b").is_err());
        assert!(validate_config_key("a.b").is_ok());
        // Hosts keep their ports: no operations there.
        assert!(ScopeShape::Hosts.covers("api.example.com:8443", "api.example.com:8443"));
    }
}
