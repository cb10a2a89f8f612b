//! An IMAP account: a server and how to log in to it.

use super::{Credentials, Endpoint, ImapError, Session};

/// A server and how to log in to it.
#[derive(Clone, Debug)]
pub struct Account {
    /// Where the server is.
    pub endpoint: Endpoint,
    /// Who logs in.
    pub credentials: Credentials,
}

impl Account {
    /// Opens a logged-in session.
    pub async fn open(&self) -> Result<Session, ImapError> {
        Session::open(&self.endpoint, &self.credentials).await
    }
}
