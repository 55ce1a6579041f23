//! `make bench-broker`: a permission-checked, audited no-op broker call
//! (`has_permission` from a confined SDK plugin), with 1 and 64 calls in flight, side
//! by side in the same run with a raw socketpair round trip and a bare tonic echo over
//! a socketpair; then the audit writer alone; then the same call from the Python SDK
//! beside a bare grpclib echo in Python over a socketpair, measured by the confined
//! Python plugin itself (plugin-sdk-python/bench).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::{AuditQuery, EnablePluginRequest, InvokeCommandRequest};
use plexichat_bench::{python_config, python_package, release_dir, stats, Daemon, Stats};

mod echo {
    tonic::include_proto!("plexichat.bench.v1");
}
use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::EchoMessage;

const CALLS: usize = 20_000;
const WARMUP: usize = 1_000;
const AUDIT_RECORDS: usize = 300_000;
/// Python calls are ~10x slower: fewer keep the bench short.
const PYTHON_CALLS: usize = 2_000;

/// One measured configuration: latency percentiles (µs) and calls per second.
struct Figure {
    lat: Stats,
    per_sec: f64,
}

fn raw_socketpair(rounds: usize) -> Result<Figure> {
    let (mut a, mut b) = StdUnixStream::pair()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = [0u8; 32];
        loop {
            if b.read_exact(&mut buf).is_err() {
                return Ok(());
            }
            b.write_all(&buf)?;
        }
    });
    let mut lat = Vec::with_capacity(rounds);
    let mut buf = [7u8; 32];
    let started = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        a.write_all(&buf)?;
        a.read_exact(&mut buf)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let secs = started.elapsed().as_secs_f64();
    drop(a);
    let _ = echo.join();
    Ok(Figure {
        lat: stats(&lat),
        per_sec: rounds as f64 / secs,
    })
}

struct Echoer;

#[tonic::async_trait]
impl Echo for Echoer {
    async fn echo(
        &self,
        request: tonic::Request<EchoMessage>,
    ) -> Result<tonic::Response<EchoMessage>, tonic::Status> {
        Ok(tonic::Response::new(request.into_inner()))
    }
}

/// A tonic echo server on its own multi-threaded runtime (as the supervisor's broker
/// runs), serving one end of a socketpair; returns the other end.
fn echo_server() -> Result<tokio::net::UnixStream> {
    let (ours, theirs) = StdUnixStream::pair()?;
    theirs.set_nonblocking(true)?;
    ours.set_nonblocking(true)?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let conn = tokio::net::UnixStream::from_std(theirs).expect("tokio stream");
            let incoming = tokio_stream::StreamExt::chain(
                tokio_stream::once(Ok::<_, std::io::Error>(conn)),
                tokio_stream::pending(),
            );
            let _ = ready_tx.send(());
            let _ = tonic::transport::Server::builder()
                .add_service(EchoServer::new(Echoer))
                .serve_with_incoming(incoming)
                .await;
        });
    });
    ready_rx.recv().context("echo server thread")?;
    Ok(tokio::net::UnixStream::from_std(ours)?)
}

async fn channel_over(stream: tokio::net::UnixStream) -> Result<tonic::transport::Channel> {
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let stream = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            stream
                .map(hyper_util::rt::TokioIo::new)
                .ok_or_else(|| std::io::Error::other("used"))
        }
    });
    Ok(tonic::transport::Endpoint::from_static("http://bench")
        .connect_with_connector(connector)
        .await?)
}

/// The bare tonic echo, measured like the plugin measures its broker calls: on a
/// current-thread runtime, `in_flight` loops sharing one HTTP/2 connection.
fn tonic_echo(calls: usize, in_flight: usize) -> Result<Figure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = EchoClient::new(channel_over(echo_server()?).await?);
        let msg = EchoMessage {
            permission: "file_read".into(),
            scope: String::new(),
        };
        for _ in 0..WARMUP {
            client.clone().echo(msg.clone()).await?;
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..in_flight {
            let (mut client, msg) = (client.clone(), msg.clone());
            tasks.spawn(async move {
                let mut lat = Vec::with_capacity(calls / in_flight);
                for _ in 0..calls / in_flight {
                    let t = Instant::now();
                    client.echo(msg.clone()).await?;
                    lat.push(t.elapsed().as_secs_f64() * 1e6);
                }
                Ok::<Vec<f64>, tonic::Status>(lat)
            });
        }
        let mut lat = Vec::with_capacity(calls);
        while let Some(done) = tasks.join_next().await {
            lat.extend(done??);
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(Figure {
            per_sec: lat.len() as f64 / secs,
            lat: stats(&lat),
        })
    })
}

