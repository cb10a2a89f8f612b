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
//! A row that cannot be read back is reported as [`StateError::Corrupt`], never a panic.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::{CopiedRecord, FolderRecord, PendingRecord, StateError, StateStore};
use crate::model::{Flags, Uid, UidValidity};

/// How long a write waits for another process holding the file's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema version this build writes, and the newest it can read.
const SCHEMA_VERSION: i64 = 2;

/// `PRAGMA application_id` of an imapmig state file: "IMMG".
const APPLICATION_ID: i64 = 0x494D_4D47;

/// Prepared statements kept per connection; above the number of distinct statements we run.
const STATEMENT_CACHE: usize = 48;

/// `MIGRATIONS[i]` takes a file from schema version `i` to `i + 1`.
const MIGRATIONS: [&str; 2] = [
    "
    CREATE TABLE folder (
        account            TEXT    NOT NULL,
        folder             TEXT    NOT NULL,
        source_uidvalidity INTEGER NOT NULL,
        dest_folder        TEXT    NOT NULL,
        dest_uidvalidity   INTEGER,
        highest_modseq     INTEGER,
        updated_at         INTEGER NOT NULL,
        PRIMARY KEY (account, folder)
    ) WITHOUT ROWID;
    CREATE TABLE copied (
        account     TEXT    NOT NULL,
        folder      TEXT    NOT NULL,
        src_uid     INTEGER NOT NULL,
        dst_uid     INTEGER,
        fingerprint BLOB    NOT NULL,
        flags       TEXT    NOT NULL,
        size        INTEGER NOT NULL,
        PRIMARY KEY (account, folder, src_uid)
    ) WITHOUT ROWID;
    CREATE TABLE pending (
        account   TEXT    NOT NULL,
        folder    TEXT    NOT NULL,
        src_uid   INTEGER NOT NULL,
        dst_floor INTEGER NOT NULL,
        PRIMARY KEY (account, folder, src_uid)
    ) WITHOUT ROWID;
",
    "
    -- Version 2: the message selection a folder's HIGHESTMODSEQ was recorded under (NULL in
    -- older rows: their next pass reads the folder in full once).
    ALTER TABLE folder ADD COLUMN selection TEXT;
",
];

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

