//! Live progress of running passes: the engine's progress events of one pass, counted as they
//! come (on the engine's tasks, so with atomics and short locks), and read by the scheduler's
//! loop once a flush: the progress it writes to the store, the snapshot it hands the observer,
//! the audit events and the throttling it has to act on.
//!
//! Nothing here waits, writes or decides: it only counts and collects.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::audit::AuditEvent;
use super::slots::HostUsage;
use super::status::Status;
use super::store::{PassTicket, Progress};
use crate::engine::{ProgressEvent, Side};

/// A running account, as the live summary shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunningAccount {
    /// Its id.
    pub id: i64,
    /// Its target address.
    pub target: String,
    /// Which pass of the account this is (1 is the first).
    pub pass: u64,
    /// Folders done in this pass.
    pub folders_done: u64,
    /// Folders in this pass.
    pub folders_total: u64,
    /// Messages copied in this pass.
    pub copied: u64,
    /// Connections it holds per side.
    pub connections: usize,
}

/// What the scheduler is doing, handed to the observer once per flush.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LiveSnapshot {
    /// Seconds since the scheduler started.
    pub seconds: f64,
    /// Accounts per status.
    pub statuses: Vec<(Status, u64)>,
    /// Running accounts.
    pub running: Vec<RunningAccount>,
    /// Connections per host.
    pub hosts: Vec<HostUsage>,
    /// Messages copied since the scheduler started.
    pub copied: u64,
    /// Bytes copied since the scheduler started.
    pub bytes: u64,
}

/// Live counters of one pass, fed by the engine's progress events.
#[derive(Default)]
pub(super) struct Live {
    folders_total: AtomicU64,
    folders_done: AtomicU64,
    copied: AtomicU64,
    bytes: AtomicU64,
    throttled: Mutex<Vec<Side>>,
    events: Mutex<Vec<AuditEvent>>,
}

impl Live {
    pub(super) fn on(&self, ev: &ProgressEvent) {
        match ev {
            ProgressEvent::Planned { folders } => {
                self.folders_total.store(*folders as u64, Ordering::Relaxed);
            }
            ProgressEvent::MessageCopied { bytes, .. } => {
                self.copied.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(*bytes, Ordering::Relaxed);
            }
            ProgressEvent::FolderDone(r) => {
                self.folders_done.fetch_add(1, Ordering::Relaxed);
                if !r.unchanged || r.copied > 0 {
                    self.push(AuditEvent::FolderDone {
                        folder: r.source.clone(),
                        target: r.target.clone(),
                        copied: r.copied,
                        already_there: r.already_there,
                        refused: r.refused.len() as u64,
                        too_large: r.too_large.len() as u64,
                        bytes: r.bytes,
                    });
                }
            }
            // A server that refuses another connection, or throttles a folder: its host gets
            // fewer connections.
            ProgressEvent::ConnectionsReduced { side, .. } => self.throttled_by(*side),
            ProgressEvent::Retrying {
                throttled_by: Some(side),
                ..
            } => self.throttled_by(*side),
            _ => {}
        }
    }

    /// The pass's progress for the store: its folders, and the account's messages and bytes
    /// (what it had when the pass started, plus what the pass copied).
    pub(super) fn progress(&self, ticket: &PassTicket) -> Progress {
        Progress {
            folders_done: self.folders_done.load(Ordering::Relaxed),
            folders_total: self.folders_total.load(Ordering::Relaxed),
            messages: ticket.messages + self.copied.load(Ordering::Relaxed),
            bytes: ticket.bytes + self.bytes.load(Ordering::Relaxed),
        }
    }

    /// The pass as the live snapshot shows it.
    pub(super) fn running(&self, ticket: &PassTicket, connections: usize) -> RunningAccount {
        RunningAccount {
            id: ticket.id,
            target: ticket.target.clone(),
            pass: ticket.pass,
            folders_done: self.folders_done.load(Ordering::Relaxed),
            folders_total: self.folders_total.load(Ordering::Relaxed),
            copied: self.copied.load(Ordering::Relaxed),
            connections,
        }
    }

    /// Messages copied by the pass so far.
    pub(super) fn copied(&self) -> u64 {
        self.copied.load(Ordering::Relaxed)
    }

    /// Bytes copied by the pass so far.
    pub(super) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn throttled_by(&self, side: Side) {
        if let Ok(mut t) = self.throttled.lock() {
            t.push(side);
        }
    }

    fn push(&self, ev: AuditEvent) {
        if let Ok(mut e) = self.events.lock() {
            e.push(ev);
        }
    }

    pub(super) fn take_events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    pub(super) fn take_throttled(&self) -> Vec<Side> {
        self.throttled
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::verdict::tests::folder;

    #[test]
    fn live_counts_and_notices_throttling() {
        let l = Live::default();
        l.on(&ProgressEvent::Planned { folders: 3 });
        l.on(&ProgressEvent::MessageCopied {
            folder: "INBOX".into(),
            uid: 1,
            bytes: 100,
        });
        l.on(&ProgressEvent::FolderDone(folder("INBOX", &[])));
        l.on(&ProgressEvent::Retrying {
            folder: "INBOX".into(),
            attempt: 1,
            after_ms: 10,
            error: "destination, folder \"INBOX\": h closed the connection: Too many connections"
                .into(),
            throttled_by: Some(Side::Destination),
        });
        assert_eq!(l.folders_total.load(Ordering::Relaxed), 3);
        assert_eq!(l.bytes.load(Ordering::Relaxed), 100);
        assert_eq!(l.take_events().len(), 1);
        assert_eq!(l.take_throttled(), vec![Side::Destination]);
        // A retry for anything but throttling leaves the host's connections alone, whatever
        // its words say.
        l.on(&ProgressEvent::Retrying {
            folder: "Try again later".into(),
            attempt: 1,
            after_ms: 10,
            error: "destination, folder \"Try again later\": h closed the connection".into(),
            throttled_by: None,
        });
        assert_eq!(l.take_throttled(), Vec::<Side>::new());
        l.on(&ProgressEvent::ConnectionsReduced {
            workers: 2,
            error: "source: h closed the connection: Maximum number of connections".into(),
            side: Side::Source,
        });
        assert_eq!(l.take_throttled(), vec![Side::Source]);
    }
}
