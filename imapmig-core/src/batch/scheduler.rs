//! The scheduler: runs a task's accounts through the engine, within the limits, until told to
//! stop (or, with [`SchedulerOptions::until_idle`], until nothing is left to do).
//!
//! Each tick (half a second by default) it re-reads the task (edits apply while it runs),
//! admits newly imported accounts, cancels passes whose account was paused or stopped, and
//! starts due accounts as [`super::slots`] allows. Each pass is one [`engine::migrate`] of one
//! account with a stable sync-state key, so a pass cut short by a crash, a pause or a restart
//! resumes where it stopped and copies nothing twice. Live progress and audit events are
//! written once a second; the end of a pass is one transaction.
//!
//! Only one scheduler runs a task at a time: it holds a lease in the store, renewed every
//! flush. A scheduler killed with `kill -9` leaves its accounts `running`; the next one (once
//! the lease is free: at once on the same machine, since the process is gone) puts them back
//! and runs them again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::audit::AuditEvent;
use super::backoff::{retry_delay, Jitter};
use super::error::BatchError;
use super::login::{account, SourceLogin};
use super::slots::{Grant, HostUsage, Slots};
use super::status::{FailureCategory, Status};
use super::store::{
    BatchStore, PassResult, PassTicket, Progress, Refusal, Verdict, LEASE_STALE_SECS,
};
use super::task::{Protocol, Task};
use crate::engine::{
    self, EngineError, ErrorKind, MigrationOptions, MigrationReport, ProgressEvent, ProgressSink,
    Side,
};
use crate::sink::SinkSpec;
use crate::source::{Pop3Spec, SourceSpec};
use crate::state::StateStore;

/// How a scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// How often it looks for work, requests and edits.
    pub tick: Duration,
    /// How often live progress goes to the store and the lease is renewed.
    pub flush: Duration,
    /// Stop when nothing is running and nothing is due or scheduled (synced accounts waiting
    /// for their next pass do not count), instead of running until cancelled.
    pub until_idle: bool,
    /// Retries of a folder inside one pass, by the engine, before the pass fails.
    pub engine_retries: u32,
    /// The engine's first pause before such a retry.
    pub engine_backoff: Duration,
    /// After a host throttled: how long before its limit may be cut again, or raised again.
    pub throttle_cooldown: Duration,
    /// Messages per engine batch.
    pub batch: usize,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            tick: Duration::from_millis(500),
            flush: Duration::from_secs(1),
            until_idle: false,
            engine_retries: 3,
            engine_backoff: Duration::from_millis(500),
            throttle_cooldown: Duration::from_secs(30),
            batch: 64,
        }
    }
}

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

/// Receives live snapshots. Called from the scheduler's loop: keep it quick.
pub type SchedulerObserver = Arc<dyn Fn(&LiveSnapshot) + Send + Sync>;

/// What a scheduler run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// Passes started.
    pub passes: u64,
    /// Passes that completed every folder.
    pub passes_synced: u64,
    /// Passes that ended in a retry.
    pub passes_retried: u64,
    /// Passes that ended in a failure.
    pub passes_failed: u64,
    /// Passes cut short by a pause, a stop or the shutdown.
    pub passes_cancelled: u64,
    /// Accounts put back after a previous scheduler died mid-pass.
    pub recovered: u64,
    /// Messages copied.
    pub copied: u64,
    /// Bytes copied.
    pub bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The most accounts running at once.
    pub peak_accounts: usize,
    /// How each host's connections were shared.
    pub hosts: Vec<HostUsage>,
    /// Accounts per status at the end.
    pub statuses: Vec<(Status, u64)>,
}

/// Runs a task. See the module documentation.
pub struct Scheduler {
    store: Arc<BatchStore>,
    sync: Arc<dyn StateStore>,
    task: String,
    options: SchedulerOptions,
}

