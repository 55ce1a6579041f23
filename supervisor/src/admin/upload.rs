//! `UploadPlugin`: install or update from a package streamed by the caller, under
//! the plugin's lifecycle lock; and the refusal of the old path-based calls.

use std::sync::Arc;
use std::time::Duration;

use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::*;
use tonic::{Request, Response, Status, Streaming};

use super::service::{busy_status, install_status, AdminService};
use super::Need;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::backup::{self, Reason};
use crate::install::{self, InstallError, Prepared, Staging};
use crate::lifecycle::{self, Op};
use crate::package::unpack::{UnpackError, Unpacker};
use crate::package::MAX_ORIGIN_BYTES;
use crate::store;

/// A caller that sends nothing for this long loses its upload.
const STALL: Duration = Duration::from_secs(30);
/// An armored SSHSIG of an Ed25519 key is about 300 bytes.
const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// What the header says of the package's form and signature.
struct Provenance {
    archive: bool,
    signature: Option<String>,
}

/// Install or update, with the name an update names.
#[derive(Debug, Clone)]
enum Intent {
    Install,
    Update(String),
}

impl Intent {
    fn op(&self) -> Op {
        match self {
            Intent::Install => Op::Install,
            Intent::Update(_) => Op::Update,
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Intent::Install => "plugin.install",
            Intent::Update(_) => "plugin.update",
        }
    }
}

/// The answer to `InstallPlugin` and `UpdatePlugin`: the daemon does not open a
/// path its caller names.
pub(super) fn path_api_removed() -> Status {
    Status::failed_precondition(
        "installing from a path the daemon opens is no longer supported: the caller streams the package (UploadPlugin; `plexichat plugin install DIR` / `plugin update NAME DIR` do)",
    )
}

fn joined(e: tokio::task::JoinError) -> Status {
    Status::internal(e.to_string())
}

fn unpack_status(origin: &str, e: UnpackError) -> Status {
    match e {
        UnpackError::Refused(message) => install_status(InstallError::Package {
            path: origin.to_string(),
            message,
        }),
        UnpackError::Io { .. } => Status::internal(e.to_string()),
    }
}

impl AdminService {
    pub(super) async fn op_upload(
        &self,
        request: Request<Streaming<PackageChunk>>,
    ) -> Result<Response<UploadPluginResponse>, Status> {
        let actor = self.auth(&request, "upload", Need::Change)?;
        let mut chunks = request.into_inner();
        let header = match next(&mut chunks).await? {
            Some(Item::Header(h)) => h,
            _ => return Err(Status::invalid_argument("an upload starts with its header")),
        };
        let intent = match UploadIntent::try_from(header.intent) {
            Ok(UploadIntent::Install) => Intent::Install,
            Ok(UploadIntent::Update) if !header.name.is_empty() => Intent::Update(header.name),
            Ok(UploadIntent::Update) => {
                return Err(Status::invalid_argument("an update names the plugin"))
            }
            _ => {
                return Err(Status::invalid_argument(
                    "an upload is an install or an update",
                ))
            }
        };
        let origin = crate::text::prefix(&header.origin, MAX_ORIGIN_BYTES).to_string();
        // The plugin's name, once the package's manifest has told it.
        let mut named = match &intent {
            Intent::Update(name) => Some(name.clone()),
            Intent::Install => None,
        };
        let provenance = Provenance {
            archive: header.archive,
            signature: match header.signature.trim() {
                "" => None,
                sig if sig.len() > MAX_SIGNATURE_BYTES => {
                    return Err(Status::invalid_argument(format!(
                        "the signature is longer than {MAX_SIGNATURE_BYTES} bytes"
                    )))
                }
                sig => Some(sig.to_string()),
            },
        };
        let result = self
            .upload(&actor, &intent, &origin, provenance, chunks, &mut named)
            .await;
        if let Err(status) = &result {
            let mut entry = AuditEntry::new(&actor, intent.action(), Outcome::Failed).detail(
                serde_json::json!({ "source": origin, "uploaded": true, "error": status.message() }),
            );
            if let Some(name) = named {
                entry = entry.plugin(name);
            }
            self.audit(entry).await?;
        }
        result.map(Response::new)
    }

