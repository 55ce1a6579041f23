//! The effective configuration: every key with the value in force after defaults,
//! as TOML that `Config::parse` reads back (what `--check-config` prints).

use super::Config;

/// `cfg` as TOML. Defaults the supervisor derives (the application database) are
/// written out; keys left unset are listed in a leading comment with their meaning.
pub fn render_effective(cfg: &Config) -> Result<String, toml::ser::Error> {
    let mut shown = cfg.clone();
    shown.broker.database = Some(cfg.app_database());
    let mut unset = Vec::new();
    if cfg.policy_dir.is_none() {
        unset.push("policy_dir: the built-in permission catalog and seccomp policy");
    }
    if cfg.access.socket_group.is_none() {
        unset.push("access.socket_group: the socket keeps the supervisor's group");
    }
    if cfg.monitor.prometheus_listen.is_none() {
        unset.push("monitor.prometheus_listen: no metrics endpoint");
    }
    let mut out = String::from("# Effective configuration (every value after defaults).\n");
    for line in unset {
        out.push_str(&format!("# unset {line}\n"));
    }
    out.push('\n');
    out.push_str(&toml::to_string(&shown)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Host, DEFAULT_CONFIG};
    use std::path::Path;

    fn host() -> Host {
        Host::with_accounts(&[("root", 0)], &[("root", 0), ("plexichat", 990)])
    }

    #[test]
    fn the_effective_config_lists_every_key_and_reads_back_the_same() {
        let cfg = Config::parse_on(DEFAULT_CONFIG, "x", Path::new("/srv/px"), &host()).unwrap();
        let text = render_effective(&cfg).unwrap();
        for key in [
            "state_dir = \"/srv/px/var/state\"",
            "socket_mode = \"0660\"",
            "health_interval = \"10s\"",
            "restart_backoff_initial = \"250ms\"",
            "quarantine_window = \"5m\"",
            "uid_base = 200000",
            "tmp_size = \"16MiB\"",
            "max_memory = \"512MiB\"",
            "cgroup_name = \"plexichat\"",
            "warm_trampolines = 2",
            "rate_per_sec = 500.0",
            "http_max_response_bytes = \"512KiB\"",
            "database = \"/srv/px/var/state/app.db\"",
            "[[alert]]",
            "kind = \"oom_kills\"",
            "keep = 50",
            "# unset policy_dir",
        ] {
            assert!(text.contains(key), "{key} missing from:\n{text}");
        }
        let again = Config::parse_on(&text, "effective", Path::new("/elsewhere"), &host())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(render_effective(&again).unwrap(), text, "a fixed point");
    }

    #[test]
    fn the_production_config_renders_its_group_and_endpoint() {
        let cfg = Config::parse_on(
            include_str!("../../../systemd/supervisor.toml"),
            "prod",
            Path::new("/"),
            &host(),
        )
        .unwrap();
        let text = render_effective(&cfg).unwrap();
        assert!(text.contains("socket_group = \"plexichat\""), "{text}");
        assert!(
            text.contains("prometheus_listen = \"127.0.0.1:9464\""),
            "{text}"
        );
        assert!(text.contains("groups = [\"plexichat-admin\"]"), "{text}");
        assert!(!text.contains("# unset"), "{text}");
        Config::parse_on(&text, "effective", Path::new("/"), &host()).unwrap();
    }
}
