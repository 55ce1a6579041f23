//! End to end: host actions go from a plugin through the broker's grant check to the
//! PlexiChat server's admin-API channel and back.

mod common;

use std::time::Duration;

use broker_proto::admin::v1::{HostActionCall, HostActionResult};
use common::*;
use tokio_stream::StreamExt;

const SECOND_ADMIN: u32 = 65534;

fn install(d: &Daemon) {
    let manifest = r#"name = "echo"
version = "1.0.0"
entry = "echo"

[[permissions]]
name = "user_management"
justification = "bans spammers it detects, warns others"
scope = ["ban_user:ban", "warn_user"]
"#;
    let pkg = d.package("echo", manifest, &bin("echo_plugin"), "echo");
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "echo", "--comment", "ban only"])
        .ok();
    d.cli_as(
        SECOND_ADMIN,
        &["plugin", "approve", "echo", "--comment", "agreed"],
    )
    .ok();
    d.cli(&["plugin", "enable", "echo"]).ok();
    d.wait_running("echo");
}

fn host(d: &Daemon, args: &str) -> String {
    d.cli(&["plugin", "invoke", "echo", "host", args])
        .ok()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn host_actions_reach_the_server_only_within_the_grant() {
    let d = Daemon::start_with(Settings {
        admin_uids: vec![0, SECOND_ADMIN],
        socket_mode: "0666",
        ..Settings::default()
    });
    install(&d);

    // No server connected: a clear UNAVAILABLE.
    let out = host(&d, "user_management ban_user ban spammer");
    assert!(
        out.starts_with("ERR Some(Unavailable)") && out.contains("no PlexiChat server"),
        "{out}"
    );

    // The server connects and executes what reaches it.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<HostActionCall>::new()));
    let log = seen.clone();
    let mut admin = rt.block_on(d.admin());
    let (results, rx) = tokio::sync::mpsc::channel::<HostActionResult>(16);
    let mut calls = rt
        .block_on(admin.serve_host_actions(tokio_stream::wrappers::ReceiverStream::new(rx)))
        .expect("server channel")
        .into_inner();
    rt.spawn(async move {
        while let Some(Ok(call)) = calls.next().await {
            log.lock().unwrap().push(call.clone());
            let ok = call.payload != b"vip";
            let _ = results
                .send(HostActionResult {
                    id: call.id,
                    ok,
                    result: format!("banned {}", String::from_utf8_lossy(&call.payload))
                        .into_bytes(),
                    error: "cannot ban a vip".into(),
                })
                .await;
        }
    });
    wait_until(Duration::from_secs(5), "server connected", || {
        d.audit_actions(None)
            .iter()
            .any(|(a, _)| a == "host_actions.connect")
    });

    assert_eq!(
        host(&d, "user_management ban_user ban spammer"),
        "banned spammer"
    );
    // The server's refusal comes back as such.
    let out = host(&d, "user_management ban_user ban vip");
    assert!(
        out.starts_with("ERR Some(Aborted)") && out.contains("cannot ban a vip"),
        "{out}"
    );
    // Outside the grant's scope, or another permission: refused by the broker; the
    // server never hears of it.
    let out = host(&d, "user_management delete_user delete spammer");
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("delete_user"),
        "{out}"
    );
    let out = host(&d, "system_config smtp.password set x");
    assert!(
        out.starts_with("ERR Some(PermissionDenied)") && out.contains("system_config"),
        "{out}"
    );
    let out = host(&d, "file_read /etc read x");
    assert!(out.starts_with("ERR Some(InvalidArgument)"), "{out}");

    // The grant covers the whole action: `warn_user` is the action `warn_user` and
    // nothing else, `ban_user:ban` that one action on `ban_user`.
    assert_eq!(
        host(&d, "user_management warn_user - spammer"),
        "banned spammer"
    );
    let out = host(&d, "user_management warn_user delete_account spammer");
    assert!(
        out.starts_with("ERR Some(PermissionDenied)")
            && out.contains("`delete_account`")
            && out.contains("`warn_user`"),
        "{out}"
    );
    let out = host(&d, "user_management ban_user - spammer");
    assert!(out.starts_with("ERR Some(PermissionDenied)"), "{out}");
    let calls = seen.lock().unwrap().clone();
    let reached: Vec<(&str, &str)> = calls
        .iter()
        .map(|c| (c.target.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(
        reached,
        [("ban_user", "ban"), ("ban_user", "ban"), ("warn_user", "")],
        "only what the grant covers reaches the server"
    );
    assert!(calls.iter().all(|c| c.plugin == "echo"));

    // Every call is audited, refusals as denied.
    let records: Vec<(String, String)> = d
        .audit_actions(Some("echo"))
        .into_iter()
        .filter(|(a, _)| a == "broker.host_action")
        .collect();
    let count = |o: &str| records.iter().filter(|(_, out)| out == o).count();
    assert_eq!(
        (count("ok"), count("denied"), count("failed")),
        (2, 4, 3),
        "{records:?}"
    );

    // Revocation: the next call is refused before it reaches the server.
    d.cli(&[
        "plugin",
        "revoke-permission",
        "user_management",
        "echo",
        "--comment",
        "done",
    ])
    .ok();
    let out = host(&d, "user_management ban_user ban spammer");
    assert!(out.starts_with("ERR Some(PermissionDenied)"), "{out}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}
