//! Where mail comes from: the [`MigrationSource`] contract and its implementations.
//!
//! A source lists folders, opens one, lists its messages' metadata, selects messages by date,
//! and streams their bodies ([`FetchedBody`](crate::body::FetchedBody)) in the order it likes,
//! each tagged with its UID.
//! IMAP is the main implementation ([`ImapSource`]); the others implement the same contract:
//! a POP3 inbox ([`Pop3Source`]), a local Maildir++ tree ([`MaildirSource`], the restore side
//! of [`crate::sink::MaildirSink`]) and mbox archives ([`MboxSource`]). [`SourceSpec`] says how
//! to reach one, and [`AnySource`] lets the engine hold any of them.

pub(crate) mod headers;
mod imap;
pub(crate) mod maildir;
mod mbox;
mod pop3;

use std::collections::HashSet;

pub use self::imap::ImapSource;
pub(crate) use self::imap::{date_keys, imap_list};
pub use self::maildir::{MaildirSource, MaildirSpec};
pub use self::mbox::{MboxFlavor, MboxSource, MboxSpec};
pub use self::pop3::{Pop3Source, Pop3Spec};
use crate::body::BodyEvent;
use crate::engine::{Account, DateField};
use crate::imap::ImapError;
use crate::model::{Folder, MessageMeta, Uid, UidValidity};

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
            ImapError::Refused { .. }
                if e.code() == Some(&crate::wire::ResponseCode::OverQuota) =>
            {
                ErrorKind::Quota
            }
            _ => ErrorKind::Server,
        }
    }
}

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

/// What opening a folder tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedFolder {
    /// The folder's UIDVALIDITY: UIDs are only meaningful together with it.
    pub uid_validity: UidValidity,
    /// The UID the next message will get, when known.
    pub uid_next: Option<u32>,
    /// HIGHESTMODSEQ, when the source tracks changes (CONDSTORE): equal values mean nothing
    /// changed.
    pub highest_modseq: Option<u64>,
    /// The number of messages.
    pub messages: u32,
}

/// A date range, on INTERNALDATE or on the Date header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    /// On or after this day.
    pub since: Option<time::Date>,
    /// Before this day.
    pub before: Option<time::Date>,
    /// Which date.
    pub field: DateField,
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

/// Odd data a source met and worked around: see [`MigrationSource::take_anomalies`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAnomaly {
    /// The message, when its UID is known.
    pub uid: Option<Uid>,
    /// What the server sent (an excerpt) and what was done about it.
    pub detail: String,
}

/// Where mail comes from.
///
/// Calls come in this order: [`list_folders`](Self::list_folders), then per folder
/// [`open_folder`](Self::open_folder), [`messages`](Self::messages), optionally
/// [`select_dates`](Self::select_dates), then rounds of
/// [`request_bodies`](Self::request_bodies) followed by [`next_body`](Self::next_body) until
/// it returns `None`.
#[allow(async_fn_in_trait)]
pub trait MigrationSource {
    /// Who this is, for messages: `imap://host:port`, a path.
    fn describe(&self) -> String;
    /// Every folder.
    async fn list_folders(&mut self) -> Result<FolderList, AccessError>;
    /// Opens a folder for reading (never changing `\Seen`).
    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError>;
    /// The metadata of every message in the open folder, by ascending UID.
    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError>;
    /// The metadata of the messages in the open folder whose modification sequence is above
    /// `modseq` (CONDSTORE): those added, and those whose flags changed, since the folder's
    /// HIGHESTMODSEQ was `modseq`. `None` when the source cannot tell; then only
    /// [`messages`](Self::messages) can say what changed.
    async fn messages_changed_since(
        &mut self,
        modseq: u64,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError> {
        let _ = modseq;
        Ok(None)
    }
    /// The UIDs within a date range (on the server where it can).
    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError>;
    /// Asks for these bodies; they come back through [`next_body`](Self::next_body).
    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError>;
    /// The next requested body, or `None` when all requested ones were handed out.
    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError>;
    /// Entries of a local store passed over since the last call (listing folders, opening a
    /// folder, listing messages): files and directories that might hold mail but were not
    /// taken, each with its path and why. The engine asks after listing the folders and after
    /// each folder, so that nothing is left out of the report silently. Servers have none.
    fn take_skipped(&mut self) -> Vec<SkippedEntry> {
        Vec::new()
    }
    /// Odd data the source met since the last call and worked around (a metadata line whose
    /// UID cannot be read, an INTERNALDATE that is not a date...), each with the UID when
    /// known and what the server sent. The engine asks after listing a folder's messages and
    /// after its bodies, and reports each one.
    fn take_anomalies(&mut self) -> Vec<SourceAnomaly> {
        Vec::new()
    }
    /// Which of these UIDs the open folder still holds: asked about messages whose body never
    /// came, to tell a message expunged meanwhile from one the server would not send. A source
    /// that cannot tell answers that none is left (they count as vanished).
    async fn still_present(&mut self, uids: &[Uid]) -> Result<Vec<Uid>, AccessError> {
        let _ = uids;
        Ok(Vec::new())
    }
    /// Closes the connection or files.
    async fn close(self);
}

/// How to reach a source.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SourceSpec {
    /// An IMAP server.
    Imap(Account),
    /// A POP3 server's inbox.
    Pop3(Pop3Spec),
    /// A local Maildir++ tree.
    Maildir(MaildirSpec),
    /// An mbox file, or a directory of them.
    Mbox(MboxSpec),
}

