//! How a failed `plexichat` command is told apart and reported: the supervisor's
//! refusal, a connection that closed before the answer, or the CLI's own stdout closing.

// Why: a write to a closed pipe and a transport that lost its connection both end in
// EPIPE somewhere in the error chain. Only the first is harmless (`| head`); the
// second means the action may have happened without an answer, and exit 0 would
// tell a script it succeeded. So stdout failures are marked where they happen
// (`StdoutFailed`) and everything else is judged on its own.

use std::error::Error as _;
use std::io;
use std::process::ExitCode;

use tonic::{Code, Status};

/// What is printed when the connection closed before the supervisor answered.
pub const CLOSED_BEFORE_ANSWER: &str = "the supervisor closed the connection before answering: the action may or may not have happened; check `plexichat audit plugins`";

/// Writing the CLI's own stdout failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutFailed(#[source] pub io::Error);

/// What went wrong, as far as the user is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// The reader of stdout went away (`| head`): nothing left to tell anyone.
    ReaderGone,
    /// The request went out but no answer came back.
    ClosedBeforeAnswer,
    /// The supervisor answered with an error, or the CLI failed on its own.
    Error(String),
}

pub fn classify(err: &anyhow::Error) -> Failure {
    if let Some(StdoutFailed(e)) = err.downcast_ref::<StdoutFailed>() {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Failure::ReaderGone;
        }
    }
    match err.downcast_ref::<Status>() {
        Some(status) if lost_connection(status) => Failure::ClosedBeforeAnswer,
        Some(status) => Failure::Error(status_text(status)),
        None => Failure::Error(format!("{err:#}")),
    }
}

/// A status made on this side from a transport failure (it carries the failure as
/// its source), not one the supervisor sent: a sent status arrives without a source.
fn lost_connection(status: &Status) -> bool {
    let transport_code = matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal
    );
    transport_code && status.source().is_some()
}

/// Prints a failed command's error and picks the exit code.
pub fn report(err: anyhow::Error) -> ExitCode {
    match classify(&err) {
        Failure::ReaderGone => ExitCode::SUCCESS,
        Failure::ClosedBeforeAnswer => {
            eprintln!("error: {CLOSED_BEFORE_ANSWER}");
            ExitCode::FAILURE
        }
        Failure::Error(text) => {
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
    }
}

/// `<message> (<code name>)`, the message being the daemon's own words.
pub fn status_text(status: &Status) -> String {
    let message = super::output::escape_line(status.message());
    let code = code_name(status.code());
    if message.is_empty() {
        code.to_string()
    } else {
        format!("{message} ({code})")
    }
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status as tonic makes one when the connection breaks under a call: the
    /// transport failure is its source.
    fn transport_status(code: Code, cause: io::ErrorKind) -> Status {
        let mut status = Status::new(code, "transport error");
        status.set_source(std::sync::Arc::new(io::Error::from(cause)));
        status
    }

    #[test]
    fn status_text_names_the_code() {
        let status = Status::permission_denied("viewer may not approve");
        assert_eq!(
            status_text(&status),
            "viewer may not approve (permission denied)"
        );
        assert_eq!(status_text(&Status::new(Code::NotFound, "")), "not found");
    }

    #[test]
    fn a_refusal_from_the_supervisor_is_an_error() {
        let err: anyhow::Error = Status::invalid_argument("a comment is required").into();
        assert_eq!(
            classify(&err),
            Failure::Error("a comment is required (invalid argument)".into())
        );
        assert_eq!(report(err), ExitCode::FAILURE);
        // UNAVAILABLE sent by the supervisor (e.g. the audit cannot be written) is
        // its answer, not a lost connection.
        let sent: anyhow::Error = Status::unavailable("audit store not writable").into();
        assert!(matches!(classify(&sent), Failure::Error(t) if t.contains("audit store")));
    }

    #[test]
    fn a_broken_transport_is_never_success() {
        for (code, cause) in [
            (Code::Unknown, io::ErrorKind::BrokenPipe),
            (Code::Unavailable, io::ErrorKind::ConnectionReset),
            (Code::Cancelled, io::ErrorKind::UnexpectedEof),
            (Code::Internal, io::ErrorKind::BrokenPipe),
        ] {
            let err: anyhow::Error = transport_status(code, cause).into();
            assert_eq!(classify(&err), Failure::ClosedBeforeAnswer, "{code:?}");
            assert_eq!(report(err), ExitCode::FAILURE);
        }
    }

    #[test]
    fn a_closed_stdout_stays_quiet_but_other_stdout_errors_do_not() {
        let gone = anyhow::Error::new(StdoutFailed(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert_eq!(classify(&gone), Failure::ReaderGone);
        assert_eq!(report(gone), ExitCode::SUCCESS);
        let full = anyhow::Error::new(StdoutFailed(io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(matches!(classify(&full), Failure::Error(t) if t.contains("writing to stdout")));
        // A bare EPIPE not from stdout (e.g. from a socket) is not the reader leaving.
        let bare = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(classify(&bare), Failure::Error(_)));
    }

    /// A server that takes the request and hangs up without answering, as a
    /// supervisor killed mid-call does.
    #[tokio::test]
    async fn a_real_connection_closed_mid_call_is_reported_as_such() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_millis(300)))
                .unwrap();
            let mut buf = [0u8; 4096];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut admin = crate::cli::client::connect(&socket, None).await.unwrap();
        let status = admin
            .create_backup(broker_proto::admin::v1::CreateBackupRequest::default())
            .await
            .unwrap_err();
        server.join().unwrap();
        let err: anyhow::Error = status.into();
        assert_eq!(classify(&err), Failure::ClosedBeforeAnswer, "{err:#}");
    }
}
