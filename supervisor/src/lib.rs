//! The PlexiChat plugin supervisor: control plane (store, approvals, lifecycle),
//! data plane (broker), launcher and the `plexichat` CLI, as one library.

pub mod catalog;
pub mod cli;
pub mod manifest;
