//! The databases under the stores: the embedded SQLite file, or PostgreSQL for many workers.
//!
//! The stores above (the sync state, the batch store) write their SQL once, in the subset both
//! engines speak, and run it through [`Db`]:
//!
//! * placeholders are `?1`, `?2`, … (rewritten to `$1`, `$2`, … for PostgreSQL);
//! * `{for_update}` and `{skip_locked}` mark row locks, which mean something only on
//!   PostgreSQL (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED`); on SQLite, where a write transaction
//!   holds the whole file, they vanish;
//! * values are [`Value`]s: integers are 64-bit (`INTEGER` / `BIGINT`), text, and bytes
//!   (`BLOB` / `BYTEA`); a sum is cast to `BIGINT` where it is read, since PostgreSQL sums
//!   integers into `numeric`.
//!
//! A write transaction ([`Db::write`]) is serialised with every other write of the same scope
//! (a task's name): on SQLite by `BEGIN IMMEDIATE` (one writer for the file), on PostgreSQL by a
//! transaction-scoped advisory lock on the scope. The stores' read-check-write logic therefore
//! behaves the same on both engines. What must not wait on a task's writers (workers claiming
//! accounts) uses row locks with `{skip_locked}` instead ([`Db::write_unscoped`]).
//!
//! The calls block. PostgreSQL's driver is async (tokio-postgres); it runs on a small runtime of
//! the [`Db`]'s own, so a call made from inside another runtime's task blocks that thread for
//! the round trip without ever nesting runtimes (see [`postgres`]).

use std::fmt;
use std::path::{Path, PathBuf};

mod location;
pub(crate) mod postgres;
mod sqlite;
mod value;

pub use location::Location;
pub use postgres::PgOptions;
pub use value::{FromValue, Row, ToValue, Value};

/// Which engine a [`Db`] speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// What a database call can fail with. The stores wrap it with what they were doing and for
/// which task, account or folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite refused or failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed, or the connection to it broke.
    #[error("{}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had (the server is down or unreachable, the pool
    /// timed out).
    #[error("no connection to the database: {0}")]
    Unavailable(String),
    /// A query that must return a row returned none.
    #[error("the query returned no row")]
    NoRow,
    /// A column held something the store cannot read back (a type it does not expect).
    #[error("column {column}: {detail}")]
    Decode {
        /// The column's position.
        column: usize,
        /// What is wrong.
        detail: String,
    },
}

impl DbError {
    /// Whether trying again later may succeed: the database was unreachable, the connection
    /// broke, or PostgreSQL cancelled the transaction to break a deadlock or a serialisation
    /// conflict. SQLite's busy file counts too.
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Postgres(e) => postgres::is_transient(e),
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}

/// One transaction (or, for [`Db::read`], one consistent read) in progress.
///
/// Implemented by both engines; the stores write their queries against `&mut dyn Tx`.
pub trait Tx {
    /// The engine behind it.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError>;

    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError>;

    /// Runs several statements without parameters (schema changes).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
}

impl dyn Tx + '_ {
    /// The first row of a query, or [`DbError::NoRow`].
    pub fn query_row(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)
    }

    /// The first row of a query, if any.
    pub fn query_opt(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row, read as `T`.
    pub fn query_value<T: FromValue>(
        &mut self,
        sql: &str,
        params: &[&dyn ToValue],
    ) -> Result<T, DbError> {
        self.query_row(sql, params)?.get(0)
    }
}

/// A database: the SQLite file or a PostgreSQL pool. See the module documentation.
pub struct Db {
    engine: Engine,
    location: Location,
}

enum Engine {
    Sqlite(sqlite::SqliteDb),
    Postgres(postgres::PgDb),
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens the SQLite file at `path` (created if missing) with one connection in WAL mode.
    /// The file's schema is the caller's business.
    pub fn open_sqlite(path: &Path) -> Result<Db, DbError> {
        Ok(Db {
            engine: Engine::Sqlite(sqlite::SqliteDb::open(path)?),
            location: Location::Sqlite(path.to_path_buf()),
        })
    }

