//! The `plexichat` CLI.
