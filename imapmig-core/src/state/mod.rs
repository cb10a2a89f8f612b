//! Layer 7, the sync state: what has been copied from each (account, source folder), where it
//! landed, and what is in flight.
//!
//! This module owns the [`StateStore`] trait, the records it keeps and its errors; [`SqliteStore`]
//! is the embedded implementation. It never talks to a server and never decides anything: the
//! engine decides, the store remembers, atomically and durably.
//!
//! # The crash-safety protocol this store makes possible
//!
//! Per account and source folder:
//!
//! 1. Before a batch is appended to the destination, the engine records it as **pending**
//!    ([`StateStore::add_pending`]): each source UID with the destination folder's UIDNEXT at that
//!    moment, its *floor*. One transaction, durable when the call returns.
//! 2. When the destination confirms the append, the engine records the messages as **copied**
//!    and removes their pending rows in one transaction ([`StateStore::commit_copied`]).
//! 3. After a crash, each pending row is resolved by searching the destination for UIDs at or
//!    above its floor with a matching content fingerprint; then it is committed as copied or
//!    dropped ([`StateStore::drop_pending`]).
//! 4. When a UIDVALIDITY changes, the engine re-matches by fingerprint and replaces the UIDs in one
//!    transaction ([`StateStore::remap_source`], [`StateStore::remap_dest`]).
//! 5. Flag passes record the flags as synced and the folder's HIGHESTMODSEQ
//!    ([`StateStore::update_flags`]).
//!
//! The store keeps one invariant whatever the sequence of calls: a source UID is never both
//! pending and copied in the same folder. [`StateStore::add_pending`] refuses a UID that is
//! already copied, and [`StateStore::commit_copied`] removes the pending row it replaces.
//!
//! A write method either applies all of its batch or none of it. Account and folder names are
//! arbitrary Unicode strings and are stored as given.

use std::fmt;
use std::path::PathBuf;

use crate::model::{Flags, Uid, UidValidity};

mod sqlite;

pub use sqlite::{Durability, SqliteStore, BUSY_TIMEOUT};

#[cfg(test)]
mod tests;

/// What the store knows of one source folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderRecord {
    /// The source folder's UIDVALIDITY the copied and pending UIDs belong to.
    pub source_uidvalidity: UidValidity,
    /// The destination folder's name (decoded to Unicode) this folder is copied into.
    pub dest_folder: String,
    /// The destination folder's UIDVALIDITY the destination UIDs belong to, once known.
    pub dest_uidvalidity: Option<UidValidity>,
    /// The source folder's HIGHESTMODSEQ after the last complete flag pass (CONDSTORE only).
    pub highest_modseq: Option<u64>,
    /// Which messages that pass selected (date range, size limit), as the engine writes it:
    /// `highest_modseq` vouches only for passes that select the same, so a run with a wider
    /// range or a larger limit reads the folder again instead of skipping it as unchanged.
    pub selection: Option<String>,
    /// When the record last changed, in seconds since the Unix epoch.
    pub updated_at: i64,
}

/// One message copied to the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedRecord {
    /// Its UID in the source folder.
    pub src_uid: Uid,
    /// Its UID in the destination folder, from APPENDUID; `None` where the destination does not
    /// offer UIDPLUS.
    pub dst_uid: Option<Uid>,
    /// The SHA-256 content fingerprint that re-matches it after a crash or a UIDVALIDITY change.
    pub fingerprint: [u8; 32],
    /// The flags as last synced to the destination.
    pub flags: Flags,
    /// Its size in bytes, as appended.
    pub size: u64,
}

/// One message whose append may or may not have reached the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingRecord {
    /// Its UID in the source folder.
    pub src_uid: Uid,
    /// The destination folder's UIDNEXT before the append: if the message landed, its
    /// destination UID is at least this.
    pub dst_floor: u32,
}