    async fn upload(
        &self,
        actor: &Actor,
        intent: &Intent,
        origin: &str,
        provenance: Provenance,
        chunks: Streaming<PackageChunk>,
        named: &mut Option<String>,
    ) -> Result<UploadPluginResponse, Status> {
        lifecycle::admit(&self.shared, intent.op())
            .map_err(|e| Status::resource_exhausted(e.to_string()))?;
        let (staging, declared) = self.receive(origin, provenance.archive, chunks).await?;
        let shared = Arc::clone(&self.shared);
        let origin2 = origin.to_string();
        let prepared = tokio::task::spawn_blocking(move || {
            install::prepare(&shared.catalog, &shared.cfg.python, staging, &origin2)
        })
        .await
        .map_err(joined)?
        .map_err(install_status)?;
        // From here a refusal's audit record names the plugin.
        named.get_or_insert_with(|| prepared.name().to_string());
        let prepared = self.authenticate(prepared, provenance, declared).await?;
        match intent {
            Intent::Install => self.install(actor, prepared).await,
            Intent::Update(name) => self.update(actor, name, prepared).await,
        }
    }

    /// The package's files against its content list, and its signature against the
    /// trust store (see `Prepared::authenticate`).
    async fn authenticate(
        &self,
        mut prepared: Prepared,
        provenance: Provenance,
        declared: Option<Vec<u8>>,
    ) -> Result<Prepared, Status> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let keys = shared.store.read(store::trusted_keys)?;
            let check = install::Provenance {
                declared: declared.as_deref(),
                signature: provenance.signature.as_deref(),
                required: shared.cfg.install.require_signature,
            };
            prepared.authenticate(&check, |fpr| {
                keys.iter().find(|k| k.fingerprint == fpr).cloned()
            })?;
            Ok::<_, InstallError>(prepared)
        })
        .await
        .map_err(joined)?
        .map_err(install_status)
    }

    /// Unpacks the stream (entries, or an archive's bytes) into a fresh staging
    /// directory of this request; an archive's content list comes back with it.
    async fn receive(
        &self,
        origin: &str,
        archive: bool,
        mut chunks: Streaming<PackageChunk>,
    ) -> Result<(Staging, Option<Vec<u8>>), Status> {
        let shared = Arc::clone(&self.shared);
        let staging = tokio::task::spawn_blocking(move || Staging::create(&shared.cfg))
            .await
            .map_err(joined)?
            .map_err(|e| Status::internal(format!("creating a staging directory: {e}")))?;
        // One blocking thread writes the whole package; the stream feeds it.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(16);
        let root = staging.path().to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            let mut unpacker = Unpacker::new(&root);
            let declared = if archive {
                Some(crate::package::archive::read_stream(rx, &mut unpacker)?)
            } else {
                while let Some(item) = rx.blocking_recv() {
                    unpacker.accept(item)?;
                }
                None
            };
            unpacker.finish().map(|()| declared)
        });
        let fed = async {
            while let Some(item) = next(&mut chunks).await? {
                if tx.send(item).await.is_err() {
                    // The writer refused the package; its error says why.
                    break;
                }
            }
            Ok::<(), Status>(())
        }
        .await;
        drop(tx);
        let written = writer.await.map_err(joined);
        let received = match (fed, written) {
            (Err(status), _) | (_, Err(status)) => Err(status),
            (Ok(()), Ok(unpacked)) => unpacked.map_err(|e| unpack_status(origin, e)),
        };
        match received {
            Ok(declared) => Ok((staging, declared)),
            Err(status) => {
                // Deleting a large refused package is file work, off the async threads.
                let _ = tokio::task::spawn_blocking(move || drop(staging)).await;
                Err(status)
            }
        }
    }

    async fn install(
        &self,
        actor: &Actor,
        prepared: Prepared,
    ) -> Result<UploadPluginResponse, Status> {
        let name = prepared.name().to_string();
        let _lock = self
            .shared
            .locks
            .plugin(&name, Op::Install)
            .await
            .map_err(busy_status)?;
        let (shared, actor2, name2) = (Arc::clone(&self.shared), actor.clone(), name.clone());
        let installed = tokio::task::spawn_blocking(move || {
            let backup = || {
                backup::create(
                    &shared,
                    &actor2,
                    Reason::Install,
                    &format!("before installing {name2}"),
                )
                .map(drop)
                .map_err(|e| {
                    InstallError::Refused(format!("the backup before installing failed: {e}"))
                })
            };
            install::install(&shared.cfg, &shared.store, &actor2, prepared, &backup)
        })
        .await
        .map_err(joined)?
        .map_err(install_status)?;
        let n = installed.manifest.permissions.len();
        self.shared.hub.notify(
            broker_proto::admin::v1::NotificationKind::ApprovalRequired,
            &name,
            format!(
                "{name} {} installed with {n} permission request(s) awaiting review",
                installed.row.version
            ),
        );
        Ok(UploadPluginResponse {
            summary: Some(self.summary(&name)?),
            update: None,
        })
    }

    async fn update(
        &self,
        actor: &Actor,
        name: &str,
        prepared: Prepared,
    ) -> Result<UploadPluginResponse, Status> {
        let _lock = self
            .shared
            .locks
            .plugin(name, Op::Update)
            .await
            .map_err(busy_status)?;
        let (shared, actor2, name2) = (Arc::clone(&self.shared), actor.clone(), name.to_string());
        let (taken, updated) = tokio::task::spawn_blocking(move || {
            let taken = std::cell::RefCell::new(None);
            let backup = || {
                let row = backup::create(
                    &shared,
                    &actor2,
                    Reason::Update,
                    &format!("before updating {name2}"),
                )
                .map_err(|e| {
                    InstallError::Refused(format!("the backup before updating failed: {e}"))
                })?;
                *taken.borrow_mut() = Some(row.id);
                Ok(())
            };
            let updated = install::update(
                &shared.cfg,
                &shared.catalog,
                &shared.store,
                &actor2,
                &name2,
                prepared,
                &backup,
            )?;
            Ok::<_, InstallError>((taken.into_inner().unwrap_or_default(), updated))
        })
        .await
        .map_err(joined)?
        .map_err(install_status)?;
        self.switch_to_new_version(&updated).await;
        let (shared, name2) = (Arc::clone(&self.shared), name.to_string());
        // The old version no longer runs and the store points at the new one; what
        // a kept backup points at stays, so a restore from before the update works.
        tokio::task::spawn_blocking(move || {
            match backup::install_dirs_in_backups(&shared, &name2) {
                Ok(keep) => install::retire(&shared.cfg, &shared.store, &name2, &keep),
                Err(e) => tracing::warn!(plugin = %name2, error = %e, "cannot list backups: old versions stay"),
            }
        })
        .await
        .map_err(joined)?;
        let summary = self.summary(name)?;
        Ok(UploadPluginResponse {
            summary: Some(summary.clone()),
            update: Some(UpdatePluginResponse {
                summary: Some(summary),
                previous_version: updated.previous.version,
                carried_over: updated.carried_over,
                to_review: updated.to_review,
                dropped: updated.dropped,
                backup_id: taken,
            }),
        })
    }
}

/// The next message, or `None` at the end of the stream; a caller that stalls
/// or breaks off gets a status naming it.
async fn next(chunks: &mut Streaming<PackageChunk>) -> Result<Option<Item>, Status> {
    match tokio::time::timeout(STALL, chunks.message()).await {
        Err(_) => Err(Status::deadline_exceeded(format!(
            "the upload stalled: nothing arrived for {}s; nothing was installed",
            STALL.as_secs()
        ))),
        Ok(Err(status)) => Err(Status::cancelled(format!(
            "the upload broke off ({}); nothing was installed",
            status.message()
        ))),
        Ok(Ok(None)) => Ok(None),
        Ok(Ok(Some(chunk))) => chunk
            .item
            .map(Some)
            .ok_or_else(|| Status::invalid_argument("an empty upload message")),
    }
}
