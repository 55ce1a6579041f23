//! The fake broker's access rules: which grant scope covers which table, path, host,
//! topic, action or argv, and the refusal messages, worded as the real broker words them.

use crate::Grant;

/// Topics the shipped policy marks sensitive: they need a `sensitive_events` grant.
pub(crate) const DEFAULT_SENSITIVE_TOPICS: &[&str] = &["user.*", "moderation.*", "chat.private.*"];

/// The live grant for `permission`, if any.
pub(crate) fn grant<'a>(grants: &'a [Grant], permission: &str) -> Option<&'a Grant> {
    grants.iter().find(|g| g.permission == permission)
}

/// Whether a scope entry covers `value`: equal, a `prefix*` wildcard, or (for paths)
/// a directory entry covering everything below it.
pub(crate) fn entry_covers(entry: &str, value: &str) -> bool {
    if entry == value {
        return true;
    }
    if let Some(prefix) = entry.strip_suffix('*') {
        return value.len() > prefix.len() && value.starts_with(prefix);
    }
    entry.starts_with('/')
        && value
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('/') || entry == "/")
}

/// Whether `permission` is held with a scope covering `scope` (any scope when empty;
/// an unscoped grant covers everything).
pub(crate) fn holds(grants: &[Grant], permission: &str, scope: &str) -> bool {
    grant(grants, permission).is_some_and(|g| {
        scope.is_empty() || g.scope.is_empty() || g.scope.iter().any(|e| entry_covers(e, scope))
    })
}

/// Whether every topic `narrow` (a topic or `prefix.*`) selects is selected by `wide`.
pub(crate) fn topic_within(narrow: &str, wide: &str) -> bool {
    match wide.strip_suffix(".*") {
        None => narrow == wide,
        Some(prefix) => {
            let base = narrow.strip_suffix(".*").unwrap_or(narrow);
            base.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.') || (rest.is_empty() && narrow != base))
        }
    }
}

/// A refusal to subscribe entirely inside a sensitive topic without the grant.
pub(crate) fn sensitive_subscription(
    grants: &[Grant],
    sensitive: &[String],
    pattern: &str,
) -> Result<(), String> {
    let Some(policy) = sensitive.iter().find(|s| topic_within(pattern, s)) else {
        return Ok(());
    };
    let granted = grant(grants, "sensitive_events")
        .is_some_and(|g| g.scope.iter().any(|e| topic_within(pattern, e)));
    if granted {
        Ok(())
    } else {
        Err(format!(
            "`{pattern}` is a sensitive topic (policy: `{policy}`); sensitive_events is not granted for it"
        ))
    }
}

/// Whether an event on `topic` may reach the plugin: not sensitive, or covered by its
/// `sensitive_events` grant.
pub(crate) fn may_receive(grants: &[Grant], sensitive: &[String], topic: &str) -> bool {
    !sensitive.iter().any(|s| topic_within(topic, s))
        || grant(grants, "sensitive_events")
            .is_some_and(|g| g.scope.iter().any(|e| topic_within(topic, e)))
}

/// What a file call needs.
#[derive(Clone, Copy)]
pub(crate) enum FileAccess {
    Read,
    Write,
}

/// Checks a path the way the broker does: absolute and normalised; `/data` always
/// allowed, anything else only under a covering `file_read` / `file_write` grant.
/// `Err((invalid, message))`: `invalid` is an argument error, else a denial.
pub(crate) fn check_path(
    grants: &[Grant],
    path: &str,
    access: FileAccess,
) -> Result<(), (bool, String)> {
    let normalised = path.starts_with('/')
        && (path == "/"
            || path[1..]
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".."));
    if !normalised {
        return Err((
            true,
            format!("`{path}` is not an absolute, normalised path (no `.`, `..`, empty components or trailing `/`)"),
        ));
    }
    if path == "/data" || path.starts_with("/data/") {
        return Ok(());
    }
    let permission = match access {
        FileAccess::Read => "file_read",
        FileAccess::Write => "file_write",
    };
    let covered =
        grant(grants, permission).is_some_and(|g| g.scope.iter().any(|e| entry_covers(e, path)));
    if covered {
        Ok(())
    } else {
        Err((
            false,
            format!("{permission} is not granted for `{path}` (paths outside /data need a grant whose scope covers them)"),
        ))
    }
}

/// A statement as the fake broker understands it: reading or writing, and its tables.
pub(crate) struct Statement {
    pub(crate) writes: bool,
    pub(crate) tables: Vec<String>,
}

