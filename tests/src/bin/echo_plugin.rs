//! Well-behaved test plugin built on the SDK: `echo` returns its args unchanged and
//! `has-permission` reports a live permission check, as a baseline for the suites.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("echo", |_ctx: PluginContext, args: Vec<u8>| async move {
            Ok::<Vec<u8>, String>(args)
        })
        .on_command(
            "has-permission",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let permission = String::from_utf8(args)
                    .map_err(|_| "the permission name must be UTF-8".to_string())?;
                let granted = ctx.has_permission(permission.trim()).await?;
                Ok::<String, String>(granted.to_string())
            },
        )
        .run()
        .await
}
