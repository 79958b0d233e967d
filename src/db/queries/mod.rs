//! Queries, grouped by table. Every function takes a connection and runs synchronously.

pub mod audit;
pub mod client_secrets;
pub mod clock;
pub mod federation;
pub mod identities;
pub mod keys;
pub mod locks;
pub mod notifications;
pub mod revocations;
pub mod rules;
pub mod tokens;