/// Reads a statement's kind and the tables after `FROM`, `JOIN`, `INTO` and `UPDATE`.
/// Approximate by design: enough for the grant check, not an SQL parser.
pub(crate) fn parse_statement(sql: &str) -> Result<Statement, String> {
    let words: Vec<&str> = sql
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let first = words
        .first()
        .map(|w| w.to_ascii_uppercase())
        .unwrap_or_default();
    let writes = match first.as_str() {
        "SELECT" | "WITH" => false,
        "INSERT" | "UPDATE" | "DELETE" | "REPLACE" => true,
        _ => {
            return Err(format!(
                "`{first}` statements are refused (one SELECT, INSERT, UPDATE or DELETE per call)"
            ))
        }
    };
    let mut tables = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let keyword = words[i].to_ascii_uppercase();
        if matches!(keyword.as_str(), "FROM" | "JOIN" | "INTO" | "UPDATE") {
            // `FROM a, b`: a comma-separated list of tables.
            let mut j = i + 1;
            while let Some(word) = words.get(j) {
                for name in word.split(',').filter(|n| !n.is_empty()) {
                    let name = name.trim_matches(|c| matches!(c, '"' | '`' | '[' | ']'));
                    if !name.is_empty() && !tables.iter().any(|t| t == name) {
                        tables.push(name.to_string());
                    }
                }
                if word.ends_with(',') || words.get(j + 1).is_some_and(|w| w.starts_with(',')) {
                    j += 1;
                } else {
                    break;
                }
            }
            i = j;
        }
        i += 1;
    }
    Ok(Statement { writes, tables })
}

/// The denial for the first table the statement may not touch, if any. Reading a
/// table the plugin may write is allowed, as the real broker allows it.
pub(crate) fn check_tables(grants: &[Grant], statement: &Statement) -> Result<(), String> {
    for table in &statement.tables {
        let write = holds(grants, "database_write", table);
        if statement.writes && !write {
            return Err(format!("database_write is not granted for table `{table}`"));
        }
        if !statement.writes && !write && !holds(grants, "database_read", table) {
            return Err(format!(
                "database_read is not granted for table `{table}` (and the policy does not mark it public)"
            ));
        }
    }
    Ok(())
}

/// A URL's scheme, host and port (defaulted from the scheme).
pub(crate) fn host_port(url: &str) -> Result<(String, u16), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an absolute http(s) URL"))?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("`{url}`: only http and https are supported")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .map_err(|_| format!("`{url}` has an invalid port"))?,
        ),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// Whether a `network_outbound` entry (`host`, `host:port`, `*.domain`, optionally
/// `private:`) covers `host:port`; an entry without a port covers 80 and 443.
pub(crate) fn host_allowed(grants: &[Grant], host: &str, port: u16) -> bool {
    grant(grants, "network_outbound").is_some_and(|g| {
        g.scope.iter().any(|entry| {
            let entry = entry.strip_prefix("private:").unwrap_or(entry);
            let (entry_host, ports) = match entry.rsplit_once(':') {
                Some((h, p)) => (
                    h,
                    p.parse::<u16>().ok().map(|p| vec![p]).unwrap_or_default(),
                ),
                None => (entry, vec![80, 443]),
            };
            let host_ok = match entry_host.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => entry_host.eq_ignore_ascii_case(host),
            };
            host_ok && ports.contains(&port)
        })
    })
}

/// The name a host action's grant must cover: `target`, or `target:action`.
pub(crate) fn host_action_name(target: &str, action: &str) -> String {
    if action.is_empty() {
        target.to_string()
    } else {
        format!("{target}:{action}")
    }
}

/// Whether the `permission` grant covers the host action `name`.
pub(crate) fn host_action_allowed(grants: &[Grant], permission: &str, name: &str) -> bool {
    grant(grants, permission).is_some_and(|g| {
        g.scope.iter().any(
            |entry| match (entry.split_once(':'), name.split_once(':')) {
                (Some((et, ea)), Some((nt, na))) => ea == na && entry_covers(et, nt),
                (None, None) => entry_covers(entry, name),
                _ => false,
            },
        )
    })
}

/// The real broker's refusal of an uncovered host action.
pub(crate) fn host_action_denial(permission: &str, name: &str) -> String {
    if let Some((target, action)) = name.split_once(':') {
        format!(
            "{permission} is not granted for action `{action}` on `{target}` (a scope entry `{target}` covers the target with no action; `{target}:{action}` covers that action)"
        )
    } else {
        format!("{permission} is not granted for `{name}`")
    }
}

