//! Installing and removing plugin packages: validate the manifest, copy the plugin
//! directory into the supervisor's plugin store, pin the entry binary's SHA-256
//! and record the plugin (disabled) with one pending request per permission.
//! Updates to a new version are in `update`.

mod update;

pub use update::{update, Updated};

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::audit::{Actor, AuditEntry, Outcome};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::manifest::{Manifest, ManifestError};
use crate::store::{self, PluginRow, PluginState, Store, StoreError};

/// A plugin package larger than this is refused.
const MAX_PACKAGE_BYTES: u64 = 512 * 1024 * 1024;
const MAX_PACKAGE_FILES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin directory {path}: {message}")]
    Package { path: String, message: String },
    #[error("copying the plugin into {dest}: {source}")]
    Io {
        dest: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug)]
pub struct Installed {
    pub row: PluginRow,
    pub manifest: Manifest,
}

/// Runs once a package has been validated and staged, just before the store
/// changes: the automatic backup. An error refuses the change.
pub type BeforeChange<'a> = &'a dyn Fn() -> Result<(), InstallError>;

pub fn install(
    cfg: &Config,
    catalog: &Catalog,
    store: &Store,
    actor: &Actor,
    source: &Path,
    before_change: BeforeChange<'_>,
) -> Result<Installed, InstallError> {
    must_be_absolute(source)?;
    let manifest = Manifest::load_dir(source, catalog)?;
    let name = manifest.name.as_str().to_string();
    if store.plugin(&name)?.is_some() {
        return Err(StoreError::AlreadyInstalled(name).into());
    }
    let Staged {
        manifest,
        staging,
        dest,
        sha256,
    } = stage(cfg, catalog, source, manifest)?;
    if let Err(e) = before_change() {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    let io = |dest: &Path| {
        let dest = dest.display().to_string();
        move |source| InstallError::Io { dest, source }
    };
    let result = place(&staging, &dest).and_then(|_| {
        let manifest_text = fs::read_to_string(dest.join(crate::manifest::MANIFEST_FILE))
            .map_err(io(&dest))?;
        let row = PluginRow {
            name: name.clone(),
            version: manifest.version.to_string(),
            state: PluginState::Disabled,
            state_reason: "installed; awaiting review".into(),
            sha256: sha256.clone(),
            manifest: manifest_text,
            install_dir: dest.display().to_string(),
            core: manifest.core,
            installed_at: crate::clock::now_ms(),
            uid_offset: 0,
        };
        let row = store.write(|tx| {
            let row = PluginRow {
                uid_offset: store::free_uid_offset(&tx.sql, cfg.sandbox.uid_count)?,
                ..row
            };
            store::insert_plugin(&tx.sql, &row)?;
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
                        "source": source.display().to_string(),
                        "requested": manifest.permissions.iter().map(|p| p.permission.as_str()).collect::<Vec<_>>(),
                        "uid": cfg.sandbox.uid_base + row.uid_offset,
                    })),
            );
            Ok::<_, InstallError>(row)
        })?;
        Ok(row)
    });
    match result {
        Ok(row) => {
            fs::create_dir_all(cfg.data_root().join(&name)).map_err(io(&cfg.data_root()))?;
            Ok(Installed { row, manifest })
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            let _ = fs::remove_dir_all(&dest);
            Err(e)
        }
    }
}

/// A package copied into the plugin store's staging area, re-validated and hashed.
pub(crate) struct Staged {
    pub manifest: Manifest,
    pub staging: PathBuf,
    /// Where it will live: `<plugins>/<name>/<version>/`.
    pub dest: PathBuf,
    pub sha256: String,
}

/// Copies `source` (whose manifest is `manifest`) into staging, re-validates the
/// copy (the source may change under us) and hashes its entry binary.
pub(crate) fn stage(
    cfg: &Config,
    catalog: &Catalog,
    source: &Path,
    manifest: Manifest,
) -> Result<Staged, InstallError> {
    let name = manifest.name.as_str();
    let dest = cfg
        .plugin_store_dir()
        .join(name)
        .join(manifest.version.as_str());
    let staging = cfg
        .plugin_store_dir()
        .join(format!(".staging-{name}-{}", std::process::id()));
    let io = |dest: &Path| {
        let dest = dest.display().to_string();
        move |source| InstallError::Io { dest, source }
    };
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(io(&staging))?;
    let copied = copy_package(source, &staging).and_then(|_| {
        let copy = Manifest::load_dir(&staging, catalog)?;
        if copy.name != manifest.name || copy.version != manifest.version {
            return Err(InstallError::Package {
                path: source.display().to_string(),
                message: "changed while it was being installed".into(),
            });
        }
        Ok(copy)
    });
    let manifest = match copied {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    match sha256_file(&staging.join(&manifest.entry)) {
        Ok(sha256) => Ok(Staged {
            manifest,
            staging,
            dest,
            sha256,
        }),
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            Err(io(&staging)(e))
        }
    }
}

pub(crate) fn must_be_absolute(source: &Path) -> Result<(), InstallError> {
    if source.is_absolute() {
        Ok(())
    } else {
        Err(InstallError::Package {
            path: source.display().to_string(),
            message: "must be an absolute path".into(),
        })
    }
}

