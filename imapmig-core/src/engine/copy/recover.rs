//! Finding copies again by content: after a crash mid-batch (the pending rows), after a
//! UIDVALIDITY change on either side, and before copying into a destination folder the sync
//! state knows nothing of. Matching is one to one, so two identical source messages are two
//! copies; it never merges distinct source UIDs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::Ctx;
use crate::body::BodyEvent;
use crate::engine::{EngineError, FolderReport, Side};
use crate::fingerprint::{match_by_fingerprint, match_by_print, ContentPrint};
use crate::mapping::PlanEntry;
use crate::model::{Flags, MessageMeta, Uid, UidValidity};
use crate::sink::{AnySink, MigrationSink};
use crate::source::{AccessError, AnySource, MigrationSource};
use crate::state::{CopiedRecord, FolderRecord, PendingRecord};

/// Bodies fetched per pipelined round when fingerprinting whole folders.
const FINGERPRINT_BATCH: usize = 256;

/// Fingerprints of source messages, streamed (no body held whole).
async fn source_fingerprints(
    source: &mut AnySource,
    uids: &[Uid],
) -> Result<HashMap<Uid, ContentPrint>, AccessError> {
    let mut out = HashMap::with_capacity(uids.len());
    for chunk in uids.chunks(FINGERPRINT_BATCH) {
        source.request_bodies(chunk).await?;
        while let Some(ev) = source.next_body().await? {
            if let BodyEvent::Body(mut b) = ev {
                let uid = b.uid;
                out.insert(uid, crate::fingerprint::fingerprint_body(&mut b).await?);
            }
        }
    }
    Ok(out)
}

/// After a crash: which pending messages did land on the destination?
pub(super) async fn resolve_pending(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    folder: &str,
    pending: &[PendingRecord],
    by_uid: &HashMap<Uid, &MessageMeta>,
    rep: &mut FolderReport,
) -> Result<(), EngineError> {
    let account = ctx.options.account_key.as_str();
    let state = ctx.state.as_ref();
    let on = |side: Side| EngineError::in_folder(side, folder);
    let floor = pending
        .iter()
        .map(|p| p.dst_floor)
        .min()
        .unwrap_or(1)
        .max(1);
    let claimed: HashSet<Uid> = state
        .copied(account, folder)?
        .into_iter()
        .filter_map(|r| r.dst_uid)
        .collect();
    let candidates: Vec<Uid> = dst
        .uids_from(floor)
        .await
        .map_err(on(Side::Destination))?
        .into_iter()
        .filter(|u| !claimed.contains(u))
        .collect();
    let src_uids: Vec<Uid> = pending
        .iter()
        .map(|p| p.src_uid)
        .filter(|u| by_uid.contains_key(u))
        .collect();
    let dst_fps = dst
        .fingerprints(&candidates)
        .await
        .map_err(on(Side::Destination))?;
    let src_fps = source_fingerprints(src, &src_uids)
        .await
        .map_err(on(Side::Source))?;
    let mut wanted: Vec<(Uid, ContentPrint)> = src_fps.into_iter().collect();
    wanted.sort_by_key(|(u, _)| *u);
    let matched = match_by_print(&wanted, &dst_fps);
    let fp_of: HashMap<Uid, [u8; 32]> = wanted.iter().map(|(u, p)| (*u, p.fingerprint)).collect();
    let records: Vec<CopiedRecord> = matched
        .iter()
        .filter_map(|(s, d)| {
            let meta = by_uid.get(s)?;
            Some(CopiedRecord {
                src_uid: *s,
                dst_uid: Some(*d),
                fingerprint: *fp_of.get(s)?,
                flags: meta.flags.clone(),
                size: meta.size,
            })
        })
        .collect();
    state.commit_copied(account, folder, &records)?;
    let found: HashSet<Uid> = records.iter().map(|r| r.src_uid).collect();
    let rest: Vec<Uid> = pending
        .iter()
        .map(|p| p.src_uid)
        .filter(|u| !found.contains(u))
        .collect();
    state.drop_pending(account, folder, &rest)?;
    rep.notes.push(format!(
        "an earlier run stopped mid-batch: {} message(s) were found on the destination, {} will be copied",
        records.len(),
        rest.len()
    ));
    Ok(())
}

