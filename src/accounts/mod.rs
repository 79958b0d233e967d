//! Service accounts: create, issue tokens, list, read, revoke.

pub mod batch;
pub mod bulk;
pub mod hasher;
pub mod input;
pub mod model;
pub mod passwords;
pub mod revoke;
pub mod service;
pub mod sessions;
pub mod throttle;
pub mod users;

pub use input::{AccountName, Description, Reason};
pub use model::{Account, AccountDetail, AccountStatus, TokenRecord};
pub use revoke::{apply_revoked, revoke_account_in, revoke_token, Revoked, TokenOwner};
pub use service::{create, create_in, get, issue_token, list, Issued, NewAccount};

pub use crate::audit::Actor;
