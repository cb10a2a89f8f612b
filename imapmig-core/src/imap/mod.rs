//! The async IMAP client: tokio + rustls.
//!
//! [`Session`] connects (implicit TLS, STARTTLS, or cleartext when asked for by name), logs in
//! (LOGIN, PLAIN with an authorization identity, XOAUTH2, OAUTHBEARER) and runs the commands a
//! migration needs. Message bodies are streamed both ways: a FETCH hands each body on as it
//! arrives ([`FetchedBody`]) and APPEND sends from any async reader of known length, so memory
//! per message is a small constant whatever its size. Several commands can be in flight on one
//! connection: body fetches are pipelined, and appends with LITERAL+ do not wait for each other.
//! Every wait has a timeout.

mod account;
pub(crate) mod conn;
pub mod error;
mod session;
#[cfg(test)]
mod trace_tests;

pub use crate::net::TlsVerify;
pub use crate::wire::uid_set::uid_set;
pub use account::Account;
pub use error::{ImapError, Result};
pub use session::{
    is_sendable_keyword, AppendUid, AuthMethod, BodyEvent, Capabilities, Credentials, Endpoint,
    FetchedBody, FetchedMessage, FolderStatus, Namespace, QuotaUsage, SearchKey, Security,
    Selected, ServerAnomaly, Session, MAX_COLLECTED_BODY,
};
