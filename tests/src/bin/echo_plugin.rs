//! Well-behaved test plugin built on the SDK: `echo` returns its args unchanged,
//! `has-permission` reports a live permission check, `deny-flood` mixes allowed and
//! refused calls for the audit crash test, `host` makes a host action, `http` a GET, `exec` runs a command, `bench-calls` times permission checks for
//! `make bench-broker`, `flood` hammers the broker to
//! meet its rate limit, and `freeze` wedges the whole (single-threaded) runtime so
//! health checks have something to catch.

use plexichat_plugin_sdk::{Plugin, PluginContext, SdkError};

/// Answers the plugin was given during `fault-load`, by call and outcome
/// (`config_get:ok`, `file_read:denied`, `has_permission:Unavailable`...), kept in
/// memory: on a full disk the plugin has nowhere else to keep them.
static TALLY: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
static STOP_LOAD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn tally<T>(call: &str, result: &Result<T, SdkError>) {
    let outcome = match result {
        Ok(_) => "ok".to_string(),
        Err(e) if e.is_permission_denied() => "denied".to_string(),
        Err(e) => format!("{:?}", e.code()),
    };
    if let Ok(mut t) = TALLY.lock() {
        *t.entry(format!("{call}:{outcome}")).or_default() += 1;
    }
}

/// Four background loops of two allowed calls and one refused call until
/// `fault-stop`, which answers the tally as JSON.
fn fault_load(ctx: &PluginContext) -> String {
    use std::sync::atomic::Ordering;
    STOP_LOAD.store(false, Ordering::SeqCst);
    for t in 0..4 {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !STOP_LOAD.load(Ordering::SeqCst) {
                let r = ctx.has_permission("file_read").await;
                tally("has_permission", &r);
                let r = ctx.config_get("fault").await;
                tally("config_get", &r);
                let r = ctx.files().read(&format!("/denied/{t}/{i}")).await;
                tally("file_read", &r);
                if r.as_ref().is_err_and(|e| e.is_unavailable()) {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                i += 1;
            }
        });
    }
    "started".into()
}

async fn fault_stop() -> Result<String, String> {
    STOP_LOAD.store(true, std::sync::atomic::Ordering::SeqCst);
    // Let the loops finish the calls they are in.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let t = TALLY.lock().map_err(|_| "poisoned".to_string())?;
    serde_json::to_string(&*t).map_err(|e| e.to_string())
}

