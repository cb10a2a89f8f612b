//! What can go wrong in a batch, in words an admin can act on.

use std::path::PathBuf;

use super::import::{CsvError, RowError};
use super::status::NotAllowed;
use super::task::TaskError;
use crate::state::StateError;

/// An error of the batch layer. Account failures during a migration are not errors: they are
/// statuses ([`super::Status::Failed`] with a category).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The store file could not be opened or set up. Check the path and its permissions;
    /// nothing was changed.
    #[error("cannot open the batch store {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// The sync-state part of the file could not be opened.
    #[error(transparent)]
    State(#[from] StateError),
    /// The file was written by a newer imapmig. Use that version; the file was left alone.
    #[error(
        "the batch store {} has batch schema version {found}, this imapmig supports up to \
         {supported}: use a newer imapmig",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// A store operation failed in SQLite (disk full, locked longer than the busy timeout). Its
    /// transaction was rolled back: retrying is safe.
    #[error("batch store {}: {what} failed for task {task:?}{}: {source}", path.display(), account.as_ref().map(|a| format!(", account {a}")).unwrap_or_default())]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The task.
        task: String,
        /// The account, when one was concerned.
        account: Option<String>,
        /// What SQLite said.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// A stored row cannot be read back (edited outside imapmig, or damaged).
    #[error("batch store {}: task {task:?}{}: corrupt row: {detail}", path.display(), account.as_ref().map(|a| format!(", account {a}")).unwrap_or_default())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The task.
        task: String,
        /// The account, when one was concerned.
        account: Option<String>,
        /// What is wrong.
        detail: String,
    },
    /// No task of that name. `imapmig task create` makes one.
    #[error("batch store {}: no task {task:?}", path.display())]
    UnknownTask {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        task: String,
    },
    /// A task of that name exists already. Edit it, or choose another name.
    #[error("batch store {}: task {task:?} exists already", path.display())]
    TaskExists {
        /// The file.
        path: PathBuf,
        /// The name.
        task: String,
    },
    /// No account matches. Accounts are named by target address, source login, or `#id`.
    #[error("task {task:?}: no account {name:?}")]
    UnknownAccount {
        /// The task.
        task: String,
        /// The name given.
        name: String,
    },
    /// Another scheduler runs this task. Stop it first (or, if it is dead on another machine,
    /// take over once its lease has expired).
    #[error("task {task:?} is being run by {owner} (last seen {seconds_ago} s ago)")]
    Locked {
        /// The task.
        task: String,
        /// `pid N on HOST`.
        owner: String,
        /// How long ago it last said it was alive.
        seconds_ago: i64,
    },
    /// The settings cannot work.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The CSV file cannot be read.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The CSV file has bad rows; nothing was imported. Fix them, or import the good rows
    /// with `skip_bad_rows`.
    #[error("{}: {} bad row(s), nothing imported:\n{}", file.display(), errors.len(), errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    InvalidRows {
        /// The file.
        file: PathBuf,
        /// Every bad row.
        errors: Vec<RowError>,
    },
    /// The account cannot do what was asked in its status.
    #[error("task {task:?}, account {account}: {source}")]
    NotAllowed {
        /// The task.
        task: String,
        /// The account.
        account: String,
        /// Why.
        #[source]
        source: NotAllowed,
    },
    /// The store keeps its passwords sealed with a key, and none was given. Give the key the
    /// store was sealed with.
    #[error(
        "the batch store {} keeps its passwords encrypted: give its key in $IMAPMIG_STATE_KEY \
         or with --state-key-file",
        path.display()
    )]
    StateKeyNeeded {
        /// The file.
        path: PathBuf,
    },
    /// The key given is not the one the store's passwords are sealed with.
    #[error(
        "the key given ($IMAPMIG_STATE_KEY or --state-key-file) does not open the batch store \
         {}: its passwords were encrypted with another key",
        path.display()
    )]
    WrongStateKey {
        /// The file.
        path: PathBuf,
    },
    /// A self-service invitation cannot be accepted. Nothing was changed; the admin can send
    /// a new one.
    #[error("{refusal}")]
    Invitation {
        /// Why.
        refusal: InvitationRefusal,
    },
    /// The account has no password or token to log in with (its own, or the task's admin or
    /// master password). Supply it first.
    #[error("task {task:?}, account {account}: the password or token to log in with is missing")]
    MissingCredentials {
        /// The task.
        task: String,
        /// The account.
        account: String,
    },
    /// An internal task of the scheduler failed (a bug). The store is consistent; run again.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a self-service invitation is refused. The words are meant for the mailbox's user, who
/// followed a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvitationRefusal {
    /// No invitation has this token: mistyped, or withdrawn by a newer one.
    #[error("this invitation is not valid: it may have been replaced by a newer one")]
    Unknown,
    /// Its time ran out.
    #[error("this invitation has expired: ask for a new one")]
    Expired,
    /// It was accepted already; an invitation works once.
    #[error("this invitation has already been used")]
    Used,
}

/// What kind of batch failure an error is: what each face maps to its own code (the CLI's
/// exit status, the Python exception, the C status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchErrorKind {
    /// The batch store or the sync state cannot be opened, read or written.
    Store,
    /// The task's settings cannot work.
    Settings,
    /// A CSV file of accounts is unreadable or has bad rows.
    Csv,
    /// No such task.
    UnknownTask,
    /// No such account in the task.
    UnknownAccount,
    /// The task exists already.
    TaskExists,
    /// Another process runs the task.
    Locked,
    /// The account's status does not allow what was asked, it lacks the credentials for it,
    /// or an invitation is unknown, expired or used.
    NotAllowed,
    /// The store's passwords need a key that was not given, or was given wrong.
    StateKey,
    /// A bug.
    Internal,
}

impl BatchError {
    /// What kind of failure this is.
    pub fn kind(&self) -> BatchErrorKind {
        match self {
            BatchError::Open { .. }
            | BatchError::State(_)
            | BatchError::SchemaTooNew { .. }
            | BatchError::Sqlite { .. }
            | BatchError::Corrupt { .. } => BatchErrorKind::Store,
            BatchError::Task(_) => BatchErrorKind::Settings,
            BatchError::Csv(_) | BatchError::InvalidRows { .. } => BatchErrorKind::Csv,
            BatchError::UnknownTask { .. } => BatchErrorKind::UnknownTask,
            BatchError::UnknownAccount { .. } => BatchErrorKind::UnknownAccount,
            BatchError::TaskExists { .. } => BatchErrorKind::TaskExists,
            BatchError::Locked { .. } => BatchErrorKind::Locked,
            BatchError::NotAllowed { .. }
            | BatchError::Invitation { .. }
            | BatchError::MissingCredentials { .. } => BatchErrorKind::NotAllowed,
            BatchError::StateKeyNeeded { .. } | BatchError::WrongStateKey { .. } => {
                BatchErrorKind::StateKey
            }
            BatchError::Internal(_) => BatchErrorKind::Internal,
        }
    }
}
