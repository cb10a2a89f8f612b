//! What can go wrong talking to an IMAP server, in words a user can act on.
//!
//! No variant ever carries a command's arguments: a LOGIN line holds a password. Commands are
//! named by their verb only.

use crate::failure::{Classified, ErrorKind, FailureCategory, Side};
use std::time::Duration;

use crate::wire::{ResponseCode, StatusResponse, WireError};

/// An error from the IMAP client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// The TCP connection could not be made. Check the host name, the port and any firewall.
    #[error("cannot connect to {host}:{port}: {source}")]
    Connect {
        /// The host as given.
        host: String,
        /// The port as given.
        port: u16,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// TLS failed: most often an untrusted or mismatched certificate. Give the server's CA
    /// with a CA file, or fix the host name.
    #[error("TLS with {host} failed: {detail}")]
    Tls {
        /// The host as given.
        host: String,
        /// What the TLS layer said.
        detail: String,
    },
    /// STARTTLS was asked for but the server does not offer it. Use implicit TLS (usually port
    /// 993) or, knowingly, a cleartext connection.
    #[error("{host} does not offer STARTTLS")]
    StartTlsUnavailable {
        /// The host.
        host: String,
    },
    /// The connection broke or timed out while waiting for or sending data.
    #[error("connection to {host} failed while {doing}: {source}")]
    Io {
        /// The host.
        host: String,
        /// What the client was doing.
        doing: &'static str,
        /// The I/O error (a timeout shows as `TimedOut`).
        #[source]
        source: std::io::Error,
    },
    /// The server closed the connection (with its `BYE` text when it sent one).
    #[error("{host} closed the connection{}", bye.as_ref().map(|b| format!(": {b}")).unwrap_or_default())]
    Closed {
        /// The host.
        host: String,
        /// The server's farewell, if any.
        bye: Option<String>,
    },
    /// The server sent bytes that break the protocol.
    #[error("{host} sent a malformed response: {source}")]
    Wire {
        /// The host.
        host: String,
        /// What was wrong.
        #[source]
        source: WireError,
    },
    /// A message body being sent could not be read from where it comes from (a local file, a
    /// POP3 server): the message is not the destination's to refuse, and the error names the
    /// place, not an IMAP server.
    #[error("{origin}: cannot read message UID {uid}: {detail}")]
    BodySource {
        /// Where the body comes from: a file's path, `pop3://host:port`.
        origin: String,
        /// The message's UID (for a local store or POP3, the one the source gave it).
        uid: u32,
        /// What went wrong.
        detail: String,
        /// What kind of failure: a broken POP3 connection, a file that cannot be read.
        kind: ErrorKind,
    },
    /// The server said something the client did not expect at this point.
    #[error("{host} answered {command} unexpectedly: {detail}")]
    Protocol {
        /// The host.
        host: String,
        /// The command's verb.
        command: &'static str,
        /// What was unexpected.
        detail: String,
    },
    /// The login was refused: wrong user name, password or token, or (for an admin acting for
    /// a user) an admin not allowed to.
    #[error("{host} refused the login of {user:?}: {server_says}")]
    AuthenticationFailed {
        /// The host.
        host: String,
        /// The user name (never the password).
        user: String,
        /// The server's words.
        server_says: String,
    },
    /// The password would travel in clear text. Use TLS or STARTTLS, or choose cleartext
    /// explicitly.
    #[error("refusing to send a password to {host} without TLS: choose TLS or STARTTLS, or cleartext explicitly")]
    CleartextRefused {
        /// The host.
        host: String,
    },
    /// The server lacks an extension the operation needs.
    #[error("{host} does not support {capability}, needed to {needed_for}")]
    MissingCapability {
        /// The host.
        host: String,
        /// The extension's name.
        capability: &'static str,
        /// What it was needed for.
        needed_for: &'static str,
    },
    /// The server answered a command with `NO` (it failed) or `BAD` (it was not understood).
    #[error("{host} refused {command}{}: {}", folder.as_ref().map(|f| format!(" in {f:?}")).unwrap_or_default(), status.describe())]
    Refused {
        /// The host.
        host: String,
        /// The command's verb.
        command: &'static str,
        /// The folder the command was about, when there was one.
        folder: Option<String>,
        /// The server's full status response, code included.
        status: Box<StatusResponse>,
    },
    /// A body given to APPEND ended before its announced length. The connection is unusable
    /// afterwards (the server still waits for bytes) and has been closed.
    #[error("the message body for APPEND ended after {got} of {announced} bytes")]
    BodyTooShort {
        /// The announced length.
        announced: u64,
        /// What arrived.
        got: u64,
    },
    /// A name or flag that cannot be sent in IMAP syntax (for example a CR or LF inside it).
    #[error("cannot send {what} {value:?} to the server: {why}")]
    Unsendable {
        /// What it is ("folder name", "keyword").
        what: &'static str,
        /// The value (never a secret).
        value: String,
        /// Why.
        why: &'static str,
    },
    /// A SASL mechanism could not build its message.
    #[error("authentication setup failed: {0}")]
    Sasl(String),
}