/// Live counters of one pass, fed by the engine's progress events.
#[derive(Default)]
struct Live {
    folders_total: AtomicU64,
    folders_done: AtomicU64,
    copied: AtomicU64,
    bytes: AtomicU64,
    throttled: Mutex<Vec<Side>>,
    events: Mutex<Vec<AuditEvent>>,
}

impl Live {
    fn on(&self, ev: &ProgressEvent) {
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

    fn take_events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default()
    }

    fn take_throttled(&self) -> Vec<Side> {
        self.throttled
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
    }
}

struct Job {
    ticket: PassTicket,
    grant: Grant,
    cancel: CancellationToken,
    live: Arc<Live>,
    key: String,
}

type PassOutput = (i64, Result<MigrationReport, EngineError>);

/// The sync-state key of an account: stable for the task, the source mailbox and the target,
/// whatever server addresses, login form or password they have.
pub fn account_key(task: &str, mailbox: &str, target: &str) -> String {
    format!(
        "batch/{task}/{}/{}",
        mailbox.to_lowercase(),
        target.to_lowercase()
    )
}

/// Runs a store call on a blocking thread: SQLite waits (busy timeout) must not stall the
/// runtime's workers.
async fn blocking<T, F>(store: &Arc<BatchStore>, f: F) -> Result<T, BatchError>
where
    T: Send + 'static,
    F: FnOnce(&BatchStore) -> Result<T, BatchError> + Send + 'static,
{
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| BatchError::Internal(format!("store call: {e}")))?
}

/// Messages and bytes of an account on the destination, from the sync state.
fn mailbox_totals(
    sync: &dyn StateStore,
    key: &str,
) -> Result<(u64, u64), crate::state::StateError> {
    let mut messages = 0;
    let mut bytes = 0;
    for (folder, _) in sync.folders(key)? {
        for r in sync.copied(key, &folder)? {
            messages += 1;
            bytes += r.size;
        }
    }
    Ok((messages, bytes))
}

impl Scheduler {
    /// A scheduler for `task`, with the sync state of the store's file.
    pub fn new(store: Arc<BatchStore>, task: impl Into<String>) -> Scheduler {
        let sync: Arc<dyn StateStore> = store.sync_state();
        Scheduler {
            store,
            sync,
            task: task.into(),
            options: SchedulerOptions::default(),
        }
    }

    /// Where a POP3 account keeps its UIDL → UID table: beside the store file, one per
    /// account key (its own sync state needs it to skip what was copied).
    fn pop3_uid_map(&self, key: &str) -> std::path::PathBuf {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut dir = self.store.path().as_os_str().to_owned();
        dir.push(".pop3");
        std::path::PathBuf::from(dir).join(format!("{safe}.uids"))
    }

    /// Uses another sync state (a shared database, say) instead of the store's file.
    pub fn with_sync_state(mut self, sync: Arc<dyn StateStore>) -> Scheduler {
        self.sync = sync;
        self
    }

    /// Sets the options.
    pub fn with_options(mut self, options: SchedulerOptions) -> Scheduler {
        self.options = options;
        self
    }

    /// Runs until `cancel` (running passes stop at a message boundary and are put back to run
    /// again) or, with [`SchedulerOptions::until_idle`], until nothing is left to do.
    ///
    /// Fails with [`BatchError::Locked`] if another scheduler runs the task, or on a store
    /// failure; account failures are statuses, not errors.
    pub async fn run(
        self,
        cancel: CancellationToken,
        observer: Option<SchedulerObserver>,
    ) -> Result<RunSummary, BatchError> {
        let name = self.task.clone();
        let lease = {
            let n = name.clone();
            blocking(&self.store, move |s| s.acquire_lease(&n)).await?
        };
        let outcome = self.run_leased(&lease, cancel, observer).await;
        let n = name.clone();
        let l = lease.clone();
        let released = blocking(&self.store, move |s| s.release_lease(&n, &l)).await;
        let summary = outcome?;
        released?;
        Ok(summary)
    }

