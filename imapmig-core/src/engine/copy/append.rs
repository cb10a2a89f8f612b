//! The append pipeline: a folder's new messages streamed from the source into the
//! destination, several in flight, in batches recorded as pending before any of their bytes
//! can reach the destination; and what is done with the messages a server refuses.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::diff::flags_for_destination;
use super::Ctx;
use crate::body::{BodyEvent, BodyOrigin};
use crate::engine::line_endings::{BareLfCounter, CrlfReader};
use crate::engine::readback::{self, Sent};
use crate::engine::{
    Anomaly, EngineError, ErrorKind, FolderReport, ProgressEvent, Side, SkippedMessage,
};
use crate::fingerprint::Fingerprinter;
use crate::model::{Flags, MessageMeta, Uid};
use crate::sink::{AnySink, MigrationSink, OpenedTarget};
use crate::source::{AnySource, MigrationSource};
use crate::state::{CopiedRecord, PendingRecord};

/// The passes over a folder's messages: small ones in groups first; those of a refused group
/// one by one; last, those refused for bare newlines, with CRLF line endings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Grouped,
    Single,
    Normalised,
}

/// An append sent and not yet completed.
struct InFlight {
    ticket: crate::sink::AppendTicket,
    uid: Uid,
    fp: Fingerprinter,
    len: u64,
    /// Bare LFs in what was sent (0 when sent normalised).
    bare_lfs: u64,
    /// The flags sent with it.
    flags: Flags,
}

