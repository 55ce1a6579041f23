//! Installing and removing plugin packages: validate the manifest of a package
//! staged by an upload, check its files and signature (`Prepared::authenticate`),
//! move it into the plugin store, pin the entry binary's SHA-256 and record the
//! plugin (disabled) with its signer, its package record and one pending request
//! per permission. Updates to a new version are in `update`.

mod repin;
mod staging;
mod update;

pub use repin::repin_runtime;
pub use staging::{sweep as sweep_staging, Staging};
pub use update::{retire, update, Updated};

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::advisories::Inventory;
use crate::advisory_watch;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::catalog::Catalog;
use crate::config::{Config, PythonConfig};
use crate::manifest::{Manifest, ManifestError, Runtime};
use crate::package::{contents, tree};
use crate::python_runtime::{HostPython, PythonPin};
use crate::store::PackageRecord;
use crate::store::{self, PluginRow, PluginState, Store, StoreError};
use crate::trust::{self, KeyRow, SignatureCheck, Signer};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("package {path}: {message}")]
    Package { path: String, message: String },
    #[error("installing the plugin into {dest}: {source}")]
    Io {
        dest: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io_at(dest: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        dest: dest.display().to_string(),
        source,
    }
}

#[derive(Debug)]
pub struct Installed {
    pub row: PluginRow,
    pub manifest: Manifest,
}

/// Runs once a package has been validated and staged, just before the store
/// changes: the automatic backup. An error refuses the change.
pub type BeforeChange<'a> = &'a dyn Fn() -> Result<(), InstallError>;

/// A package received into a staging directory, its manifest validated and its
/// entry binary hashed. Dropped unused, the staging directory goes with it.
#[derive(Debug)]
pub struct Prepared {
    pub manifest: Manifest,
    /// The manifest's text as stored in the plugin row.
    pub manifest_text: String,
    /// The entry binary's SHA-256 (native), or the package tree's digest (Python).
    pub sha256: String,
    /// A Python package's interpreter, SDK and files, as pinned now.
    pub python: Option<PythonPin>,
    /// What the caller said the package was, for audit records only.
    pub origin: String,
    /// Every file received, as pinned (path order).
    pub files: Vec<tree::PinnedFile>,
    /// The content list the daemon rendered from those files: what a signature covers.
    pub contents: String,
    /// Whose key signed the package, once `authenticate` checked it.
    pub signer: Option<Signer>,
    /// What the package depends on, as far as it says.
    pub inventory: Inventory,
    staging: Staging,
}

/// Validates what an upload staged: the manifest (read non-blocking and capped)
/// and the entry inside the package; pins the entry binary (native) or the whole
/// tree and the host Python it will run on (Python).
pub fn prepare(
    catalog: &Catalog,
    python: &PythonConfig,
    staging: Staging,
    origin: &str,
) -> Result<Prepared, InstallError> {
    let (manifest, manifest_text) = Manifest::load_dir_text(staging.path(), catalog)?;
    let pinned = tree::pin(staging.path()).map_err(|e| InstallError::Package {
        path: "(package)".into(),
        message: e.to_string(),
    })?;
    let entry = staging.path().join(&manifest.entry);
    let (sha256, python, inventory) = match manifest.runtime {
        Runtime::Native => (
            entry_sha256(&pinned, &manifest.entry, &entry)?,
            None,
            Inventory::of_binary(&entry),
        ),
        Runtime::Python3 => {
            let pin = pin_python(python, &pinned)?;
            (
                pinned.digest.clone(),
                Some(pin),
                Inventory::of_python(staging.path()),
            )
        }
    };
    Ok(Prepared {
        manifest,
        manifest_text,
        sha256,
        python,
        origin: origin.to_string(),
        contents: contents::render(&pinned.files),
        files: pinned.files,
        signer: None,
        inventory,
        staging,
    })
}

