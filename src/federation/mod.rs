//! Workload federation: tokens for workloads that hold no tokend secret at all, only a signed
//! identity token from an issuer an admin trusts (a Kubernetes cluster's projected
//! service-account tokens, GitHub Actions' OIDC tokens). The admin registers the issuer with
//! its keys, audiences and claim rules; a workload presents its token at `/oauth2/token`
//! (RFC 7523 jwt-bearer, or RFC 8693 token exchange) and gets a tokend token of the service
//! account tokend keeps for it, with exactly what the first matching rule says.
//!
//! - [`spec`]: an issuer's settings, parsed and checked at the edge;
//! - [`issuers`]: issuers in storage (create, list, change, remove; audited);
//! - [`jwks`]: key sets and the cache of remote ones (reusable for client assertions);
//! - [`claims`]: dotted claim paths, templates, matching;
//! - [`assertion`]: the full check of an external token.
//!
//! The grant itself (rules to outcome, the issuing transaction with the replay limit) is
//! `oauth::grants::federated`: federation says who a token is; oauth turns that into a token.

pub mod assertion;
pub mod claims;
pub mod issuers;
pub mod jwks;
pub mod spec;

pub use jwks::{Jwks, JwksCache, JwksError, PublicKey};
pub use spec::IssuerSpec;