    async fn run_leased(
        &self,
        lease: &str,
        cancel: CancellationToken,
        observer: Option<SchedulerObserver>,
    ) -> Result<RunSummary, BatchError> {
        let started = Instant::now();
        let name = self.task.clone();
        let mut summary = RunSummary {
            recovered: {
                let n = name.clone();
                blocking(&self.store, move |s| s.recover(&n)).await?
            },
            ..RunSummary::default()
        };
        let mut task = {
            let n = name.clone();
            blocking(&self.store, move |s| s.task(&n)).await?
        };
        let mut slots = Slots::new(task.settings.limits, self.options.throttle_cooldown);
        let mut jobs: HashMap<i64, Job> = HashMap::new();
        let mut set: JoinSet<PassOutput> = JoinSet::new();
        let mut task_ids: HashMap<tokio::task::Id, i64> = HashMap::new();
        let mut jitter = Jitter::seeded();
        let mut last_flush = Instant::now();
        let mut last_beat = Instant::now();
        let mut shutting_down = false;
        let mut pending_events: Vec<(Option<i64>, AuditEvent)> = Vec::new();

        loop {
            if cancel.is_cancelled() && !shutting_down {
                shutting_down = true;
                for job in jobs.values() {
                    job.cancel.cancel();
                }
            }
            if !shutting_down {
                task = {
                    let n = name.clone();
                    blocking(&self.store, move |s| s.task(&n)).await?
                };
                slots.configure(task.settings.limits);
                let start_at = task
                    .settings
                    .schedule
                    .start_at
                    .map(|t| t.unix_timestamp())
                    .unwrap_or(0);
                let n = name.clone();
                blocking(&self.store, move |s| s.admit(&n, start_at)).await?;
                let n = name.clone();
                for id in blocking(&self.store, move |s| s.requests(&n)).await? {
                    if let Some(job) = jobs.get(&id) {
                        job.cancel.cancel();
                    }
                }
                summary.passes += self
                    .start_due(
                        &task,
                        &mut slots,
                        &mut jobs,
                        &mut set,
                        &mut task_ids,
                        &cancel,
                    )
                    .await?;
            }

            // Throttling seen inside running passes cuts the host's limit now, not at the end.
            for job in jobs.values() {
                for side in job.live.take_throttled() {
                    if let Some(ev) = throttle(&mut slots, side, &job.grant) {
                        pending_events.push((Some(job.ticket.id), ev));
                    }
                }
            }

            // With `until_idle`, the run ends once nothing is running or due: known before the
            // flush, so that the last progress and snapshot go out before the end.
            let idle = self.options.until_idle && jobs.is_empty() && !shutting_down && {
                let n = name.clone();
                !blocking(&self.store, move |s| s.busy(&n)).await?
            };
            let ending = idle || (shutting_down && jobs.is_empty());
            if last_flush.elapsed() >= self.options.flush || ending {
                last_flush = Instant::now();
                let mut updates = Vec::with_capacity(jobs.len());
                for job in jobs.values() {
                    let l = &job.live;
                    updates.push((
                        job.ticket.id,
                        Progress {
                            folders_done: l.folders_done.load(Ordering::Relaxed),
                            folders_total: l.folders_total.load(Ordering::Relaxed),
                            messages: job.ticket.messages + l.copied.load(Ordering::Relaxed),
                            bytes: job.ticket.bytes + l.bytes.load(Ordering::Relaxed),
                        },
                    ));
                    for ev in l.take_events() {
                        pending_events.push((Some(job.ticket.id), ev));
                    }
                }
                let events = std::mem::take(&mut pending_events);
                let n = name.clone();
                blocking(&self.store, move |s| {
                    s.record_progress(&n, &updates, &events)
                })
                .await?;
                if last_beat.elapsed() >= Duration::from_secs((LEASE_STALE_SECS / 4).max(1) as u64)
                {
                    last_beat = Instant::now();
                    let (n, l) = (name.clone(), lease.to_string());
                    blocking(&self.store, move |s| s.heartbeat(&n, &l)).await?;
                }
                if let Some(obs) = &observer {
                    let n = name.clone();
                    let counts = blocking(&self.store, move |s| s.status_counts(&n)).await?;
                    let live_copied: u64 = jobs
                        .values()
                        .map(|j| j.live.copied.load(Ordering::Relaxed))
                        .sum();
                    let live_bytes: u64 = jobs
                        .values()
                        .map(|j| j.live.bytes.load(Ordering::Relaxed))
                        .sum();
                    let mut running: Vec<RunningAccount> = jobs
                        .values()
                        .map(|j| RunningAccount {
                            id: j.ticket.id,
                            target: j.ticket.target.clone(),
                            pass: j.ticket.pass,
                            folders_done: j.live.folders_done.load(Ordering::Relaxed),
                            folders_total: j.live.folders_total.load(Ordering::Relaxed),
                            copied: j.live.copied.load(Ordering::Relaxed),
                            connections: j.grant.connections,
                        })
                        .collect();
                    running.sort_by_key(|r| r.id);
                    obs(&LiveSnapshot {
                        seconds: started.elapsed().as_secs_f64(),
                        statuses: counts.iter().map(|(s, c)| (*s, c.0)).collect(),
                        running,
                        hosts: slots.usage(),
                        copied: summary.copied + live_copied,
                        bytes: summary.bytes + live_bytes,
                    });
                }
            }

            if ending {
                break;
            }

            let joined = tokio::select! {
                j = set.join_next_with_id(), if !set.is_empty() => j,
                _ = tokio::time::sleep(self.options.tick) => None,
                _ = cancel.cancelled(), if !shutting_down => None,
            };
            let mut finished: Vec<(i64, Result<MigrationReport, EngineError>)> = Vec::new();
            if let Some(j) = joined {
                finished.push(joined_output(j, &mut task_ids));
                // Collect whatever else has finished meanwhile.
                while let Some(j) = set.try_join_next_with_id() {
                    finished.push(joined_output(j, &mut task_ids));
                }
            }
            for (id, result) in finished {
                let Some(job) = jobs.remove(&id) else {
                    continue;
                };
                slots.release(&job.grant);
                // Events of the pass's last moments go out before its end is recorded.
                for ev in job.live.take_events() {
                    pending_events.push((Some(id), ev));
                }
                let events = std::mem::take(&mut pending_events);
                let n = name.clone();
                blocking(&self.store, move |s| s.record_progress(&n, &[], &events)).await?;
                self.finish(&task, job, result, &mut slots, &mut jitter, &mut summary)
                    .await?;
            }
        }
        let n = name.clone();
        let counts = blocking(&self.store, move |s| s.status_counts(&n)).await?;
        summary.statuses = counts.iter().map(|(s, c)| (*s, c.0)).collect();
        summary.seconds = started.elapsed().as_secs_f64();
        summary.peak_accounts = slots.peak_running();
        summary.hosts = slots.usage();
        Ok(summary)
    }

