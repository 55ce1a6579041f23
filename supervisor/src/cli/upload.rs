//! `plugin install` and `plugin update` as uploads: the CLI reads the package with
//! its caller's rights and streams it, so the daemon never opens a caller's path.

use std::path::Path;

use anyhow::{Context, Result};
use broker_proto::admin::v1::package_chunk::Item;
use broker_proto::admin::v1::{
    PackageChunk, PackageEnd, UploadHeader, UploadIntent, UploadPluginResponse,
};

use super::client::Admin;
use super::commands::{plugin_dir, Session};
use crate::package::{pack, DATA_CHUNK_BYTES};

/// What to upload: a package directory or `.pxp` archive, and its signature.
pub(super) struct Package<'a> {
    pub path: &'a Path,
    /// `--signature FILE`; otherwise `PATH.sig` is sent when it exists.
    pub signature: Option<&'a Path>,
}

/// Checks the package locally (before connecting), then streams it. A refusal of
/// the packer (a FIFO, a symlink, a hard link…) names the entry; the daemon's
/// answer explains anything else.
pub(super) async fn upload(
    session: &Session,
    intent: UploadIntent,
    name: &str,
    package: &Package<'_>,
) -> Result<(Admin, UploadPluginResponse)> {
    let signature = read_signature(package)?;
    let meta = std::fs::metadata(package.path)
        .with_context(|| format!("package {}", package.path.display()))?;
    if meta.is_file() {
        return upload_archive(session, intent, name, package.path, signature).await;
    }
    let origin = plugin_dir(package.path)?;
    let root = std::path::PathBuf::from(&origin);
    let plan = tokio::task::spawn_blocking(move || pack::plan(&root))
        .await
        .context("reading the package")??;
    let mut admin = session.connect().await?;
    let header = UploadHeader {
        intent: intent as i32,
        name: name.to_string(),
        origin,
        archive: false,
        signature,
    };
    let (stream, packer) = pack::stream(plan, header);
    let answer = admin.upload_plugin(stream).await;
    // A stream the packer cut short is refused by the daemon; the packer says why.
    packer.await.context("reading the package")??;
    Ok((admin, answer?.into_inner()))
}

/// The signature the caller names, or the one beside the package; empty if none.
fn read_signature(package: &Package<'_>) -> Result<String> {
    let beside = {
        let mut p = package.path.as_os_str().to_owned();
        p.push(".sig");
        std::path::PathBuf::from(p)
    };
    let path = match package.signature {
        Some(p) => p.to_path_buf(),
        None if beside.is_file() => beside,
        None => return Ok(String::new()),
    };
    let meta = std::fs::metadata(&path).with_context(|| format!("signature {}", path.display()))?;
    if meta.len() > 16 * 1024 {
        anyhow::bail!(
            "signature {}: {} bytes is not an SSH signature",
            path.display(),
            meta.len()
        );
    }
    std::fs::read_to_string(&path).with_context(|| format!("signature {}", path.display()))
}

/// Streams a `.pxp` file as it is: the daemon unpacks and checks it.
async fn upload_archive(
    session: &Session,
    intent: UploadIntent,
    name: &str,
    path: &Path,
    signature: String,
) -> Result<(Admin, UploadPluginResponse)> {
    let origin = std::fs::canonicalize(path)
        .with_context(|| format!("package {}", path.display()))?
        .display()
        .to_string();
    let file = std::fs::File::open(path).with_context(|| format!("package {}", path.display()))?;
    let mut admin = session.connect().await?;
    let header = UploadHeader {
        intent: intent as i32,
        name: name.to_string(),
        origin,
        archive: true,
        signature,
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::task::spawn_blocking(move || send_archive(file, header, &tx));
    let answer = admin
        .upload_plugin(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    reader
        .await
        .context("reading the package")?
        .with_context(|| format!("reading the package {}", path.display()))?;
    Ok((admin, answer?.into_inner()))
}

fn send_archive(
    mut file: std::fs::File,
    header: UploadHeader,
    tx: &tokio::sync::mpsc::Sender<PackageChunk>,
) -> std::io::Result<()> {
    use std::io::Read;
    let put = |item: Item| tx.blocking_send(PackageChunk { item: Some(item) }).is_ok();
    if !put(Item::Header(header)) {
        return Ok(());
    }
    let mut bytes = 0u64;
    let mut buf = vec![0u8; DATA_CHUNK_BYTES];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if !put(Item::Data(buf[..n].to_vec())) {
            return Ok(());
        }
    }
    put(Item::End(PackageEnd { entries: 0, bytes }));
    Ok(())
}