/// Deletes the plugin's record, its installed files and its data directory, so a
/// later plugin of the same name inherits nothing.
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

pub(crate) fn place(staging: &Path, dest: &Path) -> Result<(), InstallError> {
    let io = |source| InstallError::Io {
        dest: dest.display().to_string(),
        source,
    };
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let _ = fs::remove_dir_all(dest);
    fs::rename(staging, dest).map_err(io)
}

/// Copies regular files and directories only; symlinks, devices and FIFOs in a
/// package are refused rather than followed. Modes are reduced to 0755/0644.
fn copy_package(src: &Path, dst: &Path) -> Result<(), InstallError> {
    let mut budget = (MAX_PACKAGE_BYTES, MAX_PACKAGE_FILES);
    copy_tree(src, dst, src, &mut budget)
}

fn copy_tree(
    src: &Path,
    dst: &Path,
    root: &Path,
    budget: &mut (u64, usize),
) -> Result<(), InstallError> {
    let pkg_err = |p: &Path, m: String| InstallError::Package {
        path: root.display().to_string(),
        message: format!("{}: {m}", p.strip_prefix(root).unwrap_or(p).display()),
    };
    let entries = fs::read_dir(src).map_err(|e| pkg_err(src, e.to_string()))?;
    for entry in entries {
        let entry = entry.map_err(|e| pkg_err(src, e.to_string()))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| pkg_err(&path, e.to_string()))?;
        let target: PathBuf = dst.join(entry.file_name());
        budget.1 = budget
            .1
            .checked_sub(1)
            .ok_or_else(|| pkg_err(&path, format!("more than {MAX_PACKAGE_FILES} files")))?;
        if meta.is_dir() {
            fs::create_dir(&target).map_err(|source| InstallError::Io {
                dest: target.display().to_string(),
                source,
            })?;
            copy_tree(&path, &target, root, budget)?;
        } else if meta.is_file() {
            budget.0 = budget.0.checked_sub(meta.len()).ok_or_else(|| {
                pkg_err(
                    &path,
                    format!("package larger than {MAX_PACKAGE_BYTES} bytes"),
                )
            })?;
            fs::copy(&path, &target).map_err(|source| InstallError::Io {
                dest: target.display().to_string(),
                source,
            })?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            fs::set_permissions(&target, fs::Permissions::from_mode(mode)).map_err(|source| {
                InstallError::Io {
                    dest: target.display().to_string(),
                    source,
                }
            })?;
        } else {
            return Err(pkg_err(
                &path,
                "is a symlink or special file; packages may hold only regular files and directories".into(),
            ));
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
    use std::sync::Arc;

    use super::*;
    use crate::audit::LogFiles;

    fn setup() -> (tempfile::TempDir, Config, Catalog, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::load(None, dir.path()).unwrap();
        fs::create_dir_all(&cfg.state_dir).unwrap();
        let logs = Arc::new(LogFiles::open(&cfg.log_dir).unwrap());
        let store = Store::open(&cfg.store_path(), logs).unwrap();
        let catalog = cfg.load_catalog().unwrap();
        (dir, cfg, catalog, store)
    }

    fn package(root: &Path, manifest: &str) -> PathBuf {
        let pkg = root.join("pkg");
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("plugin.toml"), manifest).unwrap();
        fs::write(pkg.join("bin"), b"\x7fELF not really").unwrap();
        fs::set_permissions(pkg.join("bin"), fs::Permissions::from_mode(0o755)).unwrap();
        pkg
    }

    const MANIFEST: &str = "name = \"p\"\nversion = \"1.0.0\"\nentry = \"bin\"\n[[permissions]]\nname = \"database_read\"\njustification = \"x\"\nscope = [\"t\"]\n";

    #[test]
    fn install_pins_the_copy_and_records_pending_requests() {
        let (dir, cfg, catalog, store) = setup();
        let pkg = package(dir.path(), MANIFEST);
        let got = install(&cfg, &catalog, &store, &Actor::system(), &pkg, &|| Ok(())).unwrap();
        assert_eq!(got.row.sha256, sha256_file(&pkg.join("bin")).unwrap());
        assert!(Path::new(&got.row.install_dir).join("bin").is_file());
        assert_eq!(store.pending().unwrap().len(), 1);
        let again = install(&cfg, &catalog, &store, &Actor::system(), &pkg, &|| Ok(()));
        assert!(matches!(
            again,
            Err(InstallError::Store(StoreError::AlreadyInstalled(_)))
        ));
    }

    #[test]
    fn a_bad_manifest_or_a_symlink_stores_nothing() {
        let (dir, cfg, catalog, store) = setup();
        let pkg = package(dir.path(), &MANIFEST.replace("database_read", "root"));
        assert!(install(&cfg, &catalog, &store, &Actor::system(), &pkg, &|| Ok(())).is_err());
        fs::write(pkg.join("plugin.toml"), MANIFEST).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", pkg.join("shadow")).unwrap();
        let err = install(&cfg, &catalog, &store, &Actor::system(), &pkg, &|| Ok(())).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(store.plugins().unwrap().is_empty());
        assert!(!cfg.plugin_store_dir().join("p").exists());
    }
}
