//! `ReviewPlugin` (the dossier a reviewer reads before deciding), `ImportAdvisories`,
//! and the dependency and advisory fields ShowPlugin adds to a plugin's detail.

use std::sync::Arc;

use broker_proto::admin::v1::{
    self as api, AdvisoryChunk, AdvisoryFinding, DependencyInventory, ImportAdvisoriesResponse,
    PluginAdvisories, PluginDetail, PluginRef, PluginReview,
};
use tonic::{Request, Response, Status, Streaming};

use super::service::{store_status, AdminService};
use super::Need;
use crate::advisories::{Finding, Inventory};
use crate::advisory_watch::{self, WatchError};
use crate::manifest::Manifest;
use crate::package::contents;
use crate::review;
use crate::store::{self, AdvisoryDbRow, PackageRecord, PluginRow, StoreError};

/// An advisory database upload is at most this long (the whole RustSec db is ~6 MiB).
const MAX_DATABASE_BYTES: usize = 64 * 1024 * 1024;

pub fn finding(f: &Finding) -> AdvisoryFinding {
    AdvisoryFinding {
        advisory_id: f.advisory_id.clone(),
        ecosystem: f.ecosystem.to_string(),
        package: f.package.clone(),
        version: f.version.clone(),
        title: f.title.clone(),
        severity: f.severity.clone().unwrap_or_default(),
        patched: f.patched.clone(),
        informational: f.informational.clone().unwrap_or_default(),
        url: f.url.clone().unwrap_or_default(),
        aliases: f.aliases.clone(),
    }
}

fn inventory(i: &Inventory) -> DependencyInventory {
    DependencyInventory {
        known: i.known,
        note: i.note.clone(),
        dependencies: i
            .dependencies
            .iter()
            .map(|d| api::Dependency {
                ecosystem: d.ecosystem.to_string(),
                name: d.name.clone(),
                version: d.version.clone(),
            })
            .collect(),
    }
}

pub fn database(row: &AdvisoryDbRow) -> api::AdvisoryDatabase {
    api::AdvisoryDatabase {
        imported_at_ms: row.imported_at,
        imported_by: row.imported_by.clone(),
        source: row.source.clone(),
        advisories: row.advisories,
    }
}

fn watch_status(e: WatchError) -> Status {
    match e {
        WatchError::Invalid(_) => Status::invalid_argument(e.to_string()),
        WatchError::Store(s) => store_status(s),
    }
}

/// Each installed plugin's findings against the current database.
pub fn all_findings(c: &rusqlite::Connection) -> Result<Vec<PluginAdvisories>, StoreError> {
    let Some(db) = advisory_watch::current(c)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in store::plugin_names(c)? {
        let Some(package) = store::package(c, &name)? else {
            continue;
        };
        let findings = package.inventory.findings(Some(&db));
        if !findings.is_empty() {
            out.push(PluginAdvisories {
                plugin: name,
                findings: findings.iter().map(finding).collect(),
            });
        }
    }
    Ok(out)
}

impl AdminService {
    /// The detail's dependencies and advisories, from the package record.
    pub(super) fn add_package_fields(
        &self,
        d: &mut PluginDetail,
        name: &str,
    ) -> Result<(), Status> {
        let (package, db) = self
            .shared
            .store
            .read(|c| Ok((store::package(c, name)?, advisory_watch::current(c)?)))
            .map_err(store_status)?;
        if let Some(p) = package {
            d.dependencies = Some(inventory(&p.inventory));
            d.advisories = p
                .inventory
                .findings(db.as_ref())
                .iter()
                .map(finding)
                .collect();
        }
        Ok(())
    }

