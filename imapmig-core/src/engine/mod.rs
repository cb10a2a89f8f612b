//! The migration engine: one account's mailbox, from a source server to a destination server,
//! each message exactly once.
//!
//! [`migrate`] plans the folders ([`crate::mapping`]), then copies folder by folder over a
//! bounded number of connection pairs working in parallel. Within a folder, bodies are fetched
//! pipelined and streamed straight into APPENDs (no message is held whole in memory), several
//! in flight. Flags of messages copied on earlier runs are brought up to date.
//!
//! # Exactly once, even after `kill -9`
//!
//! Before a batch of messages is appended, their source UIDs are recorded as *pending* in the
//! state store together with the destination folder's UIDNEXT (the "floor"). When the
//! destination confirms the appends, the batch is recorded as *copied* (with the destination
//! UIDs from APPENDUID and a content fingerprint) in the same transaction that clears the
//! pending rows. A crash between the two leaves pending rows; the next run looks at the
//! destination messages at or above the floor, fingerprints them, and matches them one-to-one
//! against the pending source messages: matched ones are recorded as copied, the others are
//! copied again. Nothing is ever written into a message to recognise it.
//!
//! A UIDVALIDITY change on either side is detected and resolved the same way, by fingerprint.

#[cfg(test)]
mod classify_tests;
mod copy;
pub mod events;
mod inspect;
mod line_endings;
mod readback;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::imap::ImapError;
use crate::mapping::{self, Destination, EarlierTargets, FolderPlan, PlanError, PlanOptions};
use crate::sink::{AnySink, MigrationSink, SinkSpec};
use crate::source::{AccessError, AnySource, MigrationSource, SkippedEntry, SourceSpec};
use crate::state::{StateError, StateStore};

pub use crate::failure::{Classified, ErrorKind, FailureCategory, Side};
pub use crate::filter::{DateField, MessageFilter};
pub use crate::fingerprint;
pub use crate::imap::{uid_set, Account};
pub use inspect::{
    account_key_in, analyze, check, check_pop3, default_account_key, Analysis, CheckResult,
    FolderAnalysis,
};
pub use verify::{verify, verify_between, FolderVerification, MessageDifference, Verification};

/// How a migration runs.
#[derive(Clone, Debug)]
pub struct MigrationOptions {
    /// The key under which the sync state is kept (usually the source address).
    pub account_key: String,
    /// Where folders land.
    pub plan: PlanOptions,
    /// Which messages go.
    pub filter: MessageFilter,
    /// Folders copied in parallel, each over its own source and destination connection.
    pub connections: usize,
    /// Messages per batch: fetched pipelined, appended without waiting, committed to the state
    /// store in one transaction.
    pub batch: usize,
    /// Only plan and count; copy nothing.
    pub dry_run: bool,
    /// How often a folder is retried after a transient failure (dropped connection,
    /// throttling) before the migration gives up on it.
    pub retries: u32,
    /// The first wait before a retry; doubled each time, capped at a minute.
    pub backoff: Duration,
    /// Where the protocol lines of both sides' connections are written (secrets redacted,
    /// bodies elided; see [`crate::trace`]); off by default. A server whose endpoint already
    /// has a trace keeps it.
    pub trace: Option<crate::trace::ProtocolTrace>,
    /// Keep a destination's refusal of a message with bare newlines (LF without CR) instead
    /// of sending it again with CRLF line endings (the default, reported as "line endings
    /// normalised").
    pub strict_line_endings: bool,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            account_key: String::new(),
            plan: PlanOptions::default(),
            filter: MessageFilter::default(),
            connections: 2,
            batch: 64,
            dry_run: false,
            retries: 5,
            backoff: Duration::from_millis(500),
            trace: None,
            strict_line_endings: false,
        }
    }
}

/// A message the migration did not copy, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedMessage {
    /// The source UID.
    pub uid: u32,
    /// Its size in bytes.
    pub size: u64,
    /// Why: the server's words for a refusal, or the limit that excluded it.
    pub reason: String,
    /// What kind of refusal it was (a full destination is [`ErrorKind::Quota`]); `None` for a
    /// message a limit excluded. Not in JSON.
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
}

