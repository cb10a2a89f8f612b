//! What kind of failure an error is: the one classification every layer and every face
//! (exit status, Python exception, C status, batch category) is chosen by.

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
