//! Copying folders: workers, retries, the per-folder pass, crash recovery by fingerprint.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::line_endings::{BareLfCounter, CrlfReader};
use super::readback::{self, Sent};
use super::{
    Anomaly, EngineError, ErrorKind, FolderFailure, FolderReport, MigrationOptions,
    MigrationReport, ProgressEvent, ProgressSink, Side, SkippedMessage,
};
use crate::body::BodyEvent;
use crate::fingerprint::{match_by_fingerprint, match_by_print, ContentPrint, Fingerprinter};
use crate::imap::is_sendable_keyword;
use crate::mapping::{EarlierTargets, FolderPlan, PlanEntry, Reason};
use crate::model::{Flags, MessageMeta, Uid, UidValidity};
use crate::sink::{AnySink, MigrationSink, OpenedTarget, SinkSpec};
use crate::source::{AccessError, AnySource, MigrationSource, SourceSpec};
use crate::state::{CopiedRecord, FolderRecord, PendingRecord, StateStore};

/// Bodies fetched per pipelined round when fingerprinting whole folders.
const FINGERPRINT_BATCH: usize = 256;

struct Ctx {
    source: SourceSpec,
    destination: SinkSpec,
    options: MigrationOptions,
    state: Arc<dyn StateStore>,
    progress: Option<ProgressSink>,
    cancel: CancellationToken,
}