/// The entry binary's SHA-256 as the tree pin hashed it (each file is read once); a
/// manifest's entry is checked to be a package file, so the fallback is never taken
/// for a valid package.
fn entry_sha256(pinned: &tree::TreePin, rel: &Path, full: &Path) -> Result<String, InstallError> {
    let wire = crate::package::wire_path(rel);
    match pinned.files.iter().find(|f| Some(&f.path) == wire.as_ref()) {
        Some(f) => Ok(f.sha256.clone()),
        None => sha256_file(full).map_err(io_at(full)),
    }
}

/// What an upload says about who made the package.
pub struct Provenance<'a> {
    /// The content list the archive carried (`None`: a directory upload).
    pub declared: Option<&'a [u8]>,
    /// The detached signature the caller sent.
    pub signature: Option<&'a str>,
    /// `[install] require_signature`.
    pub required: bool,
}

impl Prepared {
    /// Checks the files against the archive's content list, and the signature over it
    /// against the trust store; records the signer. Refused, naming the reason.
    pub fn authenticate(
        &mut self,
        provenance: &Provenance<'_>,
        key_of: impl Fn(&str) -> Option<KeyRow>,
    ) -> Result<(), InstallError> {
        if let Some(declared) = provenance.declared {
            if let Some(why) = contents::mismatch(declared, &self.files) {
                return Err(InstallError::Refused(format!(
                    "the package's files do not match its content list: {why}"
                )));
            }
        }
        let check = SignatureCheck {
            plugin: self.name(),
            contents: self.contents.as_bytes(),
            signature: provenance.signature,
            required: provenance.required,
        };
        self.signer = trust::verify(&check, key_of).map_err(InstallError::Refused)?;
        Ok(())
    }
}

/// The Python pin of a package tree. Native code in the package is
/// refused, naming each file: a confined CPython could not load it from the noexec
/// /plugin anyway, and an extension module is code no reviewer can read.
fn pin_python(python: &PythonConfig, pinned: &tree::TreePin) -> Result<PythonPin, InstallError> {
    if !pinned.native.is_empty() {
        return Err(InstallError::Refused(format!(
            "a Python package may hold only Python code and data, but it holds native code: {} \
             (vendor pure-Python dependencies only; see the README's Python section)",
            pinned.native.join(", ")
        )));
    }
    let host = HostPython::probe(python).map_err(|e| {
        InstallError::Refused(format!("this supervisor cannot run Python plugins: {e}"))
    })?;
    Ok(host.pin(pinned.files.clone()))
}

impl Prepared {
    pub fn name(&self) -> &str {
        self.manifest.name.as_str()
    }

    /// Moves the staged tree to a fresh directory of its own
    /// (`<plugins>/<name>/<version>`); the store points at nothing there yet.
    fn place(self, cfg: &Config) -> Result<(Placed, Placing), InstallError> {
        let Prepared {
            manifest,
            manifest_text,
            sha256,
            python,
            signer,
            contents,
            inventory,
            staging,
            ..
        } = self;
        let dests = staging::destinations(cfg, manifest.name.as_str(), manifest.version.as_str());
        let store_dir = cfg.plugin_store_dir();
        let dir = staging.place(dests).map_err(io_at(&store_dir))?;
        let placing = Placing {
            manifest,
            manifest_text,
            sha256,
            python,
            signer,
            contents,
            inventory,
        };
        Ok((Placed { dir }, placing))
    }
}

/// What a placed package goes into the store with.
struct Placing {
    manifest: Manifest,
    manifest_text: String,
    sha256: String,
    python: Option<PythonPin>,
    signer: Option<Signer>,
    contents: String,
    inventory: Inventory,
}

/// A directory this request created in the plugin store. Until `commit`, dropping
/// it deletes it: a failed install or update leaves only what was there before.
struct Placed {
    dir: PathBuf,
}

impl Placed {
    /// The store row points at it now: it stays.
    fn commit(self) -> PathBuf {
        let dir = self.dir.clone();
        std::mem::forget(self);
        dir
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not delete a refused install");
        }
    }
}

