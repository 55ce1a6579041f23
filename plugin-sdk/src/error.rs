//! `SdkError` and `ErrorCode`: every way an SDK call can fail, with the broker's answer
//! kept as the SDK's own code enum so plugins never depend on tonic's types or version.

use std::fmt;

/// Why the broker refused or failed a call: the gRPC status codes, as this SDK's own
/// type. The variant names are gRPC's, so `format!("{:?}", code)` prints e.g.
/// `PermissionDenied` and `Display` prints the canonical `PERMISSION_DENIED`.
///
/// The broker uses mostly these: [`PermissionDenied`](ErrorCode::PermissionDenied)
/// (no live grant covers the call), [`InvalidArgument`](ErrorCode::InvalidArgument)
/// (a malformed topic, path, key or SQL), [`NotFound`](ErrorCode::NotFound) (a file
/// that does not exist), [`ResourceExhausted`](ErrorCode::ResourceExhausted) (a rate
/// limit, quota or size cap), [`DeadlineExceeded`](ErrorCode::DeadlineExceeded) (a
/// statement, command or server answer over its time limit) and
/// [`Unavailable`](ErrorCode::Unavailable) (no application database, no PlexiChat
/// server connected, an unreachable host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The operation was cancelled, typically by the caller.
    Cancelled,
    /// An error with no better code; often a connection problem.
    Unknown,
    /// The request is malformed whatever the system's state (bad topic, path, SQL...).
    InvalidArgument,
    /// The operation ran past its deadline and was stopped.
    DeadlineExceeded,
    /// What the request names does not exist.
    NotFound,
    /// What the request would create already exists.
    AlreadyExists,
    /// The plugin lacks the permission, or the grant's scope does not cover the request.
    PermissionDenied,
    /// A rate limit, quota or size cap was hit.
    ResourceExhausted,
    /// The system is not in the state the operation needs (e.g. a second session).
    FailedPrecondition,
    /// The operation was aborted, typically by a concurrent conflicting one.
    Aborted,
    /// The request is past a valid range (an offset past the end...).
    OutOfRange,
    /// The broker does not implement the call (an older supervisor).
    Unimplemented,
    /// A broker-side invariant broke; worth reporting to the operator.
    Internal,
    /// The service cannot answer now; retrying later may succeed.
    Unavailable,
    /// Unrecoverable data loss or corruption.
    DataLoss,
    /// The caller's identity could not be established.
    Unauthenticated,
}

impl ErrorCode {
    /// The canonical gRPC name, e.g. `PERMISSION_DENIED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unknown => "UNKNOWN",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::FailedPrecondition => "FAILED_PRECONDITION",
            ErrorCode::Aborted => "ABORTED",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::Unimplemented => "UNIMPLEMENTED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DataLoss => "DATA_LOSS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// The code tonic reported; `OK` never reaches here as an error, so it maps to
    /// `Unknown` rather than pretending a failure succeeded.
    pub(crate) fn from_tonic(code: tonic::Code) -> ErrorCode {
        match code {
            tonic::Code::Cancelled => ErrorCode::Cancelled,
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            tonic::Code::Aborted => ErrorCode::Aborted,
            tonic::Code::OutOfRange => ErrorCode::OutOfRange,
            tonic::Code::Unimplemented => ErrorCode::Unimplemented,
            tonic::Code::Internal => ErrorCode::Internal,
            tonic::Code::Unavailable => ErrorCode::Unavailable,
            tonic::Code::DataLoss => ErrorCode::DataLoss,
            tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
            tonic::Code::Ok | tonic::Code::Unknown => ErrorCode::Unknown,
        }
    }

