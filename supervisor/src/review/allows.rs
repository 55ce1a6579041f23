//! A permission request in plain words: the catalog's description, then what the
//! scope entries let the plugin reach, by scope shape.

use crate::catalog::{PermissionSpec, ScopeShape};

/// What approving `spec` with `scope` lets the plugin do.
pub fn allows(spec: &PermissionSpec, scope: &[String]) -> String {
    let what = spec.description.trim_end_matches('.');
    if scope.is_empty() {
        return format!("{what}, with no scope: nothing can be reached until a scope is granted");
    }
    let reach: Vec<String> = scope.iter().map(|e| entry(spec.scope, e)).collect();
    format!("{what}: {}", reach.join("; "))
}

fn entry(shape: ScopeShape, e: &str) -> String {
    match shape {
        ScopeShape::Paths if e == "/" => {
            "every file on the host the broker can open (the whole filesystem)".into()
        }
        ScopeShape::Paths => format!("{e} and everything below it"),
        ScopeShape::Hosts => host(e),
        ScopeShape::Tables => format!("every row of table `{e}`"),
        ScopeShape::Keys => match e.strip_suffix(".*") {
            Some(prefix) => format!("every config key under `{prefix}.`"),
            None => format!("config key `{e}`"),
        },
        ScopeShape::Actions => format!("host action `{e}`"),
        ScopeShape::Plugins => format!("plugin `{e}`"),
        ScopeShape::Commands => match e.strip_suffix(" ...") {
            Some(prefix) => format!("`{prefix}` followed by ANY arguments"),
            None => format!("exactly `{e}`"),
        },
        ScopeShape::Topics => match e.strip_suffix(".*") {
            Some(prefix) => format!("every event topic under `{prefix}.`"),
            None => format!("event topic `{e}`"),
        },
    }
}

fn host(e: &str) -> String {
    let (name, port) = match e.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (e, None),
    };
    let who = match name.strip_prefix("*.") {
        Some(domain) => format!("any host under {domain}"),
        None => name.to_string(),
    };
    match port {
        Some(p) => format!("{who} on port {p}"),
        None => format!("{who} on ports 80 and 443"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Permission;

    #[test]
    fn each_shape_reads_as_what_it_reaches() {
        let catalog = crate::catalog::Catalog::parse(
            include_str!("../../../policies/permissions.toml"),
            "test",
        )
        .unwrap();
        let say = |p: &str, scope: &[&str]| {
            let perm: Permission = p.parse().unwrap();
            allows(
                catalog.spec(perm),
                &scope.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            say("file_write", &["/srv/reports"]),
            "Write files outside the plugin data directory: /srv/reports and everything below it"
        );
        assert!(say(
            "network_outbound",
            &["*.example.com:8443", "api.example.org"]
        )
        .contains("any host under example.com on port 8443; api.example.org on ports 80 and 443"));
        assert!(
            say("execute_commands", &["/usr/bin/convert -resize ..."]).contains("ANY arguments")
        );
        assert!(say("database_read", &[]).contains("nothing can be reached"));
        assert!(say("file_read", &["/"]).contains("whole filesystem"));
    }
}