/// The broker path: the plugin times its own `has_permission` calls.
async fn broker_calls(
    admin: &mut broker_proto::admin::v1::admin_client::AdminClient<tonic::transport::Channel>,
    calls: usize,
    in_flight: usize,
) -> Result<Figure> {
    let out = admin
        .invoke_command(InvokeCommandRequest {
            plugin: "echo".into(),
            command: "bench-calls".into(),
            args: format!("{calls} {in_flight}").into_bytes(),
            timeout_ms: 120_000,
        })
        .await?
        .into_inner();
    let v: serde_json::Value = serde_json::from_slice(&out.output).context("bench-calls answer")?;
    let num = |k: &str| v[k].as_f64().with_context(|| format!("{k} in {v}"));
    Ok(Figure {
        lat: Stats {
            n: num("calls")? as usize,
            p50: num("p50_us")?,
            p99: num("p99_us")?,
            min: 0.0,
        },
        per_sec: num("per_sec")?,
    })
}

fn audited_checks(daemon: &Daemon) -> Result<i64> {
    let c = rusqlite::Connection::open(daemon.root().join("state/store.db"))?;
    Ok(c.query_row(
        "SELECT count(*) FROM audit_log WHERE action = 'broker.has_permission' AND outcome = 'ok'",
        [],
        |r| r.get(0),
    )?)
}

/// The audit writer alone: records per second through the same store and log files
/// the supervisor uses, from submit until committed.
fn audit_writer(records: usize) -> Result<f64> {
    use plexichat_supervisor::audit::{Actor, AuditEntry, AuditWriter, LogFiles, Outcome};
    use plexichat_supervisor::store::Store;
    let dir = tempfile::tempdir()?;
    let logs = Arc::new(LogFiles::open(&dir.path().join("log"))?);
    let store = Arc::new(Store::open(&dir.path().join("store.db"), logs)?);
    let committer = Arc::clone(&store);
    let writer = AuditWriter::start(Box::new(move |batch| {
        committer.audit(batch).map_err(Into::into)
    }))?;
    let actor = Actor::plugin("bench");
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let started = Instant::now();
    rt.block_on(async {
        for i in 0..records {
            writer.record(
                AuditEntry::new(&actor, "broker.has_permission", Outcome::Ok)
                    .plugin("bench")
                    .detail(serde_json::json!({ "permission": "file_read", "n": i })),
            );
        }
        writer.flush().await
    });
    let secs = started.elapsed().as_secs_f64();
    let stored: i64 =
        store.read(|c| Ok(c.query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))?))?;
    if stored != records as i64 {
        bail!("audit writer stored {stored} of {records} records");
    }
    Ok(records as f64 / secs)
}

/// Runs `f` on a thread of its own: it builds its own runtime.
fn apart<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    std::thread::spawn(f)
        .join()
        .map_err(|_| anyhow::anyhow!("benchmark thread panicked"))?
}

