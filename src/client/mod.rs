//! Talking to a tokend from elsewhere: the HTTP API client used by the CLI client verbs.

pub mod api;

pub use api::{write_secret_file, ApiClient, ClientError};
