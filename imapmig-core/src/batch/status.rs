//! The per-account status machine, and the naming of failures.
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

use crate::engine::{EngineError, ErrorKind, Side};
use crate::imap::ImapError;
use crate::wire::ResponseCode;

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

/// Why an account failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCategory {
    /// The login was refused: wrong password or token, or an admin not allowed to act for the
    /// user. Supply new credentials to retry.
    Authentication,
    /// The server could not be reached, or dropped the connection, more often than the retry
    /// policy allows.
    Connection,
    /// TLS failed: untrusted or mismatched certificate, or no STARTTLS.
    Tls,
    /// The destination mailbox is full.
    Quota,
    /// The server kept throttling beyond the retry policy.
    Throttled,
    /// The destination refused something that is not about size or quota (a folder it will
    /// not create, a command it rejects).
    DestinationRefused,
    /// The source refused something (a folder it will not open, `NO [SERVERBUG]` to EXAMINE, a
    /// command it rejects): look at that mailbox on the source, then resume the account.
    SourceRefused,
    /// The settings do not fit this account: a folder plan collision that needs a rename, a
    /// server lacking something needed.
    Configuration,
    /// The sync state could not be read or written, or a bug. Nothing is lost; resume it.
    Internal,
}

impl FailureCategory {
    /// The name used in the store and exports: `authentication`, `quota`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::Authentication => "authentication",
            FailureCategory::Connection => "connection",
            FailureCategory::Tls => "tls",
            FailureCategory::Quota => "quota",
            FailureCategory::Throttled => "throttled",
            FailureCategory::DestinationRefused => "destination_refused",
            FailureCategory::SourceRefused => "source_refused",
            FailureCategory::Configuration => "configuration",
            FailureCategory::Internal => "internal",
        }
    }

    /// The category a name stands for.
    pub fn parse(name: &str) -> Option<FailureCategory> {
        [
            FailureCategory::Authentication,
            FailureCategory::Connection,
            FailureCategory::Tls,
            FailureCategory::Quota,
            FailureCategory::Throttled,
            FailureCategory::DestinationRefused,
            FailureCategory::SourceRefused,
            FailureCategory::Configuration,
            FailureCategory::Internal,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for FailureCategory {
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

/// How a failed pass is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// The category it is reported under.
    pub category: FailureCategory,
    /// Whether a later attempt may succeed on its own (retried with backoff).
    pub transient: bool,
    /// Whether the server throttled us (its host gets fewer connections).
    pub throttled: bool,
}

/// Names the failure of a pass. A refusal is filed under the side the error carries.
pub fn classify(error: &EngineError) -> Classified {
    let side = match error {
        EngineError::Server { side, .. } | EngineError::Folder { side, .. } => *side,
        _ => Side::Destination,
    };
    match error.imap() {
        Some(e) => classify_imap(e, side),
        None => match error {
            // A source or sink other than IMAP (POP3, local files): by the error's kind.
            EngineError::Server { .. } | EngineError::Folder { .. } => {
                let transient = error.is_transient();
                let category = match error.kind() {
                    ErrorKind::Authentication => FailureCategory::Authentication,
                    ErrorKind::Tls => FailureCategory::Tls,
                    ErrorKind::Quota => FailureCategory::Quota,
                    ErrorKind::Connection => FailureCategory::Connection,
                    _ if transient => FailureCategory::Connection,
                    _ => FailureCategory::Configuration,
                };
                Classified {
                    category,
                    transient,
                    throttled: false,
                }
            }
            EngineError::Plan(_) => Classified {
                category: FailureCategory::Configuration,
                transient: false,
                throttled: false,
            },
            _ => Classified {
                category: FailureCategory::Internal,
                transient: false,
                throttled: false,
            },
        },
    }
}

/// The category of a refusal by `side`.
fn refused_by(side: Side) -> FailureCategory {
    match side {
        Side::Source => FailureCategory::SourceRefused,
        Side::Destination => FailureCategory::DestinationRefused,
    }
}

fn classify_imap(e: &ImapError, side: Side) -> Classified {
    let throttled = e.is_throttled();
    let (category, transient) = match e {
        ImapError::AuthenticationFailed { .. } => (FailureCategory::Authentication, false),
        ImapError::Tls { .. }
        | ImapError::StartTlsUnavailable { .. }
        | ImapError::CleartextRefused { .. } => (FailureCategory::Tls, false),
        _ if throttled => (FailureCategory::Throttled, true),
        ImapError::Connect { .. } | ImapError::Io { .. } | ImapError::Closed { .. } => {
            (FailureCategory::Connection, true)
        }
        ImapError::Refused { status, .. } => match status.code {
            Some(ResponseCode::OverQuota) => (FailureCategory::Quota, false),
            Some(ResponseCode::AuthenticationFailed | ResponseCode::AuthorizationFailed) => {
                (FailureCategory::Authentication, false)
            }
            _ => (refused_by(side), false),
        },
        ImapError::MissingCapability { .. } => (FailureCategory::Configuration, false),
        _ => (refused_by(side), e.is_transient()),
    };
    Classified {
        category,
        transient,
        throttled,
    }
}

/// Throttling a server expresses only in words: the phrases the client backs off on
/// ([`crate::imap::ImapError::is_throttled`]), one list for both.
pub fn text_is_throttling(text: &str) -> bool {
    crate::imap::error::is_throttle_text(text)
}

/// An engine error's text, taken apart: the side it names, the folder's name as quoted there,
/// and what follows (what the server said).
struct SidedText<'a> {
    side: Option<Side>,
    quoted_folder: Option<&'a str>,
    said: &'a str,
}

/// Takes an engine error's text apart. The engine writes `source: ...` / `destination: ...`
/// for a server's failure and `source, folder "X": ...` / `destination, folder "X": ...` for
/// one folder's, the folder quoted as Rust quotes a string (`\"` and `\\` inside).
fn split_side(text: &str) -> SidedText<'_> {
    let none = SidedText {
        side: None,
        quoted_folder: None,
        said: text,
    };
    let (side, rest) = if let Some(r) = text.strip_prefix("source") {
        (Side::Source, r)
    } else if let Some(r) = text.strip_prefix("destination") {
        (Side::Destination, r)
    } else {
        return none;
    };
    if let Some(said) = rest.strip_prefix(": ") {
        return SidedText {
            side: Some(side),
            quoted_folder: None,
            said,
        };
    }
    let Some(quoted) = rest.strip_prefix(", folder ") else {
        return none;
    };
    if !quoted.starts_with('"') {
        return none;
    }
    let mut escaped = false;
    for (i, c) in quoted.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                let (folder, after) = quoted.split_at(i + 1);
                return match after.strip_prefix(": ") {
                    Some(said) => SidedText {
                        side: Some(side),
                        quoted_folder: Some(folder),
                        said,
                    },
                    None => none,
                };
            }
            _ => {}
        }
    }
    none
}

