//! Adopting the broker connection: the inherited socketpair fd, taken at most once per
//! process, and the tonic channel that speaks HTTP/2 over it without ever reconnecting.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::SdkError;

/// Environment variable naming the inherited broker fd.
pub const BROKER_FD_ENV: &str = "PLEXICHAT_BROKER_FD";

/// The fd the supervisor uses when [`BROKER_FD_ENV`] is unset.
pub const DEFAULT_BROKER_FD: RawFd = 3;

/// Broker calls a plugin keeps in flight at once unless it asks for another limit
/// ([`Plugin::max_in_flight`](crate::Plugin::max_in_flight)); calls beyond it wait in
/// the plugin. Below the broker's 128 streams per connection, so a burst queues here
/// instead of at the HTTP/2 layer, and the plugin's replies and pongs (which do not
/// count against it) always find a stream.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The channel with the plugin's in-flight limit in front: every clone shares it.
pub(crate) type Limited = tower::limit::ConcurrencyLimit<Channel>;

pub(crate) fn limit(channel: Channel, max_in_flight: usize) -> Limited {
    tower::limit::ConcurrencyLimit::new(channel, max_in_flight.max(1))
}

/// The largest header list the plugin accepts from the broker: far above the
/// broker's own cap on error messages, so an answer never becomes a connection error.
const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Set once the broker fd has been turned into an owned stream. Creating a second
/// owner would close the fd twice (and possibly close an unrelated, reused fd number).
static BROKER_FD_TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes the inherited broker fd named by the environment, once per process.
pub(crate) fn take_inherited_stream() -> Result<UnixStream, SdkError> {
    let fd = broker_fd_from_env()?;
    // SAFETY: `BROKER_FD_TAKEN` is the process-wide guard for the broker fd, and the
    // supervisor contract is that nothing but this SDK owns that fd.
    unsafe { take_fd(fd, &BROKER_FD_TAKEN) }
}

fn broker_fd_from_env() -> Result<RawFd, SdkError> {
    match std::env::var_os(BROKER_FD_ENV) {
        None => Ok(DEFAULT_BROKER_FD),
        Some(raw) => parse_fd(&raw.to_string_lossy()),
    }
}

fn parse_fd(raw: &str) -> Result<RawFd, SdkError> {
    let no_fd = |reason: &str| SdkError::NoBrokerFd {
        fd: raw.to_string(),
        reason: reason.to_string(),
    };
    let fd: RawFd = raw
        .trim()
        .parse()
        .map_err(|_| no_fd(&format!("{BROKER_FD_ENV} is not a file descriptor number")))?;
    // stdio can legitimately be a Unix socket (journald), so adopting it would
    // hijack the plugin's own log stream rather than reach the broker.
    if fd < 3 {
        return Err(no_fd("fds 0-2 are stdio, never the broker"));
    }
    Ok(fd)
}

/// Turns `fd` into a non-blocking tokio stream after checking it really is an
/// inherited Unix stream socket. Fails without touching `fd` if the check fails.
///
/// # Safety
/// `flag` must be the one guard for `fd` in this process, and nothing outside
/// this function may own `fd` (it will be closed when the stream drops).
unsafe fn take_fd(fd: RawFd, flag: &AtomicBool) -> Result<UnixStream, SdkError> {
    if flag.load(Ordering::Acquire) {
        return Err(SdkError::AlreadyConnected);
    }
    // Adopting the fd outside a runtime would panic in `from_std`; by then the flag
    // would be set and the fd lost for good, so refuse first.
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(SdkError::Io(io::Error::other(
            "the broker connection must be opened from inside a Tokio runtime",
        )));
    }
    check_inherited_unix_stream(fd).map_err(|reason| SdkError::NoBrokerFd {
        fd: fd.to_string(),
        reason,
    })?;
    if flag
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(SdkError::AlreadyConnected);
    }
    // SAFETY: the fd is open (checked above), and the flag we just won guarantees
    // this is the only owner this SDK creates; the caller guarantees no other owner.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let std_stream = std::os::unix::net::UnixStream::from(owned);
    // Children the plugin spawns must not inherit the broker connection: whoever
    // holds it speaks to the supervisor as this plugin.
    set_cloexec(fd)?;
    std_stream.set_nonblocking(true)?;
    Ok(UnixStream::from_std(std_stream)?)
}

