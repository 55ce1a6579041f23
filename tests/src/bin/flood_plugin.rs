//! Test plugin on the SDK for the broker's byte and flood limits: `emit` sends many
//! events of a given size, `subscribe` asks for ever more topics, `burst` starts
//! thousands of calls at once, `long-path` makes a refusal quote a huge path; each
//! answers a JSON tally of the outcomes by gRPC code. It also subscribes to
//! `plugin.*`, counting what it receives (`received`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use plexichat_plugin_sdk::{Event, Plugin, PluginContext, SdkError};
use serde_json::{json, Value};

static RECEIVED: AtomicU64 = AtomicU64::new(0);
static RECEIVED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Outcomes by code, with the first message seen for each refusal.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<String, u64>,
    first: BTreeMap<String, String>,
}

impl Tally {
    fn add<T>(&mut self, result: &Result<T, SdkError>) {
        let code = match result {
            Ok(_) => "Ok".to_string(),
            Err(e) => e.code().map_or("Local".to_string(), |c| format!("{c:?}")),
        };
        if let Err(e) = result {
            self.first
                .entry(code.clone())
                .or_insert_with(|| e.to_string().chars().take(300).collect());
        }
        *self.counts.entry(code).or_default() += 1;
    }

    fn json(&self) -> Value {
        json!({ "counts": self.counts, "first": self.first })
    }
}

fn words(args: &[u8]) -> Vec<usize> {
    String::from_utf8_lossy(args)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// `emit <count> <bytes> <concurrency>`: `count` events of `bytes` each on
/// `plugin.<name>.flood`, at most `concurrency` at once.
async fn emit(ctx: PluginContext, args: Vec<u8>) -> Result<String, String> {
    let [count, bytes, concurrency] = words(&args)[..] else {
        return Err("args: <count> <bytes> <concurrency>".into());
    };
    let payload = Arc::new(vec![b'x'; bytes]);
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ctx, payload, tally, next) =
            (ctx.clone(), payload.clone(), tally.clone(), next.clone());
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < count as u64 {
                let r = ctx.emit("flood", &payload).await;
                if let Ok(mut t) = tally.lock() {
                    t.add(&r);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let t = tally.lock().map_err(|_| "poisoned")?;
    Ok(t.json().to_string())
}

/// `subscribe <count>`: subscribes `flood.t<i>` in calls of 64 until `count` are
/// asked for or the broker refuses; answers how many it holds and the refusal.
async fn subscribe(ctx: PluginContext, args: Vec<u8>) -> Result<String, String> {
    let [count] = words(&args)[..] else {
        return Err("args: <count>".into());
    };
    let mut held = 0;
    let mut asked = 0;
    let mut tally = Tally::default();
    while asked < count {
        let batch: Vec<String> = (asked..(asked + 64).min(count))
            .map(|i| format!("flood.t{i}"))
            .collect();
        let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
        let r = ctx.subscribe(&refs).await;
        tally.add(&r);
        match r {
            Ok(topics) => held = topics.len(),
            Err(_) => break,
        }
        asked += batch.len();
    }
    let mut out = tally.json();
    out["held"] = held.into();
    out["asked"] = asked.into();
    Ok(out.to_string())
}

/// `burst <count>`: `count` permission checks spawned at once.
async fn burst(ctx: PluginContext, args: Vec<u8>) -> Result<String, String> {
    let [count] = words(&args)[..] else {
        return Err("args: <count>".into());
    };
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let ctx = ctx.clone();
        tasks.spawn(async move { ctx.has_permission("file_read").await });
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(r) => tally.add(&r),
            Err(e) => tally.add::<()>(&Err(SdkError::Io(std::io::Error::other(e.to_string())))),
        }
    }
    let mut out = tally.json();
    out["elapsed_ms"] = (started.elapsed().as_millis() as u64).into();
    Ok(out.to_string())
}

/// `long-path <chars>`: a stat of a path of `chars` two-byte characters (refused,
/// quoting it), then an ordinary call on the same connection.
async fn long_path(ctx: PluginContext, args: Vec<u8>) -> Result<String, String> {
    let [chars] = words(&args)[..] else {
        return Err("args: <chars>".into());
    };
    let path = format!("/{}", "é".repeat(chars));
    let mut first = Tally::default();
    first.add(&ctx.files().stat(&path).await);
    let message_len = match ctx.files().stat(&path).await {
        Err(SdkError::Broker { message, .. }) => message.len(),
        _ => 0,
    };
    let mut next = Tally::default();
    next.add(&ctx.has_permission("file_read").await);
    Ok(
        json!({ "first": first.json(), "message_len": message_len, "next": next.json() })
            .to_string(),
    )
}

#[tokio::main]
async fn main() -> Result<(), SdkError> {
    Plugin::new()
        .on_event("plugin.*", |_ctx: PluginContext, event: Event| async move {
            RECEIVED.fetch_add(1, Ordering::SeqCst);
            RECEIVED_BYTES.fetch_add(event.payload.len() as u64, Ordering::SeqCst);
        })
        .on_command("emit", emit)
        .on_command("subscribe", subscribe)
        .on_command("burst", burst)
        .on_command("long-path", long_path)
        .on_command("received", |_ctx: PluginContext, _args: Vec<u8>| async {
            Ok::<String, String>(
                json!({
                    "events": RECEIVED.load(Ordering::SeqCst),
                    "bytes": RECEIVED_BYTES.load(Ordering::SeqCst),
                })
                .to_string(),
            )
        })
        .run()
        .await
}
