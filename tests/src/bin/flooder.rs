//! Test plugin that floods its own stdout and stderr: `flood-output <bytes> <secs>`
//! starts a writer on each stream that keeps writing 1 KiB lines until it has written
//! at least `bytes` and `secs` have passed, then notes what it wrote in `flood.done`.

use std::io::Write;
use std::time::{Duration, Instant};

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// Writes 64 lines of 1 KiB per call to `out` until both minimums are met; the bytes
/// written.
fn flood(mut out: impl Write, bytes: u64, min: Duration) -> u64 {
    let line: Vec<u8> = [b'#'; 1023].iter().chain(b"\n").copied().collect();
    let block = line.repeat(64);
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < bytes || started.elapsed() < min {
        if out.write_all(&block).is_err() {
            break;
        }
        sent += block.len() as u64;
    }
    sent
}

fn start(bytes: u64, secs: u64) -> std::io::Result<()> {
    let data = std::env::var("PLEXICHAT_DATA_DIR").unwrap_or_else(|_| "/data".into());
    let _ = std::fs::remove_file(format!("{data}/flood.done"));
    let min = Duration::from_secs(secs);
    let started = Instant::now();
    let out =
        std::thread::Builder::new().spawn(move || flood(std::io::stdout().lock(), bytes, min))?;
    let err =
        std::thread::Builder::new().spawn(move || flood(std::io::stderr().lock(), bytes, min))?;
    std::thread::Builder::new().spawn(move || {
        let (o, e) = (out.join().unwrap_or(0), err.join().unwrap_or(0));
        let note = format!(
            "stdout={o} stderr={e} secs={:.3}\n",
            started.elapsed().as_secs_f64()
        );
        let _ = std::fs::write(format!("{data}/flood.done"), note);
    })?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command(
            "flood-output",
            |_ctx: PluginContext, args: Vec<u8>| async move {
                let args = String::from_utf8_lossy(&args).to_string();
                let mut it = args
                    .split_whitespace()
                    .map(|v| v.parse::<u64>().unwrap_or(0));
                let (bytes, secs) = (it.next().unwrap_or(1 << 30), it.next().unwrap_or(0));
                start(bytes, secs).map_err(|e| e.to_string())?;
                Ok::<String, String>("started".into())
            },
        )
        .run()
        .await
}