/// Everything that can go wrong in the state store.
///
/// Every variant names the state file and, where one is concerned, the account and folder, so
/// that the message alone says where to look.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file could not be opened or set up (missing directory, no permission, not a
    /// SQLite database, locked for longer than the busy timeout). Check the path and its
    /// permissions; nothing was changed.
    #[error("cannot open the state file {}: {source}", path.display())]
    Open {
        /// The state file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The file is a SQLite database, but not an imapmig state file. Point the tool at another
    /// path; the file was left untouched.
    #[error("{} is not an imapmig state file: {detail}", path.display())]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        detail: String,
    },
    /// The state file was written by a newer imapmig whose schema this version does not know.
    /// Use that newer version; the file was left untouched.
    #[error(
        "the state file {} has schema version {found}, this imapmig supports up to \
         {supported}: use a newer imapmig",
        path.display()
    )]
    SchemaTooNew {
        /// The state file.
        path: PathBuf,
        /// The schema version in the file.
        found: i64,
        /// The newest schema version this build knows.
        supported: i64,
    },
    /// An operation failed in SQLite (disk full, I/O error, the file locked by another process
    /// for longer than the busy timeout). The operation's transaction was rolled back, so the
    /// state is as it was before the call; retrying is safe.
    #[error(
        "state file {}: {what} failed for {}: {source}",
        file.display(),
        Scope(account, folder.as_deref())
    )]
    Sqlite {
        /// What the store was doing, e.g. `"commit copied"`.
        what: &'static str,
        /// The state file (`:memory:` for an in-memory store).
        file: PathBuf,
        /// The account concerned.
        account: String,
        /// The source folder concerned; `None` for an operation on the whole account.
        folder: Option<String>,
        /// What SQLite said (boxed: it is large, and errors are the cold path).
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// A stored row cannot be read back (a fingerprint of the wrong length, a UID out of range,
    /// flags that are not text). The file was damaged or edited outside imapmig. Forget the
    /// folder ([`StateStore::forget_folder`]) to have it verified and copied again.
    #[error(
        "state file {}: corrupt row for {}{}: {detail}",
        file.display(),
        Scope(account, Some(folder)),
        uid.map(|u| format!(", UID {u}")).unwrap_or_default()
    )]
    Corrupt {
        /// The state file.
        file: PathBuf,
        /// The account concerned.
        account: String,
        /// The source folder concerned.
        folder: String,
        /// The source UID of the damaged row, where the row has one.
        uid: Option<Uid>,
        /// What is wrong with it.
        detail: String,
    },
    /// An operation needs the folder's record (it changes its UIDVALIDITY or HIGHESTMODSEQ), but
    /// none was stored: the engine must [`StateStore::put_folder`] first. Nothing was changed.
    #[error("state file {}: no folder record for {}", file.display(), Scope(account, Some(folder)))]
    UnknownFolder {
        /// The state file.
        file: PathBuf,
        /// The account concerned.
        account: String,
        /// The source folder concerned.
        folder: String,
    },
    /// [`StateStore::add_pending`] was given a UID that is already recorded as copied: appending
    /// it again would duplicate the message. Nothing of the batch was recorded.
    #[error(
        "state file {}: UID {uid} of {} is already copied and cannot become pending again",
        file.display(),
        Scope(account, Some(folder))
    )]
    AlreadyCopied {
        /// The state file.
        file: PathBuf,
        /// The account concerned.
        account: String,
        /// The source folder concerned.
        folder: String,
        /// The source UID.
        uid: Uid,
    },
    /// The caller passed something the store must not record: a UID map given to
    /// [`StateStore::remap_source`] or [`StateStore::remap_dest`] that maps one UID twice or two
    /// UIDs to the same one (which would merge distinct messages), or a size or MODSEQ above
    /// 2^63 - 1, which neither IMAP nor SQLite can hold. It is a bug in the caller; nothing was
    /// changed.
    #[error(
        "state file {}: invalid input for {}: {detail}",
        file.display(),
        Scope(account, Some(folder))
    )]
    InvalidInput {
        /// The state file.
        file: PathBuf,
        /// The account concerned.
        account: String,
        /// The source folder concerned.
        folder: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// Renders `account "a", folder "b"` with the names quoted, as they may hold spaces.
struct Scope<'a>(&'a str, Option<&'a str>);

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "account {:?}", self.0)?;
        if let Some(folder) = self.1 {
            write!(f, ", folder {folder:?}")?;
        }
        Ok(())
    }
}

