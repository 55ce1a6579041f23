//! The preconditions every install, update and backup meets before it starts,
//! checked once at the top of each handler, before any file or lock is taken.

use super::Op;
use crate::context::Shared;

/// A precondition failed: the command is refused before it changes anything.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAdmitted(pub String);

/// Today every command is admitted. The free-space watermark (refuse installs,
/// updates and backups below it) belongs here, so all three share one check.
pub fn admit(shared: &Shared, op: Op) -> Result<(), NotAdmitted> {
    let _ = (shared, op);
    Ok(())
}
