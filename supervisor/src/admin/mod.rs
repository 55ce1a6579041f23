//! The admin API on the supervisor's Unix socket: who may connect (`gate`, `conn`), who
//! may call what (`auth`), what it answers (`service`, `health`, `reflection`), binding.

mod activity;
mod audit_page;
mod auth;
mod conn;
mod convert;
mod enums;
mod gate;
mod health;
mod operations;
mod reflection;
mod refusal;
mod reload;
mod review;
mod service;
mod settings;
mod trial;
mod trust;
mod upload;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use broker_proto::admin::v1::admin_server::AdminServer;
use broker_proto::MAX_ADMIN_MESSAGE_BYTES;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

pub use auth::{allowed, role_of, Need};
pub use service::AdminService;

/// Binds the admin socket: refuses to steal a socket another supervisor is
/// serving, replaces a stale one, and applies the configured mode.
pub fn bind(path: &Path, mode: u32, group: Option<&str>) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is served by another supervisor", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    if let Some(name) = group {
        let grp = nix::unistd::Group::from_name(name)?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("socket_group `{name}` does not exist"),
            )
        })?;
        nix::unistd::chown(path, None, Some(grp.gid))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Serves the admin API until `shutdown`: connections pass the accept-time gate
/// (role, caps) first, and each call is tracked so idle connections can be closed.
/// Beside it: `grpc.health.v1` and server reflection, for any role.
pub async fn serve(
    listener: UnixListener,
    service: AdminService,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let shared = Arc::clone(&service.shared);
    let gate = gate::Gate::new(Arc::clone(&shared.live));
    let (admitted, incoming) = tokio::sync::mpsc::unbounded_channel();
    let accepting = tokio::spawn(gate::accept_loop(
        listener,
        gate,
        Arc::clone(&shared),
        admitted,
    ));
    let server = AdminServer::new(service)
        .max_decoding_message_size(MAX_ADMIN_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ADMIN_MESSAGE_BYTES);
    let health = health::start(Arc::clone(&shared)).await;
    let (reflection_v1, reflection_v1alpha) = match reflection::services() {
        Ok((v1, v1alpha)) => (Some(v1), Some(v1alpha)),
        Err(e) => {
            tracing::error!(error = %e, "server reflection is not served");
            (None, None)
        }
    };
    let served = tonic::transport::Server::builder()
        .layer(activity::TrackCalls)
        .add_service(server)
        .add_service(gated(
            &shared,
            HealthServer::new(HealthService::from_health_reporter(health.reporter.clone())),
            "grpc.health.v1.Health",
        ))
        .add_optional_service(reflection_v1.map(|s| gated(&shared, s, "grpc.reflection.v1")))
        .add_optional_service(
            reflection_v1alpha.map(|s| gated(&shared, s, "grpc.reflection.v1alpha")),
        )
        .serve_with_incoming_shutdown(
            UnboundedReceiverStream::new(incoming).map(Ok::<_, std::io::Error>),
            shutdown,
        )
        .await;
    // The stream is gone, so the accept loop stops (writing its last refusals).
    let _ = accepting.await;
    served
}

/// `service` behind the role check every admin RPC has (any role may call it).
fn gated<S>(
    shared: &Arc<crate::context::Shared>,
    service: S,
    name: &'static str,
) -> InterceptedService<S, impl tonic::service::Interceptor + Clone> {
    InterceptedService::new(service, auth::read_gate(Arc::clone(shared), name))
}

pub fn service(
    shared: Arc<crate::context::Shared>,
    runtime: Arc<crate::runtime::Runtime>,
    reloader: Arc<crate::reload::Reloader>,
) -> AdminService {
    AdminService {
        shared,
        runtime,
        reloader,
    }
}