/// Whether an `execute_commands` entry allows `argv`: equal word for word, or a prefix
/// when the entry ends in ` ...`.
pub(crate) fn argv_allowed(grants: &[Grant], argv: &[String]) -> bool {
    grant(grants, "execute_commands").is_some_and(|g| {
        g.scope.iter().any(|entry| {
            let mut want: Vec<&str> = entry.split_whitespace().collect();
            let open = want.last() == Some(&"...");
            if open {
                want.pop();
                argv.len() >= want.len() && argv[..want.len()].iter().eq(want.iter())
            } else {
                argv.iter().eq(want.iter())
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(permission: &str, scope: &[&str]) -> Grant {
        Grant {
            permission: permission.into(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            expires_at_ms: 0,
        }
    }

    #[test]
    fn statements_name_their_tables() {
        let s = parse_statement("SELECT a FROM notes n JOIN users u ON n.u = u.id").unwrap();
        assert_eq!(
            (s.writes, s.tables),
            (false, vec!["notes".into(), "users".into()])
        );
        let s = parse_statement("insert into \"notes\"(text) values (?1)").unwrap();
        assert_eq!((s.writes, s.tables), (true, vec!["notes".into()]));
        let s = parse_statement("SELECT 1 FROM a, b WHERE 1").unwrap();
        assert_eq!(s.tables, vec!["a".to_string(), "b".to_string()]);
        assert!(parse_statement("PRAGMA table_info(x)").is_err());
    }

    #[test]
    fn tables_need_their_grant_and_writing_implies_reading() {
        let grants = [
            g("database_write", &["notes"]),
            g("database_read", &["messages"]),
        ];
        let read = |sql| check_tables(&grants, &parse_statement(sql).unwrap());
        assert!(read("SELECT * FROM notes").is_ok());
        assert!(read("SELECT * FROM messages").is_ok());
        assert!(read("DELETE FROM messages")
            .unwrap_err()
            .contains("database_write"));
        assert!(read("SELECT * FROM users").unwrap_err().contains("`users`"));
    }

    #[test]
    fn paths_hosts_actions_and_argv() {
        let grants = [
            g("file_read", &["/srv/shared"]),
            g(
                "network_outbound",
                &["api.example.com", "*.example.org", "h:8443"],
            ),
            g("user_management", &["ban_user", "warn_user:mute"]),
            g("execute_commands", &["/bin/echo ...", "/bin/true"]),
        ];
        assert!(check_path(&grants, "/data/x", FileAccess::Write).is_ok());
        assert!(check_path(&grants, "/srv/shared/a", FileAccess::Read).is_ok());
        assert!(check_path(&grants, "/srv/sharedx", FileAccess::Read).is_err());
        assert!(matches!(
            check_path(&grants, "/srv/shared/a", FileAccess::Write),
            Err((false, _))
        ));
        assert!(matches!(
            check_path(&grants, "/data/../etc", FileAccess::Read),
            Err((true, _))
        ));
        let hp = |u| host_port(u).unwrap();
        assert!(host_allowed(
            &grants,
            &hp("https://api.example.com/x").0,
            443
        ));
        assert!(!host_allowed(&grants, "api.example.com", 8080));
        assert!(host_allowed(&grants, "a.example.org", 80));
        assert_eq!(hp("http://h:8443/p?q"), ("h".to_string(), 8443));
        assert!(host_allowed(&grants, "h", 8443));
        assert!(host_action_allowed(&grants, "user_management", "ban_user"));
        assert!(host_action_allowed(
            &grants,
            "user_management",
            "warn_user:mute"
        ));
        assert!(!host_action_allowed(
            &grants,
            "user_management",
            "ban_user:delete"
        ));
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(argv_allowed(&grants, &argv(&["/bin/echo", "hi"])));
        assert!(argv_allowed(&grants, &argv(&["/bin/true"])));
        assert!(!argv_allowed(&grants, &argv(&["/bin/true", "x"])));
    }

    #[test]
    fn sensitive_topics_need_their_grant() {
        let sensitive: Vec<String> = DEFAULT_SENSITIVE_TOPICS
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(sensitive_subscription(&[], &sensitive, "chat.private.*").is_err());
        assert!(sensitive_subscription(&[], &sensitive, "chat.*").is_ok());
        assert!(!may_receive(&[], &sensitive, "chat.private.bob"));
        let grants = [g("sensitive_events", &["chat.private.*"])];
        assert!(sensitive_subscription(&grants, &sensitive, "chat.private.*").is_ok());
        assert!(may_receive(&grants, &sensitive, "chat.private.bob"));
    }
}
