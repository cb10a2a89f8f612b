//! Where mail goes: the [`MigrationSink`] contract and its implementations.
//!
//! A sink lists and creates folders, opens one, appends bodies with their flags and
//! INTERNALDATE (reporting the new UID when it can), and answers what the engine needs to
//! recognise its own copies after a crash: which UIDs lie at or above a floor and what their
//! content fingerprints are. It never needs to change a message to recognise it.
//!
//! Implementations: an IMAP server ([`ImapSink`]) and a local Maildir++ tree
//! ([`MaildirSink`], a backup that [`crate::source::MaildirSource`] reads back).

mod imap;
mod maildir;

use std::collections::HashMap;

pub use self::imap::ImapSink;
pub use self::maildir::MaildirSink;
use crate::body::FetchedBody;
use crate::fingerprint::ContentPrint;
use crate::imap::Account;
use crate::model::{Flags, InternalDate, MessageMeta, SpecialUse, Uid, UidValidity};
use crate::source::{AccessError, AnySource, FolderList, MaildirSpec, SourceSpec};

/// What opening a destination folder tells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenedTarget {
    /// The folder's UIDVALIDITY, when the sink has UIDs.
    pub uid_validity: Option<UidValidity>,
    /// A lower bound for the UID of the next message appended.
    pub uid_next: Option<u32>,
    /// The flags the folder stores (`\*` meaning any keyword); `None` means all.
    pub permanent_flags: Option<Vec<String>>,
    /// The largest message the sink accepts.
    pub append_limit: Option<u64>,
    /// Whether appends report the new message's UID.
    pub reports_uids: bool,
    /// How many messages the folder holds.
    pub messages: u32,
}

impl OpenedTarget {
    /// Whether `flag` can be stored here.
    pub fn accepts(&self, flag: &str) -> bool {
        crate::model::permanently_stored(self.permanent_flags.as_deref(), flag)
    }
}

/// An append under way; [`MigrationSink::finish_append`] completes it.
#[derive(Debug)]
pub enum AppendTicket {
    /// Sent, completion pending (the IMAP tag).
    InFlight(String),
    /// Sent as message `index` of a group (one MULTIAPPEND command, by its tag).
    Grouped {
        /// The command's tag.
        tag: String,
        /// The message's place in the group, from 0.
        index: usize,
    },
    /// Already done (a local store writes synchronously), with the new UID if any.
    Done(Option<Uid>),
}

