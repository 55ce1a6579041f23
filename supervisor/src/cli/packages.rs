//! `plugin pack` and `plugin contents`: make a `.pxp` archive of a plugin directory and
//! print a package's content list for signing. Both run locally, with no supervisor.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::commands::emit;
use crate::package::archive::{self, CONTENTS_MEMBER};
use crate::package::contents::{self, MAX_CONTENTS_BYTES};
use crate::package::tree;
use crate::trust::NAMESPACE;

pub fn pack(dir: &Path, output: Option<&Path>) -> Result<()> {
    let out = match output {
        Some(o) => o.to_path_buf(),
        None => default_name(dir)?,
    };
    let written = archive::write(dir, &out)?;
    let shown = out.display();
    emit(&format!(
        "packed {} ({} files, {} bytes) into {shown}\n\
         sign it: plexichat plugin contents {shown} | ssh-keygen -Y sign -n {NAMESPACE} -f KEY > {shown}.sig\n",
        dir.display(),
        written.files,
        written.bytes,
    ))
}

/// `NAME-VERSION.pxp` from the manifest's two fields.
fn default_name(dir: &Path) -> Result<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Head {
        name: String,
        version: String,
    }
    let path = dir.join("plugin.toml");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let head: Head = toml::from_str(&text).with_context(|| {
        format!(
            "{}: no name and version to name the archive by (give -o FILE)",
            path.display()
        )
    })?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._+".contains(&b))
    };
    if !ok(&head.name) || !ok(&head.version) {
        bail!(
            "{}: the name or version cannot name a file (give -o FILE)",
            path.display()
        );
    }
    Ok(PathBuf::from(format!("{}-{}.pxp", head.name, head.version)))
}

/// Prints the content list: an archive's first member as it is, or a directory's
/// files as the supervisor will list them once received.
pub fn contents(package: &Path) -> Result<()> {
    let meta = std::fs::metadata(package).with_context(|| package.display().to_string())?;
    let text = if meta.is_dir() {
        let pinned = tree::pin(package).with_context(|| package.display().to_string())?;
        contents::render(&pinned.files).into_bytes()
    } else {
        first_member(package)?
    };
    use std::io::Write;
    std::io::stdout()
        .write_all(&text)
        .context("writing the content list")
}

fn first_member(path: &Path) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = tar
        .entries()
        .with_context(|| format!("{}: not a .pxp archive", path.display()))?;
    let Some(first) = entries.next() else {
        bail!("{}: an empty archive", path.display());
    };
    let first = first.with_context(|| format!("{}: not a .pxp archive", path.display()))?;
    if first.path_bytes().as_ref() != CONTENTS_MEMBER.as_bytes() {
        bail!(
            "{}: its first member is not the content list (make it with `plexichat plugin pack`)",
            path.display()
        );
    }
    let mut text = Vec::new();
    first
        .take(MAX_CONTENTS_BYTES as u64 + 1)
        .read_to_end(&mut text)
        .with_context(|| format!("{}: reading the content list", path.display()))?;
    if text.len() > MAX_CONTENTS_BYTES {
        bail!(
            "{}: the content list is longer than {MAX_CONTENTS_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}
