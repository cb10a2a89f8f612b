//! Accounts (`batch_account`): the row as stored, reading it back as reports show it, finding
//! accounts by name, and changing a status with the audit event that explains it. Importing
//! them is in [`super::imports`], the admin's controls in [`super::controls`], the scheduler's
//! side in [`super::passes`].

use rusqlite::{params, Row, Transaction};

use super::{at, BatchStore};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::login::{needs_own_secret, SourceLogin};
use crate::batch::report::AccountReport;
use crate::batch::status::{Facts, FailureCategory, Status};
use crate::batch::task::{ServerSettings, Task};
use crate::secret::Secret;

/// An account row, as stored.
#[derive(Clone, Debug)]
pub(super) struct StoredAccount {
    pub(super) id: i64,
    pub(super) source: String,
    pub(super) target: String,
    /// As stored: sealed when the store has a key (opened with [`BatchStore::open_secret`]).
    pub(super) password: Option<Secret>,
    /// As stored, like `password`.
    pub(super) target_password: Option<Secret>,
    pub(super) status: String,
    pub(super) failure: Option<String>,
    pub(super) control: Option<String>,
    pub(super) attempts: i64,
    pub(super) last_error: Option<String>,
    pub(super) folders_done: i64,
    pub(super) folders_total: i64,
    pub(super) messages: i64,
    pub(super) bytes: i64,
    pub(super) refused: i64,
    pub(super) passes: i64,
    pub(super) source_pin: Option<String>,
    pub(super) destination_pin: Option<String>,
    pub(super) started_at: Option<i64>,
    pub(super) synced_at: Option<i64>,
    pub(super) last_pass_at: Option<i64>,
    pub(super) next_run_at: Option<i64>,
    pub(super) window_ends_at: Option<i64>,
    pub(super) updated_at: i64,
}

pub(super) const ACCOUNT_COLUMNS: &str = "id, source, target, password, target_password, status, \
    failure, control, attempts, last_error, folders_done, folders_total, messages, bytes, refused, \
    passes, source_pin, destination_pin, started_at, synced_at, last_pass_at, next_run_at, \
    window_ends_at, updated_at";

