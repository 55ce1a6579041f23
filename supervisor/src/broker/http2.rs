//! The HTTP/2 settings of each plugin's broker connection, and the cap on the error
//! message any answer carries: a busy or careless plugin loses a call, never the link.

// Why these numbers. The connection is the plugin's only one and its identity: a
// GOAWAY fails every call in flight and the health check then restarts the plugin.
// So everything h2 would treat as a flood must be answered per stream instead:
// - streams beyond `MAX_CONCURRENT_STREAMS` wait in the client (h2 clients honour
//   SETTINGS_MAX_CONCURRENT_STREAMS; a raw client gets REFUSED_STREAM on that stream);
//   the SDK keeps fewer in flight (`plexichat_plugin_sdk::DEFAULT_MAX_IN_FLIGHT`);
// - request headers over `MAX_REQUEST_HEADER_BYTES` are refused on their stream with
//   RESOURCE_EXHAUSTED by `Guard`. h2 itself must let such a block through to be
//   answered: it closes the connection for a block of more than 1.25 ×
//   `H2_HEADER_LIST_BYTES` / 16 KiB frames (about 1.3 MiB) and answers 431 on the
//   stream between `H2_HEADER_LIST_BYTES` and that;
// - streams the client cancels before they are served (a burst timing out) are a
//   flood only past `MAX_PENDING_RESETS`, far above what `MAX_CONCURRENT_STREAMS` allows;
// - every error message is cut to `MAX_STATUS_MESSAGE_BYTES` encoded, so no refusal
//   quoting its input can exceed the plugin's own header limit (16 KiB by default).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;

pub const MAX_CONCURRENT_STREAMS: u32 = 128;
/// Request headers (HPACK-counted: name, value and 32 bytes each) a call may carry;
/// the SDK sends a few hundred bytes.
pub const MAX_REQUEST_HEADER_BYTES: usize = 16 * 1024;
/// What h2 decodes before it gives up on a header block (see above).
const H2_HEADER_LIST_BYTES: u32 = 1024 * 1024;
/// One full broker message per stream, and several streams' worth per connection.
pub const STREAM_WINDOW_BYTES: u32 = 1024 * 1024;
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;
pub const MAX_PENDING_RESETS: usize = 4 * MAX_CONCURRENT_STREAMS as usize;
/// Longest `grpc-message` (percent-encoded) the broker sends.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 4 * 1024;

/// The tonic server for one plugin connection, with the settings above.
pub fn server(
) -> tonic::transport::Server<tower::layer::util::Stack<GuardLayer, tower::layer::util::Identity>> {
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_max_header_list_size(H2_HEADER_LIST_BYTES)
        .initial_stream_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
        .http2_max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
        .http2_max_local_error_reset_streams(Some(MAX_PENDING_RESETS))
        .layer(GuardLayer)
}

type Response = http::Response<tonic::body::Body>;

/// Wraps the broker service in a [`Guard`].
#[derive(Debug, Clone, Copy)]
pub struct GuardLayer;

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Guard<S> {
        Guard { inner }
    }
}

/// Refuses a call whose headers are too large on its own stream, and cuts every
/// answer's error message to [`MAX_STATUS_MESSAGE_BYTES`].
#[derive(Debug, Clone)]
pub struct Guard<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Guard<S>
where
    S: tower::Service<http::Request<B>, Response = Response>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let size = header_bytes(request.headers());
        if size > MAX_REQUEST_HEADER_BYTES {
            let status = tonic::Status::resource_exhausted(format!(
                "the call's headers are {size} bytes; the broker accepts at most {MAX_REQUEST_HEADER_BYTES}"
            ));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map(cap_status_message) })
    }
}

/// Header list size as HTTP/2 counts it (RFC 9113 §6.5.2).
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// Cuts an over-long `grpc-message` to [`MAX_STATUS_MESSAGE_BYTES`], saying so.
fn cap_status_message(mut response: Response) -> Response {
    let long = response
        .headers()
        .get("grpc-message")
        .filter(|v| v.len() > MAX_STATUS_MESSAGE_BYTES)
        .map(|v| shorten(v.as_bytes(), MAX_STATUS_MESSAGE_BYTES));
    if let Some(Ok(value)) = long.map(|v| http::HeaderValue::from_bytes(&v)) {
        response.headers_mut().insert("grpc-message", value);
    }
    response
}

/// A percent-encoded gRPC message cut (on a character) to at most `max` encoded bytes,
/// ending in a note of how long the original was.
fn shorten(encoded: &[u8], max: usize) -> Vec<u8> {
    let text = String::from_utf8_lossy(&percent_decode(encoded)).into_owned();
    let note = format!("… [message cut: {} bytes]", text.len());
    let budget = max.saturating_sub(percent_encode(&note).len());
    let mut out = Vec::with_capacity(max);
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let piece = percent_encode(c.encode_utf8(&mut buf));
        if out.len() + piece.len() > budget {
            break;
        }
        out.extend_from_slice(&piece);
    }
    out.extend_from_slice(&percent_encode(&note));
    out
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = (input[i] == b'%')
            .then(|| Some((hex(*input.get(i + 1)?)?, hex(*input.get(i + 2)?)?)))
            .flatten();
        match escaped {
            Some((hi, lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out
}

/// The gRPC spec's encoding: printable ASCII except `%` as is, every other byte `%XX`.
fn percent_encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_and_say_so() {
        let text = format!("no such path `{}`", "é/".repeat(10_000));
        let encoded = percent_encode(&text);
        let cut = shorten(&encoded, MAX_STATUS_MESSAGE_BYTES);
        assert!(cut.len() <= MAX_STATUS_MESSAGE_BYTES, "{}", cut.len());
        let back = String::from_utf8(percent_decode(&cut)).expect("still UTF-8");
        assert!(back.starts_with("no such path `é/é/"), "{back}");
        assert!(back.ends_with(&format!("[message cut: {} bytes]", text.len())));
        assert!(http::HeaderValue::from_bytes(&cut).is_ok());
    }

    #[test]
    fn short_messages_pass_unchanged() {
        let status = tonic::Status::invalid_argument("short: `a b`");
        let response: Response = status.into_http();
        let before = response.headers().get("grpc-message").cloned();
        let after = cap_status_message(response);
        assert!(before.is_some());
        assert_eq!(after.headers().get("grpc-message"), before.as_ref());
    }
}
