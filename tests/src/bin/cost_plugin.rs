//! Test plugin for what broker calls cost: `flood N` starts N concurrent loops of a
//! statement that runs until its time limit (`flood-stop` answers how each call was
//! answered), and `latency N` times N rounds of a data-dir `stat` and a permission
//! check, the calls a bystander makes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// Counts to infinity: only the statement time limit stops it, so each call costs the
/// supervisor a full `db_statement_time` of CPU.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

static TALLY: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
static STOP: AtomicBool = AtomicBool::new(false);

fn outcome<T>(r: &Result<T, SdkError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("{:?}", e.code()),
    }
}

fn flood(ctx: &PluginContext, n: usize) -> String {
    STOP.store(false, Ordering::SeqCst);
    for _ in 0..n {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while !STOP.load(Ordering::SeqCst) {
                let r = ctx.db().query(ENDLESS, Vec::new()).await;
                if let Ok(mut t) = TALLY.lock() {
                    *t.entry(outcome(&r)).or_default() += 1;
                }
                // Refused or not, straight back in: a hostile plugin does not back off.
            }
        });
    }
    "started".into()
}

async fn flood_stop() -> Result<String, String> {
    STOP.store(true, Ordering::SeqCst);
    let t = TALLY.lock().map_err(|_| "poisoned".to_string())?;
    serde_json::to_string(&*t).map_err(|e| e.to_string())
}

async fn latency(ctx: &PluginContext, n: usize, mode: &str) -> Result<String, String> {
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        if mode != "perm" {
            ctx.files().stat("/data").await.map_err(|e| e.to_string())?;
        }
        if mode != "stat" {
            ctx.has_permission("file_read")
                .await
                .map_err(|e| e.to_string())?;
        }
        took.push(t.elapsed().as_micros() as u64);
    }
    took.sort_unstable();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)];
    Ok(serde_json::json!({ "p50_us": at(0.5), "p99_us": at(0.99), "max_us": at(1.0) }).to_string())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("flood", |ctx: PluginContext, args: Vec<u8>| async move {
            let n = String::from_utf8_lossy(&args).trim().parse().unwrap_or(100);
            Ok::<String, String>(flood(&ctx, n))
        })
        .on_command(
            "flood-stop",
            |_ctx: PluginContext, _args: Vec<u8>| async move { flood_stop().await },
        )
        .on_command("latency", |ctx: PluginContext, args: Vec<u8>| async move {
            let args = String::from_utf8_lossy(&args).to_string();
            let mut words = args.split_whitespace();
            let n = words.next().and_then(|w| w.parse().ok()).unwrap_or(200);
            latency(&ctx, n, words.next().unwrap_or("both")).await
        })
        .run()
        .await
}