/// What happened to one folder.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FolderReport {
    /// The source folder (decoded).
    pub source: String,
    /// The destination folder (decoded).
    pub target: String,
    /// Messages in the source folder that the filter selected.
    pub found: u64,
    /// Messages copied by this run.
    pub copied: u64,
    /// Messages already on the destination from an earlier run (or matched after a crash).
    pub already_there: u64,
    /// Messages outside the date range.
    pub skipped_by_filter: u64,
    /// Messages over the size limit (ours or the destination's APPENDLIMIT).
    pub too_large: Vec<SkippedMessage>,
    /// Messages the destination refused, with its words.
    pub refused: Vec<SkippedMessage>,
    /// Messages that disappeared from the source while being copied.
    pub vanished: u64,
    /// Messages copied earlier whose flags were brought up to date.
    pub flags_updated: u64,
    /// Keywords the destination folder does not accept, dropped from the copies.
    pub dropped_keywords: Vec<String>,
    /// Bytes copied.
    pub bytes: u64,
    /// Wall-clock seconds spent on the folder.
    pub seconds: f64,
    /// Whether the folder was skipped because nothing changed since the last run (CONDSTORE).
    pub unchanged: bool,
    /// Messages whose metadata this pass read from the source: all of them, or with
    /// CONDSTORE after a complete pass only those added or changed since.
    pub listed: u64,
    /// Whether this pass looked at every message of the folder (false when the folder was
    /// unchanged or only its changes were read). Only then does a message missing from
    /// `too_large` and `refused` mean that an earlier refusal is over.
    pub listed_all: bool,
    /// Anything else worth knowing (UIDVALIDITY changes, recovered pending messages...).
    pub notes: Vec<String>,
    /// What a server sent that was not asked for, could not be read, or was changed: never
    /// applied, never dropped without a word.
    pub anomalies: Vec<Anomaly>,
    /// Entries of a local store (Maildir, mbox) in this folder that were not imported, with
    /// the path and why.
    pub not_imported: Vec<SkippedEntry>,
    /// Where the folder plan would now put the folder, when that is not `target`: earlier
    /// runs copied the folder into `target`, so it stays there (a run with
    /// [`PlanOptions::remap`] moves it). Absent from JSON when the plan agrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned_target: Option<String>,
    /// Where earlier runs had copied the folder, when this run moved it to `target` as
    /// [`PlanOptions::remap`] asked; those copies were left there. Absent from JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remapped_from: Option<String>,
    /// Whether the destination folder earlier runs copied into was gone (deleted or renamed
    /// on the destination), so that it was created again and the folder copied afresh.
    /// Absent from JSON when false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recreated: bool,
    /// What the destination changed of what it was given, counted by kind; each change that
    /// loses something (flags lost, dates not kept, headers altered) is also an anomaly naming
    /// the source UID. Absent from JSON when nothing was changed.
    #[serde(skip_serializing_if = "Alterations::is_empty")]
    pub altered: Alterations,
}

/// What a destination changed of the messages it was given, counted per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Alterations {
    /// Messages refused for bare newlines and sent again with CRLF line endings (the
    /// content is otherwise the source's: no anomaly, exit status unchanged).
    pub line_endings_normalised: u64,
    /// Copies whose flags the destination did not store as given, set right with STORE.
    pub flags_repaired: u64,
    /// Copies whose flags are still not the source's after STORE (an anomaly each).
    pub flags_lost: u64,
    /// Copies whose INTERNALDATE is not the one given: it cannot be set afterwards (an
    /// anomaly each).
    pub dates_not_kept: u64,
    /// Copies whose header the destination rewrote (8-bit bytes replaced): an anomaly each.
    pub headers_altered: u64,
    /// Copies whose content the destination changed otherwise (found by their size, then
    /// their content; line endings alone do not count): an anomaly each.
    pub content_altered: u64,
}

impl Alterations {
    /// Whether nothing was changed.
    pub fn is_empty(&self) -> bool {
        *self == Alterations::default()
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Alterations) {
        self.line_endings_normalised += other.line_endings_normalised;
        self.flags_repaired += other.flags_repaired;
        self.flags_lost += other.flags_lost;
        self.dates_not_kept += other.dates_not_kept;
        self.headers_altered += other.headers_altered;
        self.content_altered += other.content_altered;
    }
}

/// Something a server (or local store) sent that the migration did not ask for, could not
/// read, or had to change: a FETCH for a UID that was not asked for, `BODY[] NIL`, an
/// unreadable INTERNALDATE or UID. Reported with the folder, the UID where there is one, and
/// what the server sent; a report with anomalies is not complete (exit status 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// The source folder it concerns, when it concerns one.
    pub folder: Option<String>,
    /// The UID it concerns, when there is one.
    pub uid: Option<u32>,
    /// Which side sent it.
    pub side: Side,
    /// What was sent, and what was done about it.
    pub detail: String,
}

