//! Hostile test plugin for the audit caps: `flood <rounds> <bytes>` makes `rounds`
//! rounds of five brokered calls, each carrying a `bytes`-long argument (a
//! `has_permission` scope, a host-action target, an `execute` argv, an HTTP path and
//! a file path), and answers the gRPC codes it got as JSON (`{"codes": {"Ok": n, ...}, "errors":
//! {code: first message}}`).

use std::collections::BTreeMap;

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// The call's gRPC code, and its error message (shortened) if it failed.
fn code<T>(r: &Result<T, SdkError>) -> (String, String) {
    match r {
        Ok(_) => ("Ok".into(), String::new()),
        Err(e) => (
            format!("{:?}", e.code()),
            e.to_string().chars().take(300).collect(),
        ),
    }
}

async fn flood(ctx: &PluginContext, rounds: usize, bytes: usize) -> serde_json::Value {
    let big = "a".repeat(bytes);
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..rounds {
        // Each round's arguments differ, so no two records are alike.
        let arg = format!("{i:06}{big}");
        let results = [
            code(
                &ctx.has_permission_for("file_read", &format!("/{arg}"))
                    .await,
            ),
            code(&ctx.host().act("user_management", &arg, b"").await),
            code(&ctx.commands().run(&["/bin/echo", &arg]).await),
            code(&ctx.http().get(&format!("http://example.com/{arg}")).await),
            code(&ctx.files().stat(&format!("/srv/{arg}")).await),
        ];
        for (c, first_error) in results {
            if !first_error.is_empty() {
                errors.entry(c.clone()).or_insert(first_error);
            }
            *codes.entry(c).or_default() += 1;
        }
    }
    serde_json::json!({ "codes": codes, "errors": errors })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("flood", |ctx: PluginContext, args: Vec<u8>| async move {
            let args = String::from_utf8_lossy(&args).to_string();
            let mut it = args.split_whitespace().map(|v| v.parse::<usize>());
            let (Some(Ok(rounds)), Some(Ok(bytes))) = (it.next(), it.next()) else {
                return Err("args: <rounds> <bytes>".to_string());
            };
            Ok::<String, String>(flood(&ctx, rounds, bytes).await.to_string())
        })
        .run()
        .await
}
