//! The `sysinfo` example plugin, for the commands family: `kernel` runs
//! `/usr/bin/uname -sr`, exactly the argv its `execute_commands` grant names; the
//! supervisor runs it confined like the plugin and returns its output.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("kernel", |ctx: PluginContext, _args: Vec<u8>| async move {
            let out = ctx.commands().run(&["/usr/bin/uname", "-sr"]).await?;
            match out.exit_code {
                Some(0) => {
                    Ok::<String, String>(String::from_utf8_lossy(&out.stdout).trim().to_string())
                }
                _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
            }
        })
        .run()
        .await
}
