//! The batch store: tasks, accounts, statuses, refusals, the audit log and the scheduler's
//! lease, in SQLite.
//!
//! It lives in the same file as the sync state (a platform keeps one file) with tables of its
//! own (`batch_*`) and its own schema version (in `batch_meta`, never `PRAGMA user_version`,
//! which [`SqliteStore`] owns). Opening it opens the sync state first, so that the file is
//! marked and set up as an imapmig state file before any batch table exists. It keeps its own
//! connection in WAL mode with a busy timeout; every write is one `BEGIN IMMEDIATE`
//! transaction, so the CLI can pause an account while `imapmig run` works on the same file.
//!
//! # Secrets
//!
//! Account passwords and tokens, and the task's admin or master password, are stored in the
//! file because a task runs for weeks and incremental passes need them. The file is made
//! readable by its owner only. They are never part of a status, an export, an audit event or
//! an error. A platform that would rather not store them can import accounts without
//! passwords and supply them when needed with [`BatchStore::supply_credentials`].
//!
//! Opened with a [`StateKey`] ([`BatchStore::open_with_key`]), the store seals every secret it
//! writes (see [`super::seal`]) and, the first time, the secrets it already held; from then on
//! it opens only with that key ([`BatchError::StateKeyNeeded`], [`BatchError::WrongStateKey`]).
//! A check value sealed with the key (table `batch_seal`) tells a wrong key from a damaged
//! value. Without a key (`open`), secrets are kept as written, as before keys existed.
//! `secure_delete` is on, so a value overwritten or deleted does not linger in free pages.
//!
//! This file holds opening, the schema, tasks and the lease; accounts are in
//! [`super::accounts`], the scheduler's side in [`super::passes`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use super::audit::{AuditEvent, AuditRecord};
use super::error::BatchError;
use super::seal::{is_sealed, StateKey};
use super::task::{EditScope, Task, TaskSettings};
use crate::secret::Secret;
use crate::state::{SqliteStore, BUSY_TIMEOUT};