/// Eight concurrent loops of an allowed call and a refused one (a file outside /data,
/// without a grant). Each refusal the plugin was answered is written, by its unique
/// path, to `denied.log` in the data dir directly: the evidence a crash test checks
/// against the supervisor's audit trail.
async fn deny_flood(ctx: PluginContext, n: u32) -> Result<String, String> {
    use std::io::Write;
    let data = std::env::var("PLEXICHAT_DATA_DIR").unwrap_or_else(|_| "/data".into());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(format!("{data}/denied.log"))
        .map_err(|e| e.to_string())?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (ctx, log) = (ctx.clone(), log.clone());
        tasks.spawn(async move {
            for i in 0..n {
                ctx.has_permission("file_read")
                    .await
                    .map_err(|e| e.to_string())?;
                let path = format!("/denied/{t}/{i}");
                match ctx.files().read(&path).await {
                    Err(e) if e.is_permission_denied() => {
                        let mut f = log.lock().map_err(|_| "poisoned".to_string())?;
                        writeln!(f, "{path}").map_err(|e| e.to_string())?;
                    }
                    other => return Err(format!("{path}: expected a refusal, got {other:?}")),
                }
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok(format!("denied={}", 8 * n))
}

/// `calls` permission checks (`has_permission`, a checked and audited no-op) with
/// `in_flight` outstanding at a time; answers latency percentiles and throughput as
/// JSON for `make bench-broker`.
async fn bench_calls(ctx: PluginContext, calls: usize, in_flight: usize) -> Result<String, String> {
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let per_task = calls / in_flight;
    for _ in 0..in_flight {
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let t = std::time::Instant::now();
                ctx.has_permission("file_read")
                    .await
                    .map_err(|e| e.to_string())?;
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            Ok::<Vec<f64>, String>(lat)
        });
    }
    let mut lat = Vec::with_capacity(calls);
    while let Some(done) = tasks.join_next().await {
        lat.extend(done.map_err(|e| e.to_string())??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Ok(format!(
        r#"{{"calls":{},"p50_us":{},"p99_us":{},"per_sec":{}}}"#,
        lat.len(),
        at(0.5),
        at(0.99),
        lat.len() as f64 / secs
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_command("echo", |_ctx: PluginContext, args: Vec<u8>| async move {
            Ok::<Vec<u8>, String>(args)
        })
        .on_command(
            "has-permission",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let permission = String::from_utf8(args)
                    .map_err(|_| "the permission name must be UTF-8".to_string())?;
                let granted = ctx.has_permission(permission.trim()).await?;
                Ok::<String, String>(granted.to_string())
            },
        )
        .on_command("flood", |ctx: PluginContext, args: Vec<u8>| async move {
            // As fast as it can: how many config reads pass the broker's rate limit.
            let n: u32 = String::from_utf8_lossy(&args).trim().parse().unwrap_or(100);
            let (mut ok, mut limited) = (0u32, 0u32);
            for _ in 0..n {
                match ctx.config_get("flood").await {
                    Ok(_) => ok += 1,
                    Err(e) if e.is_resource_exhausted() => limited += 1,
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok::<String, String>(format!("ok={ok} limited={limited}"))
        })
        .on_command("log", |ctx: PluginContext, args: Vec<u8>| async move {
            // `{"message": "...", "fields": [["key", "value"], ...]}` through ctx.log.
            let v: serde_json::Value = serde_json::from_slice(&args).map_err(|e| e.to_string())?;
            let message = v["message"].as_str().unwrap_or_default();
            let fields: Vec<(String, String)> =
                serde_json::from_value(v["fields"].clone()).map_err(|e| e.to_string())?;
            let fields: Vec<(&str, &str)> =
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            ctx.log_with_fields(plexichat_plugin_sdk::LogLevel::Info, message, &fields)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<String, String>("logged".into())
        })
        .on_command("say", |_ctx: PluginContext, args: Vec<u8>| async move {
            // Raw bytes to stdout, as a plugin's own prints are.
            use std::io::Write;
            let mut out = std::io::stdout();
            out.write_all(&args).and_then(|()| out.flush()).map_err(|e| e.to_string())?;
            Ok::<String, String>("said".into())
        })
        .on_command("fault-load", |ctx: PluginContext, _args: Vec<u8>| async move {
            Ok::<String, String>(fault_load(&ctx))
        })
        .on_command("fault-stop", |_ctx: PluginContext, _args: Vec<u8>| async move {
            fault_stop().await
        })
        .on_command(
            "deny-flood",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let n: u32 = String::from_utf8_lossy(&args).trim().parse().unwrap_or(100);
                deny_flood(ctx, n).await
            },
        )
        .on_command(
            "bench-calls",
            |ctx: PluginContext, args: Vec<u8>| async move {
                let args = String::from_utf8_lossy(&args).to_string();
                let mut it = args
                    .split_whitespace()
                    .map(|v| v.parse::<usize>().unwrap_or(1));
                let (calls, in_flight) = (it.next().unwrap_or(1000), it.next().unwrap_or(1));
                bench_calls(ctx, calls, in_flight.max(1)).await
            },
        )
        .on_command("host", |ctx: PluginContext, args: Vec<u8>| async move {
            // `<permission> <target> <action> <payload>` (`-` for no action); a refusal
            // is an answer too.
            let args = String::from_utf8_lossy(&args).to_string();
            let parts: Vec<&str> = args.splitn(4, ' ').collect();
            let [permission, target, action, payload] = parts[..] else {
                return Err("args: <permission> <target> <action> <payload>".to_string());
            };
            let action = if action == "-" { "" } else { action };
            Ok::<String, String>(
                match ctx
                    .host()
                    .call(permission, target, action, payload.as_bytes())
                    .await
                {
                    Ok(result) => String::from_utf8_lossy(&result).into_owned(),
                    Err(e) => format!("ERR {:?}: {e}", e.code()),
                },
            )
        })
        .on_command("http", |ctx: PluginContext, args: Vec<u8>| async move {
            // `<url>`: a GET; the answer is `<status> <final url> <body>`, or the refusal.
            let url = String::from_utf8_lossy(&args).trim().to_string();
            Ok::<String, String>(match ctx.http().get(&url).await {
                Ok(r) => format!(
                    "{} {} {}",
                    r.status,
                    r.url,
                    String::from_utf8_lossy(&r.body)
                ),
                Err(e) => format!("ERR {:?}: {e}", e.code()),
            })
        })
        .on_command("exec", |ctx: PluginContext, args: Vec<u8>| async move {
            // A JSON argv; answers the exit, the output sizes and their starts.
            let argv: Vec<String> = serde_json::from_slice(&args).map_err(|e| e.to_string())?;
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            Ok::<String, String>(match ctx.commands().run(&argv).await {
                Ok(o) => format!(
                    "exit={:?} signal={:?} truncated={} bytes={} stdout={} stderr={}",
                    o.exit_code,
                    o.signal,
                    o.truncated,
                    o.stdout.len(),
                    String::from_utf8_lossy(&o.stdout[..o.stdout.len().min(200)]).trim(),
                    String::from_utf8_lossy(&o.stderr[..o.stderr.len().min(200)]).trim(),
                ),
                Err(e) => format!("ERR {:?}: {e}", e.code()),
            })
        })
        .on_command("freeze", |_ctx: PluginContext, _args: Vec<u8>| async move {
            // Blocks the only runtime thread: no more pongs, no more replies.
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok::<Vec<u8>, String>(Vec::new())
        })
        .run()
        .await
}