/// Fails unless the file is empty or an imapmig state file this build can read.
fn check_identity(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: path.to_path_buf(),
        source,
    };
    // One read transaction: another process may be creating the schema at this very moment,
    // and three separate reads could see half of its work (no mark yet, but tables already).
    let snapshot = conn.unchecked_transaction().map_err(open_err)?;
    let objects: i64 = snapshot
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(open_err)?;
    let app_id: i64 = snapshot
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(open_err)?;
    let version: i64 = snapshot
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    snapshot.finish().map_err(open_err)?;
    let foreign = |detail: String| StateError::Foreign {
        path: path.to_path_buf(),
        detail,
    };
    if app_id == APPLICATION_ID {
        if version > SCHEMA_VERSION {
            return Err(StateError::SchemaTooNew {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        return Ok(());
    }
    if app_id != 0 {
        return Err(foreign(format!("its application id is {app_id:#x}")));
    }
    if version != 0 || objects != 0 {
        return Err(foreign(format!(
            "it holds {objects} schema objects (user_version {version}) but no imapmig mark"
        )));
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; a file already there is left
/// alone. The version is read inside the write transaction, so two processes opening a new file
/// at once migrate it once.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let open_err = |source| StateError::Open {
        path: path.to_path_buf(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(open_err)?;
    if version > SCHEMA_VERSION {
        return Err(StateError::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    for step in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.execute_batch(step).map_err(open_err)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(open_err)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(open_err)?;
    tx.commit().map_err(open_err)
}

/// Where an operation happens, for its errors.
struct Ctx<'a> {
    file: &'a Path,
    account: &'a str,
    folder: Option<&'a str>,
}

impl Ctx<'_> {
    fn sql(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Sqlite {
            what,
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder.map(str::to_string),
            source: Box::new(source),
        }
    }

    fn folder(&self) -> String {
        self.folder.unwrap_or_default().to_string()
    }

    fn corrupt(&self, uid: Option<Uid>, detail: String) -> StateError {
        StateError::Corrupt {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
            uid,
            detail,
        }
    }

    fn unknown_folder(&self) -> StateError {
        StateError::UnknownFolder {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
        }
    }

    fn invalid_input(&self, detail: String) -> StateError {
        StateError::InvalidInput {
            file: self.file.to_path_buf(),
            account: self.account.to_string(),
            folder: self.folder(),
            detail,
        }
    }
}

// Column readers: a value of the wrong type or range is a description of the damage, turned
// into `StateError::Corrupt` by the caller, which knows the row.

fn col_i64(row: &Row<'_>, idx: usize, name: &str) -> Result<i64, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Integer(i)) => Ok(i),
        Ok(other) => Err(format!("{name} is {:?}, not an integer", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_opt_i64(row: &Row<'_>, idx: usize, name: &str) -> Result<Option<i64>, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Null) => Ok(None),
        Ok(ValueRef::Integer(i)) => Ok(Some(i)),
        Ok(other) => Err(format!("{name} is {:?}, not an integer", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_text(row: &Row<'_>, idx: usize, name: &str) -> Result<String, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Text(t)) => std::str::from_utf8(t)
            .map(str::to_string)
            .map_err(|e| format!("{name} is not UTF-8: {e}")),
        Ok(other) => Err(format!("{name} is {:?}, not text", other.data_type())),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_opt_text(row: &Row<'_>, idx: usize, name: &str) -> Result<Option<String>, String> {
    match row.get_ref(idx) {
        Ok(ValueRef::Null) => Ok(None),
        Ok(_) => col_text(row, idx, name).map(Some),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn col_u32(row: &Row<'_>, idx: usize, name: &str) -> Result<u32, String> {
    to_u32(col_i64(row, idx, name)?, name)
}

fn to_u32(v: i64, name: &str) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{name} {v} is out of range"))
}

fn to_u64(v: i64, name: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{name} {v} is negative"))
}

fn decode_folder(row: &Row<'_>, first: usize) -> Result<FolderRecord, String> {
    Ok(FolderRecord {
        source_uidvalidity: UidValidity(col_u32(row, first, "source_uidvalidity")?),
        dest_folder: col_text(row, first + 1, "dest_folder")?,
        dest_uidvalidity: col_opt_i64(row, first + 2, "dest_uidvalidity")?
            .map(|v| to_u32(v, "dest_uidvalidity").map(UidValidity))
            .transpose()?,
        highest_modseq: col_opt_i64(row, first + 3, "highest_modseq")?
            .map(|v| to_u64(v, "highest_modseq"))
            .transpose()?,
        updated_at: col_i64(row, first + 4, "updated_at")?,
        selection: col_opt_text(row, first + 5, "selection")?,
    })
}

/// Decodes `src_uid, dst_uid, fingerprint, flags, size`; on damage, the UID if it was readable.
fn decode_copied(row: &Row<'_>) -> Result<CopiedRecord, (Option<Uid>, String)> {
    let src_uid = Uid(col_u32(row, 0, "src_uid").map_err(|d| (None, d))?);
    let at = |d| (Some(src_uid), d);
    let dst_uid = col_opt_i64(row, 1, "dst_uid")
        .and_then(|v| v.map(|v| to_u32(v, "dst_uid").map(Uid)).transpose())
        .map_err(at)?;
    let fingerprint = match row.get_ref(2) {
        Ok(ValueRef::Blob(b)) => <[u8; 32]>::try_from(b)
            .map_err(|_| at(format!("fingerprint is {} bytes, not 32", b.len())))?,
        Ok(other) => {
            return Err(at(format!(
                "fingerprint is {:?}, not a blob",
                other.data_type()
            )))
        }
        Err(e) => return Err(at(format!("fingerprint: {e}"))),
    };
    let flags = Flags::from_line(&col_text(row, 3, "flags").map_err(at)?);
    let size = col_i64(row, 4, "size")
        .and_then(|v| to_u64(v, "size"))
        .map_err(at)?;
    Ok(CopiedRecord {
        src_uid,
        dst_uid,
        fingerprint,
        flags,
        size,
    })
}

fn decode_pending(row: &Row<'_>) -> Result<PendingRecord, (Option<Uid>, String)> {
    let src_uid = Uid(col_u32(row, 0, "src_uid").map_err(|d| (None, d))?);
    let dst_floor = col_u32(row, 1, "dst_floor").map_err(|d| (Some(src_uid), d))?;
    Ok(PendingRecord { src_uid, dst_floor })
}

/// A size or MODSEQ as SQLite's signed integer; IMAP keeps both below 2^63.
fn to_i64(ctx: &Ctx<'_>, v: u64, name: &str, uid: Option<Uid>) -> Result<i64, StateError> {
    i64::try_from(v).map_err(|_| {
        let at = uid.map(|u| format!(" of UID {u}")).unwrap_or_default();
        ctx.invalid_input(format!("{name}{at} is {v}, above 2^63 - 1"))
    })
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Checks that a UID map is a one-to-one function: no key twice, no value twice.
fn check_map(
    ctx: &Ctx<'_>,
    map: &[(Uid, Uid)],
    key: &str,
) -> Result<HashMap<i64, i64>, StateError> {
    let mut by_key = HashMap::with_capacity(map.len());
    let mut values = HashSet::with_capacity(map.len());
    for &(k, v) in map {
        if by_key.insert(i64::from(k.0), i64::from(v.0)).is_some() {
            return Err(ctx.invalid_input(format!("{key} UID {k} is mapped twice")));
        }
        if !values.insert(v) {
            return Err(ctx.invalid_input(format!(
                "two UIDs are mapped to UID {v}, which would merge two messages"
            )));
        }
    }
    Ok(by_key)
}

impl StateStore for SqliteStore {
    fn folder(&self, account: &str, folder: &str) -> Result<Option<FolderRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT source_uidvalidity, dest_folder, dest_uidvalidity, highest_modseq, \
                 updated_at, selection FROM folder WHERE account = ?1 AND folder = ?2",
            )
            .map_err(ctx.sql("read folder"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read folder"))?;
        match rows.next().map_err(ctx.sql("read folder"))? {
            Some(row) => decode_folder(row, 0)
                .map(Some)
                .map_err(|d| ctx.corrupt(None, d)),
            None => Ok(None),
        }
    }

    fn put_folder(
        &self,
        account: &str,
        folder: &str,
        rec: &FolderRecord,
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        let modseq = rec
            .highest_modseq
            .map(|m| to_i64(&ctx, m, "HIGHESTMODSEQ", None))
            .transpose()?;
        self.write(&ctx, "store folder", |tx| {
            tx.prepare_cached(
                "INSERT INTO folder (account, folder, source_uidvalidity, dest_folder, \
                 dest_uidvalidity, highest_modseq, updated_at, selection) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (account, folder) DO UPDATE SET \
                 source_uidvalidity = excluded.source_uidvalidity, \
                 dest_folder = excluded.dest_folder, \
                 dest_uidvalidity = excluded.dest_uidvalidity, \
                 highest_modseq = excluded.highest_modseq, \
                 updated_at = excluded.updated_at, \
                 selection = excluded.selection",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    account,
                    folder,
                    rec.source_uidvalidity.0,
                    rec.dest_folder,
                    rec.dest_uidvalidity.map(|v| v.0),
                    modseq,
                    rec.updated_at,
                    rec.selection,
                ])
            })
            .map_err(ctx.sql("store folder"))?;
            Ok(())
        })
    }

    fn folders(&self, account: &str) -> Result<Vec<(String, FolderRecord)>, StateError> {
        let ctx = self.ctx(account, None);
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT folder, source_uidvalidity, dest_folder, dest_uidvalidity, \
                 highest_modseq, updated_at, selection FROM folder WHERE account = ?1 \
                 ORDER BY folder",
            )
            .map_err(ctx.sql("list folders"))?;
        let mut rows = stmt
            .query(params![account])
            .map_err(ctx.sql("list folders"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("list folders"))? {
            let name = col_text(row, 0, "folder").map_err(|d| ctx.corrupt(None, d))?;
            let rec = decode_folder(row, 1).map_err(|d| {
                Ctx {
                    folder: Some(&name),
                    ..self.ctx(account, None)
                }
                .corrupt(None, d)
            })?;
            out.push((name, rec));
        }
        Ok(out)
    }

    fn copied(&self, account: &str, folder: &str) -> Result<Vec<CopiedRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT src_uid, dst_uid, fingerprint, flags, size FROM copied \
                 WHERE account = ?1 AND folder = ?2 ORDER BY src_uid",
            )
            .map_err(ctx.sql("read copied"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read copied"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("read copied"))? {
            out.push(decode_copied(row).map_err(|(uid, d)| ctx.corrupt(uid, d))?);
        }
        Ok(out)
    }

    fn copied_count(&self, account: &str, folder: &str) -> Result<u64, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let n: i64 = conn
            .prepare_cached("SELECT count(*) FROM copied WHERE account = ?1 AND folder = ?2")
            .and_then(|mut stmt| stmt.query_row(params![account, folder], |r| r.get(0)))
            .map_err(ctx.sql("count copied"))?;
        to_u64(n, "count").map_err(|d| ctx.corrupt(None, d))
    }

    fn add_pending(
        &self,
        account: &str,
        folder: &str,
        batch: &[PendingRecord],
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "add pending", |tx| {
            let mut is_copied = tx
                .prepare_cached(
                    "SELECT 1 FROM copied WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("add pending"))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending (account, folder, src_uid, dst_floor) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (account, folder, src_uid) \
                     DO UPDATE SET dst_floor = min(dst_floor, excluded.dst_floor)",
                )
                .map_err(ctx.sql("add pending"))?;
            for p in batch {
                let copied = is_copied
                    .query_row(params![account, folder, p.src_uid.0], |_| Ok(()))
                    .optional()
                    .map_err(ctx.sql("add pending"))?;
                if copied.is_some() {
                    return Err(StateError::AlreadyCopied {
                        file: self.path.clone(),
                        account: account.to_string(),
                        folder: folder.to_string(),
                        uid: p.src_uid,
                    });
                }
                insert
                    .execute(params![account, folder, p.src_uid.0, p.dst_floor])
                    .map_err(ctx.sql("add pending"))?;
            }
            Ok(())
        })
    }

    fn pending(&self, account: &str, folder: &str) -> Result<Vec<PendingRecord>, StateError> {
        let ctx = self.ctx(account, Some(folder));
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT src_uid, dst_floor FROM pending \
                 WHERE account = ?1 AND folder = ?2 ORDER BY src_uid",
            )
            .map_err(ctx.sql("read pending"))?;
        let mut rows = stmt
            .query(params![account, folder])
            .map_err(ctx.sql("read pending"))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(ctx.sql("read pending"))? {
            out.push(decode_pending(row).map_err(|(uid, d)| ctx.corrupt(uid, d))?);
        }
        Ok(out)
    }

    fn commit_copied(
        &self,
        account: &str,
        folder: &str,
        batch: &[CopiedRecord],
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "commit copied", |tx| {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO copied (account, folder, src_uid, dst_uid, fingerprint, flags, \
                     size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (account, folder, src_uid) DO UPDATE SET \
                     dst_uid = excluded.dst_uid, fingerprint = excluded.fingerprint, \
                     flags = excluded.flags, size = excluded.size",
                )
                .map_err(ctx.sql("commit copied"))?;
            let mut unpend = tx
                .prepare_cached(
                    "DELETE FROM pending WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("commit copied"))?;
            for c in batch {
                upsert
                    .execute(params![
                        account,
                        folder,
                        c.src_uid.0,
                        c.dst_uid.map(|u| u.0),
                        &c.fingerprint[..],
                        c.flags.to_line(),
                        to_i64(&ctx, c.size, "size", Some(c.src_uid))?,
                    ])
                    .map_err(ctx.sql("commit copied"))?;
                unpend
                    .execute(params![account, folder, c.src_uid.0])
                    .map_err(ctx.sql("commit copied"))?;
            }
            Ok(())
        })
    }

    fn drop_pending(&self, account: &str, folder: &str, uids: &[Uid]) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "drop pending", |tx| {
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM pending WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("drop pending"))?;
            for uid in uids {
                delete
                    .execute(params![account, folder, uid.0])
                    .map_err(ctx.sql("drop pending"))?;
            }
            Ok(())
        })
    }

    fn update_flags(
        &self,
        account: &str,
        folder: &str,
        changes: &[(Uid, Flags)],
        highest_modseq: Option<u64>,
    ) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "update flags", |tx| {
            let mut update = tx
                .prepare_cached(
                    "UPDATE copied SET flags = ?4 \
                     WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql("update flags"))?;
            for (uid, flags) in changes {
                update
                    .execute(params![account, folder, uid.0, flags.to_line()])
                    .map_err(ctx.sql("update flags"))?;
            }
            if let Some(modseq) = highest_modseq {
                let modseq = to_i64(&ctx, modseq, "HIGHESTMODSEQ", None)?;
                let n = tx
                    .prepare_cached(
                        "UPDATE folder SET highest_modseq = ?3, updated_at = ?4 \
                         WHERE account = ?1 AND folder = ?2",
                    )
                    .and_then(|mut stmt| stmt.execute(params![account, folder, modseq, now()]))
                    .map_err(ctx.sql("update flags"))?;
                if n == 0 {
                    return Err(ctx.unknown_folder());
                }
            }
            Ok(())
        })
    }

    fn remap_source(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError> {
        const WHAT: &str = "remap source UIDs";
        let ctx = self.ctx(account, Some(folder));
        let map = check_map(&ctx, map, "source")?;
        self.write(&ctx, WHAT, |tx| {
            let n = tx
                .execute(
                    "UPDATE folder SET source_uidvalidity = ?3, highest_modseq = NULL, \
                     updated_at = ?4 WHERE account = ?1 AND folder = ?2",
                    params![account, folder, new_validity.0, now()],
                )
                .map_err(ctx.sql(WHAT))?;
            if n == 0 {
                return Err(ctx.unknown_folder());
            }
            // UIDs are the primary key and old and new ranges overlap (old 5 -> new 7 while
            // old 7 -> new 9), so read the survivors, empty the folder and write them back.
            let copied = {
                let mut stmt = tx
                    .prepare(
                        "SELECT src_uid, dst_uid, fingerprint, flags, size FROM copied \
                         WHERE account = ?1 AND folder = ?2",
                    )
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| {
                        Ok((
                            r.get::<_, Value>(0)?,
                            r.get::<_, Value>(1)?,
                            r.get::<_, Value>(2)?,
                            r.get::<_, Value>(3)?,
                            r.get::<_, Value>(4)?,
                        ))
                    })
                    .map_err(ctx.sql(WHAT))?;
                let mut keep = Vec::new();
                for row in rows {
                    let (src, dst, fp, flags, size) = row.map_err(ctx.sql(WHAT))?;
                    if let Value::Integer(old) = src {
                        if let Some(&new) = map.get(&old) {
                            keep.push((new, dst, fp, flags, size));
                        }
                    }
                }
                keep
            };
            let pending = {
                let mut stmt = tx
                    .prepare(
                        "SELECT src_uid, dst_floor FROM pending WHERE account = ?1 AND folder = ?2",
                    )
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| {
                        Ok((r.get::<_, Value>(0)?, r.get::<_, Value>(1)?))
                    })
                    .map_err(ctx.sql(WHAT))?;
                let mut keep = Vec::new();
                for row in rows {
                    let (src, floor) = row.map_err(ctx.sql(WHAT))?;
                    if let Value::Integer(old) = src {
                        if let Some(&new) = map.get(&old) {
                            keep.push((new, floor));
                        }
                    }
                }
                keep
            };
            tx.execute(
                "DELETE FROM copied WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            tx.execute(
                "DELETE FROM pending WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO copied (account, folder, src_uid, dst_uid, fingerprint, flags, \
                     size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(ctx.sql(WHAT))?;
            for (uid, dst, fp, flags, size) in copied {
                insert
                    .execute(params![account, folder, uid, dst, fp, flags, size])
                    .map_err(ctx.sql(WHAT))?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO pending (account, folder, src_uid, dst_floor) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(ctx.sql(WHAT))?;
            for (uid, floor) in pending {
                insert
                    .execute(params![account, folder, uid, floor])
                    .map_err(ctx.sql(WHAT))?;
            }
            Ok(())
        })
    }

    fn remap_dest(
        &self,
        account: &str,
        folder: &str,
        new_validity: UidValidity,
        map: &[(Uid, Uid)],
    ) -> Result<(), StateError> {
        const WHAT: &str = "remap destination UIDs";
        let ctx = self.ctx(account, Some(folder));
        let map = check_map(&ctx, map, "source")?;
        self.write(&ctx, WHAT, |tx| {
            let n = tx
                .execute(
                    "UPDATE folder SET dest_uidvalidity = ?3, updated_at = ?4 \
                     WHERE account = ?1 AND folder = ?2",
                    params![account, folder, new_validity.0, now()],
                )
                .map_err(ctx.sql(WHAT))?;
            if n == 0 {
                return Err(ctx.unknown_folder());
            }
            // Only dst_uid changes, which is no key: update in place, delete the rest.
            let uids = {
                let mut stmt = tx
                    .prepare("SELECT src_uid FROM copied WHERE account = ?1 AND folder = ?2")
                    .map_err(ctx.sql(WHAT))?;
                let rows = stmt
                    .query_map(params![account, folder], |r| r.get::<_, Value>(0))
                    .map_err(ctx.sql(WHAT))?;
                rows.collect::<Result<Vec<_>, _>>().map_err(ctx.sql(WHAT))?
            };
            let mut update = tx
                .prepare_cached(
                    "UPDATE copied SET dst_uid = ?4 \
                     WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql(WHAT))?;
            let mut delete = tx
                .prepare_cached(
                    "DELETE FROM copied WHERE account = ?1 AND folder = ?2 AND src_uid = ?3",
                )
                .map_err(ctx.sql(WHAT))?;
            for src in uids {
                let new = match src {
                    Value::Integer(i) => map.get(&i).copied(),
                    _ => None,
                };
                match new {
                    Some(dst) => update.execute(params![account, folder, src, dst]),
                    None => delete.execute(params![account, folder, src]),
                }
                .map_err(ctx.sql(WHAT))?;
            }
            tx.execute(
                "UPDATE pending SET dst_floor = 1 WHERE account = ?1 AND folder = ?2",
                params![account, folder],
            )
            .map_err(ctx.sql(WHAT))?;
            Ok(())
        })
    }

    fn forget_folder(&self, account: &str, folder: &str) -> Result<(), StateError> {
        let ctx = self.ctx(account, Some(folder));
        self.write(&ctx, "forget folder", |tx| {
            for sql in [
                "DELETE FROM copied WHERE account = ?1 AND folder = ?2",
                "DELETE FROM pending WHERE account = ?1 AND folder = ?2",
                "DELETE FROM folder WHERE account = ?1 AND folder = ?2",
            ] {
                tx.execute(sql, params![account, folder])
                    .map_err(ctx.sql("forget folder"))?;
            }
            Ok(())
        })
    }

    fn forget_account(&self, account: &str) -> Result<(), StateError> {
        let ctx = self.ctx(account, None);
        self.write(&ctx, "forget account", |tx| {
            for sql in [
                "DELETE FROM copied WHERE account = ?1",
                "DELETE FROM pending WHERE account = ?1",
                "DELETE FROM folder WHERE account = ?1",
            ] {
                tx.execute(sql, params![account])
                    .map_err(ctx.sql("forget account"))?;
            }
            Ok(())
        })
    }
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
