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
//! This file is the loop. The engine's progress events are counted in [`super::live`]; how a
//! pass ended is decided in [`super::verdict`] (pure); the store applies it.
//!
//! Only one scheduler runs a task at a time: it holds a lease in the store, renewed every
//! flush. A scheduler killed with `kill -9` leaves its accounts `running`; the next one (once
//! the lease is free: at once on the same machine, since the process is gone) puts them back
//! and runs them again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::audit::AuditEvent;
use super::backoff::{retry_delay, Jitter};
use super::error::BatchError;
use super::live::{Live, LiveSnapshot};
use super::login::{account, SourceLogin};
use super::slots::{Grant, HostUsage, Slots};
use super::status::Status;
use super::store::{BatchStore, PassTicket, LEASE_STALE_SECS};
use super::task::{Protocol, Task};
use super::verdict::{judge, judge_error, pass_result, Verdict};
use crate::engine::{
    self, EngineError, MigrationOptions, MigrationReport, ProgressEvent, ProgressSink, Side,
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
                    updates.push((job.ticket.id, job.live.progress(&job.ticket)));
                    for ev in job.live.take_events() {
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
                    let live_copied: u64 = jobs.values().map(|j| j.live.copied()).sum();
                    let live_bytes: u64 = jobs.values().map(|j| j.live.bytes()).sum();
                    let mut running: Vec<_> = jobs
                        .values()
                        .map(|j| j.live.running(&j.ticket, j.grant.connections))
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
            Err(e) => (
                None,
                judge_error(
                    &e,
                    retry.max_attempts,
                    attempt,
                    &mut throttled_sides,
                    |suggested| retry_delay(retry, attempt, suggested, jitter),
                ),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_case_blind() {
        assert_eq!(
            account_key("t", "User1", "U1@New.Example"),
            "batch/t/user1/u1@new.example"
        );
    }
}