    /// The tonic code the fake broker of [`testing`](crate::testing) answers with.
    pub(crate) fn to_tonic(self) -> tonic::Code {
        match self {
            ErrorCode::Cancelled => tonic::Code::Cancelled,
            ErrorCode::Unknown => tonic::Code::Unknown,
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::FailedPrecondition => tonic::Code::FailedPrecondition,
            ErrorCode::Aborted => tonic::Code::Aborted,
            ErrorCode::OutOfRange => tonic::Code::OutOfRange,
            ErrorCode::Unimplemented => tonic::Code::Unimplemented,
            ErrorCode::Internal => tonic::Code::Internal,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::DataLoss => tonic::Code::DataLoss,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the SDK: setting up the broker connection, the handshake, or a broker call.
///
/// Match on [`code`](SdkError::code) (or the `is_*` helpers) to react to what the
/// broker said; the message is for people, and may change between releases.
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
        /// What is wrong with it.
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
    Transport(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),

    /// The broker answered a call with an error.
    #[error("broker call failed: {code}: {message}")]
    Broker {
        /// What kind of failure the broker reported.
        code: ErrorCode,
        /// The broker's explanation, e.g. which permission and scope were missing.
        message: String,
    },

    /// The broker refused the handshake (unknown plugin, not approved, bad versions...).
    #[error("broker rejected the handshake: {code}: {message}")]
    HandshakeRejected {
        /// What kind of refusal the broker reported.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },

    /// The broker chose a protocol version this SDK never offered.
    #[error("broker chose protocol version {chosen}, but this SDK speaks {offered:?}")]
    ProtocolMismatch {
        /// The versions this SDK offered.
        offered: Vec<u32>,
        /// The version the broker answered with.
        chosen: u32,
    },

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
    /// The code the broker answered with, if this error came from the broker (a call
    /// or the handshake); `None` for local failures.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SdkError::Broker { code, .. } | SdkError::HandshakeRejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The broker's message, if this error came from the broker.
    pub fn message(&self) -> Option<&str> {
        match self {
            SdkError::Broker { message, .. } | SdkError::HandshakeRejected { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }

    /// The broker refused the call because the plugin lacks the permission (or scope).
    pub fn is_permission_denied(&self) -> bool {
        self.code() == Some(ErrorCode::PermissionDenied)
    }

    /// The broker refused the call because of an argument (bad topic, key, size...).
    pub fn is_invalid_argument(&self) -> bool {
        self.code() == Some(ErrorCode::InvalidArgument)
    }

    /// What the call names does not exist (a missing file).
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(ErrorCode::NotFound)
    }

    /// The call hit a broker limit (rate limit, quota, message size).
    pub fn is_resource_exhausted(&self) -> bool {
        self.code() == Some(ErrorCode::ResourceExhausted)
    }

    /// The operation ran past its deadline and was stopped (a database statement over
    /// its time limit, an invocation nobody answered in time).
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code() == Some(ErrorCode::DeadlineExceeded)
    }

    /// The service cannot answer now (no application database, no server connected).
    pub fn is_unavailable(&self) -> bool {
        self.code() == Some(ErrorCode::Unavailable)
    }
}

/// A broker call's failure as an `SdkError`. A function, not `From`, so tonic's types
/// stay out of the public API (an `impl From` would be public).
pub(crate) fn from_status(status: tonic::Status) -> SdkError {
    SdkError::Broker {
        code: ErrorCode::from_tonic(status.code()),
        message: status.message().to_string(),
    }
}

/// The handshake's refusal as an `SdkError`.
pub(crate) fn handshake_rejected(status: tonic::Status) -> SdkError {
    SdkError::HandshakeRejected {
        code: ErrorCode::from_tonic(status.code()),
        message: status.message().to_string(),
    }
}

/// A transport failure (connecting, or waiting for a call slot) as an `SdkError`.
pub(crate) fn from_transport(error: tonic::transport::Error) -> SdkError {
    SdkError::Transport(Box::new(error))
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
    fn the_broker_code_is_visible_as_the_sdks_own_type() {
        let e = from_status(tonic::Status::permission_denied("no database_read"));
        assert!(e.is_permission_denied());
        assert_eq!(e.code(), Some(ErrorCode::PermissionDenied));
        assert_eq!(e.message(), Some("no database_read"));
        assert_eq!(
            e.to_string(),
            "broker call failed: PERMISSION_DENIED: no database_read"
        );
        // What the test plugins print and the end-to-end suites match on.
        assert_eq!(format!("{:?}", e.code()), "Some(PermissionDenied)");
        assert!(!SdkError::AlreadyConnected.is_permission_denied());
        assert_eq!(SdkError::AlreadyConnected.code(), None);
    }

    #[test]
    fn every_code_maps_both_ways() {
        for code in [
            ErrorCode::Cancelled,
            ErrorCode::Unknown,
            ErrorCode::InvalidArgument,
            ErrorCode::DeadlineExceeded,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::PermissionDenied,
            ErrorCode::ResourceExhausted,
            ErrorCode::FailedPrecondition,
            ErrorCode::Aborted,
            ErrorCode::OutOfRange,
            ErrorCode::Unimplemented,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
            ErrorCode::DataLoss,
            ErrorCode::Unauthenticated,
        ] {
            assert_eq!(ErrorCode::from_tonic(code.to_tonic()), code);
        }
        assert_eq!(ErrorCode::from_tonic(tonic::Code::Ok), ErrorCode::Unknown);
    }

    #[test]
    fn converts_to_string_for_handlers() {
        let s: String = from_status(tonic::Status::not_found("x")).into();
        assert!(s.contains("NOT_FOUND: x"), "{s}");
    }
}
