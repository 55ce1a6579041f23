//! How a connection refused at accept learns why: a minimal HTTP/2 exchange that
//! answers the client's first call with a gRPC status (PERMISSION_DENIED for no role,
//! RESOURCE_EXHAUSTED for a cap) and goes away, bounded in time and in number.

use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// How long a refused client gets to send its first call before the socket closes.
pub const LINGER: Duration = Duration::from_millis(250);
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Most bytes read from a refused client while waiting for its first call.
const MAX_READ: usize = 64 << 10;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;

/// The gRPC answer a refused connection gets.
#[derive(Debug, Clone)]
pub struct Answer {
    /// gRPC status code (7 permission denied, 8 resource exhausted).
    pub grpc_status: u8,
    pub message: String,
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A GOAWAY naming `last_stream`, with `message` as debug data.
pub fn goaway(last_stream: u32, message: &str) -> Vec<u8> {
    let mut payload = last_stream.to_be_bytes().to_vec();
    payload.extend_from_slice(&0u32.to_be_bytes()); // NO_ERROR
    payload.extend_from_slice(&message.as_bytes()[..message.len().min(1024)]);
    frame(GOAWAY, 0, 0, &payload)
}

/// The server preface (empty SETTINGS) and a GOAWAY: for a client closed at once.
pub fn preface_and_goaway(message: &str) -> Vec<u8> {
    let mut out = frame(SETTINGS, 0, 0, &[]);
    out.extend(goaway(0, message));
    out
}

/// An HPACK integer with a 7-bit prefix (string lengths, no Huffman coding).
fn hpack_len(out: &mut Vec<u8>, mut n: usize) {
    if n < 127 {
        out.push(n as u8);
        return;
    }
    out.push(127);
    n -= 127;
    while n >= 128 {
        out.push((n % 128 + 128) as u8);
        n /= 128;
    }
    out.push(n as u8);
}

fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0); // literal header field without indexing, new name
    hpack_len(out, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

/// gRPC's percent-encoding of grpc-message: printable ASCII but `%` stays as is.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for b in message.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A trailers-only gRPC response on `stream`, then a GOAWAY after it (the server's
/// SETTINGS went first, see [`answer`]).
fn response(stream: u32, answer: &Answer) -> Vec<u8> {
    let mut block = vec![0x88]; // :status 200 (static table entry 8)
    hpack_literal(&mut block, "content-type", "application/grpc");
    hpack_literal(&mut block, "grpc-status", &answer.grpc_status.to_string());
    hpack_literal(&mut block, "grpc-message", &percent_encode(&answer.message));
    let mut out = frame(SETTINGS, 0x1, 0, &[]); // ACK of the client's settings
    out.extend(frame(HEADERS, 0x5, stream, &block)); // END_STREAM | END_HEADERS
    out.extend(goaway(stream, &answer.message));
    out
}

/// The stream id of the first HEADERS frame in `buf` (after the preface), if whole.
fn first_call(buf: &[u8]) -> Option<u32> {
    let mut pos = PREFACE.len();
    if buf.len() < pos || &buf[..pos] != PREFACE {
        return None;
    }
    while buf.len() >= pos + 9 {
        let len = u32::from_be_bytes([0, buf[pos], buf[pos + 1], buf[pos + 2]]) as usize;
        let kind = buf[pos + 3];
        let stream = u32::from_be_bytes([buf[pos + 5], buf[pos + 6], buf[pos + 7], buf[pos + 8]])
            & 0x7fff_ffff;
        if kind == HEADERS && stream != 0 {
            return Some(stream);
        }
        pos += 9 + len;
    }
    None
}

/// Waits (at most [`LINGER`]) for the client's first call, answers it with `answer`
/// and closes. A client that is not speaking gRPC just sees the close.
pub async fn answer(mut stream: UnixStream, answer: Answer) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let exchange = async {
        // The server's preface at once: grpc-core sends no call before it has the
        // server's SETTINGS (tonic's client does not wait for them).
        if stream.write_all(&frame(SETTINGS, 0, 0, &[])).await.is_err() {
            return;
        }
        while buf.len() < MAX_READ {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if !PREFACE.starts_with(&buf[..buf.len().min(PREFACE.len())]) {
                return; // not HTTP/2
            }
            if let Some(id) = first_call(&buf) {
                let _ = stream.write_all(&response(id, &answer)).await;
                let _ = nix::sys::socket::shutdown(
                    stream.as_raw_fd(),
                    nix::sys::socket::Shutdown::Write,
                );
                // Read on until the client closes: closing with its bytes unread
                // would reset the connection before it reads the answer.
                while let Ok(n) = stream.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                }
                return;
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_headers_are_well_formed() {
        let f = preface_and_goaway("uid=5 has no role on this supervisor");
        assert_eq!(
            &f[..9],
            &[0, 0, 0, 4, 0, 0, 0, 0, 0],
            "empty SETTINGS first"
        );
        let len = u32::from_be_bytes([0, f[9], f[10], f[11]]) as usize;
        assert_eq!(f[12], GOAWAY);
        assert_eq!(f.len(), 18 + len);
        assert!(String::from_utf8_lossy(&f[26..]).contains("has no role"));
        let mut long = Vec::new();
        hpack_len(&mut long, 300);
        assert_eq!(long, vec![127, 173, 1], "RFC 7541 C.1.2-style continuation");
        assert_eq!(percent_encode("a%b\n"), "a%25b%0A");
        let mut client = PREFACE.to_vec();
        client.extend(frame(SETTINGS, 0, 0, &[0; 6]));
        assert_eq!(first_call(&client), None);
        client.extend(frame(HEADERS, 0x4, 1, &[0x83]));
        assert_eq!(first_call(&client), Some(1));
    }
}
