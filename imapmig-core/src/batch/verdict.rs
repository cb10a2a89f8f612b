//! The pass verdict: how a pass of an account ended, decided from what the engine returned.
//!
//! A full destination mailbox, or a folder that failed for good, fails the account: someone
//! must act. Folders that failed transiently, or a transient engine failure, retry it after a
//! pause, until the task's attempts are used up; then it fails too, saying it gave up. A
//! cancelled pass (a pause, a stop, the scheduler shutting down) simply runs again. Every
//! decision goes by the failure's kind ([`crate::failure`]), never by its words.
//!
//! This module only decides: no I/O, no clock, no randomness (the pause before a retry is
//! handed in as a function, so the jitter stays the caller's). The scheduler calls it when a
//! pass ends; the store records the verdict ([`super::store`]).

use std::time::Duration;

use super::status::FailureCategory;
use crate::engine::{EngineError, ErrorKind, MigrationReport, Side};

/// A message not copied, as a pass reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) folder: String,
    pub(crate) uid: u32,
    pub(crate) reason: String,
}

/// What a pass that ran to its end found.
#[derive(Clone, Debug, Default)]
pub(crate) struct PassResult {
    pub(crate) folders_done: u64,
    pub(crate) folders_total: u64,
    pub(crate) copied: u64,
    pub(crate) bytes_copied: u64,
    pub(crate) seconds: f64,
    /// Messages and bytes of the account on the destination, from the sync state.
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    pub(crate) refusals: Vec<Refusal>,
    /// The folders that completed (their refusals replace the stored ones).
    pub(crate) complete_folders: Vec<String>,
}

/// How a pass ended, as the scheduler judged it.
#[derive(Clone, Debug)]
pub(crate) enum Verdict {
    /// Every folder done.
    Synced,
    /// A transient failure: run again after `after`.
    Retry {
        category: FailureCategory,
        error: String,
        after: Duration,
    },
    /// A failure someone must act on.
    Failed {
        category: FailureCategory,
        error: String,
    },
    /// Cancelled: by a pause or stop request, or by the scheduler shutting down.
    Cancelled,
}

/// What the store keeps of a pass that returned a report: counters, the messages not copied,
/// and which folders were looked at in full. `messages` and `bytes` are the account's totals
/// on the destination, from the sync state.
pub(super) fn pass_result(report: &MigrationReport, messages: u64, bytes: u64) -> PassResult {
    let mut refusals = Vec::new();
    for f in &report.folders {
        for m in f.refused.iter().chain(&f.too_large) {
            refusals.push(Refusal {
                folder: f.source.clone(),
                uid: m.uid,
                reason: m.reason.clone(),
            });
        }
    }
    PassResult {
        folders_done: report.folders.len() as u64,
        folders_total: (report.folders.len() + report.failed_folders.len()) as u64,
        copied: report.copied,
        bytes_copied: report.bytes,
        seconds: report.seconds,
        messages,
        bytes,
        refusals,
        // Refusals are cleared only where every message was looked at again: an unchanged
        // folder, or one whose changes alone were read, says nothing of older refusals.
        complete_folders: report
            .folders
            .iter()
            .filter(|f| f.listed_all)
            .map(|f| f.source.clone())
            .collect(),
    }
}

/// Judges a pass that returned a report: a full destination mailbox or a folder that failed
/// for good fails the account; folders that failed transiently retry it.
pub(super) fn judge(
    report: &MigrationReport,
    max_attempts: u32,
    attempt: u32,
    throttled: &mut Vec<Side>,
    delay: impl FnOnce() -> Duration,
) -> Verdict {
    let over_quota = report
        .folders
        .iter()
        .flat_map(|f| f.refused.iter().map(move |m| (f, m)))
        .find(|(_, m)| m.kind == Some(ErrorKind::Quota));
    if let Some((f, m)) = over_quota {
        return Verdict::Failed {
            category: FailureCategory::Quota,
            error: format!(
                "the destination mailbox is full: folder {:?} UID {}: {}",
                f.source, m.uid, m.reason
            ),
        };
    }
    let mut transient: Option<(FailureCategory, String)> = None;
    for failure in &report.failed_folders {
        let error = &failure.message;
        if failure.throttled {
            throttled.push(failure.side.unwrap_or(Side::Source));
        }
        // The engine's message names the folder already ("source, folder \"X\": ...").
        let text = if error.contains(&format!("folder {:?}", failure.folder)) {
            error.clone()
        } else {
            format!("folder {:?}: {error}", failure.folder)
        };
        if !failure.transient {
            return retry_or_fail(failure.category, text, false, max_attempts, attempt, delay);
        }
        transient.get_or_insert((failure.category, text));
    }
    match transient {
        Some((category, error)) => {
            retry_or_fail(category, error, true, max_attempts, attempt, delay)
        }
        None => Verdict::Synced,
    }
}

/// Judges a pass that ended in an engine error instead of a report: cancelled runs again; a
/// transient failure retries while attempts are left (`delay` gets the server's suggested
/// pause, if any), else it fails, saying it gave up; anything else fails at once. A throttling
/// failure names its side in `throttled`.
pub(super) fn judge_error(
    e: &EngineError,
    max_attempts: u32,
    attempt: u32,
    throttled: &mut Vec<Side>,
    delay: impl FnOnce(Option<Duration>) -> Duration,
) -> Verdict {
    if matches!(e, EngineError::Cancelled) {
        return Verdict::Cancelled;
    }
    let c = e.classify();
    throttled.extend(c.throttled_side());
    retry_or_fail(
        c.category,
        e.to_string(),
        c.transient,
        max_attempts,
        attempt,
        || delay(c.backoff),
    )
}

