//! Opening a session for an [`Account`] (the account itself is a connection setting, in
//! [`crate::net`]).

use super::{ImapError, Session};
pub use crate::net::Account;

impl Account {
    /// Opens a logged-in session.
    pub async fn open(&self) -> Result<Session, ImapError> {
        Session::open(&self.endpoint, &self.credentials).await
    }
}
