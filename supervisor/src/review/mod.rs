//! What a reviewer reads before deciding: what approving a request allows in plain
//! words, the entry program's linkage, and what an update changed.

mod allows;
mod diff;
mod linkage;

pub use allows::allows;
pub use diff::{file_changes, permission_changes, Change, FileChange, PermissionChange};
pub use linkage::{linkage, Linkage};
