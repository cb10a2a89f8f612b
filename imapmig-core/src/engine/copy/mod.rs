//! Copying an account: the folders planned, the destination folders created, then a pool of
//! workers (one source and one destination connection each) taking folders largest first,
//! with retries, backoff and fewer connections when a server refuses more.
//!
//! - [`folder`]: one folder's pass, from opening both sides to recording how far it got;
//! - [`diff`]: the pure decision of that pass: what to copy, which copies' flags to update,
//!   what to skip and why;
//! - [`append`]: the append pipeline and what is done with refused messages;
//! - [`recover`]: finding copies again by content (crash recovery, UIDVALIDITY changes, a
//!   destination folder the sync state does not know).

mod append;
mod diff;
mod folder;
mod recover;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{
    Anomaly, EngineError, FolderFailure, FolderReport, MigrationOptions, MigrationReport,
    ProgressEvent, ProgressSink, Side,
};
use crate::mapping::{EarlierTargets, FolderPlan, PlanEntry, Reason};
use crate::sink::{AnySink, MigrationSink, SinkSpec};
use crate::source::{AnySource, MigrationSource, SourceSpec};
use crate::state::StateStore;
use folder::copy_folder;

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
    folder::take_alerts(&mut src, &mut dst, &mut report.plan_notes);
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
        throttled_by: failure.throttled_side(),
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

/// Where the plan would put a folder that stays where earlier runs copied it.
fn planned_elsewhere(entry: &PlanEntry) -> Option<String> {
    match &entry.reason {
        Reason::CopiedBefore { planned } => Some(planned.clone()),
        _ => None,
    }
}
