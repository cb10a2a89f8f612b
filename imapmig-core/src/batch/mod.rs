//! Layer 9, batch migrations: one task, thousands of accounts, running for weeks until the MX
//! switch.
//!
//! This module owns everything between "an admin has a CSV of accounts" and "the engine
//! migrates one account": the task and its settings ([`task`]), reading and validating CSV
//! files ([`import`]), the source login forms ([`login`]), the per-account status machine
//! ([`status`]), the store that keeps all of it beside the sync state ([`BatchStore`]), the
//! scheduler that runs accounts within the limits ([`Scheduler`], with [`slots`] deciding who
//! may start and how many connections each gets, `verdict` judging how each pass ended and
//! `live` counting its progress), reports ([`report`]) and the audit log ([`audit`]).
//!
//! It never copies a message itself and never talks to a server except through
//! [`crate::engine::migrate`]; it never decides what is on the destination: the engine's sync
//! state does. That is what makes restarts safe: every pass of an account uses the same
//! sync-state key ([`account_key`]), so a pass cut short by a crash, a pause or a shutdown is
//! simply run again and copies only what is missing.
//!
//! # A task's life
//!
//! 1. [`BatchStore::create_task`] with [`TaskSettings`] (servers, folders, messages, schedule,
//!    limits, retries); [`BatchStore::edit_task`] later, with an [`EditScope`] for server
//!    changes.
//! 2. [`BatchStore::import_csv`]: every row is validated and every bad row named with its line
//!    before anything is imported.
//! 3. [`Scheduler::run`]: admits accounts, starts them fairly within the limits, retries
//!    transient failures with backoff and jitter, cuts the connections of a host that throttles,
//!    and runs incremental passes of synced accounts every `interval` until their window closes.
//! 4. Meanwhile, from any process: [`BatchStore::accounts`] for reports ([`report::to_csv`],
//!    [`report::to_json`]), [`BatchStore::audit`] for the log, [`BatchStore::pause`],
//!    [`BatchStore::resume`], [`BatchStore::stop`] and [`BatchStore::supply_credentials`].
//!
//! # Secrets
//!
//! Passwords and tokens are [`crate::secret::Secret`]s everywhere in memory. They are stored in
//! the store file (made private to its owner) because a task needs them for weeks of
//! incremental passes, encrypted when the store is opened with a [`seal::StateKey`]; see
//! [`BatchStore`]. They never reach a report, an audit event, an error or a log line.

pub mod audit;
mod backoff;
mod error;
pub mod import;
mod live;
pub mod login;
pub mod report;
pub mod seal;
pub mod slots;
pub mod status;
pub mod task;

mod scheduler;
mod store;
mod verdict;

pub use error::{BatchError, BatchErrorKind, InvitationRefusal};
pub use live::{LiveSnapshot, RunningAccount};
pub use report::{AccountReport, TaskSummary};
pub use scheduler::{account_key, RunSummary, Scheduler, SchedulerObserver, SchedulerOptions};
pub use status::{FailureCategory, Status};
pub use store::{
    AccountPage, AccountQuery, AccountSort, BatchStore, ControlReport, ImportOptions, ImportReport,
    Invitation, Refusal, SchedulerHolder, Selection,
};
pub use task::{EditScope, Task, TaskSettings};
