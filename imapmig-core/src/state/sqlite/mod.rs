//! The embedded [`StateStore`]: one SQLite file (rusqlite, bundled SQLite) in WAL mode.
//!
//! Several processes may share one file: every write is a `BEGIN IMMEDIATE` transaction, so two
//! writers queue on the file lock (for up to [`BUSY_TIMEOUT`]) instead of failing on a lock
//! upgrade, and readers never block writers (WAL).
//!
//! Schema (version 2, in `PRAGMA user_version`; the file is marked with `PRAGMA application_id`):
//! `folder`, `copied` and `pending`, each a `WITHOUT ROWID` table whose primary key is
//! `(account, folder[, src_uid])`. Every query of the store selects on a prefix of that key, so
//! the primary keys are the only indexes needed and each write maintains exactly one B-tree.
//! Fingerprints are 32-byte BLOBs, flags one line of text ([`Flags::to_line`]).
//!
//! A row that cannot be read back is reported as [`StateError::Corrupt`], never a panic.//!
//! The file's schema and its migrations are in [`schema`]; reading rows back (and the error
//! context of every call) in [`rows`]; the [`StateStore`] queries in [`queries`]. This file
//! opens the connection and runs the transactions.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::StateError;
use rows::Ctx;
use schema::{check_identity, migrate};

mod queries;
mod rows;
mod schema;

/// How long a write waits for another process holding the file's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection; above the number of distinct statements we run.
const STATEMENT_CACHE: usize = 48;

/// How far a committed transaction survives.
///
/// In both modes a crash never corrupts the file and never leaves half a transaction; they
/// differ in whether the *last* committed transactions survive a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit has been written to the WAL file (the operating system's
    /// page cache) when it returns, so it survives any crash of the process — `kill -9`, a panic,
    /// the OOM killer. A power loss or kernel crash may lose the transactions committed since the
    /// last checkpoint. After a power loss a lost pending record can mean one duplicated message
    /// on the destination; choose [`Durability::Full`] where that matters more than speed.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is fsynced to the WAL before it returns, so it survives
    /// a power loss too, at the cost of one fsync per batch.
    Full,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// A [`StateStore`] in a SQLite file (or in memory, for tests and dry runs).
///
/// One connection behind a mutex: SQLite serialises writers anyway, and each call is short.
/// The calls block; async callers should run them on a blocking thread.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating it if needed) the state file at `path` with [`Durability::Normal`].
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Self::open_with(path, Durability::Normal)
    }

    /// Opens (creating it if needed) the state file at `path`.
    ///
    /// Sets WAL mode, the durability and a busy timeout of [`BUSY_TIMEOUT`], then brings the
    /// schema up to date. A file of another application fails with [`StateError::Foreign`], a
    /// file of a newer imapmig with [`StateError::SchemaTooNew`]; neither is modified.
    pub fn open_with(path: &Path, durability: Durability) -> Result<Self, StateError> {
        // Setting up a file that another process is setting up at the same moment can meet
        // SQLITE_BUSY where SQLite does not call the busy handler (the switch to WAL, WAL
        // recovery): try again for as long as the busy timeout would have waited.
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(path, durability) {
                Err(StateError::Open { source, .. })
                    if is_busy(&source) && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, durability: Durability) -> Result<Self, StateError> {
        let open_err = |source| StateError::Open {
            path: path.to_path_buf(),
            source,
        };
        create_private(path);
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Look before changing anything: switching a foreign file to WAL would modify it.
        check_identity(&conn, path)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            // Some file systems (network shares) cannot do WAL; SQLite then keeps a rollback
            // journal, which is just as safe, only slower with several processes.
            tracing::warn!(path = %path.display(), mode, "state file not in WAL mode");
        }
        conn.pragma_update(None, "synchronous", durability.pragma())
            .map_err(open_err)?;
        migrate(&mut conn, path)?;
        Ok(Self::new(conn, path.to_path_buf()))
    }

    /// A store that lives in memory and vanishes with it.
    pub fn open_in_memory() -> Result<Self, StateError> {
        let path = PathBuf::from(":memory:");
        let mut conn = Connection::open_in_memory().map_err(|source| StateError::Open {
            path: path.clone(),
            source,
        })?;
        migrate(&mut conn, &path)?;
        Ok(Self::new(conn, path))
    }

    /// The state file's path (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn new(conn: Connection, path: PathBuf) -> Self {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        SqliteStore {
            conn: Mutex::new(conn),
            path,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held dropped its Transaction, which rolled back: the
        // connection is consistent, so a poisoned lock is safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ctx<'a>(&'a self, account: &'a str, folder: Option<&'a str>) -> Ctx<'a> {
        Ctx {
            file: &self.path,
            account,
            folder,
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` succeeds and rolled back
    /// otherwise.
    fn write<T>(
        &self,
        ctx: &Ctx<'_>,
        what: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(ctx.sql(what))?;
        let out = f(&tx)?;
        tx.commit().map_err(ctx.sql(what))?;
        Ok(out)
    }
}

/// Whether SQLite reported the file busy or locked by another connection.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Creates a new state file readable by its owner only (0600): it says whose mail went where,
/// and a batch store in it holds passwords. SQLite gives its WAL and shared-memory files the
/// same mode. An existing file is left as it is; failing here leaves the creation to SQLite
/// (which then reports any real problem).
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
    }
    #[cfg(not(unix))]
    let _ = path;
}
