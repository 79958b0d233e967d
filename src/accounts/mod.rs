//! Service accounts: create, issue tokens, list, read, revoke.

pub mod input;
pub mod model;
pub mod revoke;
pub mod service;

pub use input::{AccountName, Description, Reason};
pub use model::{Account, AccountDetail, AccountStatus, TokenRecord};
pub use revoke::{revoke_account, revoke_token, Revoked};
pub use service::{create, get, issue_token, list, Issued, NewAccount};

pub use crate::audit::Actor;
