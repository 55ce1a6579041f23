//! A package's dependencies: the list `cargo auditable` embeds in a Rust plugin's binary
//! (`rust`) and the vendored distributions of a Python plugin (`python`).

mod python;
mod rust;

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub use python::{
    python_dependencies, MAX_METADATA_HEADER_BYTES, MAX_VENDOR_DEPTH, MAX_VENDOR_ENTRIES,
};
pub use rust::{
    rust_dependencies, DepKind, RustDeps, RustPackage, Source, MAX_BINARY_BYTES,
    MAX_DEPS_JSON_BYTES,
};

#[derive(Debug, thiserror::Error)]
pub enum DepsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is a symbolic link; the dependency reader follows none")]
    Symlink { path: String },
    #[error("{path} is not a regular file")]
    NotRegular { path: String },
    #[error("{path} is {size} bytes, over the {limit} bytes the dependency reader loads")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("{path}: the dependency list embedded by cargo auditable is refused: {message}")]
    Embedded { path: String, message: String },
    #[error("{path}: {message}")]
    Metadata { path: String, message: String },
    #[error(
        "{path}: more than {limit} entries under vendor/, the most the dependency reader walks"
    )]
    TooManyEntries { path: String, limit: usize },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DepsError + '_ {
    move |source| DepsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Opens a regular file without following a symbolic link in its last component,
/// and returns it with its size.
fn open_regular(path: &Path) -> Result<(File, u64), DepsError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                DepsError::Symlink {
                    path: path.display().to_string(),
                }
            } else {
                io_at(path)(e)
            }
        })?;
    let meta = file.metadata().map_err(io_at(path))?;
    if !meta.is_file() {
        return Err(DepsError::NotRegular {
            path: path.display().to_string(),
        });
    }
    Ok((file, meta.len()))
}