    /// Connects to PostgreSQL: checks that one connection can be made now, so that a wrong
    /// address or password fails here and not at the first query.
    pub fn connect_postgres(options: &PgOptions) -> Result<Db, DbError> {
        Ok(Db {
            engine: Engine::Postgres(postgres::PgDb::connect(options)?),
            location: Location::Postgres(Box::new(options.clone())),
        })
    }

    /// Opens what `location` names.
    pub fn open(location: &Location) -> Result<Db, DbError> {
        match location {
            Location::Sqlite(path) => Db::open_sqlite(path),
            Location::Postgres(options) => Db::connect_postgres(options),
        }
    }

    /// Where it is, for messages (a PostgreSQL address never shows its password).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The engine.
    pub fn dialect(&self) -> Dialect {
        match self.engine {
            Engine::Sqlite(_) => Dialect::Sqlite,
            Engine::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite file, when it is one.
    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        match &self.location {
            Location::Sqlite(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }

    /// Runs `f` on a consistent snapshot (no write lock is taken).
    pub fn read<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.engine {
            Engine::Sqlite(db) => db.read(f),
            Engine::Postgres(db) => db.transaction(None, true, f),
        }
    }

    /// Runs `f` in one write transaction, serialised with every other write of the same
    /// `scope` (see the module documentation); committed when `f` succeeds, rolled back when
    /// it fails.
    pub fn write<T, E: From<DbError>>(
        &self,
        scope: &str,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.engine {
            Engine::Sqlite(db) => db.write(f),
            Engine::Postgres(db) => db.transaction(Some(scope), false, f),
        }
    }

    /// Runs `f` in one write transaction that takes no scope lock: it must lock what it
    /// changes itself (`{for_update}`, `{skip_locked}`). On SQLite the same as [`Db::write`].
    pub fn write_unscoped<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        match &self.engine {
            Engine::Sqlite(db) => db.write(f),
            Engine::Postgres(db) => db.transaction(None, false, f),
        }
    }

    /// Brings a schema up to date: `steps[i]` takes it from version `i` to `i + 1`, all in one
    /// write transaction, with the version kept under `name` in the table `imapmig_schema`
    /// (created when missing). Two processes migrating at once migrate once. Returns the
    /// version found; a version above `steps.len()` fails with `too_new(found)` and changes
    /// nothing.
    pub fn migrate<E: From<DbError>>(
        &self,
        name: &str,
        steps: &[&str],
        too_new: impl FnOnce(i64) -> E,
    ) -> Result<i64, E> {
        self.write("imapmig_schema", |tx| {
            tx.batch(
                "CREATE TABLE IF NOT EXISTS imapmig_schema (
                    name    TEXT PRIMARY KEY,
                    version BIGINT NOT NULL
                )",
            )?;
            let found: i64 = tx
                .query_opt(
                    "SELECT version FROM imapmig_schema WHERE name = ?1",
                    &[&name],
                )?
                .map(|r| r.get(0))
                .transpose()?
                .unwrap_or(0);
            let target = i64::try_from(steps.len()).unwrap_or(i64::MAX);
            if found > target {
                return Err(too_new(found));
            }
            for step in steps.iter().skip(usize::try_from(found).unwrap_or(0)) {
                tx.batch(step)?;
            }
            if found < target {
                tx.execute(
                    "INSERT INTO imapmig_schema (name, version) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                    &[&name, &target],
                )?;
            }
            Ok(found)
        })
    }
}

/// Rewrites a statement written in the shared subset for `dialect`: placeholders and the lock
/// marks of the module documentation.
pub(crate) fn translate(sql: &str, dialect: Dialect) -> String {
    let with_locks = match dialect {
        Dialect::Sqlite => sql.replace("{for_update}", "").replace("{skip_locked}", ""),
        Dialect::Postgres => sql
            .replace("{for_update}", " FOR UPDATE")
            .replace("{skip_locked}", " FOR UPDATE SKIP LOCKED"),
    };
    if dialect == Dialect::Sqlite {
        return with_locks;
    }
    // `?N` outside string literals and quoted names becomes `$N`.
    let mut out = String::with_capacity(with_locks.len());
    let mut quote: Option<char> = None;
    for c in with_locks.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