/// The batch schema version this build writes, and the newest it reads.
const SCHEMA_VERSION: i64 = 1;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// `MIGRATIONS[i]` takes the batch tables from version `i` to `i + 1`.
const MIGRATIONS: [&str; 1] = ["
    CREATE TABLE batch_task (
        name               TEXT    PRIMARY KEY,
        settings           TEXT    NOT NULL,
        source_secret      TEXT,
        destination_secret TEXT,
        created_at         INTEGER NOT NULL,
        updated_at         INTEGER NOT NULL
    );
    CREATE TABLE batch_account (
        id              INTEGER PRIMARY KEY,
        task            TEXT    NOT NULL REFERENCES batch_task(name),
        source          TEXT    NOT NULL,
        mailbox         TEXT    NOT NULL COLLATE NOCASE,
        target          TEXT    NOT NULL COLLATE NOCASE,
        password        TEXT,
        target_password TEXT,
        status          TEXT    NOT NULL,
        failure         TEXT,
        control         TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        last_error      TEXT,
        folders_done    INTEGER NOT NULL DEFAULT 0,
        folders_total   INTEGER NOT NULL DEFAULT 0,
        messages        INTEGER NOT NULL DEFAULT 0,
        bytes           INTEGER NOT NULL DEFAULT 0,
        refused         INTEGER NOT NULL DEFAULT 0,
        passes          INTEGER NOT NULL DEFAULT 0,
        source_pin      TEXT,
        destination_pin TEXT,
        source_host     TEXT,
        destination_host TEXT,
        csv_line        INTEGER,
        created_at      INTEGER NOT NULL,
        started_at      INTEGER,
        synced_at       INTEGER,
        last_pass_at    INTEGER,
        next_run_at     INTEGER,
        window_ends_at  INTEGER,
        updated_at      INTEGER NOT NULL,
        UNIQUE (task, mailbox, target)
    );
    CREATE INDEX batch_account_due ON batch_account (task, status, next_run_at);
    CREATE INDEX batch_account_target ON batch_account (task, target);
    CREATE TABLE batch_refusal (
        account  INTEGER NOT NULL,
        folder   TEXT    NOT NULL,
        uid      INTEGER NOT NULL,
        reason   TEXT    NOT NULL,
        first_at INTEGER NOT NULL,
        last_at  INTEGER NOT NULL,
        PRIMARY KEY (account, folder, uid)
    ) WITHOUT ROWID;
    CREATE TABLE batch_audit (
        id      INTEGER PRIMARY KEY,
        task    TEXT    NOT NULL,
        account INTEGER,
        at      INTEGER NOT NULL,
        event   TEXT    NOT NULL
    );
    CREATE INDEX batch_audit_task ON batch_audit (task, id);
    CREATE TABLE batch_lease (
        task         TEXT    PRIMARY KEY,
        pid          INTEGER NOT NULL,
        host         TEXT    NOT NULL,
        token        TEXT    NOT NULL,
        heartbeat_at INTEGER NOT NULL
    ) WITHOUT ROWID;
"];

/// A scheduler's lease on a task is taken over when its heartbeat is older than this many
/// seconds (or at once when it was a process on this machine that no longer exists).
pub(crate) const LEASE_STALE_SECS: i64 = 20;

/// The batch store: one SQLite file, shared with the sync state. See the module documentation.
#[derive(Debug)]
pub struct BatchStore {
    conn: Mutex<Connection>,
    pub(super) path: PathBuf,
    sync: Arc<SqliteStore>,
    /// Seals and opens the stored secrets; `None` for a store that keeps them as written.
    key: Option<StateKey>,
}

/// What the check value in `batch_seal` holds, sealed.
const KEY_CHECK: &str = "imapmig batch store key check";

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// A stored time, back as a date.
pub(crate) fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl BatchStore {
    /// Opens (creating it if needed) the store in the state file at `path`: the sync state
    /// first, then the batch tables. The file is made readable by its owner only, as it holds
    /// passwords.
    ///
    /// Secrets are kept as written (no key). A store whose secrets are sealed does not open
    /// this way: see [`BatchStore::open_with_key`].
    pub fn open(path: &Path) -> Result<BatchStore, BatchError> {
        BatchStore::open_with_key(path, None)
    }

    /// Opens the store like [`BatchStore::open`]; with a key, every secret is sealed with it
    /// (those already stored without one too, on this first opening with a key). A store whose
    /// secrets are sealed needs the same key again.
    pub fn open_with_key(path: &Path, key: Option<StateKey>) -> Result<BatchStore, BatchError> {
        let sync = Arc::new(SqliteStore::open(path)?);
        restrict_permissions(path);
        let open_err = |source| BatchError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // The sync store already switched the file to WAL; synchronous is per connection.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_err)?;
        // Overwritten and deleted values (a password replaced by its sealed form) are zeroed,
        // not left in free pages.
        conn.pragma_update(None, "secure_delete", true)
            .map_err(open_err)?;
        migrate(&mut conn, path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let store = BatchStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            sync,
            key,
        };
        store.set_up_sealing()?;
        Ok(store)
    }

    /// Whether the secrets this store writes are sealed (it was opened with a key).
    pub fn seals_secrets(&self) -> bool {
        self.key.is_some()
    }

    /// Checks the key against the store, and seals what was stored without one the first time
    /// a key is given.
    fn set_up_sealing(&self) -> Result<(), BatchError> {
        let mut conn = self.lock();
        let err = |source| BatchError::Open {
            path: self.path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS batch_seal (
                 id        INTEGER PRIMARY KEY CHECK (id = 1),
                 key_check TEXT    NOT NULL
             )",
        )
        .map_err(err)?;
        let check: Option<String> = tx
            .query_row("SELECT key_check FROM batch_seal WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        let wrong_key = || BatchError::WrongStateKey {
            path: self.path.clone(),
        };
        match (&self.key, check) {
            (None, None) => return Ok(()),
            (None, Some(_)) => {
                return Err(BatchError::StateKeyNeeded {
                    path: self.path.clone(),
                })
            }
            (Some(key), Some(check)) => {
                return match key.open("key_check", &check) {
                    Some(_) => Ok(()),
                    None => Err(wrong_key()),
                }
            }
            (Some(key), None) => {
                tx.execute(
                    "INSERT INTO batch_seal (id, key_check) VALUES (1, ?1)",
                    [key.seal("key_check", KEY_CHECK)],
                )
                .map_err(err)?;
                for (table, key_column, columns) in [
                    (
                        "batch_task",
                        "name",
                        ["source_secret", "destination_secret"],
                    ),
                    ("batch_account", "id", ["password", "target_password"]),
                ] {
                    for column in columns {
                        let what = seal_context(table, column);
                        let rows: Vec<(rusqlite::types::Value, String)> = tx
                            .prepare(&format!(
                                "SELECT {key_column}, {column} FROM {table} WHERE {column} IS NOT NULL"
                            ))
                            .and_then(|mut s| {
                                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                                    .collect()
                            })
                            .map_err(err)?;
                        for (row, value) in rows {
                            if is_sealed(&value) {
                                // Sealed without a check value: only a key can have done it.
                                key.open(what, &value).ok_or_else(wrong_key)?;
                                continue;
                            }
                            tx.execute(
                                &format!(
                                    "UPDATE {table} SET {column} = ?2 WHERE {key_column} = ?1"
                                ),
                                params![row, key.seal(what, &value)],
                            )
                            .map_err(err)?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        // The clear values may still be in the WAL's older frames: fold it into the file and
        // empty it (best effort: a reader elsewhere may hold it).
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot empty the WAL after sealing");
        }
        Ok(())
    }

    /// A secret as it is to be stored in `column` of `table`: sealed when the store has a key.
    pub(super) fn seal_secret(&self, table: &str, column: &str, secret: &Secret) -> String {
        match &self.key {
            Some(key) => key.seal(seal_context(table, column), secret.expose()),
            None => secret.expose().to_string(),
        }
    }

    /// A stored secret, opened.
    pub(super) fn open_secret(
        &self,
        task: &str,
        account: Option<&str>,
        table: &str,
        column: &str,
        stored: &str,
    ) -> Result<Secret, BatchError> {
        if !is_sealed(stored) {
            return Ok(Secret::new(stored.to_string()));
        }
        let Some(key) = &self.key else {
            return Err(BatchError::StateKeyNeeded {
                path: self.path.clone(),
            });
        };
        key.open(seal_context(table, column), stored)
            .ok_or_else(|| {
                self.corrupt(
                    task,
                    account,
                    format!("{table}.{column}: a sealed value does not open with the key"),
                )
            })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync state in the same file, for the engine.
    pub fn sync_state(&self) -> Arc<SqliteStore> {
        self.sync.clone()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled its transaction back: safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn sql<'a>(
        &'a self,
        what: &'static str,
        task: &'a str,
        account: Option<&'a str>,
    ) -> impl Fn(rusqlite::Error) -> BatchError + 'a {
        move |source| BatchError::Sqlite {
            path: self.path.clone(),
            what,
            task: task.to_string(),
            account: account.map(str::to_string),
            source: Box::new(source),
        }
    }

    pub(super) fn corrupt(&self, task: &str, account: Option<&str>, detail: String) -> BatchError {
        BatchError::Corrupt {
            path: self.path.clone(),
            task: task.to_string(),
            account: account.map(str::to_string),
            detail,
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it succeeds.
    pub(super) fn write<T>(
        &self,
        what: &'static str,
        task: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, BatchError>,
    ) -> Result<T, BatchError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql(what, task, None))?;
        let out = f(&tx)?;
        tx.commit().map_err(self.sql(what, task, None))?;
        Ok(out)
    }

    /// Appends an audit event inside a transaction.
    pub(super) fn audit_in(
        &self,
        tx: &Transaction<'_>,
        task: &str,
        account: Option<i64>,
        event: &AuditEvent,
        when: i64,
    ) -> Result<(), BatchError> {
        let json = serde_json::to_string(event)
            .map_err(|e| self.corrupt(task, None, format!("audit event: {e}")))?;
        tx.prepare_cached(
            "INSERT INTO batch_audit (task, account, at, event) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![task, account, when, json]))
        .map_err(self.sql("write the audit log", task, None))?;
        Ok(())
    }

    /// Creates a task. Fails if the settings cannot work or the name is taken.
    pub fn create_task(
        &self,
        name: &str,
        settings: &TaskSettings,
        source_secret: Option<Secret>,
        destination_secret: Option<Secret>,
    ) -> Result<Task, BatchError> {
        settings.validate(
            name,
            (source_secret.is_some(), destination_secret.is_some()),
        )?;
        let json = serde_json::to_string(settings)
            .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
        let t = now();
        self.write("create the task", name, |tx| {
            let exists: bool = tx
                .query_row("SELECT 1 FROM batch_task WHERE name = ?1", [name], |_| Ok(true))
                .optional()
                .map_err(self.sql("create the task", name, None))?
                .unwrap_or(false);
            if exists {
                return Err(BatchError::TaskExists {
                    path: self.path.clone(),
                    task: name.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO batch_task (name, settings, source_secret, destination_secret, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![
                    name,
                    json,
                    source_secret
                        .as_ref()
                        .map(|s| self.seal_secret("batch_task", "source_secret", s)),
                    destination_secret
                        .as_ref()
                        .map(|s| self.seal_secret("batch_task", "destination_secret", s)),
                    t
                ],
            )
            .map_err(self.sql("create the task", name, None))?;
            self.audit_in(tx, name, None, &AuditEvent::TaskCreated, t)
        })?;
        self.task(name)
    }

    /// The task of that name.
    pub fn task(&self, name: &str) -> Result<Task, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, name)
    }

    pub(super) fn task_in(&self, conn: &Connection, name: &str) -> Result<Task, BatchError> {
        let row = conn
            .prepare_cached(
                "SELECT settings, source_secret, destination_secret, created_at, updated_at
                 FROM batch_task WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row([name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()
            })
            .map_err(self.sql("read the task", name, None))?;
        let Some((json, ss, ds, created, updated)) = row else {
            return Err(BatchError::UnknownTask {
                path: self.path.clone(),
                task: name.to_string(),
            });
        };
        let settings: TaskSettings = serde_json::from_str(&json)
            .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
        let open = |column, stored: Option<String>| {
            stored
                .map(|v| self.open_secret(name, None, "batch_task", column, &v))
                .transpose()
        };
        Ok(Task {
            name: name.to_string(),
            settings,
            source_secret: open("source_secret", ss)?,
            destination_secret: open("destination_secret", ds)?,
            created_at: at(created),
            updated_at: at(updated),
        })
    }

    /// The names of every task, sorted.
    pub fn tasks(&self) -> Result<Vec<String>, BatchError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT name FROM batch_task ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.sql("list tasks", "", None))
    }

    /// Replaces a task's settings (and, when given, its secrets). Returns the names of the
    /// settings that changed.
    ///
    /// Server changes (host, port, TLS, certificate check, auth) apply to accounts that have
    /// not started, or to every account from its next pass, as `scope` says; every other
    /// setting applies at once to all (a running scheduler picks it up within a second).
    pub fn edit_task(
        &self,
        name: &str,
        settings: &TaskSettings,
        source_secret: Option<Secret>,
        destination_secret: Option<Secret>,
        scope: EditScope,
    ) -> Result<Vec<String>, BatchError> {
        let t = now();
        self.write("edit the task", name, |tx| {
            let old = self.task_in(tx, name)?;
            let has = (
                source_secret.is_some() || old.source_secret.is_some(),
                destination_secret.is_some() || old.destination_secret.is_some(),
            );
            settings.validate(name, has)?;
            let changed = changed_settings(&old.settings, settings);
            let json = serde_json::to_string(settings)
                .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
            tx.execute(
                "UPDATE batch_task SET settings = ?2, updated_at = ?3,
                     source_secret = coalesce(?4, source_secret),
                     destination_secret = coalesce(?5, destination_secret)
                 WHERE name = ?1",
                params![
                    name,
                    json,
                    t,
                    source_secret.as_ref().map(|s| self.seal_secret(
                        "batch_task",
                        "source_secret",
                        s
                    )),
                    destination_secret.as_ref().map(|s| self.seal_secret(
                        "batch_task",
                        "destination_secret",
                        s
                    ))
                ],
            )
            .map_err(self.sql("edit the task", name, None))?;
            if scope == EditScope::All {
                tx.execute(
                    "UPDATE batch_account SET source_pin = NULL, destination_pin = NULL,
                         source_host = NULL, destination_host = NULL
                     WHERE task = ?1",
                    [name],
                )
                .map_err(self.sql("edit the task", name, None))?;
            }
            let mut names = changed.clone();
            if source_secret.is_some() {
                names.push("source.secret".into());
            }
            if destination_secret.is_some() {
                names.push("destination.secret".into());
            }
            self.audit_in(
                tx,
                name,
                None,
                &AuditEvent::TaskEdited {
                    changed: names.clone(),
                    scope,
                },
                t,
            )?;
            Ok(names)
        })
    }

    /// Audit records of a task, oldest first: those after `after_id` (all when `None`), at
    /// most `limit`.
    pub fn audit(
        &self,
        task: &str,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, BatchError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.id, l.at, l.event, a.target, a.source FROM batch_audit l
                 LEFT JOIN batch_account a ON a.id = l.account
                 WHERE l.task = ?1 AND l.id > ?2 ORDER BY l.id LIMIT ?3",
            )
            .map_err(self.sql("read the audit log", task, None))?;
        let rows = stmt
            .query_map(
                params![
                    task,
                    after_id.unwrap_or(0),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read the audit log", task, None))?;
        rows.into_iter()
            .map(|(id, when, json, account, source)| {
                let event = serde_json::from_str(&json).map_err(|e| {
                    self.corrupt(task, account.as_deref(), format!("audit event {id}: {e}"))
                })?;
                Ok(AuditRecord {
                    id,
                    at: at(when),
                    task: task.to_string(),
                    account,
                    source,
                    event,
                    raw: json,
                })
            })
            .collect()
    }

    /// Takes the task's lease for a scheduler, or fails with [`BatchError::Locked`] while
    /// another live scheduler holds it. Returns the token that proves ownership.
    pub(crate) fn acquire_lease(&self, task: &str) -> Result<String, BatchError> {
        let pid = std::process::id();
        let host = host_name();
        let token = format!(
            "{host}:{pid}:{}",
            OffsetDateTime::now_utc().unix_timestamp_nanos()
        );
        let t = now();
        self.write("take the scheduler lease", task, |tx| {
            self.task_in(tx, task)?;
            let held: Option<(i64, String, i64)> = tx
                .query_row(
                    "SELECT pid, host, heartbeat_at FROM batch_lease WHERE task = ?1",
                    [task],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(self.sql("take the scheduler lease", task, None))?;
            if let Some((other_pid, other_host, beat)) = held {
                let fresh = t - beat < LEASE_STALE_SECS;
                let gone = other_host == host && !process_alive(other_pid);
                let me = other_host == host && other_pid == i64::from(pid);
                if fresh && !gone && !me {
                    return Err(BatchError::Locked {
                        task: task.to_string(),
                        owner: format!("pid {other_pid} on {other_host}"),
                        seconds_ago: t - beat,
                    });
                }
            }
            tx.execute(
                "INSERT INTO batch_lease (task, pid, host, token, heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (task) DO UPDATE SET pid = ?2, host = ?3, token = ?4, heartbeat_at = ?5",
                params![task, pid, host, token, t],
            )
            .map_err(self.sql("take the scheduler lease", task, None))?;
            Ok(token.clone())
        })
    }

    /// Renews the lease; fails with [`BatchError::Locked`] if another scheduler took it over.
    pub(crate) fn heartbeat(&self, task: &str, token: &str) -> Result<(), BatchError> {
        self.write("renew the scheduler lease", task, |tx| {
            let n = tx
                .execute(
                    "UPDATE batch_lease SET heartbeat_at = ?3 WHERE task = ?1 AND token = ?2",
                    params![task, token, now()],
                )
                .map_err(self.sql("renew the scheduler lease", task, None))?;
            if n == 0 {
                return Err(BatchError::Locked {
                    task: task.to_string(),
                    owner: "another scheduler (the lease was taken over)".into(),
                    seconds_ago: 0,
                });
            }
            Ok(())
        })
    }

    /// Gives the lease up.
    pub(crate) fn release_lease(&self, task: &str, token: &str) -> Result<(), BatchError> {
        self.write("release the scheduler lease", task, |tx| {
            tx.execute(
                "DELETE FROM batch_lease WHERE task = ?1 AND token = ?2",
                params![task, token],
            )
            .map_err(self.sql("release the scheduler lease", task, None))?;
            Ok(())
        })
    }
}

/// The settings that differ, by name.
fn changed_settings(old: &TaskSettings, new: &TaskSettings) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&name, p, q, out),
                    _ => out.push(name),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), BatchError> {
    let open_err = |source| BatchError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS batch_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    )
    .map_err(open_err)?;
    let version: i64 = tx
        .query_row(
            "SELECT value FROM batch_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(open_err)?
        .unwrap_or(0);
    if version > SCHEMA_VERSION {
        return Err(BatchError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return tx.commit().map_err(open_err);
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(open_err)?;
    }
    tx.execute(
        "INSERT INTO batch_meta (key, value) VALUES ('schema_version', ?1)
         ON CONFLICT (key) DO UPDATE SET value = ?1",
        [SCHEMA_VERSION],
    )
    .map_err(open_err)?;
    tx.commit().map_err(open_err)
}

/// The associated data a secret in `column` of `table` is sealed with.
fn seal_context(table: &str, column: &str) -> &'static str {
    match (table, column) {
        ("batch_task", "source_secret") => "task.source_secret",
        ("batch_task", "destination_secret") => "task.destination_secret",
        ("batch_account", "password") => "account.password",
        ("batch_account", "target_password") => "account.target_password",
        _ => "key_check",
    }
}

/// Makes the file (and its WAL companions) readable by the owner only: it holds passwords.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = PathBuf::from(p);
            if let Ok(meta) = std::fs::metadata(&p) {
                if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                    if let Err(e) =
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    {
                        tracing::warn!(path = %p.display(), error = %e, "cannot make the batch store private");
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// This machine's name, for the lease.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether a process of this machine is alive. Where that cannot be told (no `/proc`), it is
/// assumed alive and the lease expires by time.
fn process_alive(pid: i64) -> bool {
    let proc_root = Path::new("/proc");
    if !proc_root.join("self").exists() {
        return true;
    }
    proc_root.join(pid.to_string()).exists()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::task::ServerSettings;

    pub(crate) fn settings() -> TaskSettings {
        TaskSettings::new(
            ServerSettings::new("old.example"),
            ServerSettings::new("new.example"),
        )
    }

    #[test]
    fn opens_beside_the_sync_state_and_reopens() {
        let dir = tempfile_dir();
        let path = dir.join("state.sqlite");
        {
            let s = BatchStore::open(&path).unwrap();
            s.create_task("t", &settings(), None, None).unwrap();
        }
        let s = BatchStore::open(&path).unwrap();
        assert_eq!(s.tasks().unwrap(), vec!["t".to_string()]);
        // The sync store still accepts the file, and owns user_version.
        SqliteStore::open(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2, "the sync store's schema version");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{mode:o}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn tasks_are_unique_and_edits_are_named() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        assert!(matches!(
            s.create_task("t", &settings(), None, None),
            Err(BatchError::TaskExists { .. })
        ));
        assert!(matches!(
            s.task("nope"),
            Err(BatchError::UnknownTask { .. })
        ));
        let mut new = settings();
        new.source.port = 1993;
        new.limits.accounts = 3;
        let changed = s.edit_task("t", &new, None, None, EditScope::All).unwrap();
        assert_eq!(changed, vec!["limits.accounts", "source.port"]);
        assert_eq!(s.task("t").unwrap().settings, new);
        let log = s.audit("t", None, 100).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].event["event"], "task_edited");
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_live_lease_locks_out_a_second_scheduler() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        let token = s.acquire_lease("t").unwrap();
        s.heartbeat("t", &token).unwrap();
        // Pretend another live process on another machine holds it.
        s.lock()
            .execute("UPDATE batch_lease SET host = 'elsewhere', token = 'x'", [])
            .unwrap();
        assert!(matches!(
            s.acquire_lease("t"),
            Err(BatchError::Locked { .. })
        ));
        assert!(matches!(
            s.heartbeat("t", &token),
            Err(BatchError::Locked { .. })
        ));
        // Once its heartbeat is old, it is taken over.
        s.lock()
            .execute(
                "UPDATE batch_lease SET heartbeat_at = heartbeat_at - 3600",
                [],
            )
            .unwrap();
        let token = s.acquire_lease("t").unwrap();
        // A dead process on this machine is taken over at once.
        s.lock()
            .execute("UPDATE batch_lease SET pid = 999999999, token = 'y'", [])
            .unwrap();
        let token2 = s.acquire_lease("t").unwrap();
        assert_ne!(token, token2);
        s.release_lease("t", &token2).unwrap();
        std::fs::remove_dir_all(dir).ok();
    }

    pub(crate) fn tempfile_dir() -> PathBuf {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let d = std::env::temp_dir().join(format!(
            "imapmig-batch-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