/// The source folder's UIDVALIDITY changed: every UID we knew is void. Re-identify the copied
/// messages by fingerprint.
pub(super) async fn rematch_source(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    entry: &PlanEntry,
    record: &FolderRecord,
    new_validity: UidValidity,
    rep: &mut FolderReport,
) -> Result<(), EngineError> {
    let account = ctx.options.account_key.as_str();
    let folder = entry.source.name.as_str();
    let state = ctx.state.as_ref();
    let on = |side: Side| EngineError::in_folder(side, folder);
    let copied = state.copied(account, folder)?;
    let pending = state.pending(account, folder)?;
    // Messages of an interrupted batch may be on the destination without a record: find them
    // too, so that they are not copied twice.
    let mut extra: HashMap<Uid, ContentPrint> = HashMap::new();
    if !pending.is_empty() {
        let floor = pending
            .iter()
            .map(|p| p.dst_floor)
            .min()
            .unwrap_or(1)
            .max(1);
        let claimed: HashSet<Uid> = copied.iter().filter_map(|r| r.dst_uid).collect();
        let cands: Vec<Uid> = dst
            .uids_from(floor)
            .await
            .map_err(on(Side::Destination))?
            .into_iter()
            .filter(|u| !claimed.contains(u))
            .collect();
        extra = dst
            .fingerprints(&cands)
            .await
            .map_err(on(Side::Destination))?;
        let uids: Vec<Uid> = pending.iter().map(|p| p.src_uid).collect();
        state.drop_pending(account, folder, &uids)?;
    }
    let metas = src.messages().await.map_err(on(Side::Source))?;
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    let src_fps = source_fingerprints(src, &uids)
        .await
        .map_err(on(Side::Source))?;
    // Old records, oldest first, claim new source messages by fingerprint.
    let mut by_fp: HashMap<[u8; 32], VecDeque<&CopiedRecord>> = HashMap::new();
    for r in &copied {
        by_fp.entry(r.fingerprint).or_default().push_back(r);
    }
    let mut map = Vec::new();
    let mut leftovers = Vec::new();
    for m in &metas {
        let Some(fp) = src_fps.get(&m.uid) else {
            continue;
        };
        match by_fp.get_mut(&fp.fingerprint).and_then(VecDeque::pop_front) {
            Some(r) => map.push((r.src_uid, m.uid)),
            None => leftovers.push((m.uid, *fp)),
        }
    }
    let extra_matched = match_by_print(&leftovers, &extra);
    let meta_of: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();
    let fp_of: HashMap<Uid, [u8; 32]> =
        leftovers.iter().map(|(u, p)| (*u, p.fingerprint)).collect();
    state.remap_source(account, folder, new_validity, &map)?;
    let new_records: Vec<CopiedRecord> = extra_matched
        .iter()
        .filter_map(|(s, d)| {
            Some(CopiedRecord {
                src_uid: *s,
                dst_uid: Some(*d),
                fingerprint: *fp_of.get(s)?,
                flags: meta_of.get(s)?.flags.clone(),
                size: meta_of.get(s)?.size,
            })
        })
        .collect();
    state.commit_copied(account, folder, &new_records)?;
    rep.notes.push(format!(
        "the source folder's UIDVALIDITY changed ({} -> {}): {} copied message(s) recognised by content, {} no longer on the source",
        record.source_uidvalidity,
        new_validity,
        map.len() + new_records.len(),
        copied.len().saturating_sub(map.len())
    ));
    Ok(())
}

