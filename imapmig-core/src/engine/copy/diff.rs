//! What one pass over a folder does with each message the source lists, decided without I/O:
//! copy it, leave it (a copy is already there, perhaps with flags to bring up to date), or
//! skip it with a reason (outside the date range, over the size limit).
//!
//! [`diff`] is a pure function: it never does I/O, never panics, and gives the same plan for
//! the same input, in the listing's order. [`super::folder`] gathers its input and carries
//! the plan out.
//!
//! The exactly-once protocol is not decided here, and the diff cannot weaken it. By the time
//! it runs, the pending rows of an interrupted batch have been resolved (found again on the
//! destination by fingerprint and recorded as copied, or dropped) and every re-match has been
//! recorded, so the sync state's copied records are all the diff needs to know; the pipeline
//! that copies [`FolderDiff::to_copy`] records each batch as pending before sending it
//! ([`super::append`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::engine::SkippedMessage;
use crate::imap::is_sendable_keyword;
use crate::model::{Flags, MessageMeta, Uid};
use crate::sink::OpenedTarget;
use crate::state::CopiedRecord;

#[cfg(test)]
mod tests;

/// What a pass knows of a folder when it decides what to do.
#[derive(Clone, Copy, Debug)]
pub(super) struct FolderView<'a> {
    /// The source folder's messages as listed: all of them, or (with `delta`) only those
    /// added or changed since the last complete pass.
    pub listed: &'a [MessageMeta],
    /// Whether `listed` holds only what changed since the last complete pass (CONDSTORE).
    pub delta: bool,
    /// The UIDs inside the date range, when the options set one; `None` selects every message.
    pub in_dates: Option<&'a HashSet<Uid>>,
    /// The largest message to copy: the options' limit or the destination's, whichever is
    /// lower.
    pub size_limit: Option<u64>,
    /// The sync state's copied records for the folder, by source UID.
    pub copied: &'a HashMap<Uid, CopiedRecord>,
    /// The destination folder as opened: which flags it stores.
    pub target: &'a OpenedTarget,
}

/// Copies whose flags become the same set on the destination: one STORE for all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FlagUpdate {
    /// The flags the copies get: those of the source the destination folder accepts.
    pub flags: Flags,
    /// The copies, by destination UID.
    pub dst_uids: Vec<Uid>,
    /// The source messages with their flags, recorded once the STORE is done.
    pub recorded: Vec<(Uid, Flags)>,
}

/// The plan for one pass over a folder. Every listed message is in exactly one of
/// `to_copy`, `already_there`, `outside_dates` and `too_large`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct FolderDiff<'a> {
    /// The messages to copy, in the listing's order.
    pub to_copy: Vec<&'a MessageMeta>,
    /// Listed messages the sync state records as copied.
    pub already_there: Vec<Uid>,
    /// Copies a delta listing did not mention: unchanged since the last pass, counted as there
    /// (as for an unchanged folder, a copy whose source was deleted since counts too).
    pub unlisted_copies: u64,
    /// The flag changes to store on copies already there, ordered by the flags they store.
    pub flag_updates: Vec<FlagUpdate>,
    /// Listed messages outside the date range.
    pub outside_dates: Vec<Uid>,
    /// Messages over the size limit, with the reason reported for each.
    pub too_large: Vec<SkippedMessage>,
    /// Flags and keywords the destination folder does not store, left off the flag updates.
    pub dropped_keywords: BTreeSet<String>,
}

impl FolderDiff<'_> {
    /// The messages the pass found: those inside the date range, and the unlisted copies.
    pub fn found(&self) -> u64 {
        (self.to_copy.len() + self.already_there.len() + self.too_large.len()) as u64
            + self.unlisted_copies
    }

    /// The copies already on the destination, listed or not.
    pub fn already_there_count(&self) -> u64 {
        self.already_there.len() as u64 + self.unlisted_copies
    }
}

/// Decides, for each listed message, whether to copy it, update its copy's flags, leave it or
/// skip it. The date range comes first (a message outside it is skipped even if copied
/// before); then a message with a copied record is already there, its copy's flags updated
/// when the source's differ from those recorded and the copy's destination UID is known;
/// then a message over the size limit is skipped; the rest are copied.
pub(super) fn diff<'a>(view: &FolderView<'a>) -> FolderDiff<'a> {
    let mut plan = FolderDiff {
        to_copy: Vec::new(),
        already_there: Vec::new(),
        unlisted_copies: 0,
        flag_updates: Vec::new(),
        outside_dates: Vec::new(),
        too_large: Vec::new(),
        dropped_keywords: BTreeSet::new(),
    };
    // Keyed by the flags' line, so that the STOREs go out in a stable order.
    let mut updates: BTreeMap<String, FlagUpdate> = BTreeMap::new();
    for m in view.listed {
        if view.in_dates.is_some_and(|s| !s.contains(&m.uid)) {
            plan.outside_dates.push(m.uid);
            continue;
        }
        if let Some(rec) = view.copied.get(&m.uid) {
            plan.already_there.push(m.uid);
            if rec.flags != m.flags {
                if let Some(dst_uid) = rec.dst_uid {
                    let flags =
                        flags_for_destination(&m.flags, view.target, &mut plan.dropped_keywords);
                    let update = updates
                        .entry(flags.to_line())
                        .or_insert_with(|| FlagUpdate {
                            flags,
                            dst_uids: Vec::new(),
                            recorded: Vec::new(),
                        });
                    update.dst_uids.push(dst_uid);
                    update.recorded.push((m.uid, m.flags.clone()));
                }
            }
            continue;
        }
        if let Some(limit) = view.size_limit {
            if m.size > limit {
                plan.too_large.push(SkippedMessage {
                    uid: m.uid.0,
                    size: m.size,
                    reason: format!("{} bytes, over the limit of {limit}", m.size),
                    kind: None,
                });
                continue;
            }
        }
        plan.to_copy.push(m);
    }
    if view.delta {
        // Whether inside the date range or not, a listed copy is not among the unlisted ones.
        let seen = view
            .listed
            .iter()
            .filter(|m| view.copied.contains_key(&m.uid))
            .count();
        plan.unlisted_copies = view.copied.len().saturating_sub(seen) as u64;
    }
    plan.flag_updates = updates.into_values().collect();
    plan
}

/// The flags to give a copy: those the destination folder accepts; the rest are added to
/// `dropped`, to be reported.
pub(super) fn flags_for_destination(
    flags: &Flags,
    target: &OpenedTarget,
    dropped: &mut BTreeSet<String>,
) -> Flags {
    let mut out = Flags::new();
    for f in flags.iter() {
        let ok = if f.starts_with('\\') {
            target.accepts(f)
        } else {
            is_sendable_keyword(f) && target.accepts(f)
        };
        if ok {
            out.insert(f);
        } else {
            dropped.insert(f.to_string());
        }
    }
    out
}