/// Installs a prepared package. The caller holds the plugin's lifecycle lock.
pub fn install(
    cfg: &Config,
    store: &Store,
    actor: &Actor,
    prepared: Prepared,
    before_change: BeforeChange<'_>,
) -> Result<Installed, InstallError> {
    let name = prepared.name().to_string();
    if store.plugin(&name)?.is_some() {
        return Err(StoreError::AlreadyInstalled(name).into());
    }
    before_change()?;
    let origin = prepared.origin.clone();
    let (
        placed,
        Placing {
            manifest,
            manifest_text,
            sha256,
            python,
            signer,
            contents,
            inventory,
        },
    ) = prepared.place(cfg)?;
    let row = PluginRow {
        name: name.clone(),
        version: manifest.version.to_string(),
        state: PluginState::Disabled,
        state_reason: "installed; awaiting review".into(),
        sha256: sha256.clone(),
        manifest: manifest_text,
        install_dir: placed.dir.display().to_string(),
        core: manifest.core,
        installed_at: crate::clock::now_ms(),
        uid_offset: 0,
        python,
        signer,
    };
    let row = store.write(|tx| {
        let row = PluginRow {
            uid_offset: store::free_uid_offset(&tx.sql, cfg.sandbox.uid_count)?,
            ..row
        };
        store::insert_plugin(&tx.sql, &row)?;
        let findings = inventory.findings(advisory_watch::current(&tx.sql)?.as_ref());
        store::put_package(
            &tx.sql,
            &name,
            &PackageRecord {
                contents,
                inventory: inventory.clone(),
                previous: None,
            },
        )?;
        advisory_watch::raise(tx, &name, &findings)?;
        for req in &manifest.permissions {
            store::insert_request(
                &tx.sql,
                &name,
                req.permission,
                &req.scope,
                &req.justification,
            )?;
        }
        tx.audit(
            AuditEntry::new(actor, "plugin.install", Outcome::Ok)
                .plugin(&name)
                .change("absent", "disabled")
                .detail(serde_json::json!({
                    "version": row.version,
                    "sha256": sha256,
                    "runtime": manifest.runtime.as_str(),
                    "interpreter": row.python.as_ref().map(PythonPin::audit_detail),
                    "signer": Signer::audit_detail(row.signer.as_ref()),
                    "dependencies": inventory.note,
                    "advisories": findings.iter().map(|f| f.advisory_id.as_str()).collect::<Vec<_>>(),
                    "source": origin,
                    "uploaded": true,
                    "requested": manifest.permissions.iter().map(|p| p.permission.as_str()).collect::<Vec<_>>(),
                    "uid": cfg.sandbox.uid_base + row.uid_offset,
                })),
        );
        Ok::<_, InstallError>(row)
    })?;
    placed.commit();
    let data = cfg.data_root().join(&name);
    fs::create_dir_all(&data).map_err(io_at(&data))?;
    Ok(Installed { row, manifest })
}

/// Deletes the plugin's record, its installed files and its data directory, so a
/// later plugin of the same name inherits nothing. The caller holds the plugin's
/// lifecycle lock, so no install of the name runs meanwhile.
pub fn remove(cfg: &Config, store: &Store, actor: &Actor, name: &str) -> Result<(), InstallError> {
    let row = store.require_plugin(name)?;
    store.write(|tx| {
        store::delete_plugin(&tx.sql, name)?;
        tx.audit(
            AuditEntry::new(actor, "plugin.remove", Outcome::Ok)
                .plugin(name)
                .change(row.state.as_str(), "absent")
                .detail(serde_json::json!({ "version": row.version })),
        );
        Ok::<_, StoreError>(())
    })?;
    for dir in [
        cfg.plugin_store_dir().join(name),
        cfg.data_root().join(name),
    ] {
        if let Err(e) = fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(plugin = name, dir = %dir.display(), error = %e, "could not delete plugin files");
            }
        }
    }
    Ok(())
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    sha256_reader(fs::File::open(path)?)
}