    pub(super) async fn op_import_advisories(
        &self,
        request: Request<Streaming<AdvisoryChunk>>,
    ) -> Result<Response<ImportAdvisoriesResponse>, Status> {
        let actor = self.auth(&request, "advisories import", Need::Change)?;
        let mut chunks = request.into_inner();
        let (mut source, mut json) = (String::new(), Vec::new());
        while let Some(chunk) = chunks.message().await? {
            if source.is_empty() {
                source = crate::text::prefix(&chunk.source, 512).to_string();
            }
            if json.len() + chunk.data.len() > MAX_DATABASE_BYTES {
                return Err(Status::invalid_argument(format!(
                    "the advisory database is larger than {MAX_DATABASE_BYTES} bytes"
                )));
            }
            json.extend_from_slice(&chunk.data);
        }
        let json = String::from_utf8(json)
            .map_err(|_| Status::invalid_argument("the advisory database is not UTF-8 JSON"))?;
        let shared = Arc::clone(&self.shared);
        let imported = tokio::task::spawn_blocking(move || {
            advisory_watch::import(&shared.store, &actor, &json, &source)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(watch_status)?;
        for (plugin, findings) in &imported.flagged {
            self.shared.hub.notify(
                api::NotificationKind::Alert,
                plugin,
                format!(
                    "{plugin}: {} advisory match(es) after an import",
                    findings.len()
                ),
            );
        }
        Ok(Response::new(ImportAdvisoriesResponse {
            database: Some(database(&imported.row)),
            flagged: imported
                .flagged
                .iter()
                .map(|(plugin, f)| PluginAdvisories {
                    plugin: plugin.clone(),
                    findings: f.iter().map(finding).collect(),
                })
                .collect(),
        }))
    }

    pub(super) async fn op_review(
        &self,
        request: Request<PluginRef>,
    ) -> Result<Response<PluginReview>, Status> {
        self.auth(&request, "review", Need::Read)?;
        let name = request.into_inner().name;
        let detail = self.detail(&name)?.into_inner();
        let (row, package, stored, key) = self
            .shared
            .store
            .read(|c| {
                let row = store::plugin_row(c, &name)?
                    .ok_or_else(|| StoreError::NoSuchPlugin(name.clone()))?;
                let key = match &row.signer {
                    Some(s) => store::trusted_key(c, &s.fingerprint)?,
                    None => None,
                };
                Ok((
                    row,
                    store::package(c, &name)?,
                    store::setting_values(c, &name)?,
                    key,
                ))
            })
            .map_err(store_status)?;
        let manifest = Manifest::parse(&row.manifest, &self.shared.catalog).ok();
        let settings = manifest
            .as_ref()
            .map(|m| {
                m.declared
                    .settings
                    .iter()
                    .map(|s| super::settings::setting(s, stored.get(&s.key)))
                    .collect()
            })
            .unwrap_or_default();
        let signer_key = key.map(|k| {
            let signed = self
                .shared
                .store
                .read(|c| store::plugins_signed_by(c, &k.fingerprint))
                .unwrap_or_default();
            super::trust::key_message(k, signed)
        });
        let update = match (&package, &manifest) {
            (Some(p), Some(m)) => self.update_review(p, m, &detail),
            _ => None,
        };
        let pkg = self
            .package_review(&row, package.as_ref(), manifest.as_ref())
            .await?;
        Ok(Response::new(PluginReview {
            permissions: self.permission_reviews(&detail),
            plugin: Some(detail),
            signer_key,
            package: Some(pkg),
            settings,
            update,
        }))
    }

    fn permission_reviews(&self, d: &PluginDetail) -> Vec<api::PermissionReview> {
        d.permissions
            .iter()
            .filter_map(|p| {
                let perm = p.permission.parse().ok()?;
                Some(api::PermissionReview {
                    allows: review::allows(self.shared.catalog.spec(perm), &p.requested_scope),
                    permission: p.permission.clone(),
                    risk: p.risk,
                    scope: p.requested_scope.clone(),
                    justification: p.justification.clone(),
                    status: p.status,
                    required_approvals: p.required_approvals,
                })
            })
            .collect()
    }

    async fn package_review(
        &self,
        row: &PluginRow,
        package: Option<&PackageRecord>,
        manifest: Option<&Manifest>,
    ) -> Result<api::PackageReview, Status> {
        let files = package
            .map(|p| contents::files(&p.contents))
            .unwrap_or_default();
        let entry_rel = manifest.map(|m| m.entry.clone()).unwrap_or_default();
        let entry = std::path::Path::new(&row.install_dir).join(&entry_rel);
        let linkage = tokio::task::spawn_blocking(move || review::linkage(&entry))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(api::PackageReview {
            runtime: if row.python.is_some() {
                api::RuntimeKind::Python3
            } else {
                api::RuntimeKind::Native
            }
            .into(),
            bytes: files.iter().map(|f| f.size).sum(),
            files: files
                .into_iter()
                .map(|f| api::PackageFile {
                    path: f.path,
                    mode: f.mode,
                    size: f.size,
                    sha256: f.sha256,
                })
                .collect(),
            entry: Some(api::EntryLinkage {
                path: entry_rel.display().to_string(),
                format: linkage.format,
                static_binary: linkage.static_binary,
                interpreter: linkage.interpreter.unwrap_or_default(),
                needed: linkage.needed,
            }),
        })
    }

    fn update_review(
        &self,
        package: &PackageRecord,
        manifest: &Manifest,
        d: &PluginDetail,
    ) -> Option<api::UpdateReview> {
        let prev = package.previous.as_ref()?;
        let old = Manifest::parse(&prev.manifest, &self.shared.catalog).ok()?;
        let permissions = review::permission_changes(
            &self.shared.catalog,
            &old.permissions,
            &manifest.permissions,
        )
        .into_iter()
        .map(|c| api::PermissionChange {
            permission: c.permission,
            change: c.change.as_str().into(),
            before: c.before,
            after: c.after,
        })
        .collect();
        let files = review::file_changes(&prev.contents, &package.contents)
            .into_iter()
            .map(|c| api::FileChange {
                path: c.path,
                change: c.change.as_str().into(),
            })
            .collect();
        let current = d.summary.as_ref().and_then(|s| s.signer.as_ref());
        Some(api::UpdateReview {
            previous_version: prev.version.clone(),
            previous_signer: prev.signer.as_ref().map(|s| api::Signer {
                fingerprint: s.fingerprint.clone(),
                publisher: s.publisher.clone(),
                key_state: current
                    .filter(|c| c.fingerprint == s.fingerprint)
                    .map(|c| c.key_state)
                    .unwrap_or_default(),
            }),
            permissions,
            files,
        })
    }
}
