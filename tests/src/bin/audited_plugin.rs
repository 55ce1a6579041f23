//! Test plugin built with `cargo auditable` (`make auditable` puts it in
//! `target/auditable/`), so its binary embeds this crate's dependency list.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("ping", |_ctx: PluginContext, _args: Vec<u8>| async {
            Ok::<String, String>("pong".to_string())
        })
        .run()
        .await
}
