//! One admin-socket connection as tonic serves it: the stream, its peer, the slot it
//! holds against the caps, and the idle timer that closes it when no call is in flight.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::{Connected, UdsConnectInfo};

use super::gate::Slot;

/// Calls in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        })
    }

    /// A call begins; it ends when the returned guard drops (with its response body,
    /// so a stream is in flight for as long as it is open).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }

    /// When the connection becomes idle for `timeout`; `None` while a call is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = self
            .idle_since
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now());
        Some(since + timeout)
    }
}

/// One call in flight (see [`Activity::begin`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Ok(mut t) = self.0.idle_since.lock() {
                *t = Instant::now();
            }
        }
    }
}

/// What every request on a connection carries: tonic's peer credentials (which
/// `authorize` reads) and the connection's activity.
#[derive(Clone, Debug)]
pub struct AdminPeer {
    pub uds: UdsConnectInfo,
    pub activity: Arc<Activity>,
}

/// An admitted connection. Reading it returns end-of-file once it has been idle for
/// the timeout, which makes hyper close it.
pub struct AdminConn {
    stream: UnixStream,
    peer: AdminPeer,
    idle: Pin<Box<Sleep>>,
    timeout: Duration,
    expired: bool,
    _slot: Slot,
}

impl AdminConn {
    pub fn new(stream: UnixStream, uds: UdsConnectInfo, slot: Slot, timeout: Duration) -> Self {
        AdminConn {
            stream,
            peer: AdminPeer {
                uds,
                activity: Activity::new(),
            },
            idle: Box::pin(tokio::time::sleep(timeout)),
            timeout,
            expired: false,
            _slot: slot,
        }
    }

    /// True once the connection has been idle for the timeout; otherwise the timer is
    /// armed for the next moment it could be, and wakes `cx` then.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.expired {
            return true;
        }
        while self.idle.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            match self.peer.activity.idle_deadline(self.timeout) {
                Some(deadline) if deadline <= now => {
                    tracing::debug!(uid = ?self.peer.uds.peer_cred.map(|c| c.uid()), "closing an idle admin connection");
                    self.expired = true;
                    return true;
                }
                Some(deadline) => self.idle.as_mut().reset(deadline),
                None => self.idle.as_mut().reset(now + self.timeout),
            }
        }
        false
    }
}

impl Connected for AdminConn {
    type ConnectInfo = AdminPeer;

    fn connect_info(&self) -> AdminPeer {
        self.peer.clone()
    }
}

impl AsyncRead for AdminConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.idle_expired(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AdminConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_only_without_calls_in_flight() {
        let a = Activity::new();
        let t = Duration::from_secs(5);
        let first = a.idle_deadline(t).unwrap();
        let call = a.begin();
        assert_eq!(a.idle_deadline(t), None, "a call in flight is not idle");
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(a.idle_deadline(t), None);
        drop(call);
        let after = a.idle_deadline(t).unwrap();
        assert!(
            after >= first + Duration::from_millis(30),
            "idle counts from the call's end"
        );
    }
}
