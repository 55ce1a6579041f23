//! `Files`: the broker's file calls. `/data/...` is the plugin's own data directory; other
//! absolute paths need a `file_read` / `file_write` grant whose scope covers them.

use broker_proto::broker::v1 as pb;
use broker_proto::broker::v1::broker_client::BrokerClient;

use crate::SdkError;

/// Most bytes the broker moves per read or write call; [`Files`] loops in chunks of this.
pub const FILE_CHUNK_BYTES: usize = 512 * 1024;

/// What a path is, as reported by [`Files::stat`] and [`Files::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else: symlinks (never followed), sockets, devices...
    Other,
}

impl FileKind {
    fn parse(kind: &str) -> FileKind {
        match kind {
            "file" => FileKind::File,
            "dir" => FileKind::Dir,
            _ => FileKind::Other,
        }
    }
}

/// One entry of [`Files::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name within the directory (no `/`).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes (of the entry itself; a symlink is not followed).
    pub size: u64,
}

/// Answer of [`Files::stat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// What the path is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, Unix milliseconds.
    pub modified_ms: i64,
}

/// File access through the supervisor's broker; obtain it with
/// [`PluginContext::files`](crate::PluginContext::files). Cheap to clone.
///
/// Paths are absolute and normalised (no `.`, `..`, empty components or trailing `/`).
/// `/data` and everything under it is the plugin's data directory, always allowed and
/// subject to a byte quota; any other path needs a live `file_read` grant (read, list,
/// stat) or `file_write` grant (write, append, remove, mkdir) covering it. Symlinks are
/// never followed. A refusal is an [`SdkError::Broker`]: test it with
/// [`SdkError::is_permission_denied`], [`SdkError::is_invalid_argument`] or
/// [`SdkError::is_resource_exhausted`] (quota).
#[derive(Clone)]
pub struct Files {
    client: BrokerClient<crate::connection::Limited>,
}

impl Files {
    pub(crate) fn new(client: BrokerClient<crate::connection::Limited>) -> Files {
        Files { client }
    }

    /// Reads the whole file, chunk by chunk (each call moves at most 512 KiB).
    ///
    /// # Errors
    /// [`ErrorCode::PermissionDenied`](crate::ErrorCode::PermissionDenied) outside `/data` without a
    /// covering `file_read` grant, or for a symlink; [`ErrorCode::InvalidArgument`](crate::ErrorCode::InvalidArgument)
    /// for a path that is not absolute and normalised; [`ErrorCode::NotFound`](crate::ErrorCode::NotFound)
    /// when it does not exist.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>, SdkError> {
        let mut out = Vec::new();
        loop {
            let chunk = self.read_chunk(path, out.len() as u64, 0).await?;
            let done = chunk.eof || chunk.data.is_empty();
            out.extend_from_slice(&chunk.data);
            if done {
                return Ok(out);
            }
        }
    }

    /// Reads at most `max_bytes` (capped to 512 KiB; 0 means the cap) from `offset`.
    /// Returns the bytes and whether they reach the end of the file.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn read_at(
        &self,
        path: &str,
        offset: u64,
        max_bytes: u64,
    ) -> Result<(Vec<u8>, bool), SdkError> {
        let chunk = self.read_chunk(path, offset, max_bytes).await?;
        Ok((chunk.data, chunk.eof))
    }

    async fn read_chunk(
        &self,
        path: &str,
        offset: u64,
        max_bytes: u64,
    ) -> Result<pb::ReadFileResponse, SdkError> {
        let request = pb::ReadFileRequest {
            path: path.to_string(),
            offset,
            max_bytes,
        };
        Ok(self
            .client
            .clone()
            .read_file(request)
            .await
            .map_err(crate::error::from_status)?
            .into_inner())
    }

    /// Replaces the file with `data` (created if missing). Up to 512 KiB the
    /// replacement is atomic; larger data is written as a first chunk then appended,
    /// so readers may see it partially written. Returns the new size.
    ///
    /// # Errors
    /// As [`read`](Self::read), with `file_write` for paths outside `/data`; also
    /// [`ErrorCode::ResourceExhausted`](crate::ErrorCode::ResourceExhausted) over the `/data` quota.
    pub async fn write(&self, path: &str, data: &[u8]) -> Result<u64, SdkError> {
        let mut chunks = data.chunks(FILE_CHUNK_BYTES);
        let first = chunks.next().unwrap_or_default();
        let mut size = self.write_chunk(path, first, false).await?;
        for chunk in chunks {
            size = self.write_chunk(path, chunk, true).await?;
        }
        Ok(size)
    }

    /// Appends `data` to the file (created if missing), in chunks of at most 512 KiB.
    /// Returns the new size.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub async fn append(&self, path: &str, data: &[u8]) -> Result<u64, SdkError> {
        let mut size = 0;
        for chunk in data.chunks(FILE_CHUNK_BYTES) {
            size = self.write_chunk(path, chunk, true).await?;
        }
        if data.is_empty() {
            size = self.write_chunk(path, data, true).await?;
        }
        Ok(size)
    }

    async fn write_chunk(&self, path: &str, data: &[u8], append: bool) -> Result<u64, SdkError> {
        let request = pb::WriteFileRequest {
            path: path.to_string(),
            data: data.to_vec(),
            append,
        };
        Ok(self
            .client
            .clone()
            .write_file(request)
            .await
            .map_err(crate::error::from_status)?
            .into_inner()
            .size)
    }

    /// The entries of a directory, sorted by name.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntry>, SdkError> {
        let request = pb::ListDirRequest {
            path: path.to_string(),
        };
        let response = self
            .client
            .clone()
            .list_dir(request)
            .await
            .map_err(crate::error::from_status)?
            .into_inner();
        Ok(response
            .entries
            .into_iter()
            .map(|e| DirEntry {
                kind: FileKind::parse(&e.kind),
                name: e.name,
                size: e.size,
            })
            .collect())
    }

    /// What `path` is, its size and modification time.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn stat(&self, path: &str) -> Result<FileStat, SdkError> {
        let request = pb::StatRequest {
            path: path.to_string(),
        };
        let response = self
            .client
            .clone()
            .stat_path(request)
            .await
            .map_err(crate::error::from_status)?
            .into_inner();
        Ok(FileStat {
            kind: FileKind::parse(&response.kind),
            size: response.size,
            modified_ms: response.modified_ms,
        })
    }

    /// Removes a file or an empty directory (a symlink itself, never its target).
    ///
    /// # Errors
    /// As [`write`](Self::write); also an error for a directory that is not empty.
    pub async fn remove(&self, path: &str) -> Result<(), SdkError> {
        let request = pb::RemoveRequest {
            path: path.to_string(),
        };
        self.client
            .clone()
            .remove_path(request)
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }

    /// Creates a directory; its parent must exist.
    ///
    /// # Errors
    /// As [`write`](Self::write); [`ErrorCode::AlreadyExists`](crate::ErrorCode::AlreadyExists) when
    /// the path exists, [`ErrorCode::NotFound`](crate::ErrorCode::NotFound) when the parent does not.
    pub async fn mkdir(&self, path: &str) -> Result<(), SdkError> {
        let request = pb::MakeDirRequest {
            path: path.to_string(),
        };
        self.client
            .clone()
            .make_dir(request)
            .await
            .map_err(crate::error::from_status)?;
        Ok(())
    }
}
