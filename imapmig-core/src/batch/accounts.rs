//! Accounts in the store: import, reports, and the admin's controls (pause, resume, stop,
//! credentials).

use std::collections::HashMap;
use std::path::Path;

use rusqlite::{params, Row, Transaction};

use super::audit::AuditEvent;
use super::error::BatchError;
use super::import::{read_accounts, AccountRow, CsvLayout, ParsedCsv, RowError, RowProblem};
use super::login::{needs_own_secret, SourceLogin};
use super::report::{AccountReport, TaskSummary};
use super::status::{next, Facts, FailureCategory, Status, Transition};
use super::store::{at, now, BatchStore};
use super::task::{ServerSettings, Task};
use crate::secret::Secret;

/// How an import treats problems.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Import the good rows even when some are bad (the bad ones are reported).
    pub skip_bad_rows: bool,
    /// Rows whose source and target are already in the task update its credentials instead
    /// of being reported as bad.
    pub update_existing: bool,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// The layout found.
    pub layout: CsvLayout,
    /// Whether there was a header row.
    pub header: bool,
    /// New accounts.
    pub added: u64,
    /// Existing accounts whose credentials were updated.
    pub updated: u64,
    /// New accounts that wait for credentials.
    pub waiting_for_credentials: u64,
    /// Bad rows left out (only with [`ImportOptions::skip_bad_rows`]).
    pub skipped: Vec<RowError>,
    /// Things worth knowing about the file.
    pub notes: Vec<String>,
}

/// Which accounts an operation is about.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every account of the task.
    All,
    /// Accounts named by target address, source login or mailbox, or `#id`. A name matching
    /// nothing fails the whole operation, before anything changes.
    Names(&'a [String]),
}

