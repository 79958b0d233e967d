//! tokend: a service-account token issuer and revocation service.
//!
//! The binary (`src/main.rs`) is a thin wrapper around this library so that the
//! integration tests can start the very same server in-process.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod error;
pub mod fastmap;
pub mod federation;
pub mod forwarded;
pub mod log_budget;
pub mod notify;
pub mod oauth;
pub mod routes;
pub mod scope;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod tokens;
pub mod usage;
