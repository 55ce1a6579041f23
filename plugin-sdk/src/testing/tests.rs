//! The harness's own behaviour beyond what the examples use: files outside `/data`,
//! sensitive events behind a wide subscription, the shutdown hook, and waits that end.

use std::time::Duration;

use super::{EventFailure, TestBroker};
use crate::{Event, Plugin, PluginContext};

#[tokio::test]
async fn files_follow_data_and_the_grants_scope() {
    let running = TestBroker::new("t")
        .grant("file_read", &["/srv/shared"])
        .file("/srv/shared/a.txt", "A")
        .start(Plugin::new())
        .await
        .expect("starts");
    let files = running.ctx().files();
    files.mkdir("/data/sub").await.expect("mkdir in /data");
    files
        .write("/data/sub/x", b"xx")
        .await
        .expect("write in /data");
    let listed = files.list("/data").await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.name.as_str(), e.kind))
            .collect::<Vec<_>>(),
        [("sub", crate::FileKind::Dir)]
    );
    assert_eq!(
        files.read("/srv/shared/a.txt").await.expect("granted"),
        b"A"
    );
    let denied = files
        .write("/srv/shared/a.txt", b"B")
        .await
        .expect_err("read-only grant");
    assert!(
        denied.is_permission_denied() && denied.to_string().contains("file_write"),
        "{denied}"
    );
    let invalid = files
        .read("/data/../etc/passwd")
        .await
        .expect_err("not normalised");
    assert!(invalid.is_invalid_argument(), "{invalid}");
    let missing = files.stat("/data/nope").await.expect_err("missing");
    assert!(missing.is_not_found(), "{missing}");
    let busy = files.remove("/data/sub").await.expect_err("not empty");
    assert!(busy.to_string().contains("not empty"), "{busy}");
    assert_eq!(
        running.file("/srv/shared/a.txt").as_deref(),
        Some(b"A".as_slice())
    );
}

fn wide_listener() -> Plugin {
    Plugin::new().on_event("chat.*", |ctx: PluginContext, event: Event| async move {
        ctx.emit("seen", event.topic.as_bytes()).await?;
        Ok::<(), crate::SdkError>(())
    })
}

#[tokio::test]
async fn a_wide_subscription_gets_sensitive_events_only_with_the_grant() {
    let plain = TestBroker::new("t")
        .start(wide_listener())
        .await
        .expect("starts");
    plain.event("chat.message", "hi").await.expect("delivered");
    let held = plain.event("chat.private.bob", "psst").await;
    assert!(
        matches!(&held, Err(EventFailure::NotDelivered(why)) if why.contains("sensitive")),
        "{held:?}"
    );
    assert_eq!(plain.emitted().len(), 1);

    let granted = TestBroker::new("t")
        .grant("sensitive_events", &["chat.private.*"])
        .start(wide_listener())
        .await
        .expect("starts");
    granted
        .event("chat.private.bob", "psst")
        .await
        .expect("delivered");
    assert_eq!(granted.emitted()[0].payload, b"chat.private.bob");
    assert_eq!(granted.emitted()[0].source, "plugin:t");
}

#[tokio::test]
async fn shutdown_runs_the_hook_and_waits_end() {
    let plugin = Plugin::new()
        .on_command("stuck", |_ctx, _args| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<Vec<u8>, String>(Vec::new())
        })
        .on_event("chat.message", |_ctx, _event| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        })
        .on_shutdown(|ctx: PluginContext| async move { ctx.info("bye").await });
    let running = TestBroker::new("t")
        .wait(Duration::from_millis(300))
        .start(plugin)
        .await
        .expect("starts");
    let err = running.invoke("stuck", b"").await.expect_err("no reply");
    assert!(err.contains("no reply to `stuck`"), "{err}");
    let slow = running.event("chat.message", "").await;
    assert_eq!(slow, Err(EventFailure::TimedOut));
    let logs = {
        let shared = running.shared.clone();
        running.shutdown().await.expect("clean end");
        let logs = shared.state().logs.clone();
        logs
    };
    assert_eq!(logs.last().map(|l| l.message.as_str()), Some("bye"));
}

#[tokio::test]
async fn an_invalid_plugin_does_not_start() {
    let err = TestBroker::new("t")
        .start(Plugin::new().on_event("chat*", |_ctx, _event| async {}))
        .await
        .expect_err("invalid");
    assert!(matches!(err, crate::SdkError::InvalidPlugin(_)), "{err}");
}

/// The guarantee that plugins never see tonic or the generated wire types: no public
/// item in the SDK's source names them.
#[test]
fn no_public_item_names_tonic_or_wire_types() {
    let sources = [
        include_str!("../commands.rs"),
        include_str!("../connection.rs"),
        include_str!("../context.rs"),
        include_str!("../db.rs"),
        include_str!("../error.rs"),
        include_str!("../event.rs"),
        include_str!("../files.rs"),
        include_str!("../host.rs"),
        include_str!("../http.rs"),
        include_str!("../lib.rs"),
        include_str!("../plugin.rs"),
        include_str!("mod.rs"),
    ];
    for source in sources {
        let mut lines = source.lines().map(str::trim_start);
        while let Some(line) = lines.next() {
            if !(line.starts_with("pub ") || line.starts_with("impl")) {
                continue;
            }
            // The whole signature: up to the body, the end of the item or of the field.
            let mut signature = line.to_string();
            while !signature.contains('{') && !signature.contains(';') && !signature.ends_with(',')
            {
                match lines.next() {
                    Some(next) => signature.push_str(next),
                    None => break,
                }
            }
            let wire = ["tonic", "pb::", "broker_proto"];
            assert!(
                !wire.iter().any(|t| signature.contains(t)),
                "a public item names a wire type: {signature}"
            );
        }
    }
}
