//! Re-pinning a Python plugin's runtime after the host's interpreter or the SDK bundle
//! was upgraded: the new pins recorded and audited, the package's own pin untouched.

use std::path::Path;

use super::InstallError;
use crate::audit::{Actor, AuditEntry, Outcome};
use crate::config::PythonConfig;
use crate::package::tree;
use crate::python_runtime::HostPython;
use crate::store::{self, PluginRow, Store};

/// Pins `name` to the interpreter and SDK this host has now. The package must still
/// match its own pin: repinning must never bless a changed package.
pub fn repin_runtime(
    python: &PythonConfig,
    store: &Store,
    actor: &Actor,
    name: &str,
    comment: &str,
) -> Result<PluginRow, InstallError> {
    let comment = comment.trim();
    if comment.is_empty() {
        return Err(InstallError::Refused(
            "a repin needs a comment saying why the runtime changed".into(),
        ));
    }
    let row = store.require_plugin(name)?;
    let Some(before) = row.python.clone() else {
        return Err(InstallError::Refused(format!(
            "`{name}` is a native plugin: only Python plugins have a runtime to repin"
        )));
    };
    let package = tree::pin(Path::new(&row.install_dir)).map_err(|e| InstallError::Package {
        path: row.install_dir.clone(),
        message: e.to_string(),
    })?;
    if package.digest != row.sha256 {
        return Err(InstallError::Refused(format!(
            "the package of `{name}` changed since install too (digest {}, pinned {}): reinstall it instead",
            package.digest, row.sha256
        )));
    }
    let host = HostPython::probe(python).map_err(|e| {
        InstallError::Refused(format!("this supervisor cannot run Python plugins: {e}"))
    })?;
    let after = host.pin(before.files.clone());
    let row = PluginRow {
        python: Some(after.clone()),
        ..row
    };
    store.write(|tx| {
        store::set_python_pin(&tx.sql, name, &after)?;
        tx.audit(
            AuditEntry::new(actor, "plugin.runtime_repinned", Outcome::Ok)
                .plugin(name)
                .change(&before.version, &after.version)
                .detail(serde_json::json!({
                    "comment": comment,
                    "before": before.audit_detail(),
                    "after": after.audit_detail(),
                    "package_digest": row.sha256,
                })),
        );
        Ok::<_, InstallError>(())
    })?;
    Ok(row)
}
