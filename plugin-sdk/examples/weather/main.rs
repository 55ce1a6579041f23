//! The `weather` example plugin, for the network family: `weather <city>` asks a
//! weather API through the supervisor (the plugin has no network of its own), within a
//! `network_outbound` grant for `api.open-meteo.com`.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// The API's URL for `city`, reduced to letters and digits so the argument can never
/// add query parameters or change the path.
fn search_url(city: &str) -> String {
    let city: String = city.chars().filter(|c| c.is_alphanumeric()).collect();
    format!("https://api.open-meteo.com/v1/search?name={city}")
}

async fn weather(ctx: &PluginContext, city: &str) -> Result<String, SdkError> {
    let answer = ctx.http().get(&search_url(city)).await?;
    Ok(format!(
        "{} from {}: {}",
        answer.status,
        answer.url,
        String::from_utf8_lossy(&answer.body)
    ))
}

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
    Plugin::new().on_command("weather", |ctx: PluginContext, args: Vec<u8>| async move {
        match weather(&ctx, &String::from_utf8_lossy(&args)).await {
            Ok(text) => Ok::<String, String>(text),
            // Refusals say which host and port were not granted.
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

    const OSLO: &str = "https://api.open-meteo.com/v1/search?name=Oslo";

    fn approved() -> TestBroker {
        TestBroker::new("weather").grant("network_outbound", &["api.open-meteo.com:443"])
    }

    #[tokio::test]
    async fn answers_from_the_api() {
        let weather = approved()
            .http(OSLO, 200, r#"{"results":[{"name":"Oslo"}]}"#)
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            weather.invoke_text("weather", "Oslo").await.as_deref(),
            Ok(
                r#"200 from https://api.open-meteo.com/v1/search?name=Oslo: {"results":[{"name":"Oslo"}]}"#
            )
        );
        let calls = weather.http_calls();
        assert_eq!(
            (calls[0].method.as_str(), calls[0].url.as_str()),
            ("GET", OSLO)
        );
    }

    #[tokio::test]
    async fn a_city_cannot_smuggle_query_parameters() {
        let weather = approved()
            .http(OSLO, 200, "{}")
            .start(plugin())
            .await
            .expect("starts");
        assert!(weather.invoke_text("weather", "Os lo&x=1#").await.is_err());
        assert_eq!(
            weather.http_calls()[0].url,
            "https://api.open-meteo.com/v1/search?name=Oslox1"
        );
        // Punctuation is dropped, so this is just Oslo.
        assert!(weather.invoke_text("weather", "O/s?l=o").await.is_ok());
        assert_eq!(weather.http_calls()[1].url, OSLO);
    }

    #[tokio::test]
    async fn without_the_grant_the_broker_refuses_and_says_why() {
        let weather = TestBroker::new("weather")
            .http(OSLO, 200, "{}")
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            weather.invoke_text("weather", "Oslo").await.as_deref(),
            Ok("not allowed: broker call failed: PERMISSION_DENIED: network_outbound is not granted for `api.open-meteo.com:443`")
        );
        assert!(
            weather.http_calls().is_empty(),
            "a refused request goes nowhere"
        );
    }

    #[tokio::test]
    async fn an_api_error_status_is_still_an_answer() {
        let weather = approved()
            .http(OSLO, 503, "busy")
            .start(plugin())
            .await
            .expect("starts");
        let out = weather
            .invoke_text("weather", "Oslo")
            .await
            .expect("answered");
        assert!(out.starts_with("503 from "), "{out}");
    }
}
