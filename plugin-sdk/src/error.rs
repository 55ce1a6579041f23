//! `SdkError`: every way an SDK call can fail, with the broker's gRPC code kept visible.
//! Plugin authors match on it (e.g. `is_permission_denied()`) instead of parsing messages.

/// An error from the SDK: setting up the broker connection, the handshake, or a broker call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// The inherited broker fd is missing or is not a Unix stream socket. This is what
    /// running a plugin by hand, outside the supervisor, looks like.
    #[error(
        "no broker connection on fd {fd}: {reason} (plugins must be started by the PlexiChat supervisor)"
    )]
    NoBrokerFd {
        /// The fd (or the unparsable `PLEXICHAT_BROKER_FD` value) that was tried.
        fd: String,
        reason: String,
    },

    /// The broker fd was already taken by an earlier connect in this process. The fd
    /// is a single connection, so a second owner would be a use-after-close waiting to happen.
    #[error("the broker connection was already taken by an earlier connect in this process")]
    AlreadyConnected,

    /// The session stream was already opened on this connection; the broker allows one.
    #[error("the broker session is already open on this connection")]
    SessionAlreadyOpen,

    /// The HTTP/2 connection to the broker could not be set up or was lost.
    #[error("broker transport error: {0}")]
    Transport(#[from] tonic::transport::Error),

    /// The broker answered a call with an error status.
    #[error("broker call failed: {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),

    /// The broker refused the handshake (unknown plugin, not approved, bad versions...).
    #[error("broker rejected the handshake: {}: {}", .0.code(), .0.message())]
    HandshakeRejected(tonic::Status),

    /// The broker chose a protocol version this SDK never offered.
    #[error("broker chose protocol version {chosen}, but this SDK speaks {offered:?}")]
    ProtocolMismatch { offered: Vec<u32>, chosen: u32 },

    /// A plugin registration was invalid (duplicate command, malformed topic pattern...).
    /// Reported by `Plugin::run` so that builder methods can stay chainable.
    #[error("invalid plugin definition: {0}")]
    InvalidPlugin(String),

    /// A JSON payload could not be encoded or decoded.
    #[error("JSON payload error: {0}")]
    Json(#[from] serde_json::Error),

    /// An OS call while adopting the broker fd failed.
    #[error("broker fd setup failed: {0}")]
    Io(#[from] std::io::Error),
}

impl SdkError {
    /// The gRPC code the broker answered with, if this error came from the broker.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            SdkError::Status(s) | SdkError::HandshakeRejected(s) => Some(s.code()),
            _ => None,
        }
    }

    /// The broker refused the call because the plugin lacks the permission (or scope).
    pub fn is_permission_denied(&self) -> bool {
        self.code() == Some(tonic::Code::PermissionDenied)
    }

    /// The broker refused the call because of an argument (bad topic, key, size...).
    pub fn is_invalid_argument(&self) -> bool {
        self.code() == Some(tonic::Code::InvalidArgument)
    }

    /// The call hit a broker limit (rate limit, quota, message size).
    pub fn is_resource_exhausted(&self) -> bool {
        self.code() == Some(tonic::Code::ResourceExhausted)
    }

    /// The operation ran past its deadline and was stopped (a database statement over
    /// its time limit, an invocation nobody answered in time).
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code() == Some(tonic::Code::DeadlineExceeded)
    }

    /// The service cannot answer now (no application database, no server connected).
    pub fn is_unavailable(&self) -> bool {
        self.code() == Some(tonic::Code::Unavailable)
    }
}

/// Lets command handlers that return `Result<_, String>` use `?` on SDK calls.
impl From<SdkError> for String {
    fn from(e: SdkError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_code_is_visible() {
        let e = SdkError::from(tonic::Status::permission_denied("no database_read"));
        assert!(e.is_permission_denied());
        assert_eq!(e.code(), Some(tonic::Code::PermissionDenied));
        assert!(!SdkError::AlreadyConnected.is_permission_denied());
        assert_eq!(SdkError::AlreadyConnected.code(), None);
    }

    #[test]
    fn converts_to_string_for_handlers() {
        let s: String = SdkError::from(tonic::Status::not_found("x")).into();
        assert!(s.contains("x"), "{s}");
    }
}