/// Where the sync state lives: the engine's memory across runs and crashes.
///
/// Implementations are shared by the engine's folder tasks, hence `Send + Sync`. Every write
/// method is one transaction: when it returns `Ok`, all of its batch is durable (see
/// [`Durability`] for what "durable" covers); when it returns `Err`, none of it was applied.
/// Folders are keyed by (account, source folder name); the store attaches no meaning to either.
pub trait StateStore: Send + Sync {
    /// The folder's record, if one was stored.
    fn folder(&self, account: &str, folder: &str) -> Result<Option<FolderRecord>, StateError>;

    /// Stores the folder's record, replacing any earlier one. Copied and pending rows are kept.
    fn put_folder(&self, account: &str, folder: &str, rec: &FolderRecord)
        -> Result<(), StateError>;

    /// Every folder record of the account, ordered by source folder name.
    fn folders(&self, account: &str) -> Result<Vec<(String, FolderRecord)>, StateError>;

    /// Every copied message of the folder, ordered by source UID.
    fn copied(&self, account: &str, folder: &str) -> Result<Vec<CopiedRecord>, StateError>;

    /// How many messages of the folder are recorded as copied.
    fn copied_count(&self, account: &str, folder: &str) -> Result<u64, StateError>;

    /// Records a batch as pending, before it is appended to the destination.
    ///
    /// A UID that is already pending keeps the lower of its two floors, so that a search from the
    /// floor covers every attempt that may have landed. A UID already copied fails the whole
    /// batch with [`StateError::AlreadyCopied`].
    fn add_pending(
        &self,
        account: &str,
        folder: &str,
        batch: &[PendingRecord],
    ) -> Result<(), StateError>;

    /// Every pending message of the folder, ordered by source UID.
    fn pending(&self, account: &str, folder: &str) -> Result<Vec<PendingRecord>, StateError>;

    /// Records a batch as copied (replacing earlier copied rows of the same UIDs) and removes
    /// their pending rows, in one transaction. Within a batch, the last record of a UID wins.
    fn commit_copied(
        &self,
        account: &str,
        folder: &str,
        batch: &[CopiedRecord],
    ) -> Result<(), StateError>;

    /// Removes pending rows, after the engine found that their append never landed. UIDs that
    /// are not pending are ignored.
    fn drop_pending(&self, account: &str, folder: &str, uids: &[Uid]) -> Result<(), StateError>;

    /// Records the flags of copied messages as synced and, when given, the folder's
    /// HIGHESTMODSEQ, in one transaction. UIDs that are not copied are ignored. Setting the
    /// HIGHESTMODSEQ of a folder without a record fails with [`StateError::UnknownFolder`].
    fn update_flags(
        &self,
        account: &str,
        folder: &str,
        changes: &[(Uid, Flags)],
        highest_modseq: Option<u64>,
    ) -> Result<(), StateError>;

    /// After the source folder's UIDVALIDITY changed: maps old source UIDs to new ones.
    ///
    /// In one transaction: copied and pending rows whose UID is a key of `map` take the new
    /// UID; every other copied and pending row of the folder is deleted (those messages will be
    /// copied again, so resolve pending rows first); the folder's `source_uidvalidity` becomes
    /// `new_validity` and its `highest_modseq` is cleared, as MODSEQs of the old folder
    /// instance mean nothing in the new one. A map with a repeated old or new UID fails with
    /// [`StateError::InvalidInput`]; a folder without a record with [`StateError::UnknownFolder`].
    fn remap_source(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError>;

    /// After the destination folder's UIDVALIDITY changed: maps source UIDs to their new
    /// destination UIDs.
    ///
    /// In one transaction: copied rows whose source UID is a key of `map` take the new
    /// destination UID; every other copied row of the folder is deleted (its message vanished and
    /// will be copied again); the folder's `dest_uidvalidity` becomes `new_validity`. Pending rows
    /// are kept but their floor drops to 1, because their UIDNEXT belonged to the old UID space:
    /// resolving them must search the whole folder. A map with a repeated source or destination
    /// UID fails with [`StateError::InvalidInput`]; a folder without a record with
    /// [`StateError::UnknownFolder`].
    fn remap_dest(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError>;

    /// Forgets the folder: its record, copied and pending rows.
    fn forget_folder(&self, account: &str, folder: &str) -> Result<(), StateError>;

    /// Forgets every folder of the account.
    fn forget_account(&self, account: &str) -> Result<(), StateError>;
}
