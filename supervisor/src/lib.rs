//! The PlexiChat plugin supervisor: control plane (store, approvals, lifecycle),
//! data plane (broker), launcher and the `plexichat` CLI, as one library.

pub mod approval;
pub mod audit;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod install;
pub mod manifest;
pub mod store;
pub mod broker;
pub mod context;
pub mod plugin_log;
pub mod launcher;
pub mod runtime;
pub mod admin;
pub mod lifecycle;
pub mod daemon;
