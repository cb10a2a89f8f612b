//! The PostgreSQL engine: tokio-postgres connections in a deadpool pool, TLS with rustls, all
//! driven by a small tokio runtime the [`PgDb`] owns.
//!
//! The stores' calls are synchronous (SQLite's are, and the engine calls the sync state from
//! its tasks). A call here hands its future to the owned runtime and waits for the answer on a
//! plain channel: that works from any thread, inside another runtime's task or not, and never
//! nests runtimes. A transaction keeps its pooled connection between statements; one that is
//! left unfinished (the closure panicked) throws its connection away, which makes the server
//! roll it back.
//!
//! Every connection sets `search_path` to the deployment's schema (`imapmig` unless the address
//! says `?schema=`), created on the first connection if missing. Nothing needs an extension.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::types::{IsNull, ToSql, Type};

use super::value::{owned, Row};
use super::{translate, DbError, Dialect, ToValue, Tx, Value};
use crate::net::{client_config, TlsVerify};

/// Connections per process, unless the address says `?pool=N`.
const DEFAULT_POOL: usize = 8;

/// How long a call waits for a connection before it fails as [`DbError::Unavailable`].
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// A lock key of imapmig's own ("IMMG"), the first half of every advisory lock it takes.
const LOCK_SPACE: i32 = 0x494D_4D47;

/// A PostgreSQL address, read from `postgres://user:password@host:port/db?…`.
///
/// Besides libpq's parameters that tokio-postgres knows (`sslmode`, `connect_timeout`,
/// `application_name`, …) it takes three of its own: `schema` (default `imapmig`: one schema
/// per deployment), `sslrootcert` (a PEM file of CAs to trust beside the system's) and `pool`
/// (connections per process). With TLS, the server's certificate is always verified.
#[derive(Clone)]
pub struct PgOptions {
    config: tokio_postgres::Config,
    schema: String,
    root_cert: Option<PathBuf>,
    pool: usize,
    shown: String,
}

impl PartialEq for PgOptions {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.config == other.config
    }
}

impl Eq for PgOptions {}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgOptions({})", self.shown)
    }
}

/// The address without its password.
impl fmt::Display for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgOptions {
    /// Reads an address. Errors name the parameter at fault and never repeat the password.
    pub fn parse(url: &str) -> Result<PgOptions, String> {
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut schema = "imapmig".to_string();
        let mut root_cert = None;
        let mut pool = DEFAULT_POOL;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "schema" => schema = v.to_string(),
                "sslrootcert" => root_cert = Some(PathBuf::from(v)),
                "pool" => {
                    pool = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or_else(|| {
                            format!("pool={v}: give a number of connections from 1 to 256")
                        })?;
                }
                // libpq's names for verifying modes: rustls always verifies.
                "sslmode" if v == "verify-full" || v == "verify-ca" => {
                    rest.push("sslmode=require".to_string())
                }
                _ => rest.push(pair.to_string()),
            }
        }
        if schema.is_empty()
            || schema.len() > 63
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            || schema.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!(
                "schema={schema}: a schema name is 1 to 63 lowercase letters, digits and _, not starting with a digit"
            ));
        }
        let cleaned = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: tokio_postgres::Config = cleaned
            .parse()
            .map_err(|e| format!("not a PostgreSQL address ({e}): {}", redact(base)))?;
        config.application_name("imapmig");
        config.options(format!("-c search_path={schema}"));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_WAIT);
        }
        let mut shown = redact(base);
        if schema != "imapmig" {
            shown.push_str(&format!("?schema={schema}"));
        }
        Ok(PgOptions {
            config,
            schema,
            root_cert,
            pool,
            shown,
        })
    }

    /// The schema that holds imapmig's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// `postgres://user:secret@host/db` → `postgres://user@host/db`.
fn redact(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((a, h)) => (Some(a), h),
        None => (None, rest),
    };
    match auth {
        Some(a) => {
            let user = a.split_once(':').map_or(a, |(u, _)| u);
            format!("{scheme}://{user}@{host}")
        }
        None => format!("{scheme}://{host}"),
    }
}

/// The pool and the runtime that drives it.
pub(super) struct PgDb {
    pool: Pool,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is refused inside another runtime's task.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl PgDb {
    pub(super) fn connect(options: &PgOptions) -> Result<PgDb, DbError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("imapmig-postgres")
            .enable_all()
            .build()
            .map_err(|e| DbError::Unavailable(format!("cannot start the database runtime: {e}")))?;
        let verify = match &options.root_cert {
            Some(p) => TlsVerify::CaFile(p.clone()),
            None => TlsVerify::System,
        };
        let tls = client_config(&verify).map_err(DbError::Unavailable)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new((*tls).clone());
        let manager = Manager::from_config(
            options.config.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _guard = runtime.enter();
            Pool::builder(manager)
                .max_size(options.pool)
                .wait_timeout(Some(CONNECT_WAIT))
                .create_timeout(Some(CONNECT_WAIT))
                .recycle_timeout(Some(CONNECT_WAIT))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| DbError::Unavailable(e.to_string()))?
        };
        let db = PgDb {
            pool,
            runtime: Some(runtime),
        };
        // The first connection proves the address and creates the schema.
        let schema = options.schema.clone();
        db.transaction(Some("imapmig_schema"), false, |tx| {
            tx.batch(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        })?;
        Ok(db)
    }

    /// Runs `fut` on the owned runtime and waits for it.
    fn block<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, DbError> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| DbError::Unavailable("the database runtime was shut down".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| DbError::Unavailable("the database runtime stopped".into()))
    }

    fn get(&self) -> Result<Object, DbError> {
        let pool = self.pool.clone();
        self.block(async move { pool.get().await })?
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => DbError::Unavailable(describe(&e)),
                other => DbError::Unavailable(other.to_string()),
            })
    }

    /// One transaction: `BEGIN`, with `scope` an advisory lock on it, then `f`, then `COMMIT`
    /// (or `ROLLBACK` when `f` fails).
    pub(super) fn transaction<T, E: From<DbError>>(
        &self,
        scope: Option<&str>,
        read_only: bool,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut tx = PgTx {
            db: self,
            conn: Some(self.get()?),
            open: false,
        };
        tx.batch(if read_only {
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        } else {
            "BEGIN"
        })?;
        tx.open = true;
        if let Some(scope) = scope {
            tx.execute(
                "SELECT pg_advisory_xact_lock(?1, hashtext(?2))",
                &[&LOCK_SPACE, &scope],
            )?;
        }
        match f(&mut tx) {
            Ok(out) => {
                tx.batch("COMMIT")?;
                tx.open = false;
                Ok(out)
            }
            Err(e) => {
                // A failed rollback throws the connection away, which rolls back too.
                if tx.batch("ROLLBACK").is_ok() {
                    tx.open = false;
                }
                Err(e)
            }
        }
    }
}

