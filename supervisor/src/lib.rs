//! The PlexiChat plugin supervisor: control plane (store, approvals, lifecycle),
//! data plane (broker), launcher and the `plexichat` CLI, as one library.

pub mod admin;
pub mod advisories;
pub mod alerts;
pub mod approval;
pub mod audit;
pub mod backup;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod context;
pub mod daemon;
pub mod diskspace;
pub mod emergency;
pub mod install;
pub mod instance_lock;
pub mod integrity;
pub mod launcher;
pub mod lifecycle;
pub mod live;
pub mod logging;
pub mod manifest;
pub mod monitor;
pub mod package;
pub mod plugin_log;
pub mod python_runtime;
pub mod reload;
pub mod runtime;
pub mod sandbox;
pub mod sd_notify;
pub mod sd_watchdog;
pub mod store;
pub mod text;
pub mod trust;
