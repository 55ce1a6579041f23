//! Test plugin for the broker's Files service: `read <path>`, `write <path>=<text>` and
//! `list <path>` answer with the result, or with `ERR <gRPC code>: <error>` when refused.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// Failures are answers, not command errors, so the test sees the broker's exact refusal.
fn answer(result: Result<String, SdkError>) -> Result<String, String> {
    Ok(result.unwrap_or_else(|e| match e.code() {
        Some(code) => format!("ERR {code:?}: {e}"),
        None => format!("ERR {e}"),
    }))
}

fn text_arg(args: Vec<u8>) -> Result<String, String> {
    String::from_utf8(args).map_err(|_| "arguments must be UTF-8".to_string())
}

async fn read(ctx: &PluginContext, path: &str) -> Result<String, SdkError> {
    let data = ctx.files().read(path).await?;
    Ok(String::from_utf8_lossy(&data).into_owned())
}

async fn write(ctx: &PluginContext, spec: &str) -> Result<String, SdkError> {
    let (path, text) = spec.split_once('=').unwrap_or((spec, ""));
    let size = ctx.files().write(path, text.as_bytes()).await?;
    Ok(size.to_string())
}

async fn list(ctx: &PluginContext, path: &str) -> Result<String, SdkError> {
    let entries = ctx.files().list(path).await?;
    Ok(entries
        .iter()
        .map(|e| format!("{} {:?} {}", e.name, e.kind, e.size))
        .collect::<Vec<_>>()
        .join("\n"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("read", |ctx: PluginContext, args: Vec<u8>| async move {
            answer(read(&ctx, &text_arg(args)?).await)
        })
        .on_command("write", |ctx: PluginContext, args: Vec<u8>| async move {
            answer(write(&ctx, &text_arg(args)?).await)
        })
        .on_command("list", |ctx: PluginContext, args: Vec<u8>| async move {
            answer(list(&ctx, &text_arg(args)?).await)
        })
        .run()
        .await
}
