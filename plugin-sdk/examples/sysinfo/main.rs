//! The `sysinfo` example plugin, for the commands family: `kernel` runs
//! `/usr/bin/uname -sr`, exactly the argv its `execute_commands` grant names; the
//! supervisor runs it confined like the plugin and returns its output.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// The plugin's handlers; `main` runs them under the supervisor, the tests under
/// the SDK's test broker.
fn plugin() -> Plugin {
    Plugin::new().on_command("kernel", |ctx: PluginContext, _args: Vec<u8>| async move {
        let out = ctx.commands().run(&["/usr/bin/uname", "-sr"]).await?;
        match out.exit_code {
            Some(0) => {
                Ok::<String, String>(String::from_utf8_lossy(&out.stdout).trim().to_string())
            }
            _ => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
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
    use plexichat_plugin_sdk::CommandOutput;

    const UNAME: &[&str] = &["/usr/bin/uname", "-sr"];

    #[tokio::test]
    async fn reports_the_kernel_and_refuses_without_the_grant() {
        let output = CommandOutput {
            exit_code: Some(0),
            stdout: b"Linux 6.1.0\n".to_vec(),
            ..CommandOutput::default()
        };
        let sysinfo = TestBroker::new("sysinfo")
            .grant("execute_commands", &["/usr/bin/uname -sr"])
            .command_output(UNAME, Ok(output.clone()))
            .start(plugin())
            .await
            .expect("starts");
        assert_eq!(
            sysinfo.invoke_text("kernel", "").await.as_deref(),
            Ok("Linux 6.1.0")
        );
        assert_eq!(
            sysinfo.command_calls(),
            [UNAME.iter().map(|a| a.to_string()).collect::<Vec<_>>()]
        );

        let denied = TestBroker::new("sysinfo")
            .command_output(UNAME, Ok(output))
            .start(plugin())
            .await
            .expect("starts");
        let err = denied.invoke_text("kernel", "").await.expect_err("refused");
        assert!(
            err.contains("PERMISSION_DENIED: execute_commands is not granted"),
            "{err}"
        );
        assert!(denied.command_calls().is_empty());
    }
}
