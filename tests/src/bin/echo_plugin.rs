//! Well-behaved test plugin built on the SDK: `echo` returns its args unchanged,
//! `has-permission` reports a live permission check, `flood` hammers the broker to
//! meet its rate limit, and `freeze` wedges the whole (single-threaded) runtime so
//! health checks have something to catch.

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
        .on_command("flood", |ctx: PluginContext, args: Vec<u8>| async move {
            // As fast as it can: how many config reads pass the broker's rate limit.
            let n: u32 = String::from_utf8_lossy(&args).trim().parse().unwrap_or(100);
            let (mut ok, mut limited) = (0u32, 0u32);
            for _ in 0..n {
                match ctx.config_get("flood").await {
                    Ok(_) => ok += 1,
                    Err(e) if e.is_resource_exhausted() => limited += 1,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok::<String, String>(format!("ok={ok} limited={limited}"))
        })
        .on_command("freeze", |_ctx: PluginContext, _args: Vec<u8>| async move {
            // Blocks the only runtime thread: no more pongs, no more replies.
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok::<Vec<u8>, String>(Vec::new())
        })
        .run()
        .await
}
