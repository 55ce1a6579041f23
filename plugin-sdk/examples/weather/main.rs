//! The `weather` example plugin, for the network family: `weather <city>` asks a
//! weather API through the supervisor (the plugin has no network of its own), within a
//! `network_outbound` grant for `api.open-meteo.com`.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

async fn weather(ctx: &PluginContext, city: &str) -> Result<String, SdkError> {
    let url = format!("https://api.open-meteo.com/v1/search?name={city}");
    let answer = ctx.http().get(&url).await?;
    Ok(format!(
        "{} from {}: {}",
        answer.status,
        answer.url,
        String::from_utf8_lossy(&answer.body)
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("weather", |ctx: PluginContext, args: Vec<u8>| async move {
            let city: String = String::from_utf8_lossy(&args)
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect();
            match weather(&ctx, &city).await {
                Ok(text) => Ok::<String, String>(text),
                // Refusals say which host and port were not granted.
                Err(e) if e.is_permission_denied() => Ok(format!("not allowed: {e}")),
                Err(e) => Err(e.to_string()),
            }
        })
        .run()
        .await
}
