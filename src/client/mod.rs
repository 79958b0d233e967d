//! Talking to a tokend from elsewhere: the HTTP API client used by the CLI client verbs and
//! the agent, and [`CredentialCache`], which keeps a sensor's token fresh in the background.

pub mod api;
pub mod credentials;

pub use api::{write_secret_file, ApiClient, ClientError};
pub use credentials::{Credential, CredentialCache, RenewalPolicy};