/// The side an engine error's text names (`source...` or `destination...`), if any.
pub fn text_side(text: &str) -> Option<Side> {
    split_side(text).side
}

/// Names a folder failure the engine reported only as text (its `failed_folders`). The side is
/// read from the text's leading word (see [`text_side`]); only what the server said is looked
/// at for the rest, never the folder's name.
pub fn classify_text(text: &str) -> Classified {
    let SidedText {
        side,
        quoted_folder,
        said,
    } = split_side(text);
    // The server's words may quote the folder again (`refused EXAMINE in "X"`): blank it out.
    let said = match quoted_folder {
        Some(q) => said.replace(q, "\"\""),
        None => said.to_string(),
    };
    let lower = said.to_ascii_lowercase();
    let throttled = text_is_throttling(&said);
    let (category, transient) = if lower.contains("[overquota]") || lower.contains("quota exceeded")
    {
        (FailureCategory::Quota, false)
    } else if throttled {
        (FailureCategory::Throttled, true)
    } else if lower.contains("tls") || lower.contains("certificate") {
        (FailureCategory::Tls, false)
    } else if lower.contains("refused the login") {
        (FailureCategory::Authentication, false)
    } else if lower.contains("cannot connect")
        || lower.contains("closed the connection")
        || lower.contains("connection to ")
    {
        (FailureCategory::Connection, true)
    } else if side.is_none() && lower.starts_with("sync state") {
        (FailureCategory::Internal, false)
    } else if side.is_none() && lower.starts_with("folder plan") {
        (FailureCategory::Configuration, false)
    } else {
        // A refusal: filed under the side that refused. Text without a side (none is expected
        // from the engine) stays where it always was.
        (refused_by(side.unwrap_or(Side::Destination)), false)
    };
    Classified {
        category,
        transient,
        throttled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduler's reading of words and the client's are one list.
    #[test]
    fn throttling_words_are_the_clients() {
        for text in [
            "[LIMIT] x",
            "[UNAVAILABLE] later",
            "Server Busy",
            "Request is throttled",
            "Suggested Backoff Time: 5 ms",
            "Too many connections",
        ] {
            assert!(text_is_throttling(text), "{text}");
            assert!(crate::imap::error::is_throttle_text(text), "{text}");
        }
        assert!(!text_is_throttling("Message contains bare newlines"));
    }

    use crate::wire::{StatusKind, StatusResponse};

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

    fn refused(code: Option<ResponseCode>, text: &str) -> EngineError {
        EngineError::Server {
            side: Side::Destination,
            source: ImapError::Refused {
                host: "h".into(),
                command: "APPEND",
                folder: None,
                status: Box::new(StatusResponse {
                    tag: Some("a1".into()),
                    kind: StatusKind::No,
                    code,
                    text: text.into(),
                }),
            }
            .into(),
        }
    }

    #[test]
    fn failures_are_named() {
        let auth = EngineError::Server {
            side: Side::Source,
            source: ImapError::AuthenticationFailed {
                host: "h".into(),
                user: "u".into(),
                server_says: "no".into(),
            }
            .into(),
        };
        assert_eq!(classify(&auth).category, FailureCategory::Authentication);
        assert!(!classify(&auth).transient);
        let io = EngineError::Server {
            side: Side::Source,
            source: ImapError::Connect {
                host: "h".into(),
                port: 1,
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            }
            .into(),
        };
        assert_eq!(
            classify(&io),
            Classified {
                category: FailureCategory::Connection,
                transient: true,
                throttled: false
            }
        );
        let quota = refused(Some(ResponseCode::OverQuota), "Quota exceeded");
        assert_eq!(classify(&quota).category, FailureCategory::Quota);
        let limit = refused(Some(ResponseCode::Limit), "slow down");
        assert!(classify(&limit).throttled && classify(&limit).transient);
        let o365 = refused(
            None,
            "Request is throttled. Suggested Backoff Time: 100 milliseconds",
        );
        assert_eq!(classify(&o365).category, FailureCategory::Throttled);
        let bye = EngineError::Server {
            side: Side::Source,
            source: ImapError::Closed {
                host: "h".into(),
                bye: Some("Maximum number of connections from user+IP exceeded".into()),
            }
            .into(),
        };
        assert!(classify(&bye).throttled);
        let tls = EngineError::Server {
            side: Side::Source,
            source: ImapError::Tls {
                host: "h".into(),
                detail: "bad cert".into(),
            }
            .into(),
        };
        assert_eq!(classify(&tls).category, FailureCategory::Tls);
        assert_eq!(
            classify(&EngineError::Cancelled).category,
            FailureCategory::Internal
        );
        // POP3 errors are named by their kind, as IMAP's are.
        let pop3 = |kind, transient| EngineError::Server {
            side: Side::Source,
            source: crate::source::AccessError::Server {
                server: "pop3://h:110".into(),
                detail: "login as u refused: -ERR nope".into(),
                transient,
                kind,
            },
        };
        let c = classify(&pop3(ErrorKind::Authentication, false));
        assert_eq!(c.category, FailureCategory::Authentication);
        assert!(!c.transient);
        let c = classify(&pop3(ErrorKind::Connection, true));
        assert_eq!(c.category, FailureCategory::Connection);
        assert!(c.transient);
        let c = classify(&pop3(ErrorKind::Tls, false));
        assert_eq!(c.category, FailureCategory::Tls);
        let c = classify(&pop3(ErrorKind::Server, false));
        assert_eq!(c.category, FailureCategory::Configuration);
    }

    fn refused_on(
        side: Side,
        folder: Option<&str>,
        command: &'static str,
        text: &str,
    ) -> EngineError {
        let source = ImapError::Refused {
            host: "h".into(),
            command,
            folder: folder.map(Into::into),
            status: Box::new(StatusResponse {
                tag: Some("a1".into()),
                kind: StatusKind::No,
                code: Some(ResponseCode::Other {
                    name: "SERVERBUG".into(),
                    args: String::new(),
                }),
                text: text.into(),
            }),
        }
        .into();
        match folder {
            Some(f) => EngineError::Folder {
                side,
                folder: f.into(),
                source,
            },
            None => EngineError::Server { side, source },
        }
    }

    /// The exactly-once issue: an account whose source refused EXAMINE (`NO [SERVERBUG]`) was
    /// filed under destination_refused. The side the engine's error carries decides, typed or
    /// as text.
    #[test]
    fn a_source_refusal_is_never_filed_as_destination_refused() {
        for (side, want) in [
            (Side::Source, FailureCategory::SourceRefused),
            (Side::Destination, FailureCategory::DestinationRefused),
        ] {
            for e in [
                refused_on(side, Some("Work"), "EXAMINE", "Internal error occurred"),
                refused_on(side, None, "LIST", "Internal error occurred"),
            ] {
                let typed = classify(&e);
                assert_eq!(typed.category, want, "{e}");
                assert!(!typed.transient);
                let text = e.to_string();
                assert_eq!(classify_text(&text), typed, "{text}");
                assert_eq!(text_side(&text), Some(side), "{text}");
            }
        }
    }

    /// The folder's name is the user's: words in it never decide the category.
    #[test]
    fn folder_names_do_not_decide_the_category() {
        for name in [
            "Atlas",
            "Quota exceeded",
            "cannot connect",
            "sync state",
            "a \"destination, folder\" b",
            "Try again later",
        ] {
            let e = refused_on(
                Side::Source,
                Some(name),
                "EXAMINE",
                "Internal error occurred",
            );
            let text = e.to_string();
            assert_eq!(
                classify_text(&text),
                Classified {
                    category: FailureCategory::SourceRefused,
                    transient: false,
                    throttled: false
                },
                "{text}"
            );
        }
        assert_eq!(text_side("sync state: disk full"), None);
        assert_eq!(text_side("sources, folder \"X\": h"), None);
        assert_eq!(
            classify_text("folder plan: source folders `a` and `b` would both land in `c`")
                .category,
            FailureCategory::Configuration
        );
    }

    #[test]
    fn folder_failure_texts_are_named() {
        assert_eq!(
            classify_text(
                "destination, folder \"X\": h refused APPEND: NO [OVERQUOTA] Quota exceeded"
            )
            .category,
            FailureCategory::Quota
        );
        assert!(classify_text("source, folder \"X\": h closed the connection").transient);
        assert_eq!(
            classify_text("destination, folder \"X\": h refused CREATE: NO invalid name").category,
            FailureCategory::DestinationRefused
        );
    }
}
