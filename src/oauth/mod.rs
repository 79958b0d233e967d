//! OAuth 2.0 for stock clients: the token endpoint's grants (`client_credentials`, token
//! exchange, and jwt-bearer for federated workloads), client authentication, the client credentials of service accounts, RFC 6749
//! errors and the server metadata. The HTTP handlers are in `routes/oauth/`.

pub mod assertion;
pub mod client_auth;
pub mod client_keys;
pub mod clients;
pub mod error;
pub mod form;
pub mod grants;
pub mod metadata;

pub use client_auth::ClientCredentials;
pub use error::{OAuthCode, OAuthError};
pub use form::Form;
