//! The preconditions every install, update and backup meets before it starts,
//! checked once at the top of each handler, before any file or lock is taken.

use super::Op;
use crate::context::Shared;

/// A precondition failed: the command is refused before it changes anything.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotAdmitted(pub String);

/// The free-space watermark: installs, updates and backups are refused while the
/// state or log filesystem is below `storage.min_free` (see `diskspace`).
pub fn admit(shared: &Shared, op: Op) -> Result<(), NotAdmitted> {
    let _ = op;
    crate::diskspace::check(&shared.cfg).map_err(|low| NotAdmitted(low.to_string()))
}
