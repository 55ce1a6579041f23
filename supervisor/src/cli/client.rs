//! The `plexichat` CLI's connection to the supervisor: admin socket path
//! resolution, the gRPC channel over a Unix socket, and the on-behalf-of header.

use std::error::Error as StdError;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use broker_proto::admin::v1::admin_client::AdminClient;
use broker_proto::{MAX_ADMIN_MESSAGE_BYTES, ON_BEHALF_OF_HEADER};
use hyper_util::rt::TokioIo;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Where a system-wide daemon listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/plexichat/supervisor.sock";

/// Environment variable overriding [`DEFAULT_SOCKET`].
pub const SOCKET_ENV: &str = "PLEXICHAT_SOCKET";

/// The admin client every command talks through.
pub type Admin = AdminClient<InterceptedService<Channel, OnBehalfOf>>;

/// Socket path: `--socket`, else `$PLEXICHAT_SOCKET`, else the default. An
/// empty variable counts as unset, as `PLEXICHAT_SOCKET= plexichat ...` is
/// the usual way to clear it for one command.
pub fn resolve_socket(flag: Option<PathBuf>, env: Option<OsString>) -> PathBuf {
    flag.or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// [`resolve_socket`] against the real environment.
pub fn socket_from_env(flag: Option<PathBuf>) -> PathBuf {
    resolve_socket(flag, std::env::var_os(SOCKET_ENV))
}

/// Adds the on-behalf-of header to every call when the CLI acts for an
/// end-user admin; the daemon records both identities in the audit trail.
#[derive(Clone, Default)]
pub struct OnBehalfOf(Option<MetadataValue<Ascii>>);

impl OnBehalfOf {
    pub fn new(name: Option<&str>) -> anyhow::Result<Self> {
        let value = name
            .map(MetadataValue::try_from)
            .transpose()
            .map_err(|_| anyhow!("--on-behalf-of must be printable ASCII"))?;
        Ok(Self(value))
    }
}

impl Interceptor for OnBehalfOf {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert(ON_BEHALF_OF_HEADER, value.clone());
        }
        Ok(request)
    }
}

/// Connects eagerly, so an absent or inaccessible daemon is reported once,
/// up front, naming the socket that was tried.
pub async fn connect(socket: &Path, on_behalf_of: Option<&str>) -> anyhow::Result<Admin> {
    let interceptor = OnBehalfOf::new(on_behalf_of)?;
    let path = socket.to_path_buf();
    // The URI is required by the HTTP/2 layer but never resolved: every
    // connection goes to the Unix socket.
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                let stream = tokio::task::spawn_blocking(move || connect_waiting(&path))
                    .await
                    .map_err(io::Error::other)??;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| connect_error(socket, &e))?;
    Ok(AdminClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(MAX_ADMIN_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ADMIN_MESSAGE_BYTES))
}

/// How long a connect waits for room in the socket's listen queue.
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A blocking connect, which waits its turn while the listen queue is full (callers
/// flooding the socket) where a non-blocking one fails at once with EAGAIN.
fn connect_waiting(path: &Path) -> io::Result<tokio::net::UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket(2) returns a new fd or -1.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // A Unix connect waits for the listen queue up to the send timeout.
    let wait = libc::timeval {
        tv_sec: CONNECT_WAIT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: setsockopt with a timeval of the size given.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&wait as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in with room for NUL.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    if bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "socket path too long",
        ));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: connect with a valid fd and an initialised address of `len` bytes.
    if unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    let std = std::os::unix::net::UnixStream::from(fd);
    std.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(std)
}

fn connect_error(socket: &Path, err: &(dyn StdError + 'static)) -> anyhow::Error {
    let io_err = std::iter::successors(Some(err), |&e| e.source())
        .find_map(|e| e.downcast_ref::<io::Error>());
    let (cause, hint) = match io_err {
        Some(e) => (e.to_string(), hint_for(e.kind())),
        None => (err.to_string(), ""),
    };
    anyhow!(
        "cannot connect to the PlexiChat supervisor at {}: {cause}{hint}",
        socket.display()
    )
}

fn hint_for(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            " (is plexichat-supervisor running? use --socket or PLEXICHAT_SOCKET for another path)"
        }
        io::ErrorKind::PermissionDenied => {
            " (check the socket's owner and mode; access is limited to configured users)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_flag_wins_over_env_and_default() {
        let path = resolve_socket(Some("/tmp/flag.sock".into()), Some("/tmp/env.sock".into()));
        assert_eq!(path, PathBuf::from("/tmp/flag.sock"));
    }

    #[test]
    fn socket_env_wins_over_default() {
        let path = resolve_socket(None, Some("/tmp/env.sock".into()));
        assert_eq!(path, PathBuf::from("/tmp/env.sock"));
    }

    #[test]
    fn socket_defaults_when_unset_or_empty() {
        assert_eq!(resolve_socket(None, None), PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(
            resolve_socket(None, Some("".into())),
            PathBuf::from(DEFAULT_SOCKET)
        );
    }

    #[test]
    fn interceptor_sets_header_only_when_asked() {
        let mut with = OnBehalfOf::new(Some("alice")).unwrap();
        let req = with.call(Request::new(())).unwrap();
        assert_eq!(req.metadata().get(ON_BEHALF_OF_HEADER).unwrap(), "alice");

        let mut without = OnBehalfOf::new(None).unwrap();
        let req = without.call(Request::new(())).unwrap();
        assert!(req.metadata().get(ON_BEHALF_OF_HEADER).is_none());
    }

    #[test]
    fn interceptor_rejects_non_ascii_names() {
        assert!(OnBehalfOf::new(Some("al\nice")).is_err());
    }

    #[tokio::test]
    async fn connect_failure_names_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("absent.sock");
        let err = connect(&socket, None).await.err().unwrap().to_string();
        assert!(err.contains(&socket.display().to_string()), "{err}");
        assert!(err.contains("is plexichat-supervisor running"), "{err}");
    }
}
