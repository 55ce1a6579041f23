//! The `archive` example plugin, for the file permission family: `save <text>` appends
//! to `/data/archive.log` (its own data directory, no permission needed), and `policy`
//! reads the operator's published policy from `/srv/plexichat/policy.txt`, which needs
//! a `file_read` grant covering that path.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

async fn save(ctx: &PluginContext, text: &str) -> Result<String, SdkError> {
    let files = ctx.files();
    let size = files
        .append("/data/archive.log", format!("{text}\n").as_bytes())
        .await?;
    Ok(format!("archive is {size} bytes"))
}

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
    Plugin::new()
        .on_command("save", |ctx: PluginContext, args: Vec<u8>| async move {
            let text = String::from_utf8_lossy(&args).to_string();
            Ok::<String, String>(save(&ctx, &text).await?)
        })
        .on_command("policy", |ctx: PluginContext, _args: Vec<u8>| async move {
            match ctx.files().read("/srv/plexichat/policy.txt").await {
                Ok(bytes) => Ok::<String, String>(String::from_utf8_lossy(&bytes).into_owned()),
                Err(e) if e.is_permission_denied() => Ok(format!("not allowed: {e}")),
                Err(e) => Err(e.to_string()),
            }
        })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    plugin().run().await
}

#[cfg(test)]
mod tests {
    use super::plugin;
    use plexichat_plugin_sdk::testing::TestBroker;

    const POLICY: &str = "/srv/plexichat/policy.txt";

    #[tokio::test]
    async fn saves_into_its_own_data_directory() {
        let archive = TestBroker::new("archive")
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            archive.invoke_text("save", "one").await.as_deref(),
            Ok("archive is 4 bytes")
        );
        assert_eq!(
            archive.invoke_text("save", "two").await.as_deref(),
            Ok("archive is 8 bytes")
        );
        assert_eq!(
            archive.file("/data/archive.log").as_deref(),
            Some(b"one\ntwo\n".as_slice())
        );
    }

    #[tokio::test]
    async fn reads_the_policy_only_with_its_grant() {
        let granted = TestBroker::new("archive")
            .grant("file_read", &[POLICY])
            .file(POLICY, "be kind")
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            granted.invoke_text("policy", "").await.as_deref(),
            Ok("be kind")
        );

        let denied = TestBroker::new("archive")
            .file(POLICY, "be kind")
            .start(plugin())
            .await
            .expect("starts");
        let out = denied.invoke_text("policy", "").await.expect("answered");
        assert!(
            out.contains(
                "PERMISSION_DENIED: file_read is not granted for `/srv/plexichat/policy.txt`"
            ),
            "{out}"
        );

        let missing = TestBroker::new("archive")
            .grant("file_read", &[POLICY])
            .start(plugin())
            .await
            .expect("starts");
        let err = missing
            .invoke_text("policy", "")
            .await
            .expect_err("no such file");
        assert!(err.contains("NOT_FOUND"), "{err}");
    }
}