impl ImapError {
    /// The response code of a refused command, if any.
    pub fn code(&self) -> Option<&ResponseCode> {
        match self {
            ImapError::Refused { status, .. } => status.code.as_ref(),
            _ => None,
        }
    }

    /// Whether retrying later (on a new connection) may succeed: dropped connections, timeouts,
    /// throttling and temporary unavailability.
    pub fn is_transient(&self) -> bool {
        match self {
            ImapError::Io { .. } | ImapError::Closed { .. } | ImapError::Connect { .. } => true,
            ImapError::BodySource { kind, .. } => *kind == ErrorKind::Connection,
            // A refusal is worth retrying only when it was throttling.
            ImapError::Refused { .. } => self.is_throttled(),
            _ => false,
        }
    }

    /// Whether the server throttled us: `[LIMIT]` or `[UNAVAILABLE]`, or words that say so
    /// (Office 365's "Suggested Backoff Time", "too many connections"...), in a refusal or in
    /// the BYE that closed the connection.
    pub fn is_throttled(&self) -> bool {
        match self {
            ImapError::Refused { status, .. } => {
                matches!(
                    status.code,
                    Some(ResponseCode::Limit) | Some(ResponseCode::Unavailable)
                ) || is_throttle_text(&status.text)
            }
            ImapError::Closed { bye: Some(b), .. } => is_throttle_text(b),
            _ => false,
        }
    }

