//! What sources and sinks share: how access to a store fails ([`AccessError`]), a store's
//! folder list, and the entries of a local store that were passed over.

use crate::failure::{Classified, ErrorKind, FailureCategory, Side};
use crate::imap::error::ImapError;
use crate::model::Folder;

/// What went wrong reading from a source or writing to a sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// An IMAP server failed or refused.
    #[error(transparent)]
    Imap(#[from] ImapError),
    /// A local file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// Data in a local store is not what it should be.
    #[error("{path}: {detail}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Several messages sent in one command (MULTIAPPEND) were refused together; none of them
    /// was stored. Each is worth sending again on its own.
    #[error("the destination refused a group of messages: {words}")]
    GroupRefused {
        /// The server's words.
        words: String,
    },
    /// Another protocol's server (POP3) failed or refused.
    #[error("{server}: {detail}")]
    Server {
        /// Host and port.
        server: String,
        /// What it said or what broke.
        detail: String,
        /// Whether a retry later may succeed.
        transient: bool,
        /// What kind of failure: a refused login, a broken connection, TLS...
        kind: ErrorKind,
    },
}

impl AccessError {
    /// The IMAP error underneath, if any.
    pub fn imap(&self) -> Option<&ImapError> {
        match self {
            AccessError::Imap(e) => Some(e),
            _ => None,
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AccessError::Imap(e) => ErrorKind::of_imap(e),
            AccessError::Io { .. } | AccessError::Format { .. } => ErrorKind::Storage,
            AccessError::GroupRefused { .. } => ErrorKind::Server,
            AccessError::Server { kind, .. } => *kind,
        }
    }

    /// Whether a later retry may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            AccessError::Imap(e) => e.is_transient(),
            AccessError::Server { transient, .. } => *transient,
            AccessError::Io { .. }
            | AccessError::Format { .. }
            | AccessError::GroupRefused { .. } => false,
        }
    }

    /// The failure, typed (see [`ImapError::classify`]); a failure of another protocol or of
    /// a local store is named by its kind.
    pub fn classify(&self, side: Option<Side>) -> Classified {
        if let AccessError::Imap(e) = self {
            return e.classify(side);
        }
        let kind = self.kind();
        let transient = self.is_transient();
        let category = match kind {
            ErrorKind::Authentication => FailureCategory::Authentication,
            ErrorKind::Tls => FailureCategory::Tls,
            ErrorKind::Quota => FailureCategory::Quota,
            ErrorKind::Connection => FailureCategory::Connection,
            _ if transient => FailureCategory::Connection,
            _ => FailureCategory::Configuration,
        };
        Classified {
            transient,
            ..Classified::permanent(kind, category, side)
        }
    }

    /// Whether this is a refused group (see [`AccessError::GroupRefused`]).
    pub fn group_refused(&self) -> bool {
        matches!(self, AccessError::GroupRefused { .. })
    }

    /// When the destination refused one message (and only that message): its words.
    pub fn refusal(&self) -> Option<String> {
        match self {
            AccessError::Imap(ImapError::Refused { status, .. }) => Some(status.describe()),
            _ => None,
        }
    }
}

/// The folders of a source and how its names are laid out.
#[derive(Clone, Debug, Default)]
pub struct FolderList {
    /// Every folder.
    pub folders: Vec<Folder>,
    /// The personal namespace prefix (`INBOX.` on some servers), or empty.
    pub prefix: String,
    /// The hierarchy separator, when there is one.
    pub delimiter: Option<char>,
    /// Message counts by wire name, when the source tells them for free (IMAP LIST-STATUS);
    /// used to start the largest folders first.
    pub messages: std::collections::HashMap<String, u32>,
}

/// A file or directory entry of a local store that the source did not import, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedEntry {
    /// The path, as the admin can find it.
    pub path: String,
    /// Why it was not imported, in plain words.
    pub reason: String,
}

impl SkippedEntry {
    pub(crate) fn at(path: &std::path::Path, reason: impl Into<String>) -> SkippedEntry {
        SkippedEntry {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}