struct PgTx<'a> {
    db: &'a PgDb,
    conn: Option<Object>,
    /// A transaction was begun and not yet ended.
    open: bool,
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        if self.open {
            if let Some(conn) = self.conn.take() {
                // Unfinished: close the connection instead of returning it to the pool.
                drop(Object::take(conn));
            }
        }
    }
}

impl PgTx<'_> {
    /// Runs `op` with the connection on the runtime, and takes the connection back.
    fn with_conn<T: Send + 'static, F>(
        &mut self,
        op: impl FnOnce(Object) -> F,
    ) -> Result<T, DbError>
    where
        F: Future<Output = (Object, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        let conn = self
            .conn
            .take()
            .ok_or_else(|| DbError::Unavailable("the connection was lost".into()))?;
        let (conn, out) = self.db.block(op(conn))?;
        self.conn = Some(conn);
        Ok(out?)
    }
}

impl Tx for PgTx<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError> {
        let sql = translate(sql, Dialect::Postgres);
        let values = owned(params);
        self.with_conn(move |conn| async move {
            let out = async {
                let stmt = conn.prepare_cached(&sql).await?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                conn.execute(&stmt, &refs).await
            }
            .await;
            (conn, out)
        })
    }

    fn query(&mut self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        let sql = translate(sql, Dialect::Postgres);
        let values = owned(params);
        let rows = self.with_conn(move |conn| async move {
            let out = async {
                let stmt = conn.prepare_cached(&sql).await?;
                let refs: Vec<&(dyn ToSql + Sync)> =
                    values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                conn.query(&stmt, &refs).await
            }
            .await;
            (conn, out)
        })?;
        rows.iter().map(read_row).collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let sql = translate(sql, Dialect::Postgres);
        self.with_conn(move |conn| async move {
            let out = conn.batch_execute(&sql).await;
            (conn, out)
        })
    }
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let decode = |e: tokio_postgres::Error| DbError::Decode {
            column: i,
            detail: e.to_string(),
        };
        let v = match *ty {
            Type::INT8 => row
                .try_get::<_, Option<i64>>(i)
                .map_err(decode)?
                .map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(i)
                .map_err(decode)?
                .map(|v| Value::Int(v.into())),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(i)
                .map_err(decode)?
                .map(|v| Value::Int(v.into())),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(i)
                .map_err(decode)?
                .map(|v| Value::Int(v.into())),
            Type::FLOAT8 => row
                .try_get::<_, Option<f64>>(i)
                .map_err(decode)?
                .map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(i)
                .map_err(decode)?
                .map(|v| Value::Real(v.into())),
            Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
                .try_get::<_, Option<String>>(i)
                .map_err(decode)?
                .map(Value::Text),
            Type::BYTEA => row
                .try_get::<_, Option<Vec<u8>>>(i)
                .map_err(decode)?
                .map(Value::Blob),
            ref other => {
                return Err(DbError::Decode {
                    column: i,
                    detail: format!("type {other} is not read by imapmig (cast sums to BIGINT)"),
                })
            }
        };
        values.push(v.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

/// Parameters take the type the server inferred for them: an integer goes into any integer
/// column (checked for range), text into text, bytes into `bytea`.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(i), &Type::INT8) => i.to_sql(ty, out),
            (Value::Int(i), &Type::INT4) => i32::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::INT2) => i16::try_from(*i)?.to_sql(ty, out),
            (Value::Int(i), &Type::BOOL) => (*i != 0).to_sql(ty, out),
            #[allow(clippy::cast_precision_loss)]
            (Value::Int(i), &Type::FLOAT8) => (*i as f64).to_sql(ty, out),
            (Value::Real(f), &Type::FLOAT8) => f.to_sql(ty, out),
            (Value::Int(i), &Type::TEXT | &Type::VARCHAR) => i.to_string().to_sql(ty, out),
            (Value::Text(s), _) => s.as_str().to_sql(ty, out),
            (Value::Blob(b), _) => b.as_slice().to_sql(ty, out),
            (v, ty) => Err(format!("{v:?} cannot be sent as {ty}").into()),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// What PostgreSQL said, with its SQLSTATE and detail when it said something.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!(": {d}"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// Whether a PostgreSQL error passes: a broken connection, a server shutting down, a deadlock
/// or serialisation failure, too many connections.
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    match e.code() {
        Some(code) => [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::CONNECTION_FAILURE,
            SqlState::CONNECTION_EXCEPTION,
        ]
        .contains(code),
        None => e.is_closed() || e.as_db_error().is_none(),
    }
}
