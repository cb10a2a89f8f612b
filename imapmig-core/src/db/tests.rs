//! The same statements on both engines: SQLite in a temporary file, and a real private
//! PostgreSQL started by the test kit.

use std::sync::OnceLock;

use super::*;
use imapmig_testkit::Postgres;

/// One PostgreSQL for this module's tests; each test takes a schema of its own.
fn postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(Postgres::start)
}

fn pg_db(schema: &str) -> Db {
    let url = format!("{}?schema={schema}", postgres().url());
    Db::open(&Location::parse(&url).unwrap()).unwrap()
}

fn sqlite_db(dir: &tempfile::TempDir) -> Db {
    Db::open(&Location::parse(&format!("sqlite:{}", dir.path().join("t.db").display())).unwrap())
        .unwrap()
}

const STEPS: [&str; 2] = [
    "CREATE TABLE item (id BIGINT PRIMARY KEY, name TEXT NOT NULL, body BYTEA, n BIGINT)",
    "ALTER TABLE item ADD COLUMN owner TEXT",
];

/// SQLite knows `BYTEA` only as a name with no affinity, which stores bytes as given.
fn both(test: impl Fn(&Db)) {
    let dir = tempfile::tempdir().unwrap();
    test(&sqlite_db(&dir));
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    test(&pg_db(&format!("t_{}_{n}", std::process::id())));
}

#[test]
fn placeholders_and_lock_marks_are_rewritten_outside_quotes() {
    let sql = "SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12{for_update}";
    assert_eq!(
        translate(sql, Dialect::Postgres),
        "SELECT '?1', \"a?\" FROM t WHERE a = $1 AND b = $12 FOR UPDATE"
    );
    assert_eq!(
        translate(sql, Dialect::Sqlite),
        "SELECT '?1', \"a?\" FROM t WHERE a = ?1 AND b = ?12"
    );
    assert!(translate("x{skip_locked}", Dialect::Postgres).ends_with("FOR UPDATE SKIP LOCKED"));
}

#[test]
fn locations_read_and_never_show_a_password() {
    assert_eq!(
        Location::parse("sqlite:/x/y.db").unwrap(),
        Location::Sqlite("/x/y.db".into())
    );
    assert_eq!(
        Location::parse("state.sqlite").unwrap(),
        Location::Sqlite("state.sqlite".into())
    );
    let pg = Location::parse(
        "postgres://mig:s3cret@db.example:5433/mail?schema=acme&sslmode=verify-full",
    )
    .unwrap();
    assert!(pg.is_postgres());
    let shown = format!("{pg} {pg:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("postgres://mig@db.example:5433/mail?schema=acme"),
        "{shown}"
    );
    let bad = Location::parse("postgres://mig:s3cret@h/db?schema=Bad-Name").unwrap_err();
    assert!(
        bad.contains("schema=Bad-Name") && !bad.contains("s3cret"),
        "{bad}"
    );
    let bad = Location::parse("postgres://mig:s3cret@h/db?frobnicate=1").unwrap_err();
    assert!(!bad.contains("s3cret"), "{bad}");
    assert!(Location::parse("").is_err());
}

#[test]
fn migrations_run_once_and_refuse_a_newer_schema() {
    both(|db| {
        let found = db
            .migrate("items", &STEPS, |v| DbError::NoRow.tap(v))
            .unwrap();
        assert_eq!(found, 0);
        let again = db
            .migrate("items", &STEPS, |v| DbError::NoRow.tap(v))
            .unwrap();
        assert_eq!(again, 2);
        let older = db
            .migrate("items", &STEPS[..1], |v| DbError::Decode {
                column: 0,
                detail: format!("found {v}"),
            })
            .unwrap_err();
        assert!(older.to_string().contains("found 2"), "{older}");
    });
}

trait Tap {
    fn tap(self, v: i64) -> Self;
}

impl Tap for DbError {
    fn tap(self, _: i64) -> Self {
        self
    }
}