/// What a pause, resume or stop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlReport {
    /// Accounts whose status changed.
    pub changed: u64,
    /// Running accounts asked to pause or stop at the next message boundary.
    pub requested: u64,
    /// Accounts already there, or in a status the operation does not apply to.
    pub unchanged: u64,
}

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
    /// Reads, validates and imports a CSV file of accounts into a task (see
    /// [`super::import`]). Nothing is imported while any row is bad, unless
    /// [`ImportOptions::skip_bad_rows`]; every bad row is named with its line.
    pub fn import_csv(
        &self,
        task: &str,
        file: &Path,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let t = self.task(task)?;
        // Read a line at a time: a file must not make the import hold it whole.
        let reader = std::fs::File::open(file).map_err(|source| super::import::CsvError::Io {
            path: file.to_path_buf(),
            source,
        })?;
        let parsed = read_accounts(
            file,
            std::io::BufReader::with_capacity(64 * 1024, reader),
            t.settings.shared_targets_allowed(),
            t.settings.destination.auth.per_account(),
        )?;
        self.import_rows(task, file, parsed, options)
    }

    /// Imports rows already read with [`super::import::read_accounts`]; `file` names them in errors.
    pub fn import_rows(
        &self,
        task: &str,
        file: &Path,
        parsed: ParsedCsv,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let when = now();
        self.write("import accounts", task, |tx| {
            let t = self.task_in(tx, task)?;
            let shared = t.settings.shared_targets_allowed();
            // What the task has: (mailbox, target) -> id, and target -> mailbox.
            let mut existing: HashMap<(String, String), i64> = HashMap::new();
            let mut by_target: HashMap<String, String> = HashMap::new();
            {
                let mut stmt = tx
                    .prepare_cached("SELECT id, mailbox, target FROM batch_account WHERE task = ?1")
                    .map_err(self.sql("import accounts", task, None))?;
                let rows = stmt
                    .query_map([task], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(self.sql("import accounts", task, None))?;
                for (id, mailbox, target) in rows {
                    let key = (mailbox.to_ascii_lowercase(), target.to_ascii_lowercase());
                    by_target.insert(key.1.clone(), mailbox);
                    existing.insert(key, id);
                }
            }
            let mut errors = parsed.errors;
            let mut fresh: Vec<AccountRow> = Vec::new();
            let mut updates: Vec<(i64, AccountRow)> = Vec::new();
            for row in parsed.rows {
                let key = (
                    row.source.mailbox().to_ascii_lowercase(),
                    row.target.to_ascii_lowercase(),
                );
                if let Some(id) = existing.get(&key) {
                    if options.update_existing {
                        updates.push((*id, row));
                    } else {
                        errors.push(RowError {
                            line: row.line,
                            problem: RowProblem::AlreadyInTask,
                        });
                    }
                    continue;
                }
                if !shared {
                    if let Some(other) = by_target.get(&key.1) {
                        if other.to_ascii_lowercase() != key.0 {
                            errors.push(RowError {
                                line: row.line,
                                problem: RowProblem::SharedTarget {
                                    target: row.target.clone(),
                                    other_source: other.clone(),
                                    other_line: None,
                                },
                            });
                            continue;
                        }
                    }
                }
                fresh.push(row);
            }
            errors.sort_by_key(|e| e.line);
            if !errors.is_empty() && !options.skip_bad_rows {
                return Err(BatchError::InvalidRows {
                    file: file.to_path_buf(),
                    errors,
                });
            }
            let mut report = ImportReport {
                layout: parsed.layout,
                header: parsed.header,
                added: 0,
                updated: 0,
                waiting_for_credentials: 0,
                skipped: errors,
                notes: parsed.notes,
            };
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO batch_account (task, source, mailbox, target, password, target_password,
                             status, csv_line, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    )
                    .map_err(self.sql("import accounts", task, None))?;
                for row in &fresh {
                    let waiting = row.password.is_none()
                        && needs_own_secret(&t.settings.source.auth, &row.source);
                    let status = if waiting {
                        report.waiting_for_credentials += 1;
                        Status::WaitingForCredentials
                    } else {
                        Status::NotStarted
                    };
                    insert
                        .execute(params![
                            task,
                            row.source.to_string(),
                            row.source.mailbox(),
                            row.target,
                            row.password
                                .as_ref()
                                .map(|p| self.seal_secret("batch_account", "password", p)),
                            row.target_password
                                .as_ref()
                                .map(|p| self.seal_secret("batch_account", "target_password", p)),
                            status.as_str(),
                            i64::try_from(row.line).unwrap_or(i64::MAX),
                            when
                        ])
                        .map_err(self.sql("import accounts", task, Some(&row.target)))?;
                    report.added += 1;
                }
            }
            for (id, row) in &updates {
                if let Some(secret) = &row.password {
                    self.set_credentials_in(tx, &t, *id, secret, when)?;
                }
                if let Some(secret) = &row.target_password {
                    tx.execute(
                        "UPDATE batch_account SET target_password = ?2, updated_at = ?3 WHERE id = ?1",
                        params![id, self.seal_secret("batch_account", "target_password", secret), when],
                    )
                    .map_err(self.sql("import accounts", task, Some(&row.target)))?;
                }
                report.updated += 1;
            }
            self.audit_in(
                tx,
                task,
                None,
                &AuditEvent::AccountsImported {
                    file: file.display().to_string(),
                    added: report.added,
                    updated: report.updated,
                    skipped: report.skipped.len() as u64,
                },
                when,
            )?;
            Ok(report)
        })
    }

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

    /// The totals of a task.
    pub fn summary(&self, task: &str) -> Result<TaskSummary, BatchError> {
        Ok(TaskSummary::of(&self.accounts(task)?))
    }

    fn resolve_in(
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

    fn control(
        &self,
        task: &str,
        sel: Selection<'_>,
        what: Transition,
    ) -> Result<ControlReport, BatchError> {
        let when = now();
        self.write("change accounts", task, |tx| {
            let t = self.task_in(tx, task)?;
            let accounts = match sel {
                Selection::All => self.load_accounts(tx, task, None)?,
                Selection::Names(names) => {
                    let ids = self.resolve_in(tx, task, names)?;
                    self.load_accounts(tx, task, Some(&ids))?
                }
            };
            let mut report = ControlReport::default();
            for a in &accounts {
                let status = a.status(self, task)?;
                let facts = a.facts(self, &t)?;
                if status == Status::Running {
                    let wanted = match what {
                        Transition::Pause => Some("pause"),
                        Transition::Stop => Some("stop"),
                        _ => None,
                    };
                    if a.control.as_deref() == wanted {
                        report.unchanged += 1;
                        continue;
                    }
                    tx.execute(
                        "UPDATE batch_account SET control = ?2, updated_at = ?3 WHERE id = ?1",
                        params![a.id, wanted, when],
                    )
                    .map_err(self.sql("change accounts", task, Some(&a.target)))?;
                    if let Some(c) = wanted {
                        self.audit_in(tx, task, Some(a.id), &AuditEvent::Requested { control: c.into() }, when)?;
                        report.requested += 1;
                    } else {
                        report.changed += 1;
                    }
                    continue;
                }
                match next(status, what, facts) {
                    Ok(to) if to != status => {
                        let reason = match what {
                            Transition::Pause => "paused by the admin",
                            Transition::Stop => "stopped by the admin",
                            _ => "resumed by the admin",
                        };
                        self.change_status(tx, task, a.id, status, to, None, Some(reason.into()), when)?;
                        if what == Transition::Resume {
                            tx.execute(
                                "UPDATE batch_account SET next_run_at = ?2, attempts = 0, control = NULL WHERE id = ?1",
                                params![a.id, when],
                            )
                            .map_err(self.sql("change accounts", task, Some(&a.target)))?;
                        }
                        report.changed += 1;
                    }
                    _ => report.unchanged += 1,
                }
            }
            Ok(report)
        })
    }

    /// Pauses accounts: nothing runs for them until resumed. A running pass stops at the next
    /// message boundary (within a second or so of the scheduler noticing).
    pub fn pause(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Pause)
    }

    /// Resumes paused, failed or stopped accounts (and withdraws a pause or stop asked for a
    /// running one): they run again as soon as a slot is free.
    pub fn resume(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Resume)
    }

    /// Stops accounts for good (until resumed): no further passes.
    pub fn stop(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Stop)
    }

    /// Supplies the source password or token of the named accounts (the hook a platform calls
    /// when a user logs in with the old password). An account waiting for credentials, or
    /// failed, starts as soon as a slot is free. Returns each account's new status.
    pub fn supply_credentials(
        &self,
        task: &str,
        name: &str,
        secret: Secret,
    ) -> Result<Vec<(i64, Status)>, BatchError> {
        let when = now();
        self.write("supply credentials", task, |tx| {
            let t = self.task_in(tx, task)?;
            let ids = self.resolve_in(tx, task, &[name.to_string()])?;
            ids.iter()
                .map(|id| Ok((*id, self.set_credentials_in(tx, &t, *id, &secret, when)?)))
                .collect()
        })
    }

    fn set_credentials_in(
        &self,
        tx: &Transaction<'_>,
        task: &Task,
        id: i64,
        secret: &Secret,
        when: i64,
    ) -> Result<Status, BatchError> {
        let name = task.name.as_str();
        let a = self
            .load_accounts(tx, name, Some(&[id]))?
            .pop()
            .ok_or_else(|| self.corrupt(name, None, format!("account #{id} vanished")))?;
        tx.execute(
            "UPDATE batch_account SET password = ?2, updated_at = ?3 WHERE id = ?1",
            params![
                id,
                self.seal_secret("batch_account", "password", secret),
                when
            ],
        )
        .map_err(self.sql("supply credentials", name, Some(&a.target)))?;
        self.audit_in(tx, name, Some(id), &AuditEvent::CredentialsSupplied, when)?;
        let status = a.status(self, name)?;
        let facts = Facts {
            has_credentials: true,
            synced_before: a.synced_at.is_some(),
        };
        let to = next(status, Transition::Credentials, facts).map_err(|source| {
            BatchError::NotAllowed {
                task: name.to_string(),
                account: a.target.clone(),
                source,
            }
        })?;
        if to != status {
            self.change_status(
                tx,
                name,
                id,
                status,
                to,
                None,
                Some("credentials supplied".into()),
                when,
            )?;
            tx.execute(
                "UPDATE batch_account SET next_run_at = ?2, attempts = 0, last_error = NULL WHERE id = ?1",
                params![id, when],
            )
            .map_err(self.sql("supply credentials", name, Some(&a.target)))?;
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::tests::{settings, tempfile_dir};
    use crate::batch::task::{EditScope, FolderMode};

    fn store() -> (BatchStore, std::path::PathBuf) {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        (s, dir)
    }

    fn import(
        s: &BatchStore,
        text: &str,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let t = s.task("t").unwrap();
        let parsed = super::super::import::parse_accounts(
            Path::new("a.csv"),
            text.as_bytes(),
            t.settings.shared_targets_allowed(),
            false,
        )?;
        s.import_rows("t", Path::new("a.csv"), parsed, options)
    }

    #[test]
    fn a_bad_row_stops_the_import_unless_skipped() {
        let (s, dir) = store();
        let text = "u1@new.example,u1,pw\nbroken,u2,pw\nu3@new.example,u3,\n";
        let e = import(&s, text, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(s.accounts("t").unwrap().is_empty());
        let r = import(
            &s,
            text,
            ImportOptions {
                skip_bad_rows: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (r.added, r.waiting_for_credentials, r.skipped.len()),
            (2, 1, 1)
        );
        let a = s.accounts("t").unwrap();
        assert_eq!(a[0].status, Status::NotStarted);
        assert_eq!(a[1].status, Status::WaitingForCredentials);
        assert!(!a[1].has_credentials);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_second_import_checks_against_the_task() {
        let (s, dir) = store();
        import(&s, "u1@new.example,u1,pw\n", ImportOptions::default()).unwrap();
        let e = import(
            &s,
            "u1@new.example,u1,pw2\nu1@new.example,other,pw\n",
            ImportOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 1: this source and target are already in the task"),
            "{e}"
        );
        assert!(
            e.contains("line 2: target \"u1@new.example\" already receives \"u1\""),
            "{e}"
        );
        let e = import(&s, "u1@new.example,other,pw\n", ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "line 1: target \"u1@new.example\" already receives \"u1\" (already in the task)"
            ),
            "{e}"
        );
        let r = import(
            &s,
            "u1@new.example,u1,pw2\n",
            ImportOptions {
                update_existing: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((r.added, r.updated), (0, 1));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn controls_and_credentials_walk_the_machine() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,pw\nu2@new.example,u2,\n",
            ImportOptions::default(),
        )
        .unwrap();
        let all = s.pause("t", Selection::All).unwrap();
        assert_eq!(all.changed, 2);
        assert_eq!(s.pause("t", Selection::All).unwrap().unchanged, 2);
        let names = vec!["u2@new.example".to_string()];
        s.resume("t", Selection::Names(&names)).unwrap();
        let a = s.accounts("t").unwrap();
        assert_eq!(a[0].status, Status::Paused);
        assert_eq!(a[1].status, Status::WaitingForCredentials);
        let st = s.supply_credentials("t", "u2", Secret::new("pw")).unwrap();
        assert_eq!(st, vec![(a[1].id, Status::Scheduled)]);
        let e = s
            .pause("t", Selection::Names(&["nobody@x.y".to_string()]))
            .unwrap_err();
        assert!(matches!(e, BatchError::UnknownAccount { .. }), "{e}");
        let by_id = vec![format!("#{}", a[0].id)];
        assert_eq!(s.stop("t", Selection::Names(&by_id)).unwrap().changed, 1);
        assert_eq!(s.accounts("t").unwrap()[0].status, Status::Stopped);
        let log = s.audit("t", None, 1000).unwrap();
        assert!(log
            .iter()
            .any(|r| r.event["event"] == "credentials_supplied"));
        assert!(!log.iter().any(|r| r.to_json_line().contains("\"pw\"")));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unified_mode_accepts_shared_targets() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        let mut set = settings();
        set.folders.mode = FolderMode::Unified { root: "Old".into() };
        s.create_task("t", &set, None, None).unwrap();
        import(
            &s,
            "all@new.example,a,pw\nall@new.example,b,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(s.accounts("t").unwrap().len(), 2);
        // Editing the server for all accounts is allowed any time.
        let mut set2 = set.clone();
        set2.source.host = "moved.example".into();
        s.edit_task("t", &set2, None, None, EditScope::All).unwrap();
        assert_eq!(
            s.accounts("t").unwrap()[0].source_server,
            "moved.example:993"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
