//! `plugin install` and `plugin update` as uploads: the CLI reads the package with
//! its caller's rights and streams it, so the daemon never opens a caller's path.

use std::path::Path;

use anyhow::{Context, Result};
use broker_proto::admin::v1::{UploadHeader, UploadIntent, UploadPluginResponse};

use super::client::Admin;
use super::commands::{plugin_dir, Session};
use crate::package::pack;

/// Checks the package locally (before connecting), then streams it. A refusal of
/// the packer (a FIFO, a symlink, a hard link…) names the entry; the daemon's
/// answer explains anything else.
pub(super) async fn upload(
    session: &Session,
    intent: UploadIntent,
    name: &str,
    dir: &Path,
) -> Result<(Admin, UploadPluginResponse)> {
    let origin = plugin_dir(dir)?;
    let root = std::path::PathBuf::from(&origin);
    let plan = tokio::task::spawn_blocking(move || pack::plan(&root))
        .await
        .context("reading the package")??;
    let mut admin = session.connect().await?;
    let header = UploadHeader {
        intent: intent as i32,
        name: name.to_string(),
        origin,
    };
    let (stream, packer) = pack::stream(plan, header);
    let answer = admin.upload_plugin(stream).await;
    // A stream the packer cut short is refused by the daemon; the packer says why.
    packer.await.context("reading the package")??;
    Ok((admin, answer?.into_inner()))
}
