//! The scheduler's queue over `batch_account`: admitting imported accounts, finding due ones
//! and pause or stop requests, telling whether work is left, counting accounts per status,
//! and putting back the accounts a dead scheduler left running.
//!
//! An account left `running` by a dead scheduler is put back by [`BatchStore::recover`] when
//! the next one starts; the engine's sync state makes re-running its pass safe.

use std::collections::BTreeMap;

use rusqlite::params;

use super::{now, BatchStore, StoredAccount};
use crate::batch::error::BatchError;
use crate::batch::status::{next, Status, Transition};

/// An account whose pass is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DueAccount {
    pub(crate) id: i64,
    pub(crate) source_host: String,
    pub(crate) destination_host: String,
}

const RUNNABLE: &str = "('scheduled', 'synced')";

impl BatchStore {
    /// Puts back accounts a dead (or stopped) scheduler left running: they run again, and
    /// pause or stop requests made meanwhile take effect. Returns how many were put back.
    pub(crate) fn recover(&self, task: &str) -> Result<u64, BatchError> {
        let when = now();
        self.write("recover interrupted passes", task, |tx| {
            let t = self.task_in(tx, task)?;
            let running: Vec<StoredAccount> = self
                .load_accounts(tx, task, None)?
                .into_iter()
                .filter(|a| a.status == Status::Running.as_str())
                .collect();
            for a in &running {
                let facts = a.facts(self, &t)?;
                let (to, reason) = match a.control.as_deref() {
                    Some("pause") => (Status::Paused, "paused by the admin"),
                    Some("stop") => (Status::Stopped, "stopped by the admin"),
                    _ => (
                        next(Status::Running, Transition::Interrupted, facts)
                            .unwrap_or(Status::Scheduled),
                        "the scheduler stopped during the pass; it runs again",
                    ),
                };
                self.change_status(
                    tx,
                    task,
                    a.id,
                    Status::Running,
                    to,
                    None,
                    Some(reason.into()),
                    when,
                )?;
                tx.execute(
                    "UPDATE batch_account SET control = NULL, next_run_at = ?2 WHERE id = ?1",
                    params![a.id, when],
                )
                .map_err(self.sql(
                    "recover interrupted passes",
                    task,
                    Some(&a.target),
                ))?;
            }
            Ok(running.len() as u64)
        })
    }

    /// Admits accounts imported since the last look: scheduled for `max(now, start_at)`, or
    /// waiting when they lack credentials.
    pub(crate) fn admit(&self, task: &str, start_at: i64) -> Result<u64, BatchError> {
        let when = now();
        let any: bool = self
            .lock()
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM batch_account WHERE task = ?1 AND status = 'not_started')")
            .and_then(|mut s| s.query_row([task], |r| r.get(0)))
            .map_err(self.sql("admit accounts", task, None))?;
        if !any {
            return Ok(0);
        }
        self.write("admit accounts", task, |tx| {
            let t = self.task_in(tx, task)?;
            let fresh: Vec<StoredAccount> = self
                .load_accounts(tx, task, None)?
                .into_iter()
                .filter(|a| a.status == Status::NotStarted.as_str())
                .collect();
            for a in &fresh {
                let to = next(Status::NotStarted, Transition::Admit, a.facts(self, &t)?)
                    .unwrap_or(Status::Scheduled);
                self.change_status(tx, task, a.id, Status::NotStarted, to, None, None, when)?;
                tx.execute(
                    "UPDATE batch_account SET next_run_at = ?2 WHERE id = ?1",
                    params![a.id, when.max(start_at)],
                )
                .map_err(self.sql("admit accounts", task, Some(&a.target)))?;
            }
            Ok(fresh.len() as u64)
        })
    }

    /// Accounts due for a pass, the longest-waiting first.
    pub(crate) fn due(&self, task: &str, limit: usize) -> Result<Vec<DueAccount>, BatchError> {
        let conn = self.lock();
        let t = self.task_in(&conn, task)?;
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT id, source_host, destination_host FROM batch_account
                 WHERE task = ?1 AND status IN {RUNNABLE} AND control IS NULL
                   AND coalesce(next_run_at, 0) <= ?2
                 ORDER BY next_run_at, id LIMIT ?3"
            ))
            .map_err(self.sql("find due accounts", task, None))?;
        let rows = stmt
            .query_map(
                params![task, now(), i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok(DueAccount {
                        id: r.get(0)?,
                        source_host: r
                            .get::<_, Option<String>>(1)?
                            .unwrap_or_else(|| t.settings.source.host.clone()),
                        destination_host: r
                            .get::<_, Option<String>>(2)?
                            .unwrap_or_else(|| t.settings.destination.host.clone()),
                    })
                },
            )
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("find due accounts", task, None))?;
        Ok(rows)
    }

    /// Running accounts with a pause or stop request.
    pub(crate) fn requests(&self, task: &str) -> Result<Vec<i64>, BatchError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM batch_account WHERE task = ?1 AND status = 'running' AND control IS NOT NULL",
            )
            .map_err(self.sql("read requests", task, None))?;
        let ids = stmt
            .query_map([task], |r| r.get(0))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read requests", task, None))?;
        Ok(ids)
    }

    /// Whether anything is left for a scheduler to do now or later without the admin: an
    /// account to admit, scheduled (even later, for a retry), running, or synced and due.
    pub(crate) fn busy(&self, task: &str) -> Result<bool, BatchError> {
        self.lock()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM batch_account WHERE task = ?1 AND
                   (status IN ('not_started', 'scheduled', 'running')
                    OR (status = 'synced' AND coalesce(next_run_at, 0) <= ?2)))",
            )
            .and_then(|mut s| s.query_row(params![task, now()], |r| r.get(0)))
            .map_err(self.sql("look for work", task, None))
    }

    /// Accounts, messages and bytes per status: cheap enough to call every second.
    pub(crate) fn status_counts(
        &self,
        task: &str,
    ) -> Result<BTreeMap<Status, (u64, u64, u64)>, BatchError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT status, count(*), sum(messages), sum(bytes) FROM batch_account
                 WHERE task = ?1 GROUP BY status",
            )
            .map_err(self.sql("count accounts", task, None))?;
        let rows = stmt
            .query_map([task], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?.unwrap_or(0),
                    r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                ))
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("count accounts", task, None))?;
        let mut out = BTreeMap::new();
        for (s, n, m, b) in rows {
            let status = Status::parse(&s)
                .ok_or_else(|| self.corrupt(task, None, format!("unknown status {s:?}")))?;
            let u = |v: i64| u64::try_from(v).unwrap_or(0);
            out.insert(status, (u(n), u(m), u(b)));
        }
        Ok(out)
    }
}