/// Where mail goes.
#[allow(async_fn_in_trait)]
pub trait MigrationSink {
    /// Who this is, for messages.
    fn describe(&self) -> String;
    /// What the server said must reach the user (IMAP `[ALERT]`) since it was last asked:
    /// the engine puts each into the report's notes.
    fn take_alerts(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Every folder, with the layout new names must follow.
    async fn list_folders(&mut self) -> Result<FolderList, AccessError>;
    /// Creates a folder (wire name), with a special use where the sink supports it. Succeeds
    /// when it exists already.
    async fn create_folder(
        &mut self,
        raw: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<(), AccessError>;
    /// Opens a folder for appending (selecting it makes appends cheaper on IMAP servers).
    async fn open_folder(&mut self, raw: &str) -> Result<OpenedTarget, AccessError>;
    /// Starts appending `body` to the open folder. `observe` sees every byte as it passes.
    /// Several appends may be under way at once; each is completed by
    /// [`finish_append`](Self::finish_append), in order.
    async fn append(
        &mut self,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<AppendTicket, AccessError>;
    /// Completes an append; returns the new message's UID when the sink reports it.
    async fn finish_append(&mut self, ticket: AppendTicket) -> Result<Option<Uid>, AccessError>;
    /// The UIDs in the open folder at or above `floor`.
    async fn uids_from(&mut self, floor: u32) -> Result<Vec<Uid>, AccessError>;
    /// The RFC 822 size (CRLF line endings, as IMAP's RFC822.SIZE) of every message in the
    /// open folder, or `None` when the sink cannot tell them exactly without reading the
    /// messages. Used to fingerprint only the messages that may be copies of a source message.
    async fn sizes(&mut self) -> Result<Option<Vec<(Uid, u64)>>, AccessError>;
    /// Content fingerprints (and masked ones) of messages in the open folder.
    async fn fingerprints(
        &mut self,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, ContentPrint>, AccessError>;
    /// Replaces the flags of messages in the open folder.
    async fn store_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError>;
    /// What the open folder holds of messages just appended: flags, INTERNALDATE and size
    /// of `uids` (as APPENDUID told them), or when `uids` is empty of every message at or
    /// above `floor` (the UIDNEXT before the appends). One command for them all. `None` when
    /// the sink stores exactly what it is given and need not be asked (a local store).
    async fn read_back(
        &mut self,
        uids: &[Uid],
        floor: u32,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError>;
    /// Adds flags to messages in the open folder (keeps those they have).
    async fn add_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError>;
    /// Whether small messages may be sent in groups (one command for several messages).
    /// Sinks without such a thing ignore it.
    fn set_grouping(&mut self, _on: bool) {}
    /// The open folder's UIDVALIDITY as the sink knows it now, which may not be what
    /// [`MigrationSink::open_folder`] said: a folder empty when opened may be numbered afresh
    /// on its first messages (GNU Mailutils). `None` when the sink does not follow it.
    fn open_validity(&self) -> Option<UidValidity> {
        None
    }
    /// Closes the connection or files.
    async fn close(self);
}

/// How to reach a sink.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SinkSpec {
    /// An IMAP server.
    Imap(Account),
    /// A local Maildir++ tree (created when missing).
    Maildir(MaildirSpec),
}

impl SinkSpec {
    /// Writes the protocol lines of this sink's server connections to `trace`, unless its
    /// endpoint has a trace already (see [`SourceSpec::trace_to`]).
    pub fn trace_to(&mut self, trace: &crate::trace::ProtocolTrace) {
        if let SinkSpec::Imap(a) = self {
            if a.endpoint.trace.is_none() {
                a.endpoint.trace = Some(trace.clone());
            }
        }
    }

    /// Opens the sink.
    pub async fn open(&self) -> Result<AnySink, AccessError> {
        match self {
            SinkSpec::Imap(a) => Ok(AnySink::Imap(ImapSink::open(a).await?)),
            SinkSpec::Maildir(m) => Ok(AnySink::Maildir(MaildirSink::open(m).await?)),
        }
    }

    /// The same place read as a source (for verification).
    pub fn as_source(&self) -> SourceSpec {
        match self {
            SinkSpec::Imap(a) => SourceSpec::Imap(a.clone()),
            SinkSpec::Maildir(m) => SourceSpec::Maildir(m.clone()),
        }
    }

    /// Who this is, for messages.
    pub fn describe(&self) -> String {
        self.as_source().describe()
    }

    /// Which mailbox this is, however the server was reached (see [`SourceSpec::identity`]).
    pub fn identity(&self) -> String {
        self.as_source().identity()
    }
}

/// Any kind of sink, for the engine to hold.
// One per connection: the size difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum AnySink {
    /// IMAP.
    Imap(ImapSink),
    /// Maildir.
    Maildir(MaildirSink),
}

impl AnySink {
    /// Reopens the same place as a source, for reading back.
    pub async fn reopen_as_source(spec: &SinkSpec) -> Result<AnySource, AccessError> {
        spec.as_source().open().await
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySink::Imap($s) => $e,
            AnySink::Maildir($s) => $e,
        }
    };
}

impl MigrationSink for AnySink {
    fn describe(&self) -> String {
        dispatch!(self, s => s.describe())
    }
    fn take_alerts(&mut self) -> Vec<String> {
        dispatch!(self, s => s.take_alerts())
    }
    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        dispatch!(self, s => s.list_folders().await)
    }
    async fn create_folder(
        &mut self,
        raw: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<(), AccessError> {
        dispatch!(self, s => s.create_folder(raw, special_use).await)
    }
    async fn open_folder(&mut self, raw: &str) -> Result<OpenedTarget, AccessError> {
        dispatch!(self, s => s.open_folder(raw).await)
    }
    async fn append(
        &mut self,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<AppendTicket, AccessError> {
        dispatch!(self, s => s.append(flags, date, body, observe).await)
    }
    async fn finish_append(&mut self, ticket: AppendTicket) -> Result<Option<Uid>, AccessError> {
        dispatch!(self, s => s.finish_append(ticket).await)
    }
    async fn uids_from(&mut self, floor: u32) -> Result<Vec<Uid>, AccessError> {
        dispatch!(self, s => s.uids_from(floor).await)
    }
    async fn sizes(&mut self) -> Result<Option<Vec<(Uid, u64)>>, AccessError> {
        dispatch!(self, s => s.sizes().await)
    }
    async fn fingerprints(
        &mut self,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, ContentPrint>, AccessError> {
        dispatch!(self, s => s.fingerprints(uids).await)
    }
    async fn store_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError> {
        dispatch!(self, s => s.store_flags(uids, flags).await)
    }
    async fn read_back(
        &mut self,
        uids: &[Uid],
        floor: u32,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError> {
        dispatch!(self, s => s.read_back(uids, floor).await)
    }
    async fn add_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError> {
        dispatch!(self, s => s.add_flags(uids, flags).await)
    }
    fn set_grouping(&mut self, on: bool) {
        dispatch!(self, s => s.set_grouping(on))
    }
    fn open_validity(&self) -> Option<UidValidity> {
        dispatch!(self, s => s.open_validity())
    }
    async fn close(self) {
        dispatch!(self, s => s.close().await)
    }
}