/// A planned folder that was not copied, and why. Serialised as a `[folder, message]` pair,
/// as the report always has been; the typed fields decide exit statuses, the batch's verdict,
/// retries and connection limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderFailure {
    /// The source folder (decoded).
    pub folder: String,
    /// Which side failed, when one did.
    pub side: Option<Side>,
    /// What kind of failure it is.
    pub kind: ErrorKind,
    /// The category an account that fails with it is filed under.
    pub category: FailureCategory,
    /// Whether a later run may succeed (the server was unreachable or throttling).
    pub transient: bool,
    /// Whether the server throttled us (its host gets fewer connections).
    pub throttled: bool,
    /// What happened, in words.
    pub message: String,
}

impl FolderFailure {
    /// The failure of a folder for this engine error.
    pub fn of(folder: &str, e: &EngineError) -> FolderFailure {
        let c = e.classify();
        FolderFailure {
            folder: folder.to_string(),
            side: c.side,
            kind: c.kind,
            category: c.category,
            transient: c.transient,
            throttled: c.throttled,
            message: e.to_string(),
        }
    }
}

impl Serialize for FolderFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.folder, &self.message).serialize(s)
    }
}

/// What a migration did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MigrationReport {
    /// One entry per planned folder, in plan order.
    pub folders: Vec<FolderReport>,
    /// The folder plan, rendered (what went where and why).
    pub plan: String,
    /// Notes from planning (escaped names, excluded virtual folders...).
    pub plan_notes: Vec<String>,
    /// Planned folders that were not copied, with the error: every planned folder is either
    /// in `folders` or here.
    pub failed_folders: Vec<FolderFailure>,
    /// Anomalies outside any one folder (a LIST entry that could not be read...). Those of a
    /// folder are in its [`FolderReport::anomalies`].
    pub anomalies: Vec<Anomaly>,
    /// Entries of a local store found while listing its folders that were not taken as a
    /// folder or message (a file in an mbox directory that is not an mbox...), with the path
    /// and why. Those found inside a folder are in its [`FolderReport::not_imported`].
    pub not_imported: Vec<SkippedEntry>,
    /// Whether this was a dry run (nothing copied).
    pub dry_run: bool,
    /// Totals.
    pub copied: u64,
    /// Total bytes copied.
    pub bytes: u64,
    /// Total wall-clock seconds.
    pub seconds: f64,
    /// The destination, named when it changed messages it was given (see
    /// [`FolderReport::altered`]); absent from JSON otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub altering_destination: Option<String>,
    /// The folders' [`FolderReport::altered`] added up; absent from JSON when empty.
    #[serde(skip_serializing_if = "Alterations::is_empty")]
    pub altered: Alterations,
}

impl MigrationReport {
    /// Whether every selected message is on the destination and nothing odd happened: no
    /// refusals, no oversize skips, no failed folders, no anomalies.
    pub fn is_complete(&self) -> bool {
        self.failed_folders.is_empty()
            && self.anomalies.is_empty()
            && self.not_imported.is_empty()
            && self.folders.iter().all(|f| {
                f.refused.is_empty()
                    && f.too_large.is_empty()
                    && f.anomalies.is_empty()
                    && f.not_imported.is_empty()
            })
    }

    /// The exit status `imapmig migrate` gives this report: 0 when it is complete; when
    /// folders failed, that of their gravest kind (3 a refused login, 4 a server unreachable
    /// or TLS failing after every retry); 1 for anything else left behind (messages refused
    /// or too large, anomalies, local entries not imported, folders failed otherwise).
    pub fn exit_status(&self) -> u8 {
        if self.is_complete() {
            return 0;
        }
        match self.failure_kind() {
            Some(ErrorKind::Authentication) => 3,
            Some(ErrorKind::Connection | ErrorKind::Tls) => 4,
            _ => 1,
        }
    }

    /// What kind of failure the failed folders show, the gravest first: what an exit status is
    /// chosen by when folders failed (`None` when none did).
    pub fn failure_kind(&self) -> Option<ErrorKind> {
        let kinds: Vec<ErrorKind> = self.failed_folders.iter().map(|f| f.kind).collect();
        [
            ErrorKind::Authentication,
            ErrorKind::Connection,
            ErrorKind::Tls,
        ]
        .into_iter()
        .find(|k| kinds.contains(k))
        .or_else(|| kinds.first().copied())
    }
}