pub(super) fn read_account(r: &Row<'_>) -> rusqlite::Result<StoredAccount> {
    Ok(StoredAccount {
        id: r.get(0)?,
        source: r.get(1)?,
        target: r.get(2)?,
        password: r.get::<_, Option<String>>(3)?.map(Secret::new),
        target_password: r.get::<_, Option<String>>(4)?.map(Secret::new),
        status: r.get(5)?,
        failure: r.get(6)?,
        control: r.get(7)?,
        attempts: r.get(8)?,
        last_error: r.get(9)?,
        folders_done: r.get(10)?,
        folders_total: r.get(11)?,
        messages: r.get(12)?,
        bytes: r.get(13)?,
        refused: r.get(14)?,
        passes: r.get(15)?,
        source_pin: r.get(16)?,
        destination_pin: r.get(17)?,
        started_at: r.get(18)?,
        synced_at: r.get(19)?,
        last_pass_at: r.get(20)?,
        next_run_at: r.get(21)?,
        window_ends_at: r.get(22)?,
        updated_at: r.get(23)?,
    })
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl StoredAccount {
    pub(super) fn login(&self, store: &BatchStore, task: &str) -> Result<SourceLogin, BatchError> {
        SourceLogin::parse(&self.source)
            .map_err(|e| store.corrupt(task, Some(&self.target), format!("source login: {e}")))
    }

    pub(super) fn status(&self, store: &BatchStore, task: &str) -> Result<Status, BatchError> {
        Status::parse(&self.status).ok_or_else(|| {
            store.corrupt(
                task,
                Some(&self.target),
                format!("unknown status {:?}", self.status),
            )
        })
    }

    /// The servers this account uses: pinned when it started, else the task's.
    pub(super) fn servers(
        &self,
        store: &BatchStore,
        task: &Task,
    ) -> Result<(ServerSettings, ServerSettings), BatchError> {
        let pin = |json: &Option<String>, default: &ServerSettings| match json {
            Some(j) => serde_json::from_str(j).map_err(|e| {
                store.corrupt(
                    &task.name,
                    Some(&self.target),
                    format!("pinned server: {e}"),
                )
            }),
            None => Ok(default.clone()),
        };
        Ok((
            pin(&self.source_pin, &task.settings.source)?,
            pin(&self.destination_pin, &task.settings.destination)?,
        ))
    }

    pub(super) fn facts(&self, store: &BatchStore, task: &Task) -> Result<Facts, BatchError> {
        let (source, _) = self.servers(store, task)?;
        let login = self.login(store, &task.name)?;
        Ok(Facts {
            has_credentials: self.password.is_some() || !needs_own_secret(&source.auth, &login),
            synced_before: self.synced_at.is_some(),
        })
    }

    pub(super) fn report(
        &self,
        store: &BatchStore,
        task: &Task,
    ) -> Result<AccountReport, BatchError> {
        let (src, dst) = self.servers(store, task)?;
        let status = self.status(store, &task.name)?;
        let facts = self.facts(store, task)?;
        Ok(AccountReport {
            id: self.id,
            target: self.target.clone(),
            source: self.source.clone(),
            status,
            failure: self.failure.as_deref().and_then(FailureCategory::parse),
            requested: self.control.clone(),
            has_credentials: facts.has_credentials,
            folders_done: u64_of(self.folders_done),
            folders_total: u64_of(self.folders_total),
            messages: u64_of(self.messages),
            bytes: u64_of(self.bytes),
            refused: u64_of(self.refused),
            passes: u64_of(self.passes),
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            last_error: self.last_error.clone(),
            source_server: format!("{}:{}", src.host, src.port),
            destination_server: format!("{}:{}", dst.host, dst.port),
            started_at: self.started_at.map(at),
            synced_at: self.synced_at.map(at),
            last_pass_at: self.last_pass_at.map(at),
            next_pass_at: if status.runnable() {
                self.next_run_at.map(at)
            } else {
                None
            },
            window_ends_at: self.window_ends_at.map(at),
            updated_at: at(self.updated_at),
        })
    }
}

impl BatchStore {
    pub(super) fn load_accounts(
        &self,
        conn: &rusqlite::Connection,
        task: &str,
        ids: Option<&[i64]>,
    ) -> Result<Vec<StoredAccount>, BatchError> {
        let err = self.sql("read accounts", task, None);
        match ids {
            None => {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM batch_account WHERE task = ?1 ORDER BY id"
                    ))
                    .map_err(&err)?;
                let rows = stmt
                    .query_map([task], read_account)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(&err)?;
                Ok(rows)
            }
            Some(ids) => {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM batch_account WHERE task = ?1 AND id = ?2"
                    ))
                    .map_err(&err)?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let rows = stmt
                        .query_map(params![task, id], read_account)
                        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                        .map_err(&err)?;
                    out.extend(rows);
                }
                Ok(out)
            }
        }
    }

    /// Every account of the task, as reports show it, by id.
    pub fn accounts(&self, task: &str) -> Result<Vec<AccountReport>, BatchError> {
        let conn = self.lock();
        let t = self.task_in(&conn, task)?;
        self.load_accounts(&conn, task, None)?
            .iter()
            .map(|a| a.report(self, &t))
            .collect()
    }

    /// The named accounts (see [`Selection`]), as reports show them.
    pub fn accounts_named(
        &self,
        task: &str,
        names: &[String],
    ) -> Result<Vec<AccountReport>, BatchError> {
        let conn = self.lock();
        let t = self.task_in(&conn, task)?;
        let ids = self.resolve_in(&conn, task, names)?;
        self.load_accounts(&conn, task, Some(&ids))?
            .iter()
            .map(|a| a.report(self, &t))
            .collect()
    }

    pub(super) fn resolve_in(
        &self,
        conn: &rusqlite::Connection,
        task: &str,
        names: &[String],
    ) -> Result<Vec<i64>, BatchError> {
        let mut stmt = conn
            .prepare_cached(
                "SELECT id FROM batch_account WHERE task = ?1
                 AND (target = ?2 OR mailbox = ?2 OR source = ?2 OR id = ?3) ORDER BY id",
            )
            .map_err(self.sql("find accounts", task, None))?;
        let mut out = Vec::new();
        for name in names {
            let id: Option<i64> = name.strip_prefix('#').and_then(|n| n.parse().ok());
            let found: Vec<i64> = stmt
                .query_map(params![task, name.trim(), id.unwrap_or(-1)], |r| r.get(0))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(self.sql("find accounts", task, Some(name)))?;
            if found.is_empty() {
                return Err(BatchError::UnknownAccount {
                    task: task.to_string(),
                    name: name.clone(),
                });
            }
            out.extend(found);
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Changes an account's status and logs it, inside a transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn change_status(
        &self,
        tx: &Transaction<'_>,
        task: &str,
        id: i64,
        from: Status,
        to: Status,
        category: Option<FailureCategory>,
        reason: Option<String>,
        when: i64,
    ) -> Result<(), BatchError> {
        tx.prepare_cached(
            "UPDATE batch_account SET status = ?2, failure = ?3, updated_at = ?4 WHERE id = ?1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id,
                to.as_str(),
                category.map(FailureCategory::as_str),
                when
            ])
        })
        .map_err(self.sql("change a status", task, None))?;
        if from != to {
            self.audit_in(
                tx,
                task,
                Some(id),
                &AuditEvent::StatusChanged {
                    from,
                    to,
                    category,
                    reason,
                },
                when,
            )?;
        }
        Ok(())
    }
}