impl Ctx {
    fn emit(&self, ev: ProgressEvent) {
        if let Some(p) = &self.progress {
            p(&ev);
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub(super) async fn run(
    source: &SourceSpec,
    destination: &SinkSpec,
    options: &MigrationOptions,
    state: Arc<dyn StateStore>,
    progress: Option<ProgressSink>,
    cancel: CancellationToken,
) -> Result<MigrationReport, EngineError> {
    let started = Instant::now();
    let ctx = Arc::new(Ctx {
        source: source.clone(),
        destination: destination.clone(),
        options: options.clone(),
        state,
        progress,
        cancel,
    });
    let (plan, counts, mut src, mut dst) = plan_retrying(&ctx).await?;
    ctx.emit(ProgressEvent::Planned {
        folders: plan.entries.len(),
    });
    let mut report = MigrationReport {
        plan: plan.render(),
        plan_notes: plan.notes.clone(),
        dry_run: options.dry_run,
        not_imported: src.take_skipped(),
        anomalies: src
            .take_anomalies()
            .into_iter()
            .map(|a| Anomaly {
                folder: None,
                uid: a.uid.map(|u| u.0),
                side: Side::Source,
                detail: a.detail,
            })
            .collect(),
        ..MigrationReport::default()
    };
    if options.dry_run {
        for entry in &plan.entries {
            match src.open_folder(&entry.source).await {
                Ok(opened) => report.folders.push(FolderReport {
                    source: entry.source.name.clone(),
                    target: entry.target.clone(),
                    found: u64::from(opened.messages),
                    not_imported: src.take_skipped(),
                    planned_target: planned_elsewhere(entry),
                    ..FolderReport::default()
                }),
                Err(source) => report.failed_folders.push(FolderFailure::of(
                    &entry.source.name,
                    &EngineError::Folder {
                        side: Side::Source,
                        folder: entry.source.name.clone(),
                        source,
                    },
                )),
            }
        }
        src.close().await;
        dst.close().await;
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    // Parents before children, so servers that do not create parents implicitly are served.
    // A folder the destination will not create fails alone; every other folder goes on.
    let mut uncreatable: HashMap<String, FolderFailure> = HashMap::new();
    let mut to_create: Vec<&PlanEntry> = plan.entries.iter().filter(|e| !e.exists).collect();
    to_create.sort_by_key(|e| e.target.len());
    for e in to_create {
        if uncreatable.contains_key(&e.target_raw) {
            continue;
        }
        if let Err(source) = dst.create_folder(&e.target_raw, e.special_use).await {
            let err = EngineError::Folder {
                side: Side::Destination,
                folder: e.source.name.clone(),
                source,
            };
            let mut failure = FolderFailure::of(&e.source.name, &err);
            failure.message = format!(
                "the destination would not create {:?}: {}",
                e.target,
                err.access().map(ToString::to_string).unwrap_or_default()
            );
            uncreatable.insert(e.target_raw.clone(), failure);
        }
    }

    // Largest folders first: a big folder started last would run alone at the end while the
    // other connections idle. (Reports keep the plan's order.)
    let mut outcomes: BTreeMap<usize, Outcome> = BTreeMap::new();
    let mut order: Vec<(usize, PlanEntry)> = Vec::new();
    for (idx, e) in plan.entries.iter().enumerate() {
        match uncreatable.get(&e.target_raw) {
            Some(f) => {
                let mut f = f.clone();
                f.folder = e.source.name.clone();
                outcomes.insert(idx, Outcome::Failed(f));
            }
            None => order.push((idx, e.clone())),
        }
    }
    order.sort_by_key(|(_, e)| std::cmp::Reverse(counts.get(&e.source.raw).copied().unwrap_or(0)));
    let todo = order.len();
    let pool = Arc::new(Pool {
        queue: Mutex::new(order.into()),
        active: AtomicUsize::new(0),
        down: Mutex::new(None),
    });
    let workers = if light_pass(&ctx, &plan.entries, &counts)? {
        1
    } else {
        ctx.options.connections.clamp(1, todo.max(1))
    };
    let mut first = Some((src, dst));
    // Workers that leave when a server refuses them more connections hand their folder back;
    // whatever is still queued when the pool has emptied gets a worker of its own, which never
    // leaves, so no folder is left behind unaccounted for.
    let mut round_workers = workers;
    loop {
        pool.active.store(round_workers, Ordering::SeqCst);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..round_workers {
            tasks.spawn(worker(ctx.clone(), pool.clone(), first.take()));
        }
        while let Some(joined) = tasks.join_next().await {
            let done = joined.map_err(|e| EngineError::Internal(e.to_string()))?;
            outcomes.extend(done);
        }
        if pool.queue.lock().map_or(true, |q| q.is_empty()) {
            break;
        }
        round_workers = 1;
    }
    if let Some((s, d)) = first.take() {
        s.close().await;
        d.close().await;
    }
    let mut cancelled = false;
    for (idx, entry) in plan.entries.iter().enumerate() {
        match outcomes.remove(&idx) {
            Some(Outcome::Done(r)) => report.folders.push(*r),
            Some(Outcome::Failed(f)) => report.failed_folders.push(f),
            Some(Outcome::Cancelled) => cancelled = true,
            None => {
                // Never expected: said rather than dropped.
                report.failed_folders.push(FolderFailure {
                    folder: entry.source.name.clone(),
                    side: None,
                    kind: crate::failure::ErrorKind::Internal,
                    category: crate::failure::FailureCategory::Internal,
                    transient: true,
                    throttled: false,
                    message: "the folder was planned but never attempted; a re-run copies it"
                        .into(),
                });
            }
        }
    }
    if cancelled {
        return Err(EngineError::Cancelled);
    }
    report.copied = report.folders.iter().map(|f| f.copied).sum();
    report.bytes = report.folders.iter().map(|f| f.bytes).sum();
    for f in &report.folders {
        report.altered.add(&f.altered);
    }
    if !report.altered.is_empty() {
        report.altering_destination = Some(destination.describe());
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Plans, retrying the first logins with backoff while a server is unreachable or throttling
/// (as later connections are): a throttled first login is not a failed migration.
async fn plan_retrying(
    ctx: &Ctx,
) -> Result<(FolderPlan, HashMap<String, u32>, AnySource, AnySink), EngineError> {
    // Where earlier runs copied each folder: the plan keeps them there.
    let earlier: EarlierTargets = ctx
        .state
        .folders(&ctx.options.account_key)?
        .into_iter()
        .map(|(folder, record)| (folder, record.dest_folder))
        .collect();
    let mut attempt = 0u32;
    loop {
        match super::plan_counted(&ctx.source, &ctx.destination, &ctx.options.plan, &earlier).await
        {
            Err(e) if e.is_transient() && attempt < ctx.options.retries => {
                attempt += 1;
                backoff(ctx, "", attempt, &e).await;
                if ctx.cancel.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
            }
            other => return other,
        }
    }
}

/// What happened to one planned folder.
enum Outcome {
    Done(Box<FolderReport>),
    Failed(FolderFailure),
    Cancelled,
}

/// The folders still to copy and the workers copying them.
struct Pool {
    queue: Mutex<VecDeque<(usize, PlanEntry)>>,
    /// Workers still taking folders.
    active: AtomicUsize,
    /// Set when a server could not be reached at all after every retry: the folders still
    /// queued fail at once with the same reason instead of each retrying on its own.
    down: Mutex<Option<FolderFailure>>,
}

impl Pool {
    fn pop(&self) -> Option<(usize, PlanEntry)> {
        self.queue.lock().ok().and_then(|mut q| q.pop_front())
    }

    fn push_back(&self, item: (usize, PlanEntry)) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_front(item);
        }
    }

    fn down(&self) -> Option<FolderFailure> {
        self.down.lock().ok().and_then(|d| d.clone())
    }

    fn set_down(&self, f: &FolderFailure) {
        if let Ok(mut d) = self.down.lock() {
            d.get_or_insert_with(|| f.clone());
        }
    }

    /// Leaves the pool if at least one other worker is still in it.
    fn leave_if_others_remain(&self) -> bool {
        self.active
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then(|| n - 1)
            })
            .is_ok()
    }
}

/// At most this many messages to look at (on the source, not yet copied): one connection.
const LIGHT_PASS: u64 = 256;

/// Whether the pass has so little to do that one connection a side serves it as fast as more:
/// a small account, or an incremental pass with a little new mail. Each further connection
/// costs both servers a login (on Dovecot, a process) for nothing; over thousands of accounts
/// that is most of their work. Needs the source's message counts (IMAP LIST-STATUS);
/// without them the configured connections are used.
fn light_pass(
    ctx: &Ctx,
    entries: &[PlanEntry],
    counts: &HashMap<String, u32>,
) -> Result<bool, EngineError> {
    if ctx.options.connections <= 1 || entries.len() <= 1 {
        return Ok(false);
    }
    let mut todo = 0u64;
    for e in entries {
        let Some(&n) = counts.get(&e.source.raw) else {
            return Ok(false);
        };
        let copied = ctx
            .state
            .copied_count(&ctx.options.account_key, &e.source.name)?;
        todo += u64::from(n).saturating_sub(copied);
        if todo > LIGHT_PASS {
            return Ok(false);
        }
    }
    Ok(true)
}

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

/// Messages whose flags become the same set on the destination: one STORE for all of them.
/// (target flags, destination UIDs, (source UID, source flags) to record).
type FlagChange = (Flags, Vec<Uid>, Vec<(Uid, Flags)>);

async fn worker(
    ctx: Arc<Ctx>,
    pool: Arc<Pool>,
    mut sessions: Option<(AnySource, AnySink)>,
) -> Vec<(usize, Outcome)> {
    let mut out = Vec::new();
    while let Some((idx, entry)) = pool.pop() {
        if ctx.cancel.is_cancelled() {
            out.push((idx, Outcome::Cancelled));
            continue;
        }
        let folder = entry.source.name.as_str();
        if let Some(down) = pool.down() {
            out.push((
                idx,
                Outcome::Failed(FolderFailure {
                    folder: folder.to_string(),
                    message: format!("not attempted: {}", down.message),
                    ..down
                }),
            ));
            continue;
        }
        let mut attempt = 0u32;
        let result = loop {
            if sessions.is_none() {
                match open_pair(&ctx).await {
                    Ok(p) => sessions = Some(p),
                    Err(e) => {
                        // A server that will not give us another connection (connection
                        // limits, throttling) gets fewer: while other workers are alive, this
                        // one hands its folder back to them and stops.
                        if e.is_transient() && pool.leave_if_others_remain() {
                            pool.push_back((idx, entry.clone()));
                            ctx.emit(ProgressEvent::ConnectionsReduced {
                                workers: pool.active.load(Ordering::SeqCst),
                                error: e.to_string(),
                                side: e.side().unwrap_or(Side::Source),
                            });
                            return out;
                        }
                        if e.is_transient() && attempt < ctx.options.retries {
                            attempt += 1;
                            backoff(&ctx, folder, attempt, &e).await;
                            if ctx.cancel.is_cancelled() {
                                break Err(EngineError::Cancelled);
                            }
                            continue;
                        }
                        // Not even a login after every retry: the server is down for this
                        // account, not for this folder.
                        let failure = FolderFailure::of(folder, &e);
                        if failure.transient {
                            pool.set_down(&failure);
                        }
                        break Err(e);
                    }
                }
            }
            let Some((src, dst)) = sessions.as_mut() else {
                continue;
            };
            match copy_folder(&ctx, src, dst, &entry).await {
                Ok(r) => break Ok(r),
                Err(e) if e.is_transient() && attempt < ctx.options.retries => {
                    // The connections may be half-way through a command: start afresh.
                    sessions = None;
                    attempt += 1;
                    backoff(&ctx, folder, attempt, &e).await;
                    if ctx.cancel.is_cancelled() {
                        break Err(EngineError::Cancelled);
                    }
                }
                Err(e) => {
                    if e.imap().is_some() {
                        sessions = None;
                    }
                    break Err(e);
                }
            }
        };
        let outcome = match result {
            Ok(r) => {
                ctx.emit(ProgressEvent::FolderDone(r.clone()));
                Outcome::Done(Box::new(r))
            }
            Err(EngineError::Cancelled) => Outcome::Cancelled,
            Err(e) => Outcome::Failed(FolderFailure::of(folder, &e)),
        };
        out.push((idx, outcome));
    }
    // Done: no folder handed back by another worker can count on this one any more.
    pool.active.fetch_sub(1, Ordering::SeqCst);
    if let Some((s, d)) = sessions {
        s.close().await;
        d.close().await;
    }
    out
}

async fn backoff(ctx: &Ctx, folder: &str, attempt: u32, err: &EngineError) {
    let base = ctx.options.backoff.saturating_mul(1 << attempt.min(10));
    let failure = err.classify();
    let wait = failure.backoff.unwrap_or(base).min(Duration::from_secs(60));
    ctx.emit(ProgressEvent::Retrying {
        folder: folder.to_string(),
        attempt,
        after_ms: wait.as_millis() as u64,
        error: err.to_string(),
        throttled_by: failure
            .throttled
            .then(|| failure.side.unwrap_or(Side::Source)),
    });
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = ctx.cancel.cancelled() => {}
    }
}

async fn open_pair(ctx: &Ctx) -> Result<(AnySource, AnySink), EngineError> {
    // Both logins at once: on a busy server each one is a noticeable part of a short pass.
    let (src, dst) = tokio::join!(ctx.source.open(), ctx.destination.open());
    let src = src.map_err(|source| EngineError::Server {
        side: Side::Source,
        source,
    })?;
    let dst = dst.map_err(|source| EngineError::Server {
        side: Side::Destination,
        source,
    })?;
    Ok((src, dst))
}

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

/// The flags to give a copy: those the destination folder accepts; the rest are reported.
fn flags_for_destination(
    flags: &Flags,
    dsel: &OpenedTarget,
    dropped: &mut HashSet<String>,
) -> Flags {
    let mut out = Flags::new();
    for f in flags.iter() {
        let ok = if f.starts_with('\\') {
            dsel.accepts(f)
        } else {
            is_sendable_keyword(f) && dsel.accepts(f)
        };
        if ok {
            out.insert(f);
        } else {
            dropped.insert(f.to_string());
        }
    }
    out
}

/// Where the plan would put a folder that stays where earlier runs copied it.
fn planned_elsewhere(entry: &PlanEntry) -> Option<String> {
    match &entry.reason {
        Reason::CopiedBefore { planned } => Some(planned.clone()),
        _ => None,
    }
}

async fn copy_folder(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    entry: &PlanEntry,
) -> Result<FolderReport, EngineError> {
    let started = Instant::now();
    let account = ctx.options.account_key.as_str();
    let folder = entry.source.name.as_str();
    let state = ctx.state.as_ref();
    let on = |side: Side| {
        move |source: AccessError| EngineError::Folder {
            side,
            folder: folder.to_string(),
            source,
        }
    };
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
        rematch_source(ctx, src, dst, entry, &record, src_validity, &mut rep).await?;
        record.source_uidvalidity = src_validity;
        record.highest_modseq = None;
    }
    if let (Some(old), Some(new)) = (record.dest_uidvalidity, dsel.uid_validity) {
        if old != new {
            rematch_dest(ctx, dst, entry, new, &mut rep).await?;
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
        resolve_pending(ctx, src, dst, folder, &pending, &by_uid, &mut rep).await?;
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
        rematch_fresh(ctx, src, dst, folder, &wanted, &mut rep).await?;
    }
    let copied: HashMap<Uid, CopiedRecord> = state
        .copied(account, folder)?
        .into_iter()
        .map(|r| (r.src_uid, r))
        .collect();
    let mut dropped_keywords = HashSet::new();
    let mut todo: Vec<&MessageMeta> = Vec::new();
    let mut flag_changes: BTreeMap<String, FlagChange> = BTreeMap::new();
    for m in &metas {
        if let Some(sel) = &selected {
            if !sel.contains(&m.uid) {
                rep.skipped_by_filter += 1;
                continue;
            }
        }
        rep.found += 1;
        if let Some(rec) = copied.get(&m.uid) {
            rep.already_there += 1;
            if rec.flags != m.flags {
                if let Some(dst_uid) = rec.dst_uid {
                    let target = flags_for_destination(&m.flags, &dsel, &mut dropped_keywords);
                    let e = flag_changes
                        .entry(target.to_line())
                        .or_insert_with(|| (target, Vec::new(), Vec::new()));
                    e.1.push(dst_uid);
                    e.2.push((m.uid, m.flags.clone()));
                }
            }
            continue;
        }
        if let Some(limit) = size_limit {
            if m.size > limit {
                let reason = format!("{} bytes, over the limit of {limit}", m.size);
                ctx.emit(ProgressEvent::MessageSkipped {
                    folder: folder.to_string(),
                    uid: m.uid.0,
                    reason: reason.clone(),
                });
                rep.too_large.push(SkippedMessage {
                    uid: m.uid.0,
                    size: m.size,
                    reason,
                    kind: None,
                });
                continue;
            }
        }
        todo.push(m);
    }

    if delta {
        // The copies not handed out are unchanged since the last pass: counted as there (as
        // for an unchanged folder, a copy whose source was deleted since counts too).
        let seen = metas.iter().filter(|m| copied.contains_key(&m.uid)).count();
        let rest = (copied.len() - seen) as u64;
        rep.found += rest;
        rep.already_there += rest;
    }

    for (_, (flags, dst_uids, src_flags)) in flag_changes {
        dst.store_flags(&dst_uids, &flags)
            .await
            .map_err(on(Side::Destination))?;
        rep.flags_updated += src_flags.len() as u64;
        state.update_flags(account, folder, &src_flags, None)?;
    }

    ctx.emit(ProgressEvent::FolderStarted {
        folder: folder.to_string(),
        to_copy: todo.len() as u64,
        bytes: todo.iter().map(|m| m.size).sum(),
    });

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
                        anomaly(&mut rep, Some(body.uid), detail);
                    }
                    BodyEvent::Body(mut body) => {
                        let uid = body.uid;
                        awaited.remove(&uid);
                        let Some(meta) = by_uid.get(&uid) else {
                            continue;
                        };
                        let flags =
                            flags_for_destination(&meta.flags, &dsel, &mut dropped_keywords);
                        let mut fp = Fingerprinter::new();
                        let mut lfs = BareLfCounter::default();
                        let len = body.len;
                        let extra = match pass {
                            Pass::Normalised => bare_lfs.get(&uid).copied(),
                            _ => None,
                        };
                        let sent = match extra {
                            Some(extra) => {
                                let mut crlf = crate::body::FetchedBody::from_reader(
                                    uid,
                                    len + extra,
                                    CrlfReader::new(&mut body),
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
                                    refuse(ctx, &mut rep, folder, uid, len, words, Some(e.kind()));
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
                        anomaly(&mut rep, Some(uid), detail.clone());
                        refuse(
                            ctx,
                            &mut rep,
                            folder,
                            uid,
                            size,
                            detail,
                            Some(ErrorKind::Server),
                        );
                        gone.push(uid);
                    }
                    BodyEvent::Unasked { uid, detail } => anomaly(&mut rep, Some(uid), detail),
                    BodyEvent::Failed(uid, status) => {
                        awaited.remove(&uid);
                        let size = by_uid.get(&uid).map(|m| m.size).unwrap_or(0);
                        refuse(
                            ctx,
                            &mut rep,
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
                        anomaly(&mut rep, Some(*uid), detail.clone());
                        refuse(
                            ctx,
                            &mut rep,
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
                            refuse(ctx, &mut rep, folder, uid, len, words, Some(e.kind()));
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
            match readback::check(dst, &sent, batch_floor, &mut rep).await {
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

    take_source_notes(src, &mut rep);
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
        anomaly(rep, a.uid, a.detail);
    }
}

/// Notes odd data the source sent for this folder.
fn anomaly(rep: &mut FolderReport, uid: Option<Uid>, detail: String) {
    rep.anomalies.push(Anomaly {
        folder: Some(rep.source.clone()),
        uid: uid.map(|u| u.0),
        side: Side::Source,
        detail,
    });
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

/// After a crash: which pending messages did land on the destination?
async fn resolve_pending(
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
    let on = |side: Side| {
        move |source: AccessError| EngineError::Folder {
            side,
            folder: folder.to_string(),
            source,
        }
    };
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
async fn rematch_source(
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
    let on = |side: Side| {
        move |source: AccessError| EngineError::Folder {
            side,
            folder: folder.to_string(),
            source,
        }
    };
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

/// The destination folder's UIDVALIDITY changed: find our copies again by fingerprint; what
/// is gone will be copied again.
/// Before copying into a destination folder the state knows nothing of and that is not
/// empty: the destination is the truth. Finds which source messages are already there (by
/// content fingerprint, one to one, as crash recovery does) and records them as copied, so
/// that no state mishap (a lost state file, a server spelled differently) copies a message
/// twice. Their flags are recorded as unknown, so the pass brings them up to date.
///
/// Only messages that may match are read: where the destination tells exact RFC 822 sizes,
/// a source message is fingerprinted only if some destination message has its size, and the
/// other way round.
async fn rematch_fresh(
    ctx: &Ctx,
    src: &mut AnySource,
    dst: &mut AnySink,
    folder: &str,
    wanted: &[&MessageMeta],
    rep: &mut FolderReport,
) -> Result<(), EngineError> {
    let account = ctx.options.account_key.as_str();
    let on = |side: Side| {
        move |source: AccessError| EngineError::Folder {
            side,
            folder: folder.to_string(),
            source,
        }
    };
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

async fn rematch_dest(
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