    /// How long the server asked us to wait, when it said (Office 365's "Suggested Backoff
    /// Time: N milliseconds").
    pub fn suggested_backoff(&self) -> Option<Duration> {
        let text = match self {
            ImapError::Refused { status, .. } => &status.text,
            ImapError::Closed { bye: Some(b), .. } => b,
            _ => return None,
        };
        let lower = text.to_ascii_lowercase();
        let at = lower.find("suggested backoff time")?;
        let digits: String = lower[at..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        let n: u64 = digits.parse().ok()?;
        Some(Duration::from_millis(n.min(600_000)))
    }
}

impl ImapError {
    /// The failure, typed: its kind, the category an account is filed under, whether it is
    /// worth retrying, whether the server throttled and how long it asked us to wait. A
    /// refusal is filed under `side` (the destination when no side is known).
    pub fn classify(&self, side: Option<Side>) -> Classified {
        let throttled = self.is_throttled();
        let refused = FailureCategory::refused_by(side.unwrap_or(Side::Destination));
        let (category, transient) = match self {
            ImapError::AuthenticationFailed { .. } => (FailureCategory::Authentication, false),
            ImapError::Tls { .. }
            | ImapError::StartTlsUnavailable { .. }
            | ImapError::CleartextRefused { .. } => (FailureCategory::Tls, false),
            _ if throttled => (FailureCategory::Throttled, true),
            ImapError::Connect { .. } | ImapError::Io { .. } | ImapError::Closed { .. } => {
                (FailureCategory::Connection, true)
            }
            ImapError::BodySource {
                kind: ErrorKind::Connection,
                ..
            } => (FailureCategory::Connection, true),
            ImapError::Refused { status, .. } => match status.code {
                Some(ResponseCode::OverQuota) => (FailureCategory::Quota, false),
                Some(ResponseCode::AuthenticationFailed | ResponseCode::AuthorizationFailed) => {
                    (FailureCategory::Authentication, false)
                }
                _ => (refused, false),
            },
            ImapError::MissingCapability { .. } => (FailureCategory::Configuration, false),
            _ => (refused, self.is_transient()),
        };
        Classified {
            kind: ErrorKind::of_imap(self),
            category,
            side,
            transient,
            throttled,
            backoff: self.suggested_backoff(),
        }
    }
}

/// Throttling that servers express in words (or in a response code left in the words, as in
/// a BYE line): the one list the client's retries and the scheduler's connection limits both
/// go by.
pub(crate) fn is_throttle_text(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "[limit]",
        "[unavailable]",
        "suggested backoff",
        "too many connections",
        "too many simultaneous",
        "maximum number of connections",
        "server busy",
        "try again later",
        "throttl",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// Shorthand for results of the client.
pub type Result<T, E = ImapError> = std::result::Result<T, E>;

impl ErrorKind {
    /// The kind of an IMAP error.
    pub fn of_imap(e: &ImapError) -> ErrorKind {
        match e {
            ImapError::AuthenticationFailed { .. } => ErrorKind::Authentication,
            ImapError::Connect { .. } | ImapError::Io { .. } | ImapError::Closed { .. } => {
                ErrorKind::Connection
            }
            ImapError::Tls { .. }
            | ImapError::StartTlsUnavailable { .. }
            | ImapError::CleartextRefused { .. } => ErrorKind::Tls,
            ImapError::BodySource { kind, .. } => *kind,
            ImapError::Refused { .. }
                if e.code() == Some(&crate::wire::ResponseCode::OverQuota) =>
            {
                ErrorKind::Quota
            }
            _ => ErrorKind::Server,
        }
    }
}

/// An APPEND that host `h` answered `NO` (for the tests of every layer that classifies).
#[cfg(test)]
pub(crate) fn refused_append(code: Option<ResponseCode>, text: &str) -> ImapError {
    ImapError::Refused {
        host: "h".into(),
        command: "APPEND",
        folder: None,
        status: Box::new(StatusResponse {
            tag: Some("a1".into()),
            kind: crate::wire::StatusKind::No,
            code,
            text: text.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: Option<ResponseCode>, text: &str) -> ImapError {
        refused_append(code, text)
    }

    #[test]
    fn throttling_is_one_judgement() {
        let throttled = [
            refused(Some(ResponseCode::Limit), "slow down"),
            refused(Some(ResponseCode::Unavailable), "busy"),
            refused(
                None,
                "Request is throttled. Suggested Backoff Time: 250 milliseconds",
            ),
            refused(None, "Too many simultaneous connections"),
            ImapError::Closed {
                host: "h".into(),
                bye: Some("[UNAVAILABLE] Server busy, try again later".into()),
            },
        ];
        for e in &throttled {
            assert!(e.is_throttled(), "{e}");
            assert!(e.is_transient(), "{e}");
        }
        let not = [
            refused(None, "Message contains bare newlines"),
            refused(Some(ResponseCode::OverQuota), "Quota exceeded"),
            ImapError::Closed {
                host: "h".into(),
                bye: Some("Logging out".into()),
            },
        ];
        for e in &not {
            assert!(!e.is_throttled(), "{e}");
        }
    }
}