    async fn start_due(
        &self,
        task: &Task,
        slots: &mut Slots,
        jobs: &mut HashMap<i64, Job>,
        set: &mut JoinSet<PassOutput>,
        task_ids: &mut HashMap<tokio::task::Id, i64>,
        cancel: &CancellationToken,
    ) -> Result<u64, BatchError> {
        let free = slots.free();
        if free == 0 {
            return Ok(0);
        }
        let mut started = 0;
        // Enough of the queue to be fair between hosts, without reading all of a huge task.
        let look = (free * 64).clamp(256, 5000);
        let n = self.task.clone();
        let due = blocking(&self.store, move |s| s.due(&n, look)).await?;
        for (id, grant) in slots.pick(&due) {
            let n = self.task.clone();
            let conns = grant.connections;
            let Some(ticket) = blocking(&self.store, move |s| s.start_pass(&n, id, conns)).await?
            else {
                slots.release(&grant);
                continue;
            };
            let key = account_key(&task.name, ticket.login.mailbox(), &ticket.target);
            let source = account(
                &ticket.source,
                &ticket.login,
                ticket.password.as_ref(),
                task.source_secret.as_ref(),
            );
            let destination = account(
                &ticket.destination,
                &SourceLogin::User(ticket.target.clone()),
                ticket.target_password.as_ref(),
                task.destination_secret.as_ref(),
            );
            let job_cancel = cancel.child_token();
            let live = Arc::new(Live::default());
            let options = MigrationOptions {
                account_key: key.clone(),
                plan: task.settings.plan_options(ticket.login.mailbox()),
                filter: task.settings.messages.filter(),
                connections: grant.connections,
                batch: self.options.batch.max(1),
                retries: self.options.engine_retries,
                backoff: self.options.engine_backoff,
                ..MigrationOptions::default()
            };
            let sink: ProgressSink = {
                let live = live.clone();
                Arc::new(move |ev: &ProgressEvent| live.on(ev))
            };
            let sync = self.sync.clone();
            let token = job_cancel.clone();
            let uid_map = self.pop3_uid_map(&key);
            let protocol = ticket.source.protocol;
            let handle = set.spawn(async move {
                let result = match (source, destination) {
                    (Ok(s), Ok(d)) => {
                        let source = match protocol {
                            Protocol::Imap => SourceSpec::Imap(s),
                            Protocol::Pop3 => SourceSpec::Pop3(Pop3Spec::new(s, uid_map)),
                        };
                        engine::migrate_between(
                            &source,
                            &SinkSpec::Imap(d),
                            &options,
                            sync,
                            Some(sink),
                            token,
                        )
                        .await
                    }
                    // The store checked the secrets when the pass started; only a task edited
                    // in between can get here.
                    _ => Err(EngineError::Internal(
                        "the account's credentials went missing when its pass started".into(),
                    )),
                };
                (id, result)
            });
            task_ids.insert(handle.id(), id);
            jobs.insert(
                id,
                Job {
                    ticket,
                    grant,
                    cancel: job_cancel,
                    live,
                    key,
                },
            );
            started += 1;
        }
        Ok(started)
    }