#[test]
fn values_round_trip_and_a_failed_write_leaves_nothing() {
    both(|db| {
        db.migrate("items", &STEPS, |_| DbError::NoRow).unwrap();
        let body: Vec<u8> = (0..=255).collect();
        db.write("t", |tx| {
            tx.execute(
                "INSERT INTO item (id, name, body, n, owner) VALUES (?1, ?2, ?3, ?4, ?5)",
                &[&1i64, &"名前 'quoted' ?1", &body, &None::<i64>, &Some("ü")],
            )?;
            tx.execute(
                "INSERT INTO item (id, name, n) VALUES (?1, ?2, ?3)",
                &[&2i64, &"two", &(i64::MAX)],
            )
        })
        .unwrap();
        let rows = db
            .read(|tx| tx.query("SELECT id, name, body, n, owner FROM item ORDER BY id", &[]))
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64>(0).unwrap(), 1);
        assert_eq!(rows[0].get::<String>(1).unwrap(), "名前 'quoted' ?1");
        assert_eq!(rows[0].get::<Vec<u8>>(2).unwrap(), body);
        assert_eq!(rows[0].get::<Option<i64>>(3).unwrap(), None);
        assert_eq!(rows[1].get::<i64>(3).unwrap(), i64::MAX);
        assert!(rows[1].get::<String>(0).is_err());
        let (count, sum, exists): (i64, i64, bool) = db
            .read(|tx| {
                let r = tx.query_row(
                    "SELECT count(*), CAST(sum(id) AS BIGINT), EXISTS (SELECT 1 FROM item WHERE id = ?1) FROM item",
                    &[&2i64],
                )?;
                Ok::<_, DbError>((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!((count, sum, exists), (2, 3, true));

        // A write that fails half-way applies nothing.
        let err = db
            .write("t", |tx| {
                tx.execute("UPDATE item SET name = 'changed' WHERE id = 1", &[])?;
                tx.execute("INSERT INTO item (id, name) VALUES (2, 'dup')", &[])
            })
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        let name: String = db
            .read(|tx| tx.query_value("SELECT name FROM item WHERE id = 1", &[]))
            .unwrap();
        assert_eq!(name, "名前 'quoted' ?1");
        // A panic inside a write rolls it back, and the store goes on working.
        let db_ref = std::panic::AssertUnwindSafe(db);
        let caught = std::panic::catch_unwind(|| {
            let _ = db_ref.write("t", |tx| -> Result<(), DbError> {
                tx.execute("UPDATE item SET name = 'panicked' WHERE id = 1", &[])?;
                panic!("inside a transaction");
            });
        });
        assert!(caught.is_err());
        let name: String = db
            .read(|tx| tx.query_value("SELECT name FROM item WHERE id = 1", &[]))
            .unwrap();
        assert_eq!(name, "名前 'quoted' ?1");
    });
}

#[test]
fn calls_work_from_inside_a_runtime() {
    let db = pg_db(&format!("rt_{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let n: i64 = rt
        .block_on(async { db.read(|tx| tx.query_value("SELECT 41 + 1", &[])) })
        .unwrap();
    assert_eq!(n, 42);
    // Dropping the store inside a task must not panic either.
    rt.block_on(async move { drop(db) });
}

#[test]
fn writes_of_one_scope_are_serialised_across_connections() {
    let db = std::sync::Arc::new(pg_db(&format!("scope_{}", std::process::id())));
    db.migrate("items", &STEPS, |_| DbError::NoRow).unwrap();
    db.write("t", |tx| {
        tx.execute("INSERT INTO item (id, name, n) VALUES (1, 'c', 0)", &[])
    })
    .unwrap();
    // Read-check-write increments from four threads: without the scope lock, READ COMMITTED
    // would lose some of them.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    db.write("t", |tx| {
                        let n: i64 = tx.query_value("SELECT n FROM item WHERE id = 1", &[])?;
                        tx.execute("UPDATE item SET n = ?1 WHERE id = 1", &[&(n + 1)])
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let n: i64 = db
        .read(|tx| tx.query_value("SELECT n FROM item WHERE id = 1", &[]))
        .unwrap();
    assert_eq!(n, 100);
}

#[test]
fn an_unreachable_server_is_a_clear_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://u:pw@127.0.0.1:{port}/db?connect_timeout=2");
    let err = Db::open(&Location::parse(&url).unwrap()).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(!err.to_string().contains("pw@"), "{err}");
}
