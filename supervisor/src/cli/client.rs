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
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| connect_error(socket, &e))?;
    Ok(AdminClient::with_interceptor(channel, interceptor)
        .max_decoding_message_size(MAX_ADMIN_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ADMIN_MESSAGE_BYTES))
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