/// A transient failure retries after `delay()` while attempts are left, then fails saying it
/// gave up; any other failure fails at once.
fn retry_or_fail(
    category: FailureCategory,
    error: String,
    transient: bool,
    max_attempts: u32,
    attempt: u32,
    delay: impl FnOnce() -> Duration,
) -> Verdict {
    if !transient {
        Verdict::Failed { category, error }
    } else if attempt < max_attempts {
        Verdict::Retry {
            category,
            error,
            after: delay(),
        }
    } else {
        Verdict::Failed {
            category,
            error: format!("gave up after {attempt} attempts: {error}"),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::{FolderFailure, FolderReport, SkippedMessage};
    use crate::imap::ImapError;
    use crate::wire::ResponseCode;

    fn failure(side: Side, source: ImapError) -> FolderFailure {
        FolderFailure::of(
            "Work",
            &EngineError::Folder {
                side,
                folder: "Work".into(),
                source: source.into(),
            },
        )
    }

    fn closed() -> ImapError {
        ImapError::Closed {
            host: "h".into(),
            bye: None,
        }
    }

    fn refused(code: ResponseCode, text: &str) -> ImapError {
        crate::imap::error::refused_append(Some(code), text)
    }

    /// A folder report whose messages the destination refused, with the refusals' kinds.
    pub(in crate::batch) fn folder(name: &str, refused: &[(&str, ErrorKind)]) -> FolderReport {
        FolderReport {
            source: name.into(),
            target: name.into(),
            refused: refused
                .iter()
                .enumerate()
                .map(|(i, (r, kind))| SkippedMessage {
                    uid: i as u32 + 1,
                    size: 10,
                    reason: r.to_string(),
                    kind: Some(*kind),
                })
                .collect(),
            ..FolderReport::default()
        }
    }

    #[test]
    fn judging_a_report() {
        let d = || Duration::from_secs(1);
        let mut t = Vec::new();
        let ok = MigrationReport {
            folders: vec![folder(
                "INBOX",
                &[("NO [LIMIT] too big", ErrorKind::Server)],
            )],
            ..MigrationReport::default()
        };
        assert!(matches!(judge(&ok, 3, 1, &mut t, d), Verdict::Synced));
        let full = MigrationReport {
            folders: vec![folder(
                "INBOX",
                &[("NO [OVERQUOTA] Quota exceeded", ErrorKind::Quota)],
            )],
            ..MigrationReport::default()
        };
        assert!(matches!(
            judge(&full, 3, 1, &mut t, d),
            Verdict::Failed {
                category: FailureCategory::Quota,
                ..
            }
        ));
        let dropped = MigrationReport {
            failed_folders: vec![failure(Side::Source, closed())],
            ..MigrationReport::default()
        };
        assert!(matches!(
            judge(&dropped, 3, 1, &mut t, d),
            Verdict::Retry { .. }
        ));
        match judge(&dropped, 3, 3, &mut t, d) {
            Verdict::Failed {
                category: FailureCategory::Connection,
                error,
            } => assert_eq!(
                error.matches("folder \"Work\"").count(),
                1,
                "the folder is named once: {error}"
            ),
            other => panic!("{other:?}"),
        }
        let throttled = MigrationReport {
            failed_folders: vec![failure(
                Side::Destination,
                refused(ResponseCode::Limit, "slow down"),
            )],
            ..MigrationReport::default()
        };
        assert!(matches!(
            judge(&throttled, 3, 1, &mut t, d),
            Verdict::Retry { .. }
        ));
        assert_eq!(t, vec![Side::Destination]);
    }

    #[test]
    fn judging_an_engine_error() {
        let mut t = Vec::new();
        let d = |hint: Option<Duration>| hint.unwrap_or(Duration::from_secs(1));
        assert!(matches!(
            judge_error(&EngineError::Cancelled, 3, 1, &mut t, d),
            Verdict::Cancelled
        ));
        let dropped = EngineError::Folder {
            side: Side::Source,
            folder: "Work".into(),
            source: closed().into(),
        };
        assert!(matches!(
            judge_error(&dropped, 3, 1, &mut t, d),
            Verdict::Retry {
                category: FailureCategory::Connection,
                ..
            }
        ));
        match judge_error(&dropped, 3, 3, &mut t, d) {
            Verdict::Failed { error, .. } => {
                assert!(error.starts_with("gave up after 3 attempts: "), "{error}")
            }
            other => panic!("{other:?}"),
        }
        let throttled = EngineError::Folder {
            side: Side::Destination,
            folder: "Work".into(),
            source: refused(ResponseCode::Limit, "slow down").into(),
        };
        assert!(matches!(
            judge_error(&throttled, 3, 1, &mut t, d),
            Verdict::Retry { .. }
        ));
        assert_eq!(t, vec![Side::Destination]);
        let broken = EngineError::Internal("a bug".into());
        assert!(matches!(
            judge_error(&broken, 3, 1, &mut t, d),
            Verdict::Failed {
                category: FailureCategory::Internal,
                ..
            }
        ));
    }
}
