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
//! Each table has its own file with its queries, so that another backend can follow the same
//! seams: [`schema`] (`batch_meta` and the migrations that create the rest), [`sealing`]
//! (`batch_seal`, and sealing the secret columns), [`tasks`] (`batch_task`), [`lease`]
//! (`batch_lease`), [`audit`] (`batch_audit`), and for `batch_account`: [`accounts`] (the row,
//! reading it, status changes), [`listing`] (pages, one account, totals), [`imports`] (CSV
//! rows in) and [`controls`] (pause, resume, stop, run now, credentials), [`logins`] (the
//! engine account of a source login), [`queue`] (what the scheduler runs next) and [`passes`]
//! (a pass from start to verdict); [`refusals`] (`batch_refusal`), [`invitations`]
//! (`batch_invitation`, self-service credentials) and [`console`] (`batch_console`, the web
//! console's secrets). This file holds opening, the connection and its transactions.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use time::OffsetDateTime;

use super::error::BatchError;
use super::seal::StateKey;
use crate::state::{SqliteStore, BUSY_TIMEOUT};

mod accounts;
mod audit;
mod console;
mod controls;
mod imports;
mod invitations;
mod lease;
mod listing;
mod logins;
mod passes;
mod queue;
mod refusals;
mod schema;
mod sealing;
mod tasks;

use accounts::StoredAccount;
pub use controls::{ControlReport, Selection};
pub use imports::{ImportOptions, ImportReport};
pub use invitations::Invitation;
pub use lease::SchedulerHolder;
pub(crate) use lease::LEASE_STALE_SECS;
pub use listing::{AccountPage, AccountQuery, AccountSort};
pub(crate) use passes::{PassTicket, Progress};
pub(crate) use queue::DueAccount;
pub use refusals::Refusal;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// The batch store: one SQLite file, shared with the sync state. See the module documentation.
#[derive(Debug)]
pub struct BatchStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    sync: Arc<SqliteStore>,
    /// Seals and opens the stored secrets; `None` for a store that keeps them as written.
    key: Option<StateKey>,
}

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
        schema::migrate(&mut conn, path)?;
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

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sync state in the same file, for the engine.
    pub fn sync_state(&self) -> Arc<SqliteStore> {
        self.sync.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled its transaction back: safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sql<'a>(
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

    fn corrupt(&self, task: &str, account: Option<&str>, detail: String) -> BatchError {
        BatchError::Corrupt {
            path: self.path.clone(),
            task: task.to_string(),
            account: account.map(str::to_string),
            detail,
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed when it succeeds.
    fn write<T>(
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::batch::task::{ServerSettings, TaskSettings};

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
