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

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
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
        .run()
        .await
}