impl SourceSpec {
    /// Writes the protocol lines of this source's server connections to `trace`, unless its
    /// endpoint has a trace already. Local stores have no protocol to trace.
    pub fn trace_to(&mut self, trace: &crate::trace::ProtocolTrace) {
        let endpoint = match self {
            SourceSpec::Imap(a) => &mut a.endpoint,
            SourceSpec::Pop3(p) => &mut p.account.endpoint,
            SourceSpec::Maildir(_) | SourceSpec::Mbox(_) => return,
        };
        if endpoint.trace.is_none() {
            endpoint.trace = Some(trace.clone());
        }
    }

    /// Opens the source.
    pub async fn open(&self) -> Result<AnySource, AccessError> {
        match self {
            SourceSpec::Imap(a) => Ok(AnySource::Imap(ImapSource::open(a).await?)),
            SourceSpec::Pop3(p) => Ok(AnySource::Pop3(Pop3Source::open(p).await?)),
            SourceSpec::Maildir(m) => Ok(AnySource::Maildir(MaildirSource::open(m).await?)),
            SourceSpec::Mbox(m) => Ok(AnySource::Mbox(MboxSource::open(m).await?)),
        }
    }

    /// Which mailbox this is, however the server was reached: the login's mailbox for a
    /// server (`imap:user`, `pop3:user`, lower-cased: logins are not case-sensitive), the
    /// absolute path for a local store. A state key built from it survives a server spelled
    /// differently (`localhost` or `127.0.0.1`, another port, STARTTLS or TLS, a DNS alias, a
    /// moved server); the folders' UIDVALIDITY and the content fingerprints tell whether the
    /// mail behind it is still the same.
    pub fn identity(&self) -> String {
        fn local(kind: &str, path: &std::path::Path) -> String {
            let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            format!("{kind}:{}", path.display())
        }
        match self {
            SourceSpec::Imap(a) => format!("imap:{}", a.credentials.mailbox_user().to_lowercase()),
            SourceSpec::Pop3(p) => format!(
                "pop3:{}",
                p.account.credentials.mailbox_user().to_lowercase()
            ),
            SourceSpec::Maildir(m) => local("maildir", &m.path),
            SourceSpec::Mbox(m) => local("mbox", &m.path),
        }
    }

    /// Who this is, for messages: `user@host:port` for IMAP, `pop3:user@host:port`,
    /// `maildir:PATH`, `mbox:PATH`. (State keys of earlier versions were made of it.)
    pub fn describe(&self) -> String {
        match self {
            SourceSpec::Imap(a) => format!(
                "{}@{}:{}",
                a.credentials.mailbox_user(),
                a.endpoint.host,
                a.endpoint.port
            ),
            SourceSpec::Pop3(p) => format!(
                "pop3:{}@{}:{}",
                p.account.credentials.mailbox_user(),
                p.account.endpoint.host,
                p.account.endpoint.port
            ),
            SourceSpec::Maildir(m) => format!("maildir:{}", m.path.display()),
            SourceSpec::Mbox(m) => format!("mbox:{}", m.path.display()),
        }
    }
}

/// Any kind of source, for the engine to hold.
#[non_exhaustive]
pub enum AnySource {
    /// IMAP.
    Imap(ImapSource),
    /// POP3.
    Pop3(Pop3Source),
    /// Maildir.
    Maildir(MaildirSource),
    /// mbox.
    Mbox(MboxSource),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySource::Imap($s) => $e,
            AnySource::Pop3($s) => $e,
            AnySource::Maildir($s) => $e,
            AnySource::Mbox($s) => $e,
        }
    };
}

impl MigrationSource for AnySource {
    fn describe(&self) -> String {
        dispatch!(self, s => s.describe())
    }
    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        dispatch!(self, s => s.list_folders().await)
    }
    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError> {
        dispatch!(self, s => s.open_folder(folder).await)
    }
    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError> {
        dispatch!(self, s => s.messages().await)
    }
    async fn messages_changed_since(
        &mut self,
        modseq: u64,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError> {
        dispatch!(self, s => s.messages_changed_since(modseq).await)
    }
    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError> {
        dispatch!(self, s => s.select_dates(range).await)
    }
    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError> {
        dispatch!(self, s => s.request_bodies(uids).await)
    }
    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError> {
        dispatch!(self, s => s.next_body().await)
    }
    fn take_skipped(&mut self) -> Vec<SkippedEntry> {
        dispatch!(self, s => s.take_skipped())
    }
    fn take_anomalies(&mut self) -> Vec<SourceAnomaly> {
        dispatch!(self, s => s.take_anomalies())
    }
    async fn still_present(&mut self, uids: &[Uid]) -> Result<Vec<Uid>, AccessError> {
        dispatch!(self, s => s.still_present(uids).await)
    }
    async fn close(self) {
        dispatch!(self, s => s.close().await)
    }
}