fn row(name: &str, f: &Figure, base: &Figure) -> String {
    format!(
        "{name:<40} {:>9.1} {:>9.1} {:>10.0} {:>9.2}x {:>9.2}x",
        f.lat.p50,
        f.lat.p99,
        f.per_sec,
        f.lat.p50 / base.lat.p50,
        f.per_sec / base.per_sec
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let calls = std::env::var("BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CALLS);
    let daemon = Daemon::start(&format!(
        "[broker]\nrate_per_sec = 1000000000.0\nburst = 1000000000\n{}",
        python_config()
    ))?;
    let mut admin = daemon.admin().await?;
    let pkg = daemon.package("echo", &release_dir()?.join("echo_plugin"))?;
    plexichat_bench::install(&mut admin, &pkg).await?;
    admin
        .enable_plugin(EnablePluginRequest {
            name: "echo".into(),
            verify_security: false,
        })
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker_calls(&mut admin, WARMUP, 1).await?;

    let raw = raw_socketpair(calls)?;
    let echo1 = apart(move || tonic_echo(calls, 1))?;
    let broker1 = broker_calls(&mut admin, calls, 1).await?;
    let echo64 = apart(move || tonic_echo(calls, 64))?;
    let broker64 = broker_calls(&mut admin, calls, 64).await?;
    // An audit query waits for the writer's queue: afterwards every call is committed.
    admin
        .query_audit(AuditQuery {
            plugin: "echo".into(),
            limit: 1,
            ..AuditQuery::default()
        })
        .await?;
    drop(admin);
    let expected = (WARMUP + calls / 64 * 64 + calls) as i64;
    let audited = audited_checks(&daemon)?;
    let writer = apart(|| audit_writer(AUDIT_RECORDS))?;

    println!("broker no-op call (has_permission: grant check + audit), {calls} calls per row");
    println!(
        "{:<40} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "", "p50 µs", "p99 µs", "calls/s", "p50 vs", "rate vs"
    );
    println!("{}", row("raw socketpair round trip", &raw, &echo1));
    println!("{}", row("bare tonic echo, 1 in flight", &echo1, &echo1));
    println!("{}", row("broker call, 1 in flight", &broker1, &echo1));
    println!("{}", row("bare tonic echo, 64 in flight", &echo64, &echo64));
    println!("{}", row("broker call, 64 in flight", &broker64, &echo64));
    println!("(ratios against the bare tonic echo with the same calls in flight)");
    println!(
        "targets: p50 <= 1.5x bare tonic echo ({:.2}x), 64-in-flight throughput >= 0.7x ({:.2}x)",
        broker1.lat.p50 / echo1.lat.p50,
        broker64.per_sec / echo64.per_sec
    );
    println!(
        "audit records of the calls: {audited} of {expected} {}",
        if audited == expected {
            "(all present)"
        } else {
            "(MISSING)"
        }
    );
    println!("audit writer alone: {writer:.0} records/s sustained over {AUDIT_RECORDS} records (target >= 100000)");
    if audited != expected {
        bail!("{} audit records missing", expected - audited);
    }
    python_rows(&daemon).await
}

/// The Python SDK's checked, audited no-op call and a bare grpclib echo, both timed
/// inside the confined `bench-py` plugin in one invocation, 1 and 8 in flight.
async fn python_rows(daemon: &Daemon) -> Result<()> {
    let calls = std::env::var("BENCH_PYTHON_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PYTHON_CALLS);
    let mut admin = daemon.admin().await?;
    let pkg = python_package(
        daemon,
        "bench-py",
        "plugin-sdk-python/bench",
        &["bench-calls"],
    )?;
    plexichat_bench::install(&mut admin, &pkg).await?;
    admin
        .enable_plugin(EnablePluginRequest {
            name: "bench-py".into(),
            verify_security: false,
        })
        .await?;
    let mut ready = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if python_calls(&mut admin, 10, 1).await.is_ok() {
            ready = true;
            break;
        }
    }
    if !ready {
        bail!(
            "bench-py did not answer: {}",
            std::fs::read_to_string(daemon.root().join("daemon.log"))?
        );
    }
    println!();
    println!(
        "Python SDK (confined bench-py plugin, CPython {}), {calls} calls per row",
        python_version(&mut admin).await?
    );
    println!(
        "{:<40} {:>9} {:>9} {:>10} {:>10} {:>10}",
        "", "p50 µs", "p99 µs", "calls/s", "p50 vs", "rate vs"
    );
    for in_flight in [1, 8] {
        let v = python_calls(&mut admin, calls, in_flight).await?;
        let figure = |key: &str| -> Result<Figure> {
            let num = |k: String| v[&k].as_f64().with_context(|| format!("{k} in {v}"));
            Ok(Figure {
                lat: Stats {
                    n: calls,
                    p50: num(format!("{key}_us_p50"))?,
                    p99: num(format!("{key}_us_p99"))?,
                    min: 0.0,
                },
                per_sec: num(format!("{key}_per_sec"))?,
            })
        };
        let (bare, bridged, sdk) = (
            figure("bare_echo")?,
            figure("bridge_echo")?,
            figure("sdk_call")?,
        );
        println!(
            "{}",
            row(
                &format!("bare grpclib echo, {in_flight} in flight"),
                &bare,
                &bare
            )
        );
        println!(
            "{}",
            row(
                &format!("grpclib echo via the SDK bridge, {in_flight}"),
                &bridged,
                &bare
            )
        );
        println!(
            "{}",
            row(
                &format!("Python SDK broker call, {in_flight} in flight"),
                &sdk,
                &bare
            )
        );
    }
    println!(
        "(ratios against the bare grpclib echo with the same calls in flight, in the same run)"
    );
    Ok(())
}

async fn python_calls(
    admin: &mut broker_proto::admin::v1::admin_client::AdminClient<tonic::transport::Channel>,
    calls: usize,
    in_flight: usize,
) -> Result<serde_json::Value> {
    let out = admin
        .invoke_command(InvokeCommandRequest {
            plugin: "bench-py".into(),
            command: "bench-calls".into(),
            args: format!("{calls} {in_flight}").into_bytes(),
            timeout_ms: 300_000,
        })
        .await?
        .into_inner();
    serde_json::from_slice(&out.output).context("bench-calls answer")
}

async fn python_version(
    admin: &mut broker_proto::admin::v1::admin_client::AdminClient<tonic::transport::Channel>,
) -> Result<String> {
    let v = python_calls(admin, 10, 1).await?;
    Ok(v["python"].as_str().unwrap_or("?").to_string())
}
