//! The SQLite engine: one connection behind a mutex, WAL mode, `BEGIN IMMEDIATE` writes.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, TransactionBehavior};

use super::value::Row;
use super::{translate, DbError, Dialect, ToValue, Tx, Value};

/// How long a write waits for another process holding the file's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

pub(super) struct SqliteDb {
    conn: Mutex<Connection>,
}

impl SqliteDb {
    pub(super) fn open(path: &Path) -> Result<SqliteDb, DbError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "secure_delete", true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteDb {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held rolled its transaction back: safe to take over.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn read<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let conn = self.lock();
        let tx = conn.unchecked_transaction().map_err(DbError::from)?;
        let out = f(&mut SqliteTx { conn: &tx })?;
        tx.finish().map_err(DbError::from)?;
        Ok(out)
    }

    pub(super) fn write<T, E: From<DbError>>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        let out = f(&mut SqliteTx { conn: &tx })?;
        tx.commit().map_err(DbError::from)?;
        Ok(out)
    }
}

struct SqliteTx<'a> {
    conn: &'a Connection,
}

fn to_sql(v: Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(i),
        Value::Real(f) => SqlValue::Real(f),
        Value::Text(s) => SqlValue::Text(s),
        Value::Blob(b) => SqlValue::Blob(b),
    }
}

fn from_sql(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn params(params: &[&dyn ToValue]) -> Vec<SqlValue> {
    params.iter().map(|p| to_sql(p.to_value())).collect()
}

/// The statement for SQLite; borrowed when nothing needs rewriting.
fn sql_for(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains('{') {
        std::borrow::Cow::Owned(translate(sql, Dialect::Sqlite))
    } else {
        std::borrow::Cow::Borrowed(sql)
    }
}

impl Tx for SqliteTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, p: &[&dyn ToValue]) -> Result<u64, DbError> {
        let mut stmt = self.conn.prepare_cached(&sql_for(sql))?;
        let n = stmt.execute(rusqlite::params_from_iter(params(p)))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, p: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.conn.prepare_cached(&sql_for(sql))?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params(p)))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(from_sql(r.get_ref(i)?));
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn.execute_batch(&sql_for(sql))?;
        Ok(())
    }
}