/// Copies `todo` (in that order) into the open destination folder and records each copy.
/// Every batch is recorded as pending before it is sent and committed as copied once the
/// destination has answered, so that a crash at any instant leaves nothing copied twice
/// (see [`crate::state::StateStore`]). Returns how many copies are not tied to a destination
/// UID (no UIDPLUS, and not found by the read-back).
#[allow(clippy::too_many_arguments)] // one folder's pass: the sessions, the folder, its messages
pub(super) async fn copy_messages<'m>(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    folder: &str,
    dsel: &OpenedTarget,
    todo: Vec<&'m MessageMeta>,
    by_uid: &HashMap<Uid, &'m MessageMeta>,
    dropped_keywords: &mut BTreeSet<String>,
    rep: &mut FolderReport,
) -> Result<u64, EngineError> {
    let account = ctx.options.account_key.as_str();
    let state = ctx.state.as_ref();
    let src_name = src.describe();
    let on = |side: Side| EngineError::in_folder(side, folder);
    // Copies left without a destination UID (no UIDPLUS, and not found by the read-back).
    let mut untied = 0u64;
    // A lower bound for the UID of anything we append next: UIDs only grow.
    let mut floor = dsel.uid_next.unwrap_or(1).max(1);
    let batch = ctx.options.batch.max(1);
    // Small messages go in groups (MULTIAPPEND) on the first pass; a group the destination
    // refuses stored nothing, and its messages go again one by one on a second pass, so one
    // bad message refuses only itself.
    // A message refused while it had bare newlines (Cyrus: "NO Message contains bare
    // newlines") goes once more on a last pass, with CRLF line endings, unless the options keep
    // the refusal: the bare LFs counted while it was sent tell the new length up front.
    let mut work: Vec<&MessageMeta> = todo;
    let mut to_normalise: Vec<&MessageMeta> = Vec::new();
    let mut bare_lfs: HashMap<Uid, u64> = HashMap::new();
    for pass in [Pass::Grouped, Pass::Single, Pass::Normalised] {
        let grouped = pass == Pass::Grouped;
        if pass == Pass::Normalised {
            work = std::mem::take(&mut to_normalise);
        }
        if work.is_empty() {
            continue;
        }
        dst.set_grouping(grouped);
        let mut retry_single: Vec<&MessageMeta> = Vec::new();
        let chunks: Vec<&[&MessageMeta]> = work.chunks(batch).collect();
        // Records a batch as pending (durably, before anything of it can reach the destination)
        // and asks the source for its bodies.
        let start_batch = |chunk: &[&MessageMeta], floor: u32| -> Result<Vec<Uid>, EngineError> {
            let pend: Vec<PendingRecord> = chunk
                .iter()
                .map(|m| PendingRecord {
                    src_uid: m.uid,
                    dst_floor: floor,
                })
                .collect();
            state.add_pending(account, folder, &pend)?;
            Ok(chunk.iter().map(|m| m.uid).collect())
        };
        let mut next_uids = match chunks.first() {
            Some(first) => {
                let uids = start_batch(first, floor)?;
                src.request_bodies(&uids).await.map_err(on(Side::Source))?;
                Some(uids)
            }
            None => None,
        };
        for i in 0..chunks.len() {
            let Some(uids) = next_uids.take() else {
                break;
            };
            if ctx.cancel.is_cancelled() {
                // Nothing of this batch was sent: it is no longer pending.
                while src.next_body().await.map_err(on(Side::Source))?.is_some() {}
                state.drop_pending(account, folder, &uids)?;
                return Err(EngineError::Cancelled);
            }
            let mut in_flight: Vec<InFlight> = Vec::new();
            let mut gone: Vec<Uid> = Vec::new();
            // Only what this round asked for is copied, each message once: a body for any
            // other UID (or a second one for the same UID) is a protocol anomaly, reported.
            let mut awaited: HashSet<Uid> = uids.iter().copied().collect();
            let mut missing: Vec<Uid> = Vec::new();
            while let Some(ev) = src.next_body().await.map_err(on(Side::Source))? {
                match ev {
                    BodyEvent::Body(body) if !awaited.contains(&body.uid) => {
                        let detail = format!(
                            "the source sent a body ({} bytes) for UID {}, which was not asked for or was already sent; it was not copied",
                            body.len, body.uid.0
                        );
                        anomaly(rep, Some(body.uid), detail);
                    }
                    BodyEvent::Body(mut body) => {
                        let uid = body.uid;
                        awaited.remove(&uid);
                        let Some(meta) = by_uid.get(&uid) else {
                            continue;
                        };
                        let flags = flags_for_destination(&meta.flags, dsel, dropped_keywords);
                        let mut fp = Fingerprinter::new();
                        let mut lfs = BareLfCounter::default();
                        let len = body.len;
                        let extra = match pass {
                            Pass::Normalised => bare_lfs.get(&uid).copied(),
                            _ => None,
                        };
                        let sent = match extra {
                            Some(extra) => {
                                // The reader names where the body comes from: its file, or
                                // the source server (a broken connection).
                                let origin = body.origin().cloned().unwrap_or_else(|| BodyOrigin {
                                    name: src_name.clone(),
                                    kind: ErrorKind::Connection,
                                });
                                let mut crlf = crate::body::FetchedBody::from_reader(
                                    uid,
                                    len + extra,
                                    CrlfReader::new(&mut body),
                                    origin,
                                );
                                dst.append(
                                    &flags,
                                    meta.internal_date.as_ref(),
                                    &mut crlf,
                                    &mut |c: &[u8]| fp.update(c),
                                )
                                .await
                            }
                            None => {
                                dst.append(
                                    &flags,
                                    meta.internal_date.as_ref(),
                                    &mut body,
                                    &mut |c: &[u8]| {
                                        fp.update(c);
                                        lfs.update(c);
                                    },
                                )
                                .await
                            }
                        };
                        match sent {
                            Ok(ticket) => in_flight.push(InFlight {
                                ticket,
                                uid,
                                fp,
                                len: len + extra.unwrap_or(0),
                                bare_lfs: lfs.count(),
                                flags,
                            }),
                            Err(e) => match e.refusal() {
                                Some(_)
                                    if lfs.count() > 0
                                        && pass != Pass::Normalised
                                        && !ctx.options.strict_line_endings =>
                                {
                                    to_normalise.push(meta);
                                    bare_lfs.insert(uid, lfs.count());
                                    gone.push(uid);
                                }
                                Some(words) => {
                                    // Refused before the body was sent (synchronising literal).
                                    refuse(ctx, rep, folder, uid, len, words, Some(e.kind()));
                                    gone.push(uid);
                                }
                                // A body the source stopped sending mid-way (a cut
                                // connection) fails the append: the source's failure.
                                None if body.source_failed() => return Err(on(Side::Source)(e)),
                                None => return Err(on(Side::Destination)(e)),
                            },
                        }
                    }
                    BodyEvent::Missing(uid) => {
                        awaited.remove(&uid);
                        missing.push(uid);
                        gone.push(uid);
                    }
                    BodyEvent::Withheld { uid, detail } => {
                        awaited.remove(&uid);
                        let size = by_uid.get(&uid).map(|m| m.size).unwrap_or(0);
                        anomaly(rep, Some(uid), detail.clone());
                        refuse(ctx, rep, folder, uid, size, detail, Some(ErrorKind::Server));
                        gone.push(uid);
                    }
                    BodyEvent::Unasked { uid, detail } => anomaly(rep, Some(uid), detail),
                    BodyEvent::Failed(uid, status) => {
                        awaited.remove(&uid);
                        let size = by_uid.get(&uid).map(|m| m.size).unwrap_or(0);
                        refuse(
                            ctx,
                            rep,
                            folder,
                            uid,
                            size,
                            format!("the source would not send it: {}", status.describe()),
                            Some(ErrorKind::Server),
                        );
                        gone.push(uid);
                    }
                }
                if ctx.cancel.is_cancelled() {
                    // Stop at a message boundary: what is in flight is completed and recorded.
                    break;
                }
            }
            // A message whose body never came is either expunged meanwhile (vanished) or one
            // the server would not send: asking tells them apart.
            if !missing.is_empty() && !ctx.cancel.is_cancelled() {
                let present = src
                    .still_present(&missing)
                    .await
                    .map_err(on(Side::Source))?;
                for uid in &missing {
                    if present.contains(uid) {
                        let size = by_uid.get(uid).map(|m| m.size).unwrap_or(0);
                        let detail = "the source answered the FETCH without this message, though the folder still holds it".to_string();
                        anomaly(rep, Some(*uid), detail.clone());
                        refuse(
                            ctx,
                            rep,
                            folder,
                            *uid,
                            size,
                            detail,
                            Some(ErrorKind::Server),
                        );
                    } else {
                        rep.vanished += 1;
                    }
                }
            }
            // Start the next batch before waiting for the destination, so the source streams it
            // while the destination finishes this one. The floor is still a valid lower bound.
            if !ctx.cancel.is_cancelled() {
                if let Some(next) = chunks.get(i + 1) {
                    let uids = start_batch(next, floor)?;
                    src.request_bodies(&uids).await.map_err(on(Side::Source))?;
                    next_uids = Some(uids);
                }
            }
            let mut done = Vec::with_capacity(in_flight.len());
            let mut sent: Vec<Sent> = Vec::with_capacity(in_flight.len());
            let batch_floor = floor;
            for InFlight {
                ticket,
                uid,
                fp,
                len,
                bare_lfs: lfs,
                flags: sent_flags,
            } in in_flight
            {
                match dst.finish_append(ticket).await {
                    Ok(dst_uid) => {
                        if let Some(u) = dst_uid {
                            floor = floor.max(u.0.saturating_add(1));
                        }
                        let meta = by_uid.get(&uid);
                        let flags = meta.map(|m| m.flags.clone()).unwrap_or_default();
                        let print = fp.finish_print();
                        sent.push(Sent {
                            src_uid: uid,
                            dst_uid,
                            flags: sent_flags,
                            date: meta.and_then(|m| m.internal_date),
                            len,
                            print,
                        });
                        done.push(CopiedRecord {
                            src_uid: uid,
                            dst_uid,
                            fingerprint: print.fingerprint,
                            flags,
                            size: len,
                        });
                        rep.copied += 1;
                        rep.bytes += len;
                        if pass == Pass::Normalised {
                            rep.altered.line_endings_normalised += 1;
                        }
                        ctx.emit(ProgressEvent::MessageCopied {
                            folder: folder.to_string(),
                            uid: uid.0,
                            bytes: len,
                        });
                    }
                    Err(e) if e.group_refused() && grouped => {
                        // Nothing of the group was stored: send this one again on its own.
                        if let Some(meta) = by_uid.get(&uid) {
                            retry_single.push(meta);
                        }
                        gone.push(uid);
                    }
                    Err(e) => match e.refusal() {
                        Some(_)
                            if lfs > 0
                                && pass != Pass::Normalised
                                && !ctx.options.strict_line_endings =>
                        {
                            // Refused while it had bare newlines: once more with CRLF.
                            if let Some(meta) = by_uid.get(&uid) {
                                to_normalise.push(meta);
                                bare_lfs.insert(uid, lfs);
                            }
                            gone.push(uid);
                        }
                        Some(words) => {
                            refuse(ctx, rep, folder, uid, len, words, Some(e.kind()));
                            gone.push(uid);
                        }
                        None => {
                            // Whatever landed is found again by fingerprint on the next run.
                            state.commit_copied(account, folder, &done)?;
                            return Err(on(Side::Destination)(e));
                        }
                    },
                }
            }
            // What did the destination make of them? (Flags repaired, dates and headers it
            // changed reported; without UIDPLUS the copies are tied to their UIDs here.)
            match readback::check(dst, &sent, batch_floor, rep).await {
                Ok(checked) => {
                    floor = floor.max(checked.floor);
                    for r in done.iter_mut().filter(|r| r.dst_uid.is_none()) {
                        r.dst_uid = checked.found.get(&r.src_uid).copied();
                        untied += u64::from(r.dst_uid.is_none());
                    }
                }
                Err(e) => {
                    // The copies are there: recorded before the error goes up.
                    state.commit_copied(account, folder, &done)?;
                    return Err(on(Side::Destination)(e));
                }
            }
            state.commit_copied(account, folder, &done)?;
            // Refused and vanished messages are no longer pending; uncopied ones in this chunk
            // (after a cancel) are dropped from pending too: nothing of theirs was sent.
            let committed: HashSet<Uid> = done.iter().map(|r| r.src_uid).collect();
            let mut unsent: Vec<Uid> = uids
                .iter()
                .copied()
                .filter(|u| !committed.contains(u) && !gone.contains(u))
                .collect();
            unsent.extend(gone);
            if !unsent.is_empty() {
                state.drop_pending(account, folder, &unsent)?;
            }
            if ctx.cancel.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
        }
        work = retry_single;
    }
    Ok(untied)
}

/// Reports a message that was not copied because a server refused it (`kind` says what the
/// refusal was; a full destination fails the account).
fn refuse(
    ctx: &Ctx,
    rep: &mut FolderReport,
    folder: &str,
    uid: Uid,
    size: u64,
    reason: String,
    kind: Option<ErrorKind>,
) {
    ctx.emit(ProgressEvent::MessageSkipped {
        folder: folder.to_string(),
        uid: uid.0,
        reason: reason.clone(),
    });
    rep.refused.push(SkippedMessage {
        uid: uid.0,
        size,
        reason,
        kind,
    });
}

/// Notes odd data the source sent for this folder.
pub(super) fn anomaly(rep: &mut FolderReport, uid: Option<Uid>, detail: String) {
    rep.anomalies.push(Anomaly {
        folder: Some(rep.source.clone()),
        uid: uid.map(|u| u.0),
        side: Side::Source,
        detail,
    });
}