    async fn finish(
        &self,
        task: &Task,
        job: Job,
        result: Result<MigrationReport, EngineError>,
        slots: &mut Slots,
        jitter: &mut Jitter,
        summary: &mut RunSummary,
    ) -> Result<(), BatchError> {
        let id = job.ticket.id;
        let retry = &task.settings.retry;
        let attempt = job.ticket.attempts + 1;
        let mut throttled_sides = job.live.take_throttled();
        let mut events: Vec<AuditEvent> = Vec::new();
        let (pass_result, verdict) = match result {
            Ok(report) => {
                summary.copied += report.copied;
                summary.bytes += report.bytes;
                let sync = self.sync.clone();
                let key = job.key.clone();
                let (messages, bytes) =
                    tokio::task::spawn_blocking(move || mailbox_totals(sync.as_ref(), &key))
                        .await
                        .map_err(|e| BatchError::Internal(format!("sync state totals: {e}")))??;
                let r = pass_result(&report, messages, bytes);
                let verdict = judge(
                    &report,
                    retry.max_attempts,
                    attempt,
                    &mut throttled_sides,
                    || retry_delay(retry, attempt, None, jitter),
                );
                (Some(r), verdict)
            }
            Err(EngineError::Cancelled) => (None, Verdict::Cancelled),
            Err(e) => {
                let c = e.classify();
                if c.throttled {
                    throttled_sides.push(c.side.unwrap_or(Side::Source));
                }
                let error = e.to_string();
                if c.transient && attempt < retry.max_attempts {
                    (
                        None,
                        Verdict::Retry {
                            category: c.category,
                            error,
                            after: retry_delay(retry, attempt, c.backoff, jitter),
                        },
                    )
                } else {
                    (
                        None,
                        Verdict::Failed {
                            category: c.category,
                            error: if c.transient {
                                format!("gave up after {attempt} attempts: {error}")
                            } else {
                                error
                            },
                        },
                    )
                }
            }
        };
        throttled_sides.sort_by_key(|s| *s == Side::Destination);
        throttled_sides.dedup();
        for side in &throttled_sides {
            if let Some(ev) = throttle(slots, *side, &job.grant) {
                events.push(ev);
            }
        }
        if matches!(verdict, Verdict::Synced) {
            for side in [Side::Source, Side::Destination] {
                if !throttled_sides.contains(&side) {
                    let host = match side {
                        Side::Source => &job.grant.source_host,
                        Side::Destination => &job.grant.destination_host,
                    };
                    slots.healthy(side, host);
                }
            }
        }
        match &verdict {
            Verdict::Synced => summary.passes_synced += 1,
            Verdict::Retry { .. } => summary.passes_retried += 1,
            Verdict::Failed { .. } => summary.passes_failed += 1,
            Verdict::Cancelled => summary.passes_cancelled += 1,
        }
        let n = self.task.clone();
        let events: Vec<(Option<i64>, AuditEvent)> =
            events.into_iter().map(|e| (Some(id), e)).collect();
        blocking(&self.store, move |s| {
            s.record_progress(&n, &[], &events)?;
            s.finish_pass(&n, id, pass_result.as_ref(), &verdict)
        })
        .await?;
        Ok(())
    }
}

