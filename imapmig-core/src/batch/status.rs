//! The per-account status machine. (Failures are named where they happen: [`crate::failure`].)
//!
//! ```text
//!             import                      credentials
//!  (no secret) ──────► waiting_for_credentials ─────────┐
//!                                                       ▼
//!  not_started ──(scheduler)──► scheduled ──start──► running ──pass done──► synced ─┐
//!                                  ▲   ▲               │ │ │                  ▲    │ start
//!                   transient,     │   └───────────────┘ │ └──window closed──►stopped
//!                   retries left ──┘     interrupted     │                    │    │
//!                                                        └─permanent / no retries left──► failed
//!  any state but running ──pause──► paused ──resume──► (scheduled | synced | waiting)
//! ```
//!
//! A pause or stop of a *running* account is a request: the pass is cancelled at the next
//! message boundary, and the account takes the status when the pass has ended. This module
//! only decides; the batch store (`batch::store`) applies the decisions in transactions.

use serde::{Deserialize, Serialize};

pub use crate::failure::{Classified, FailureCategory};

/// Where an account stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Imported; the scheduler has not looked at it yet.
    NotStarted,
    /// Waiting for a free slot, its start time or the end of a retry pause.
    Scheduled,
    /// No password or token yet: it starts when one is supplied.
    WaitingForCredentials,
    /// A pass is copying mail now.
    Running,
    /// Paused by the admin: nothing runs until it is resumed.
    Paused,
    /// The first complete pass is done; incremental passes go on until the window closes.
    Synced,
    /// Stopped by a failure that needs someone to act; see its [`FailureCategory`].
    Failed,
    /// No more passes: the incremental window closed, or the admin stopped it.
    Stopped,
}

impl Status {
    /// Every status, in the order of the machine.
    pub const ALL: [Status; 8] = [
        Status::NotStarted,
        Status::Scheduled,
        Status::WaitingForCredentials,
        Status::Running,
        Status::Paused,
        Status::Synced,
        Status::Failed,
        Status::Stopped,
    ];

    /// The name used in the store, exports and the CLI: `not_started`, `synced`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not_started",
            Status::Scheduled => "scheduled",
            Status::WaitingForCredentials => "waiting_for_credentials",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Synced => "synced",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
        }
    }

    /// The status a name stands for.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The status an account takes when its work resumes (after a pause, a stop, a failure or
    /// an interrupted pass): synced if it was ever synced, waiting if it lacks a secret, else
    /// scheduled.
    pub fn resumed(facts: Facts) -> Status {
        if !facts.has_credentials {
            Status::WaitingForCredentials
        } else if facts.synced_before {
            Status::Synced
        } else {
            Status::Scheduled
        }
    }

    /// Whether the scheduler may start a pass of an account in this status (when it is due).
    pub fn runnable(self) -> bool {
        matches!(self, Status::Scheduled | Status::Synced)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about an account that decides where it resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// It has every secret it needs.
    pub has_credentials: bool,
    /// It completed a pass once.
    pub synced_before: bool,
}

/// Something that happens to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The scheduler takes a newly imported account in.
    Admit,
    /// A pass starts.
    Start,
    /// A pass completed; `window_closed` if no further pass is due.
    PassDone {
        /// The incremental window has closed.
        window_closed: bool,
    },
    /// A pass failed transiently and will be retried after a pause.
    Retry,
    /// A pass failed for good.
    Fail(FailureCategory),
    /// A pass was cut short by a shutdown of the scheduler (or its death): it runs again.
    Interrupted,
    /// The admin pauses it.
    Pause,
    /// The admin stops it.
    Stop,
    /// The admin resumes it (from paused, failed or stopped).
    Resume,
    /// New credentials arrived.
    Credentials,
}

/// A transition that does not apply to an account in its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("an account that is {from} cannot {what}")]
pub struct NotAllowed {
    /// The account's status.
    pub from: Status,
    /// What was asked, in words.
    pub what: &'static str,
}

impl Transition {
    fn words(self) -> &'static str {
        match self {
            Transition::Admit => "be admitted",
            Transition::Start => "start a pass",
            Transition::PassDone { .. } => "finish a pass",
            Transition::Retry => "be retried",
            Transition::Fail(_) => "fail",
            Transition::Interrupted => "be interrupted",
            Transition::Pause => "be paused",
            Transition::Stop => "be stopped",
            Transition::Resume => "be resumed",
            Transition::Credentials => "take credentials",
        }
    }
}