pub fn sha256_reader(mut r: impl Read) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use super::*;
    use crate::audit::LogFiles;

    pub(super) fn setup() -> (tempfile::TempDir, Config, Catalog, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load(None, dir.path()).unwrap();
        fs::create_dir_all(&cfg.state_dir).unwrap();
        let logs = Arc::new(LogFiles::open(&cfg.log_dir).unwrap());
        let store = Store::open(&cfg.store_path(), logs).unwrap();
        let catalog = cfg.load_catalog().unwrap();
        (dir, cfg, catalog, store)
    }

    /// What an upload of a two-file package would have staged.
    pub(super) fn staged(cfg: &Config, manifest: &str, binary: &[u8]) -> Staging {
        let staging = Staging::create(cfg).unwrap();
        fs::write(staging.path().join("plugin.toml"), manifest).unwrap();
        fs::write(staging.path().join("bin"), binary).unwrap();
        fs::set_permissions(
            staging.path().join("bin"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        staging
    }

    const MANIFEST: &str = "name = \"p\"\nversion = \"1.0.0\"\nentry = \"bin\"\n[[permissions]]\nname = \"database_read\"\njustification = \"x\"\nscope = [\"t\"]\n";

    fn staging_left(cfg: &Config) -> Vec<String> {
        fs::read_dir(cfg.plugin_store_dir())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".staging-"))
            .collect()
    }

    #[test]
    fn install_pins_the_copy_and_records_pending_requests() {
        let (_dir, cfg, catalog, store) = setup();
        let prepared = || {
            prepare(
                &catalog,
                &cfg.python,
                staged(&cfg, MANIFEST, b"\x7fELF 1"),
                "pkg",
            )
            .unwrap()
        };
        let got = install(&cfg, &store, &Actor::system(), prepared(), &|| Ok(())).unwrap();
        assert_eq!(got.row.sha256, sha256_reader(&b"\x7fELF 1"[..]).unwrap());
        assert_eq!(
            Path::new(&got.row.install_dir),
            cfg.plugin_store_dir().join("p/1.0.0")
        );
        assert!(Path::new(&got.row.install_dir).join("bin").is_file());
        assert_eq!(store.pending().unwrap().len(), 1);
        let again = install(&cfg, &store, &Actor::system(), prepared(), &|| Ok(()));
        assert!(matches!(
            again,
            Err(InstallError::Store(StoreError::AlreadyInstalled(_)))
        ));
        assert!(
            Path::new(&got.row.install_dir).join("bin").is_file(),
            "the loser deleted the winner's files"
        );
        assert!(staging_left(&cfg).is_empty());
    }

    #[test]
    fn a_refused_install_stores_nothing_and_a_leftover_is_never_replaced() {
        let (_dir, cfg, catalog, store) = setup();
        let bad = MANIFEST.replace("database_read", "root");
        assert!(prepare(&catalog, &cfg.python, staged(&cfg, &bad, b"x"), "pkg").is_err());
        let p = prepare(&catalog, &cfg.python, staged(&cfg, MANIFEST, b"x"), "pkg").unwrap();
        let refused = install(&cfg, &store, &Actor::system(), p, &|| {
            Err(InstallError::Refused("no backup".into()))
        });
        assert!(refused.is_err());
        assert!(store.plugins().unwrap().is_empty());
        assert!(!cfg.plugin_store_dir().join("p").exists());
        assert!(staging_left(&cfg).is_empty());
        // A directory nobody points at, left by a crash, is not overwritten.
        fs::create_dir_all(cfg.plugin_store_dir().join("p/1.0.0/keep")).unwrap();
        let p = prepare(&catalog, &cfg.python, staged(&cfg, MANIFEST, b"x"), "pkg").unwrap();
        let got = install(&cfg, &store, &Actor::system(), p, &|| Ok(())).unwrap();
        assert_eq!(
            Path::new(&got.row.install_dir),
            cfg.plugin_store_dir().join("p/1.0.0~1")
        );
        assert!(cfg.plugin_store_dir().join("p/1.0.0/keep").is_dir());
    }
}