fn joined_output(
    j: Result<(tokio::task::Id, PassOutput), tokio::task::JoinError>,
    task_ids: &mut HashMap<tokio::task::Id, i64>,
) -> PassOutput {
    match j {
        Ok((tid, out)) => {
            task_ids.remove(&tid);
            out
        }
        Err(e) => {
            let id = task_ids.remove(&e.id()).unwrap_or(-1);
            (
                id,
                Err(EngineError::Internal(format!(
                    "the pass's task failed: {e}"
                ))),
            )
        }
    }
}

fn throttle(slots: &mut Slots, side: Side, grant: &Grant) -> Option<AuditEvent> {
    let host = match side {
        Side::Source => &grant.source_host,
        Side::Destination => &grant.destination_host,
    };
    slots
        .throttled(side, host)
        .map(|connections| AuditEvent::Throttled {
            side: side.to_string(),
            host: host.clone(),
            connections,
        })
}

fn pass_result(report: &MigrationReport, messages: u64, bytes: u64) -> PassResult {
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
fn judge(
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
            return Verdict::Failed {
                category: failure.category,
                error: text,
            };
        }
        transient.get_or_insert((failure.category, text));
    }
    match transient {
        Some((category, error)) if attempt < max_attempts => Verdict::Retry {
            category,
            error,
            after: delay(),
        },
        Some((category, error)) => Verdict::Failed {
            category,
            error: format!("gave up after {attempt} attempts: {error}"),
        },
        None => Verdict::Synced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{FolderFailure, FolderReport, SkippedMessage};
    use crate::imap::ImapError;
    use crate::wire::{ResponseCode, StatusKind, StatusResponse};

    /// Folder "Work" failed on `side` with `source`, as the engine reports it.
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
        ImapError::Refused {
            host: "h".into(),
            command: "APPEND",
            folder: Some("Work".into()),
            status: Box::new(StatusResponse {
                tag: Some("a1".into()),
                kind: StatusKind::No,
                code: Some(code),
                text: text.into(),
            }),
        }
    }

    /// A folder report whose messages the destination refused, with the refusals' kinds.
    fn folder(name: &str, refused: &[(&str, ErrorKind)]) -> FolderReport {
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
    fn keys_are_stable_and_case_blind() {
        assert_eq!(
            account_key("t", "User1", "U1@New.Example"),
            "batch/t/user1/u1@new.example"
        );
    }

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
