//! One folder's pass: open both sides, reconcile the sync state with what they say
//! (recovery, UIDVALIDITY changes, a destination the state does not know), decide what is new,
//! update flags, copy, and record how far the pass got.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::diff::{self, FlagUpdate, FolderView};
use super::{append, now, planned_elsewhere, recover, Ctx};
use crate::engine::{EngineError, FolderReport, ProgressEvent, Side};
use crate::mapping::PlanEntry;
use crate::model::{MessageMeta, Uid};
use crate::sink::{AnySink, MigrationSink};
use crate::source::{AnySource, MigrationSource};
use crate::state::{CopiedRecord, FolderRecord};

/// Copies one planned folder: reconciles the sync state with both sides, carries out what
/// [`diff::diff`] decides, and records how far the pass got.
pub(super) async fn copy_folder(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    entry: &PlanEntry,
) -> Result<FolderReport, EngineError> {
    let started = Instant::now();
    let account = ctx.options.account_key.as_str();
    let folder = entry.source.name.as_str();
    let state = ctx.state.as_ref();
    let on = |side: Side| EngineError::in_folder(side, folder);
    let mut rep = FolderReport {
        source: entry.source.name.clone(),
        target: entry.target.clone(),
        ..FolderReport::default()
    };
    let ssel = src
        .open_folder(&entry.source)
        .await
        .map_err(on(Side::Source))?;
    let src_validity = ssel.uid_validity;
    let dsel = dst
        .open_folder(&entry.target_raw)
        .await
        .map_err(on(Side::Destination))?;
    let size_limit = match (ctx.options.filter.max_size, dsel.append_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let selection = ctx.options.filter.selection_key(size_limit);

    if let Some(planned) = planned_elsewhere(entry) {
        rep.notes.push(format!(
            "stays in {:?}, where earlier runs copied it, although the folder plan now puts it \
             in {planned:?}; to move it there, re-run with remap (copies it afresh into \
             {planned:?} and leaves these copies where they are)",
            entry.target
        ));
        rep.planned_target = Some(planned);
    }
    // Where did we leave this folder? The plan kept every copied folder where it was copied
    // (see `mapping`), unless remap asked to move it.
    let mut record = match state.folder(account, folder)? {
        Some(r) if r.dest_folder != entry.target && !ctx.options.plan.remap => {
            // Never copied afresh without being asked: that would store it twice.
            return Err(EngineError::Internal(format!(
                "the folder plan moved the folder from {:?} to {:?} without remap; nothing \
                 was copied",
                r.dest_folder, entry.target
            )));
        }
        Some(r) if r.dest_folder != entry.target => {
            rep.notes.push(format!(
                "moved from {:?} as remap asked: copied afresh into {:?}, where messages \
                 already there are matched by content; the copies in {:?} stay where they are",
                r.dest_folder, entry.target, r.dest_folder
            ));
            rep.remapped_from = Some(r.dest_folder);
            state.forget_folder(account, folder)?;
            None
        }
        Some(_) if !entry.exists => {
            // The destination folder was gone when the run began: what the state says was
            // copied into it is not there any more. Believe the destination.
            rep.notes.push(format!(
                "earlier runs copied this folder into {:?}, which the destination no longer \
                 had (deleted or renamed there): it was created again and the folder copied \
                 into it afresh",
                entry.target
            ));
            rep.recreated = true;
            state.forget_folder(account, folder)?;
            None
        }
        other => other,
    };
    // The state knows nothing of this folder (a first run, a lost or other state file, the
    // account keyed differently): whatever the destination folder holds may be earlier copies.
    let fresh = record.is_none();
    if record.is_none() {
        let r = FolderRecord {
            source_uidvalidity: src_validity,
            dest_folder: entry.target.clone(),
            dest_uidvalidity: dsel.uid_validity,
            highest_modseq: None,
            updated_at: now(),
            selection: None,
        };
        state.put_folder(account, folder, &r)?;
        record = Some(r);
    }
    let Some(mut record) = record else {
        return Err(EngineError::Internal("folder record vanished".into()));
    };
    // A HIGHESTMODSEQ recorded under another selection (a wider date range, a larger size
    // limit) does not say which messages this pass wants: read the folder in full.
    if record.selection.as_deref() != Some(selection.as_str()) {
        record.highest_modseq = None;
    }

    if record.source_uidvalidity != src_validity {
        recover::rematch_source(ctx, src, dst, entry, &record, src_validity, &mut rep).await?;
        record.source_uidvalidity = src_validity;
        record.highest_modseq = None;
    }
    if let (Some(old), Some(new)) = (record.dest_uidvalidity, dsel.uid_validity) {
        if old != new {
            recover::rematch_dest(ctx, dst, entry, new, &mut rep).await?;
            record.dest_uidvalidity = Some(new);
            // Read the whole folder this time: the re-match may have changed what is known.
            record.highest_modseq = None;
        }
    }

    let pending = state.pending(account, folder)?;
    // Nothing changed since the last complete pass: CONDSTORE's HIGHESTMODSEQ moves on every
    // new message, expunge and flag change, so an equal value means there is nothing to do.
    if pending.is_empty()
        && ssel.highest_modseq.is_some()
        && record.highest_modseq == ssel.highest_modseq
    {
        rep.unchanged = true;
        rep.already_there = state.copied_count(account, folder)?;
        rep.found = rep.already_there;
        rep.seconds = started.elapsed().as_secs_f64();
        return Ok(rep);
    }

    // After a complete pass, and with nothing pending, only what changed since needs reading:
    // every message then was copied (or skipped for good: too large, outside the dates), and
    // a message added or re-flagged since has a higher MODSEQ. A large folder with a little
    // new mail then costs a little metadata, not a line per message.
    let since = match (record.highest_modseq, ssel.highest_modseq) {
        (Some(old), Some(_)) if pending.is_empty() => Some(old),
        _ => None,
    };
    let changed = match since {
        Some(m) => src
            .messages_changed_since(m)
            .await
            .map_err(on(Side::Source))?,
        None => None,
    };
    let delta = changed.is_some();
    let metas = match changed {
        Some(metas) => metas,
        None => src.messages().await.map_err(on(Side::Source))?,
    };
    take_source_notes(src, &mut rep);
    rep.listed = metas.len() as u64;
    rep.listed_all = !delta;
    let by_uid: HashMap<Uid, &MessageMeta> = metas.iter().map(|m| (m.uid, m)).collect();

    if !pending.is_empty() {
        recover::resolve_pending(ctx, src, dst, folder, &pending, &by_uid, &mut rep).await?;
    }

    let selected: Option<HashSet<Uid>> = match ctx.options.filter.date_range() {
        Some(range) => Some(src.select_dates(&range).await.map_err(on(Side::Source))?),
        None => None,
    };

    if fresh && dsel.messages > 0 {
        let wanted: Vec<&MessageMeta> = metas
            .iter()
            .filter(|m| selected.as_ref().is_none_or(|s| s.contains(&m.uid)))
            .collect();
        recover::rematch_fresh(ctx, src, dst, folder, &wanted, &mut rep).await?;
    }
    let copied: HashMap<Uid, CopiedRecord> = state
        .copied(account, folder)?
        .into_iter()
        .map(|r| (r.src_uid, r))
        .collect();
    let plan = diff::diff(&FolderView {
        listed: &metas,
        delta,
        in_dates: selected.as_ref(),
        size_limit,
        copied: &copied,
        target: &dsel,
    });
    rep.skipped_by_filter += plan.outside_dates.len() as u64;
    rep.found += plan.found();
    rep.already_there += plan.already_there_count();
    for skipped in plan.too_large {
        ctx.emit(ProgressEvent::MessageSkipped {
            folder: folder.to_string(),
            uid: skipped.uid,
            reason: skipped.reason.clone(),
        });
        rep.too_large.push(skipped);
    }
    let mut dropped_keywords = plan.dropped_keywords;
    for FlagUpdate {
        flags,
        dst_uids,
        recorded,
    } in plan.flag_updates
    {
        dst.store_flags(&dst_uids, &flags)
            .await
            .map_err(on(Side::Destination))?;
        rep.flags_updated += recorded.len() as u64;
        state.update_flags(account, folder, &recorded, None)?;
    }
    let todo = plan.to_copy;

    ctx.emit(ProgressEvent::FolderStarted {
        folder: folder.to_string(),
        to_copy: todo.len() as u64,
        bytes: todo.iter().map(|m| m.size).sum(),
    });

    let untied = append::copy_messages(
        ctx,
        src,
        dst,
        folder,
        &dsel,
        todo,
        &by_uid,
        &mut dropped_keywords,
        &mut rep,
    )
    .await?;

    take_source_notes(src, &mut rep);
    take_alerts(src, dst, &mut rep.notes);
    if rep.altered.line_endings_normalised > 0 {
        rep.notes.push(format!(
            "the destination refused {} message(s) for bare newlines (LF without CR); they were \
             sent again with CRLF line endings, otherwise unchanged (line endings normalised)",
            rep.altered.line_endings_normalised
        ));
    }
    rep.dropped_keywords = dropped_keywords.into_iter().collect();
    rep.dropped_keywords.sort();
    if !rep.dropped_keywords.is_empty() {
        rep.notes.push(format!(
            "the destination folder does not accept the keyword(s) {}; they were left off",
            rep.dropped_keywords.join(", ")
        ));
    }
    if untied > 0 {
        rep.notes.push(format!(
            "the destination lacks UIDPLUS and {untied} copie(s) could not be found again: they are not tied to destination UIDs, so later flag changes are not carried over to them"
        ));
    }
    // Remember how far we got: the next run can skip the folder if nothing changes.
    record.highest_modseq = if rep.refused.is_empty() {
        ssel.highest_modseq
    } else {
        None
    };
    record.selection = Some(selection);
    record.dest_uidvalidity = dst.open_validity().or(dsel.uid_validity);
    record.updated_at = now();
    state.put_folder(account, folder, &record)?;
    rep.seconds = started.elapsed().as_secs_f64();
    Ok(rep)
}

/// Moves into the folder's report what the source passed over (local entries) and the odd
/// data it worked around since it was last asked.
fn take_source_notes(src: &mut AnySource, rep: &mut FolderReport) {
    rep.not_imported.extend(src.take_skipped());
    for a in src.take_anomalies() {
        append::anomaly(rep, a.uid, a.detail);
    }
}

/// Notes what either server said must reach the user (`[ALERT]`), naming the side.
pub(super) fn take_alerts(src: &mut AnySource, dst: &mut AnySink, notes: &mut Vec<String>) {
    for a in src.take_alerts() {
        notes.push(format!("the source server says: {a}"));
    }
    for a in dst.take_alerts() {
        notes.push(format!("the destination server says: {a}"));
    }
}