/// Something worth telling a user while a migration runs.
// Events are handed out by reference, one per folder at most for the large one: a box would
// change the public type for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// The folder plan is ready.
    Planned {
        /// Folders to copy.
        folders: usize,
    },
    /// A folder is being copied.
    FolderStarted {
        /// Source folder.
        folder: String,
        /// Messages to copy in it.
        to_copy: u64,
        /// Their total size.
        bytes: u64,
    },
    /// One message is on the destination.
    MessageCopied {
        /// Source folder.
        folder: String,
        /// Source UID.
        uid: u32,
        /// Its size.
        bytes: u64,
    },
    /// A message was skipped or refused.
    MessageSkipped {
        /// Source folder.
        folder: String,
        /// Source UID.
        uid: u32,
        /// Why.
        reason: String,
    },
    /// A folder is done.
    FolderDone(FolderReport),
    /// A server refused another connection (connection limit, throttling): the migration goes
    /// on with fewer parallel connections.
    ConnectionsReduced {
        /// Connection pairs still working.
        workers: usize,
        /// What the server said.
        error: String,
        /// The side whose server refused (not in JSON).
        #[serde(skip)]
        side: Side,
    },
    /// A transient failure; the folder is retried after a pause.
    Retrying {
        /// Source folder.
        folder: String,
        /// Which retry this is.
        attempt: u32,
        /// The pause.
        after_ms: u64,
        /// What went wrong.
        error: String,
        /// The side whose server throttled, when this retry is for throttling (not in JSON).
        #[serde(skip)]
        throttled_by: Option<Side>,
    },
}

/// Receives progress events. Called from the engine's tasks: keep it quick.
pub type ProgressSink = Arc<dyn Fn(&ProgressEvent) + Send + Sync>;

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A server (or local store) failed outside any one folder (connecting, logging in,
    /// listing folders).
    #[error("{side}: {source}")]
    Server {
        /// Which side.
        side: Side,
        /// What it said or what broke.
        #[source]
        source: AccessError,
    },
    /// A server (or local store) failed while copying one folder.
    #[error("{side}, folder {folder:?}: {source}")]
    Folder {
        /// Which side.
        side: Side,
        /// The source folder.
        folder: String,
        /// What went wrong.
        #[source]
        source: AccessError,
    },
    /// The folder plan could not be made.
    #[error("folder plan: {0}")]
    Plan(#[from] PlanError),
    /// The sync state could not be read or written. Nothing is lost: re-run when it is fixed.
    #[error("sync state: {0}")]
    State(#[from] StateError),
    /// The migration was cancelled; everything copied so far is recorded, a re-run resumes.
    #[error("cancelled; a re-run resumes where this one stopped")]
    Cancelled,
    /// An internal task failed (a bug): the state is consistent, a re-run resumes.
    #[error("internal error: {0}")]
    Internal(String),
}

impl EngineError {
    /// The IMAP error underneath, if any.
    pub fn imap(&self) -> Option<&ImapError> {
        self.access().and_then(AccessError::imap)
    }

    /// The source or sink error underneath, if any.
    pub fn access(&self) -> Option<&AccessError> {
        match self {
            EngineError::Server { source, .. } | EngineError::Folder { source, .. } => Some(source),
            _ => None,
        }
    }

    /// What kind of failure this is (what exit statuses, exception classes and C status
    /// codes are chosen by).
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Cancelled => ErrorKind::Cancelled,
            EngineError::Plan(_) => ErrorKind::Plan,
            EngineError::State(_) => ErrorKind::State,
            EngineError::Internal(_) => ErrorKind::Internal,
            EngineError::Server { source, .. } | EngineError::Folder { source, .. } => {
                source.kind()
            }
        }
    }

    /// Whether a later retry may succeed (dropped connection, throttling).
    pub fn is_transient(&self) -> bool {
        self.access().is_some_and(AccessError::is_transient)
    }

    /// Files a source's or sink's error under one folder and side (for `map_err`).
    pub(crate) fn in_folder(
        side: Side,
        folder: &str,
    ) -> impl Fn(AccessError) -> EngineError + Copy + '_ {
        move |source| EngineError::Folder {
            side,
            folder: folder.to_string(),
            source,
        }
    }

    /// The side that failed, when one did.
    pub fn side(&self) -> Option<Side> {
        match self {
            EngineError::Server { side, .. } | EngineError::Folder { side, .. } => Some(*side),
            _ => None,
        }
    }

    /// The failure, typed: what the report, the batch's verdict, retries and connection
    /// limits go by.
    pub fn classify(&self) -> Classified {
        match self {
            EngineError::Server { side, source } | EngineError::Folder { side, source, .. } => {
                source.classify(Some(*side))
            }
            EngineError::Plan(_) => {
                Classified::permanent(self.kind(), FailureCategory::Configuration, None)
            }
            _ => Classified::permanent(self.kind(), FailureCategory::Internal, None),
        }
    }
}

