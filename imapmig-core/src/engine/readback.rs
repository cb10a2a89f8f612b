//! Reading back what the destination made of a batch just appended.
//!
//! Some servers answer `OK` to APPEND and store something else: no flags (GNU Mailutils),
//! another INTERNALDATE (taken from a header), 8-bit header bytes replaced (Cyrus's default
//! `munge8bit`). Nothing in the answer says so, so after each batch one `UID FETCH (FLAGS
//! INTERNALDATE RFC822.SIZE)` asks what the folder holds: for the UIDs APPENDUID gave, or
//! without UIDPLUS for everything at or above the UIDNEXT the batch started from, matched to
//! what was sent by size and then content (one to one, as crash recovery matches). Flags that
//! are missing are added with STORE and read again; what still lacks them, every date not kept
//! and every header rewritten is an anomaly naming the source UID, and counted per kind in
//! [`FolderReport::altered`]. Bodies are read back only where they may have been rewritten:
//! messages with 8-bit header bytes, and without UIDPLUS the candidates of a size that was sent.
//!
//! It never changes a message's content, and never touches a message it did not match.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{Anomaly, FolderReport, Side};
use crate::fingerprint::{match_by_print, ContentPrint};
use crate::model::{Flags, InternalDate, MessageMeta, Uid};
use crate::sink::{AnySink, MigrationSink};
use crate::source::AccessError;

/// A copy just appended, as it was sent.
pub(super) struct Sent {
    /// The source UID.
    pub src_uid: Uid,
    /// The destination UID, when APPENDUID told it.
    pub dst_uid: Option<Uid>,
    /// The flags sent with it (those the folder accepts).
    pub flags: Flags,
    /// The INTERNALDATE sent with it.
    pub date: Option<InternalDate>,
    /// Bytes sent.
    pub len: u64,
    /// Its content prints.
    pub print: ContentPrint,
}

/// What a read-back learnt.
pub(super) struct Checked {
    /// Destination UIDs found for copies APPEND did not tie to one (no UIDPLUS).
    pub found: HashMap<Uid, Uid>,
    /// A new lower bound for the UID of the next append (every UID seen is below it).
    pub floor: u32,
}

fn note(rep: &mut FolderReport, uid: Uid, detail: String) {
    rep.anomalies.push(Anomaly {
        folder: Some(rep.source.clone()),
        uid: Some(uid.0),
        side: Side::Destination,
        detail,
    });
}

/// Flags sent but not held.
fn missing(sent: &Flags, held: &Flags) -> Flags {
    let mut out = Flags::new();
    for f in sent.iter().filter(|f| !held.contains(f)) {
        out.insert(f);
    }
    out
}

