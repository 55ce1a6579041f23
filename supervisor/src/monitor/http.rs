//! The loopback metrics endpoint: a few lines over a TCP listener answering
//! `GET /metrics` (query string ignored) with the exposition, anything else 404/400.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::prometheus::{self, Scrape};
use crate::context::Shared;
use crate::runtime::Runtime;

/// Largest request head read from a metrics client.
const MAX_REQUEST: usize = 8192;

/// Serves `GET /metrics` on `addr` (loopback, checked by the config) until the
/// process ends. One short-lived connection per scrape; anything else gets 404/400.
pub async fn serve_prometheus(
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    runtime: Arc<Runtime>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let (shared, runtime) = (Arc::clone(&shared), Arc::clone(&runtime));
            tokio::spawn(async move {
                let answered =
                    tokio::time::timeout(Duration::from_secs(5), scrape(conn, &shared, &runtime));
                if let Ok(Err(e)) = answered.await {
                    tracing::debug!(error = %e, "metrics client");
                }
            });
        }
    });
    Ok(())
}

/// Whether a request line asks for the metrics: `GET /metrics`, any query string.
fn wants_metrics(line: &[u8]) -> bool {
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next();
    // A query string (`/metrics?x=1`, as some scrapers add) selects nothing here.
    let path = parts.next().and_then(|p| p.split(|b| *b == b'?').next());
    method == Some(b"GET") && path == Some(b"/metrics")
}

async fn scrape(
    mut conn: tokio::net::TcpStream,
    shared: &Shared,
    runtime: &Runtime,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return respond(&mut conn, "400 Bad Request", "bad request\n").await;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    if !wants_metrics(line) {
        return respond(&mut conn, "404 Not Found", "only GET /metrics is served\n").await;
    }
    match gather(shared, runtime) {
        Ok(s) => respond(&mut conn, "200 OK", &prometheus::text(&s)).await,
        Err(e) => respond(&mut conn, "500 Internal Server Error", &format!("{e}\n")).await,
    }
}

fn gather(shared: &Shared, runtime: &Runtime) -> Result<Scrape, crate::store::StoreError> {
    let usage = super::usage(shared, runtime, None)?;
    let process = super::process::read_self()
        .inspect_err(|e| tracing::debug!(error = %e, "reading /proc/self for metrics"))
        .ok();
    Ok(Scrape {
        usage,
        safe_mode: shared.store.safe_mode().is_ok_and(|m| m.enabled),
        incidents: shared.counters.incidents(),
        spawns: shared.counters.spawns(),
        audit: shared.audit.lag(),
        process,
    })
}

async fn respond(
    conn: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_is_served_whatever_its_query_string() {
        for yes in [
            "GET /metrics HTTP/1.1",
            "GET /metrics?x=1 HTTP/1.1",
            "GET /metrics? HTTP/1.0",
        ] {
            assert!(wants_metrics(yes.as_bytes()), "{yes}");
        }
        for no in [
            "POST /metrics HTTP/1.1",
            "GET / HTTP/1.1",
            "GET /metricsx HTTP/1.1",
            "GET /x?/metrics HTTP/1.1",
            "GET",
            "",
        ] {
            assert!(!wants_metrics(no.as_bytes()), "{no}");
        }
    }
}
