//! What kind of failure an error is: the one classification every layer and every face
//! (exit status, Python exception, C status, batch category, retries, throttling) is chosen
//! by. Failures travel as these typed values up to the report and the batch's verdict; no
//! decision is ever taken by reading the words of a message.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which side of the migration something happened on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Side {
    /// The server mail comes from.
    Source,
    /// The server mail goes to.
    Destination,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// What kind of failure an error is, whatever the protocol or store: what the CLI's exit
/// status, the Python exception class and the C status code are chosen by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server refused the login: wrong user name, password or token.
    Authentication,
    /// The server could not be reached, or the connection broke or timed out.
    Connection,
    /// TLS failed, STARTTLS is missing, or a password would have travelled in clear text.
    Tls,
    /// The destination is over its quota.
    Quota,
    /// The server refused a command or broke its protocol.
    Server,
    /// A local file or folder could not be read or written, or holds bad data.
    Storage,
    /// The folder plan cannot be made.
    Plan,
    /// The sync-state file failed.
    State,
    /// The migration was cancelled.
    Cancelled,
    /// A bug.
    Internal,
}

impl ErrorKind {
    /// The kind's name as it appears in JSON (`"authentication"`, `"tls"`...).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Authentication => "authentication",
            ErrorKind::Connection => "connection",
            ErrorKind::Tls => "tls",
            ErrorKind::Quota => "quota",
            ErrorKind::Server => "server",
            ErrorKind::Storage => "storage",
            ErrorKind::Plan => "plan",
            ErrorKind::State => "state",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Why an account failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCategory {
    /// The login was refused: wrong password or token, or an admin not allowed to act for the
    /// user. Supply new credentials to retry.
    Authentication,
    /// The server could not be reached, or dropped the connection, more often than the retry
    /// policy allows.
    Connection,
    /// TLS failed: untrusted or mismatched certificate, or no STARTTLS.
    Tls,
    /// The destination mailbox is full.
    Quota,
    /// The server kept throttling beyond the retry policy.
    Throttled,
    /// The destination refused something that is not about size or quota (a folder it will
    /// not create, a command it rejects).
    DestinationRefused,
    /// The source refused something (a folder it will not open, `NO [SERVERBUG]` to EXAMINE, a
    /// command it rejects): look at that mailbox on the source, then resume the account.
    SourceRefused,
    /// The settings do not fit this account: a folder plan collision that needs a rename, a
    /// server lacking something needed.
    Configuration,
    /// The sync state could not be read or written, or a bug. Nothing is lost; resume it.
    Internal,
}

impl FailureCategory {
    /// The name used in the store and exports: `authentication`, `quota`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::Authentication => "authentication",
            FailureCategory::Connection => "connection",
            FailureCategory::Tls => "tls",
            FailureCategory::Quota => "quota",
            FailureCategory::Throttled => "throttled",
            FailureCategory::DestinationRefused => "destination_refused",
            FailureCategory::SourceRefused => "source_refused",
            FailureCategory::Configuration => "configuration",
            FailureCategory::Internal => "internal",
        }
    }

    /// The category of a refusal by `side`.
    pub fn refused_by(side: Side) -> FailureCategory {
        match side {
            Side::Source => FailureCategory::SourceRefused,
            Side::Destination => FailureCategory::DestinationRefused,
        }
    }

    /// Every category.
    pub const ALL: [FailureCategory; 9] = [
        FailureCategory::Authentication,
        FailureCategory::Connection,
        FailureCategory::Tls,
        FailureCategory::Quota,
        FailureCategory::Throttled,
        FailureCategory::DestinationRefused,
        FailureCategory::SourceRefused,
        FailureCategory::Configuration,
        FailureCategory::Internal,
    ];

    /// The category a name stands for.
    pub fn parse(name: &str) -> Option<FailureCategory> {
        FailureCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for FailureCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure, typed: what it is, who failed, and how it is handled. Made once, where the
/// error is (see `ImapError::classify`, `AccessError::classify`, `EngineError::classify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// The category an account that fails with it is filed under.
    pub category: FailureCategory,
    /// Which side failed, when one did.
    pub side: Option<Side>,
    /// Whether a later attempt may succeed on its own (retried with backoff).
    pub transient: bool,
    /// Whether the server throttled us (its host gets fewer connections).
    pub throttled: bool,
    /// How long the server asked us to wait, when it said.
    pub backoff: Option<Duration>,
}

impl Classified {
    /// The side whose server throttled, when it did (the source when the side is unknown).
    pub fn throttled_side(&self) -> Option<Side> {
        self.throttled.then(|| self.side.unwrap_or(Side::Source))
    }

    /// A failure that is neither transient nor throttling.
    pub fn permanent(kind: ErrorKind, category: FailureCategory, side: Option<Side>) -> Classified {
        Classified {
            kind,
            category,
            side,
            transient: false,
            throttled: false,
            backoff: None,
        }
    }
}