/// Before copying into a destination folder the state knows nothing of and that is not
/// empty: the destination is the truth. Finds which source messages are already there (by
/// content fingerprint, one to one, as crash recovery does) and records them as copied, so
/// that no state mishap (a lost state file, a server spelled differently) copies a message
/// twice. Their flags are recorded as unknown, so the pass brings them up to date.
///
/// Only messages that may match are read: where the destination tells exact RFC 822 sizes,
/// a source message is fingerprinted only if some destination message has its size, and the
/// other way round.
pub(super) async fn rematch_fresh(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    folder: &str,
    wanted: &[&MessageMeta],
    rep: &mut FolderReport,
) -> Result<(), EngineError> {
    let account = ctx.options.account_key.as_str();
    let on = |side: Side| EngineError::in_folder(side, folder);
    let started = Instant::now();
    // Sizes on the wire (IMAP RFC822.SIZE, POP3 LIST) count CRLF line endings as the
    // destination's do; a local file's length need not.
    let wire_sizes = matches!(src, AnySource::Imap(_) | AnySource::Pop3(_));
    let dst_sizes = match dst.sizes().await.map_err(on(Side::Destination))? {
        Some(sizes) if wire_sizes => Some(sizes),
        _ => None,
    };
    let (src_cands, dst_cands): (Vec<Uid>, Vec<Uid>) = match &dst_sizes {
        Some(sizes) => {
            let at_dst: HashSet<u64> = sizes.iter().map(|(_, s)| *s).collect();
            let at_src: HashSet<u64> = wanted.iter().map(|m| m.size).collect();
            (
                wanted
                    .iter()
                    .filter(|m| at_dst.contains(&m.size))
                    .map(|m| m.uid)
                    .collect(),
                sizes
                    .iter()
                    .filter(|(_, s)| at_src.contains(s))
                    .map(|(u, _)| *u)
                    .collect(),
            )
        }
        None => (
            wanted.iter().map(|m| m.uid).collect(),
            dst.uids_from(1).await.map_err(on(Side::Destination))?,
        ),
    };
    let held = dst_sizes.as_ref().map_or(dst_cands.len(), Vec::len);
    let mut src_fps: HashMap<Uid, ContentPrint> = HashMap::new();
    let mut dst_fps: HashMap<Uid, ContentPrint> = HashMap::new();
    let (mut src_read, mut dst_read) = (src_cands.len(), dst_cands.len());
    let mut matched: Vec<(Uid, Uid)> = Vec::new();
    if !src_cands.is_empty() && !dst_cands.is_empty() {
        dst_fps = dst
            .fingerprints(&dst_cands)
            .await
            .map_err(on(Side::Destination))?;
        src_fps = source_fingerprints(src, &src_cands)
            .await
            .map_err(on(Side::Source))?;
        matched = match_prints_in_order(&src_fps, &dst_fps);
    }
    // A copy whose bare newlines were made CRLF (by us for a destination that refuses them,
    // or by the destination itself) is larger than its source, at most twice: what the sizes
    // left unmatched gets a second look within that window.
    if let Some(sizes) = &dst_sizes {
        let (src_more, dst_more) = normalised_size_candidates(wanted, sizes, &matched);
        let src_more: Vec<Uid> = src_more
            .into_iter()
            .filter(|u| !src_fps.contains_key(u))
            .collect();
        let dst_more: Vec<Uid> = dst_more
            .into_iter()
            .filter(|u| !dst_fps.contains_key(u))
            .collect();
        if !src_more.is_empty() && !dst_more.is_empty() {
            src_read += src_more.len();
            dst_read += dst_more.len();
            dst_fps.extend(
                dst.fingerprints(&dst_more)
                    .await
                    .map_err(on(Side::Destination))?,
            );
            src_fps.extend(
                source_fingerprints(src, &src_more)
                    .await
                    .map_err(on(Side::Source))?,
            );
            matched = match_prints_in_order(&src_fps, &dst_fps);
        }
    }
    let sizes: HashMap<Uid, u64> = wanted.iter().map(|m| (m.uid, m.size)).collect();
    let found: Vec<CopiedRecord> = matched
        .into_iter()
        .map(|(src_uid, dst_uid)| CopiedRecord {
            src_uid,
            dst_uid: Some(dst_uid),
            fingerprint: src_fps
                .get(&src_uid)
                .map(|p| p.fingerprint)
                .unwrap_or_default(),
            // Unknown: the pass stores the source's flags on them.
            flags: Flags::new(),
            size: sizes.get(&src_uid).copied().unwrap_or(0),
        })
        .collect();
    if !found.is_empty() {
        ctx.state.commit_copied(account, folder, &found)?;
    }
    rep.notes.push(format!(
        "no sync state for this folder, and the destination folder holds {held} message(s): {} of them are copies of source messages (matched by content, {} read on the source, {} on the destination, in {:.1} s) and were not copied again",
        found.len(),
        src_read,
        dst_read,
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Matches source prints (lowest UID first) to destination prints, one to one.
fn match_prints_in_order(
    src: &HashMap<Uid, ContentPrint>,
    dst: &HashMap<Uid, ContentPrint>,
) -> Vec<(Uid, Uid)> {
    let mut ordered: Vec<(Uid, ContentPrint)> = src.iter().map(|(u, p)| (*u, *p)).collect();
    ordered.sort_by_key(|(u, _)| *u);
    match_by_print(&ordered, dst)
}

/// Among the messages `matched` left over on each side: the source messages for which some
/// destination message is larger but at most twice as large, and those destination messages
/// (what turning bare LFs into CRLF can make of a message).
fn normalised_size_candidates(
    wanted: &[&MessageMeta],
    dst_sizes: &[(Uid, u64)],
    matched: &[(Uid, Uid)],
) -> (Vec<Uid>, Vec<Uid>) {
    let taken_src: HashSet<Uid> = matched.iter().map(|(s, _)| *s).collect();
    let taken_dst: HashSet<Uid> = matched.iter().map(|(_, d)| *d).collect();
    let left_src: Vec<(Uid, u64)> = wanted
        .iter()
        .filter(|m| !taken_src.contains(&m.uid))
        .map(|m| (m.uid, m.size))
        .collect();
    let left_dst: Vec<(Uid, u64)> = dst_sizes
        .iter()
        .filter(|(u, _)| !taken_dst.contains(u))
        .copied()
        .collect();
    let mut dsizes: Vec<u64> = left_dst.iter().map(|(_, s)| *s).collect();
    dsizes.sort_unstable();
    // Some size in (lo, hi] among `sorted`?
    let any_in = |sorted: &[u64], lo: u64, hi: u64| {
        let i = sorted.partition_point(|&x| x <= lo);
        sorted.get(i).is_some_and(|&x| x <= hi)
    };
    let src_more: Vec<(Uid, u64)> = left_src
        .into_iter()
        .filter(|(_, s)| any_in(&dsizes, *s, s.saturating_mul(2)))
        .collect();
    let mut ssizes: Vec<u64> = src_more.iter().map(|(_, s)| *s).collect();
    ssizes.sort_unstable();
    let dst_more: Vec<Uid> = left_dst
        .into_iter()
        .filter(|(_, d)| {
            // A source size s with s < d <= 2s: s in [ceil(d/2), d).
            let lo = d.div_ceil(2).saturating_sub(1);
            any_in(&ssizes, lo, d.saturating_sub(1))
        })
        .map(|(u, _)| u)
        .collect();
    (src_more.into_iter().map(|(u, _)| u).collect(), dst_more)
}

/// The destination folder's UIDVALIDITY changed: find our copies again by fingerprint; what
/// is gone will be copied again.
pub(super) async fn rematch_dest(
    ctx: &Ctx,
    dst: &mut AnySink,
    entry: &PlanEntry,
    new_validity: UidValidity,
    rep: &mut FolderReport,
) -> Result<(), EngineError> {
    let account = ctx.options.account_key.as_str();
    let folder = entry.source.name.as_str();
    let state = ctx.state.as_ref();
    let copied = state.copied(account, folder)?;
    let on_dst = |source: AccessError| EngineError::Folder {
        side: Side::Destination,
        folder: folder.to_string(),
        source,
    };
    let uids = dst.uids_from(1).await.map_err(on_dst)?;
    // Only the fingerprints are stored: a copy the destination rewrote is not found here.
    let dst_fps: HashMap<Uid, [u8; 32]> = dst
        .fingerprints(&uids)
        .await
        .map_err(on_dst)?
        .into_iter()
        .map(|(u, p)| (u, p.fingerprint))
        .collect();
    let wanted: Vec<(Uid, [u8; 32])> = copied.iter().map(|r| (r.src_uid, r.fingerprint)).collect();
    let map = match_by_fingerprint(&wanted, &dst_fps);
    state.remap_dest(account, folder, new_validity, &map)?;
    rep.notes.push(format!(
        "the destination folder's UIDVALIDITY changed: {} of {} copied message(s) found again, the rest will be copied again",
        map.len(),
        copied.len()
    ));
    Ok(())
}
