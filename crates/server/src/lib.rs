//! The `tenure` binary's parts: configuration, start-up (migrations, signing key, state)
//! and the commands. Exposed as a library so end-to-end tests start exactly what the
//! binary starts.

pub mod commands;
pub mod config;
pub mod startup;
pub mod transport;