/// Opens both sides, lists folders and makes the plan.
pub async fn plan(
    source: &SourceSpec,
    destination: &SinkSpec,
    options: &PlanOptions,
) -> Result<(FolderPlan, AnySource, AnySink), EngineError> {
    let (plan, _, src, dst) =
        plan_counted(source, destination, options, &EarlierTargets::new()).await?;
    Ok((plan, src, dst))
}

/// [`plan`] for a re-run, plus the source folders' message counts where the source told them
/// for free: folders copied before (`earlier`, from the sync state) keep their destination.
pub(crate) async fn plan_counted(
    source: &SourceSpec,
    destination: &SinkSpec,
    options: &PlanOptions,
    earlier: &EarlierTargets,
) -> Result<(FolderPlan, HashMap<String, u32>, AnySource, AnySink), EngineError> {
    let (src, dst) = tokio::join!(source.open(), destination.open());
    let mut src = src.map_err(|source| EngineError::Server {
        side: Side::Source,
        source,
    })?;
    let mut dst = dst.map_err(|source| EngineError::Server {
        side: Side::Destination,
        source,
    })?;
    let (plan, counts) = plan_with(&mut src, &mut dst, options, earlier).await?;
    Ok((plan, counts, src, dst))
}

async fn plan_with(
    src: &mut AnySource,
    dst: &mut AnySink,
    options: &PlanOptions,
    earlier: &EarlierTargets,
) -> Result<(FolderPlan, HashMap<String, u32>), EngineError> {
    let server = |side| move |source| EngineError::Server { side, source };
    let src_list = src.list_folders().await.map_err(server(Side::Source))?;
    let dst_list = dst
        .list_folders()
        .await
        .map_err(server(Side::Destination))?;
    let mut options = options.clone();
    if options.source_prefix.is_none() && !src_list.prefix.is_empty() {
        options.source_prefix = Some(src_list.prefix.clone());
    }
    let dest = Destination {
        folders: dst_list.folders,
        delimiter: dst_list.delimiter.unwrap_or('/'),
        personal_prefix: dst_list.prefix,
        utf8: false,
    };
    Ok((
        mapping::Planner::new(&options)?.plan_after(&src_list.folders, &dest, earlier)?,
        src_list.messages,
    ))
}

/// Migrates one account: plans the folders, copies what is new, brings flags up to date.
///
/// Safe to run again at any time (after a crash, a cancel, or to pick up new mail): only what
/// is not yet on the destination is copied.
pub async fn migrate(
    source: &Account,
    destination: &Account,
    options: &MigrationOptions,
    state: Arc<dyn StateStore>,
    progress: Option<ProgressSink>,
    cancel: CancellationToken,
) -> Result<MigrationReport, EngineError> {
    migrate_between(
        &SourceSpec::Imap(source.clone()),
        &SinkSpec::Imap(destination.clone()),
        options,
        state,
        progress,
        cancel,
    )
    .await
}

/// Like [`migrate`], between any kind of source and sink (IMAP, POP3, Maildir, mbox...).
pub async fn migrate_between(
    source: &SourceSpec,
    destination: &SinkSpec,
    options: &MigrationOptions,
    state: Arc<dyn StateStore>,
    progress: Option<ProgressSink>,
    cancel: CancellationToken,
) -> Result<MigrationReport, EngineError> {
    match &options.trace {
        None => copy::run(source, destination, options, state, progress, cancel).await,
        Some(trace) => {
            let mut source = source.clone();
            let mut destination = destination.clone();
            source.trace_to(&trace.for_side("source"));
            destination.trace_to(&trace.for_side("destination"));
            copy::run(&source, &destination, options, state, progress, cancel).await
        }
    }
}
