//! The channel to the PlexiChat server that executes plugins' host actions: the
//! connected server's call stream, and the calls waiting for its results.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use broker_proto::admin::v1::{HostActionCall, HostActionResult};
use tokio::sync::{mpsc, oneshot};

/// Calls queued towards the server before senders wait.
const QUEUE: usize = 256;

/// Why a host action did not produce a result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostActionError {
    #[error("no PlexiChat server is connected to execute host actions")]
    NoServer,
    #[error("the PlexiChat server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the PlexiChat server refused the action: {0}")]
    Refused(String),
}

impl From<HostActionError> for tonic::Status {
    fn from(e: HostActionError) -> tonic::Status {
        match e {
            HostActionError::NoServer => tonic::Status::unavailable(e.to_string()),
            HostActionError::Timeout(_) => tonic::Status::deadline_exceeded(e.to_string()),
            HostActionError::Refused(_) => tonic::Status::aborted(e.to_string()),
        }
    }
}

type Waiting = oneshot::Sender<Result<Vec<u8>, String>>;

/// The connected server (if any) and the calls it has not answered yet.
#[derive(Default)]
pub struct HostActions {
    server: Mutex<Option<(u64, mpsc::Sender<HostActionCall>)>>,
    waiting: Mutex<HashMap<String, Waiting>>,
    next: AtomicU64,
}

impl HostActions {
    /// Registers a server connection, replacing any earlier one; returns its id (for
    /// [`HostActions::disconnect`]) and the calls to stream to it.
    pub fn connect(&self) -> (u64, mpsc::Receiver<HostActionCall>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.server.lock() {
            *s = Some((id, tx));
        }
        (id, rx)
    }

    /// Forgets connection `id` if it is still the current one.
    pub fn disconnect(&self, id: u64) {
        if let Ok(mut s) = self.server.lock() {
            if s.as_ref().is_some_and(|(current, _)| *current == id) {
                *s = None;
            }
        }
    }

    pub fn connected(&self) -> bool {
        self.server.lock().is_ok_and(|s| s.is_some())
    }

    /// A result from the server; false if nobody waits for that id (late or unknown).
    pub fn complete(&self, result: HostActionResult) -> bool {
        let waiter = self
            .waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(&result.id));
        let answer = if result.ok {
            Ok(result.result)
        } else {
            Err(result.error)
        };
        waiter.is_some_and(|w| w.send(answer).is_ok())
    }

    /// Sends `call` (its id and deadline are filled in) to the server and waits for
    /// its result until `timeout`.
    pub async fn call(
        &self,
        mut call: HostActionCall,
        timeout: Duration,
    ) -> Result<Vec<u8>, HostActionError> {
        let server = self
            .server
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|(_, tx)| tx.clone()))
            .ok_or(HostActionError::NoServer)?;
        call.id = format!("ha-{}", self.next.fetch_add(1, Ordering::Relaxed));
        call.deadline_ms = crate::clock::now_ms()
            .saturating_add(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 2));
        let id = call.id.clone();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id.clone(), tx);
        }
        let outcome = match tokio::time::timeout(timeout, async {
            server
                .send(call)
                .await
                .map_err(|_| HostActionError::NoServer)?;
            rx.await.map_err(|_| HostActionError::NoServer)
        })
        .await
        {
            Err(_) => Err(HostActionError::Timeout(timeout)),
            Ok(Err(e)) => Err(e),
            Ok(Ok(answer)) => answer.map_err(HostActionError::Refused),
        };
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&id);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> HostActionCall {
        HostActionCall {
            plugin: "p".into(),
            permission: "user_management".into(),
            target: "ban_user".into(),
            action: "ban".into(),
            ..HostActionCall::default()
        }
    }

    #[tokio::test]
    async fn without_a_server_a_call_is_unavailable() {
        let h = HostActions::default();
        let err = h
            .call(call(), Duration::from_secs(1))
            .await
            .expect_err("no server");
        assert_eq!(err, HostActionError::NoServer);
    }

    #[tokio::test]
    async fn the_servers_result_reaches_the_caller_and_late_answers_are_dropped() {
        let h = std::sync::Arc::new(HostActions::default());
        let (_, mut calls) = h.connect();
        let server = std::sync::Arc::clone(&h);
        tokio::spawn(async move {
            while let Some(c) = calls.recv().await {
                let ok = c.target == "ban_user";
                server.complete(HostActionResult {
                    id: c.id,
                    ok,
                    result: b"banned".to_vec(),
                    error: "no such action".into(),
                });
            }
        });
        let out = h
            .call(call(), Duration::from_secs(1))
            .await
            .expect("answered");
        assert_eq!(out, b"banned");
        let mut other = call();
        other.target = "nuke_user".into();
        let err = h
            .call(other, Duration::from_secs(1))
            .await
            .expect_err("refused");
        assert_eq!(err, HostActionError::Refused("no such action".into()));
        assert!(!h.complete(HostActionResult {
            id: "ha-999".into(),
            ..HostActionResult::default()
        }));
    }

    #[tokio::test]
    async fn a_silent_server_times_out_and_a_replaced_one_stops_receiving() {
        let h = HostActions::default();
        let (first, _calls) = h.connect();
        let err = h
            .call(call(), Duration::from_millis(50))
            .await
            .expect_err("no answer");
        assert_eq!(err, HostActionError::Timeout(Duration::from_millis(50)));
        let (_second, _calls2) = h.connect();
        h.disconnect(first);
        assert!(h.connected(), "the newer connection stays");
    }
}
