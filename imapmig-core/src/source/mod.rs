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
pub use crate::filter::DateRange;
use crate::imap::Account;
use crate::model::{Folder, MessageMeta, Uid, UidValidity};

pub use crate::access::{AccessError, FolderList, SkippedEntry};
pub use crate::failure::ErrorKind;

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
    /// What the server said must reach the user (IMAP `[ALERT]`) since it was last asked:
    /// the engine puts each into the report's notes.
    fn take_alerts(&mut self) -> Vec<String> {
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
    fn take_alerts(&mut self) -> Vec<String> {
        dispatch!(self, s => s.take_alerts())
    }
    async fn still_present(&mut self, uids: &[Uid]) -> Result<Vec<Uid>, AccessError> {
        dispatch!(self, s => s.still_present(uids).await)
    }
    async fn close(self) {
        dispatch!(self, s => s.close().await)
    }
}