/// Checks that `fd` is an open `AF_UNIX` `SOCK_STREAM` socket that survived exec,
/// without taking it.
fn check_inherited_unix_stream(fd: RawFd) -> Result<(), String> {
    // SAFETY: F_GETFD only reads the fd's flags; a bad fd only yields an error.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd_flags < 0 {
        return Err("the fd is not open".to_string());
    }
    // Everything Rust, tokio and mio open is close-on-exec, and exec closes such fds,
    // so a close-on-exec fd was opened by this process. Without this check, a missing
    // fd 3 could be filled by one of the runtime's own sockets (tokio's signal
    // socketpair) and the SDK would hijack it.
    if fd_flags & libc::FD_CLOEXEC != 0 {
        return Err(
            "the fd was opened by this process (close-on-exec), not inherited from the supervisor"
                .to_string(),
        );
    }
    let mut sock_type: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `sock_type`; a bad fd only
    // yields an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut sock_type as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EBADF) => "the fd is not open".to_string(),
            Some(libc::ENOTSOCK) => "the fd is not a socket".to_string(),
            _ => format!("cannot inspect the fd: {err}"),
        });
    }
    if sock_type != libc::SOCK_STREAM {
        return Err("the fd is not a stream socket".to_string());
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value of that plain C struct.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut addr_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `addr_len` bytes into `addr`.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut addr_len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot inspect the socket: {}",
            io::Error::last_os_error()
        ));
    }
    if libc::c_int::from(addr.ss_family) != libc::AF_UNIX {
        return Err("the fd is not a Unix-domain socket".to_string());
    }
    Ok(())
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl F_GETFD/F_SETFD only read and write the fd's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Builds a tonic channel over `stream`. The connector hands the stream out exactly
/// once: if the connection drops, tonic's reconnect attempts fail instead of
/// silently reaching something else, because the socketpair cannot be reopened.
pub(crate) async fn channel_over(stream: UnixStream) -> Result<Channel, SdkError> {
    let slot = Arc::new(Mutex::new(Some(stream)));
    let connector = tower::service_fn(move |_: Uri| {
        // A poisoned lock can only come from a panic mid-`take`; treat it as used up.
        let stream = slot.lock().ok().and_then(|mut s| s.take());
        async move {
            stream.map(TokioIo::new).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotConnected,
                    "the broker connection is closed and cannot be reopened",
                )
            })
        }
    });
    // The authority is never resolved; it only fills the HTTP/2 `:authority` header.
    Endpoint::from_static("http://plexichat.broker")
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .connect_with_connector(connector)
        .await
        .map_err(crate::error::from_transport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn parses_fd_numbers() {
        assert_eq!(parse_fd("3").ok(), Some(3));
        assert_eq!(parse_fd(" 7 ").ok(), Some(7));
        for bad in ["", "x", "-1", "0", "2", "3.0"] {
            assert!(
                matches!(parse_fd(bad), Err(SdkError::NoBrokerFd { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[tokio::test]
    async fn takes_a_socket_fd_exactly_once() {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let fd = ours.into_raw_fd();
        clear_cloexec(fd);
        let flag = AtomicBool::new(false);
        // SAFETY: `fd` was just released by its only owner, and `flag` is its guard.
        let stream = unsafe { take_fd(fd, &flag) }.expect("first take succeeds");
        // SAFETY: the guard refuses before anything touches `fd`.
        let again = unsafe { take_fd(fd, &flag) };
        assert!(
            matches!(again, Err(SdkError::AlreadyConnected)),
            "{again:?}"
        );

        // The adopted stream really is the socketpair end, and now close-on-exec.
        stream.writable().await.expect("writable");
        stream.try_write(b"hi").expect("write");
        let mut buf = [0u8; 2];
        std::io::Read::read_exact(&mut &theirs, &mut buf).expect("read");
        assert_eq!(&buf, b"hi");
        // SAFETY: F_GETFD only reads flags of an fd we own.
        let flags = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0);
    }

    /// What exec does to an inherited fd: it survives only without close-on-exec.
    fn clear_cloexec(fd: RawFd) {
        // SAFETY: F_SETFD only changes the flags of an fd the test owns.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    }

    #[tokio::test]
    async fn refuses_sockets_this_process_opened() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let flag = AtomicBool::new(false);
        // SAFETY: refused before ownership is taken; `ours` keeps owning the fd.
        let res = unsafe { take_fd(ours.as_raw_fd(), &flag) };
        match res {
            Err(SdkError::NoBrokerFd { reason, .. }) => assert!(reason.contains("close-on-exec")),
            other => panic!("expected NoBrokerFd, got {other:?}"),
        }
        assert!(!flag.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn refuses_non_sockets_without_consuming_the_guard() {
        let file = std::fs::File::open("/dev/null").expect("open /dev/null");
        clear_cloexec(file.as_raw_fd());
        let flag = AtomicBool::new(false);
        // SAFETY: the check fails before ownership is taken; `file` keeps owning it.
        let res = unsafe { take_fd(file.as_raw_fd(), &flag) };
        match res {
            Err(SdkError::NoBrokerFd { reason, .. }) => assert!(reason.contains("not a socket")),
            other => panic!("expected NoBrokerFd, got {other:?}"),
        }
        assert!(!flag.load(Ordering::Acquire));

        let (dgram, _peer) = std::os::unix::net::UnixDatagram::pair().expect("pair");
        clear_cloexec(dgram.as_raw_fd());
        // SAFETY: as above; `dgram` keeps owning its fd.
        let res = unsafe { take_fd(dgram.as_raw_fd(), &flag) };
        assert!(matches!(res, Err(SdkError::NoBrokerFd { .. })), "{res:?}");

        // Far above any RLIMIT_NOFILE, so it cannot be open even in a busy test process.
        // SAFETY: an fd number that is not open cannot be adopted.
        let res = unsafe { take_fd(1 << 29, &flag) };
        match res {
            Err(SdkError::NoBrokerFd { reason, .. }) => assert!(reason.contains("not open")),
            other => panic!("expected NoBrokerFd, got {other:?}"),
        }
        assert!(!flag.load(Ordering::Acquire));
    }

    #[test]
    fn refuses_outside_a_runtime() {
        let (ours, _theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        let flag = AtomicBool::new(false);
        // SAFETY: refused before ownership is taken; `ours` keeps owning the fd.
        let res = unsafe { take_fd(ours.as_raw_fd(), &flag) };
        assert!(matches!(res, Err(SdkError::Io(_))), "{res:?}");
        assert!(!flag.load(Ordering::Acquire));
    }
}