/// The status after `t`, or why `t` does not apply. Pause and stop of a running account are
/// not transitions but requests (see the module documentation) and are refused here.
pub fn next(from: Status, t: Transition, facts: Facts) -> Result<Status, NotAllowed> {
    use Status as S;
    use Transition as T;
    let no = Err(NotAllowed {
        from,
        what: t.words(),
    });
    match (from, t) {
        (S::NotStarted, T::Admit) => Ok(Status::resumed(facts)),
        (S::Scheduled | S::Synced, T::Start) => Ok(S::Running),
        (S::Running, T::PassDone { window_closed }) => {
            Ok(if window_closed { S::Stopped } else { S::Synced })
        }
        (S::Running, T::Retry | T::Interrupted) => Ok(Status::resumed(facts)),
        (S::Running, T::Fail(_)) => Ok(S::Failed),
        (S::Running, T::Pause | T::Stop) => no,
        (S::Paused, T::Pause) | (S::Stopped, T::Stop) => Ok(from),
        (_, T::Pause) => Ok(S::Paused),
        (_, T::Stop) => Ok(S::Stopped),
        (S::Paused | S::Failed | S::Stopped, T::Resume) => Ok(Status::resumed(facts)),
        (S::WaitingForCredentials | S::Failed, T::Credentials) => Ok(Status::resumed(Facts {
            has_credentials: true,
            ..facts
        })),
        // New credentials for an account that is not stuck on them are simply kept.
        (
            S::NotStarted | S::Scheduled | S::Synced | S::Paused | S::Stopped | S::Running,
            T::Credentials,
        ) => Ok(from),
        _ => no,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Facts = Facts {
        has_credentials: true,
        synced_before: false,
    };
    const SYNCED: Facts = Facts {
        has_credentials: true,
        synced_before: true,
    };
    const NO_SECRET: Facts = Facts {
        has_credentials: false,
        synced_before: false,
    };

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            FailureCategory::parse("destination_refused"),
            Some(FailureCategory::DestinationRefused)
        );
        assert_eq!(
            FailureCategory::parse("source_refused"),
            Some(FailureCategory::SourceRefused)
        );
        assert_eq!(Status::parse("bogus"), None);
    }

    #[test]
    fn the_happy_path() {
        let s = next(Status::NotStarted, Transition::Admit, FRESH).unwrap();
        assert_eq!(s, Status::Scheduled);
        let s = next(s, Transition::Start, FRESH).unwrap();
        assert_eq!(s, Status::Running);
        let s = next(
            s,
            Transition::PassDone {
                window_closed: false,
            },
            FRESH,
        )
        .unwrap();
        assert_eq!(s, Status::Synced);
        let s = next(s, Transition::Start, SYNCED).unwrap();
        let s = next(
            s,
            Transition::PassDone {
                window_closed: true,
            },
            SYNCED,
        )
        .unwrap();
        assert_eq!(s, Status::Stopped);
    }

    #[test]
    fn waiting_accounts_start_with_credentials() {
        let s = next(Status::NotStarted, Transition::Admit, NO_SECRET).unwrap();
        assert_eq!(s, Status::WaitingForCredentials);
        assert!(next(s, Transition::Start, NO_SECRET).is_err());
        assert_eq!(
            next(s, Transition::Credentials, NO_SECRET),
            Ok(Status::Scheduled)
        );
        // A failed login is fixed by new credentials too, and a synced account goes on.
        assert_eq!(
            next(Status::Failed, Transition::Credentials, SYNCED),
            Ok(Status::Synced)
        );
    }

    #[test]
    fn pause_and_resume_come_back_where_they_were() {
        for (from, facts, back) in [
            (Status::Scheduled, FRESH, Status::Scheduled),
            (Status::Synced, SYNCED, Status::Synced),
            (
                Status::WaitingForCredentials,
                NO_SECRET,
                Status::WaitingForCredentials,
            ),
            (Status::Failed, FRESH, Status::Scheduled),
        ] {
            let p = next(from, Transition::Pause, facts).unwrap();
            assert_eq!(p, Status::Paused);
            assert_eq!(next(p, Transition::Resume, facts), Ok(back), "{from}");
        }
        // Running accounts are paused by request, not by transition.
        assert!(next(Status::Running, Transition::Pause, FRESH).is_err());
        assert!(next(Status::Scheduled, Transition::Resume, FRESH).is_err());
        assert_eq!(
            next(Status::Stopped, Transition::Resume, SYNCED),
            Ok(Status::Synced)
        );
    }

    #[test]
    fn failures_and_interruptions() {
        assert_eq!(
            next(
                Status::Running,
                Transition::Fail(FailureCategory::Quota),
                FRESH
            ),
            Ok(Status::Failed)
        );
        assert_eq!(
            next(Status::Running, Transition::Retry, FRESH),
            Ok(Status::Scheduled)
        );
        assert_eq!(
            next(Status::Running, Transition::Interrupted, SYNCED),
            Ok(Status::Synced)
        );
        assert!(next(Status::Synced, Transition::Retry, SYNCED).is_err());
    }
}