/// Reads back a batch, repairs flags, reports what the destination changed.
pub(super) async fn check(
    dst: &mut AnySink,
    sent: &[Sent],
    floor: u32,
    rep: &mut FolderReport,
) -> Result<Checked, AccessError> {
    let mut out = Checked {
        found: HashMap::new(),
        floor,
    };
    if sent.is_empty() {
        return Ok(out);
    }
    let tied: Vec<Uid> = sent.iter().filter_map(|s| s.dst_uid).collect();
    let all_tied = tied.len() == sent.len();
    let asked: &[Uid] = if all_tied { &tied } else { &[] };
    let Some(metas) = dst.read_back(asked, floor).await? else {
        return Ok(out);
    };
    if let Some(top) = metas.iter().map(|m| m.uid.0).max() {
        out.floor = out.floor.max(top.saturating_add(1));
    }
    let by_uid: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();
    let mut dst_prints: HashMap<Uid, ContentPrint> = HashMap::new();

    // Without UIDPLUS: the new messages are read and matched by content to what was sent
    // (only those of a size that was sent, when the folder got more new messages than were
    // sent: another client's mail is not read).
    let untied: Vec<&Sent> = sent.iter().filter(|s| s.dst_uid.is_none()).collect();
    // Copies tied to a new message by position alone (see below): their content differs.
    let mut by_position: HashSet<Uid> = HashSet::new();
    if !untied.is_empty() {
        let claimed: HashSet<Uid> = tied.iter().copied().collect();
        let sizes: HashSet<u64> = untied.iter().map(|s| s.len).collect();
        let mut new: Vec<&MessageMeta> =
            metas.iter().filter(|m| !claimed.contains(&m.uid)).collect();
        new.sort_by_key(|m| m.uid);
        let only_ours = new.len() <= untied.len();
        let cands: Vec<Uid> = new
            .iter()
            .filter(|m| only_ours || sizes.contains(&m.size))
            .map(|m| m.uid)
            .collect();
        if !cands.is_empty() {
            dst_prints = dst.fingerprints(&cands).await?;
        }
        let wanted: Vec<(Uid, ContentPrint)> =
            untied.iter().map(|s| (s.src_uid, s.print)).collect();
        out.found = match_by_print(&wanted, &dst_prints).into_iter().collect();
        // The folder got exactly as many new messages as copies were sent, and some match
        // none by content: the server changed them. They are tied in the order they were
        // sent (UIDs grow with each append), and reported below as changed.
        let used: HashSet<Uid> = out.found.values().copied().collect();
        let left: Vec<Uid> = new
            .iter()
            .map(|m| m.uid)
            .filter(|u| !used.contains(u))
            .collect();
        let unmatched: Vec<&Sent> = untied
            .iter()
            .copied()
            .filter(|s| !out.found.contains_key(&s.src_uid))
            .collect();
        // (Every content match took one of `new`, so as many are left on both sides.)
        if new.len() == untied.len() {
            for (s, u) in unmatched.iter().zip(&left) {
                out.found.insert(s.src_uid, *u);
                by_position.insert(s.src_uid);
            }
        }
        let lost = untied.len() - out.found.len();
        if lost > 0 {
            rep.notes.push(format!(
                "{lost} copie(s) could not be found again on the destination (no UIDPLUS, and no new message of their size and content) to check their flags and INTERNALDATE"
            ));
        }
    }
    let dst_of = |s: &Sent| s.dst_uid.or_else(|| out.found.get(&s.src_uid).copied());

    // Flags: add what is missing, grouped by what is missing, then look again.
    let mut repairs: BTreeMap<String, (Flags, Vec<Uid>)> = BTreeMap::new();
    let mut repaired: Vec<(&Sent, Uid)> = Vec::new();
    for s in sent {
        let Some(u) = dst_of(s) else { continue };
        let Some(m) = by_uid.get(&u) else {
            if s.dst_uid.is_some() {
                note(
                    rep,
                    s.src_uid,
                    format!(
                        "the destination gave the copy UID {} (APPENDUID) but shows no such message",
                        u.0
                    ),
                );
            }
            continue;
        };
        let lack = missing(&s.flags, &m.flags);
        if !lack.is_empty() {
            repairs
                .entry(lack.to_line())
                .or_insert_with(|| (lack, Vec::new()))
                .1
                .push(u);
            repaired.push((s, u));
        }
    }
    if !repaired.is_empty() {
        for (flags, uids) in repairs.values() {
            dst.add_flags(uids, flags).await?;
        }
        let uids: Vec<Uid> = repaired.iter().map(|(_, u)| *u).collect();
        let again = dst.read_back(&uids, 0).await?.unwrap_or_default();
        let now: HashMap<Uid, &MessageMeta> = again.iter().map(|m| (m.uid, m)).collect();
        for (s, u) in &repaired {
            let lack = now
                .get(u)
                .map_or_else(|| s.flags.clone(), |m| missing(&s.flags, &m.flags));
            if lack.is_empty() {
                rep.altered.flags_repaired += 1;
            } else {
                rep.altered.flags_lost += 1;
                note(
                    rep,
                    s.src_uid,
                    format!(
                        "the destination did not store the flags {} with the copy (UID {}), nor after STORE",
                        lack.to_line(),
                        u.0
                    ),
                );
            }
        }
    }

    // Dates: an INTERNALDATE cannot be set after APPEND; each one not kept is reported.
    for s in sent {
        let (Some(want), Some(u)) = (s.date, dst_of(s)) else {
            continue;
        };
        let Some(got) = by_uid.get(&u).and_then(|m| m.internal_date) else {
            continue;
        };
        if got.unix() != want.unix() {
            rep.altered.dates_not_kept += 1;
            note(
                rep,
                s.src_uid,
                format!(
                    "the destination did not keep the INTERNALDATE \"{want}\" given with APPEND: the copy (UID {}) has \"{got}\", and it cannot be changed afterwards",
                    u.0
                ),
            );
        }
    }

    // Content: a message with 8-bit header bytes may have them rewritten, one with NUL bytes
    // may have them replaced (Dovecot writes 0x80), and a copy whose size is not what was
    // sent was changed somehow (or only in its line endings, which the fingerprint does not
    // see). Only these are read back.
    let to_read: Vec<(&Sent, Uid)> = sent
        .iter()
        .filter_map(|s| dst_of(s).map(|u| (s, u)))
        .filter(|(s, u)| {
            s.print.header_8bit
                || s.print.has_nul
                || by_position.contains(&s.src_uid)
                || by_uid.get(u).is_some_and(|m| m.size != s.len)
        })
        .collect();
    let unread: Vec<Uid> = to_read
        .iter()
        .map(|(_, u)| *u)
        .filter(|u| !dst_prints.contains_key(u))
        .collect();
    if !unread.is_empty() {
        dst_prints.extend(dst.fingerprints(&unread).await?);
    }
    for (s, u) in to_read {
        let Some(p) = dst_prints.get(&u) else {
            continue;
        };
        if p.fingerprint != s.print.fingerprint {
            let how = if p.masked == s.print.masked {
                rep.altered.headers_altered += 1;
                if p.header_8bit || s.print.header_8bit {
                    "replaced the 8-bit bytes of its header".to_string()
                } else {
                    "wrote its own bookkeeping fields (Status:, X-UID:, ...) into its header"
                        .to_string()
                }
            } else {
                rep.altered.content_altered += 1;
                let held = by_uid.get(&u).map_or(0, |m| m.size);
                if p.fingerprint == s.print.with_final_newline {
                    format!(
                        "added a line ending at its end ({} bytes sent, {held} held)",
                        s.len
                    )
                } else if s.print.has_nul && !p.has_nul && held == s.len {
                    "replaced the message's NUL bytes (its size is as sent)".to_string()
                } else {
                    format!("changed its content ({} bytes sent, {held} held)", s.len)
                }
            };
            note(
                rep,
                s.src_uid,
                format!(
                    "the destination {how}: the copy (UID {}) differs from the source",
                    u.0
                ),
            );
        }
    }
    Ok(out)
}
