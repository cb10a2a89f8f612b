//! The private PostgreSQL of the test kit: two at once, real logins over
//! TCP with `psql`, passwords checked, databases created on demand, and
//! nothing left behind after drop.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use imapmig_testkit::postgres::KIT_APPLICATION_NAME;
use imapmig_testkit::Postgres;

/// Runs `sql` with `psql` against `url` (a `postgres://` URL carrying the
/// password), as a client outside the kit would.
fn psql_url(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new(Postgres::psql_path())
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGAPPNAME", "pg-test")
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Table, insert, select on one instance through its URL; the answer is
/// the instance's own (`tag`), so two instances cannot be mixed up.
fn exercise(pg: &Postgres, tag: &str) {
    let url = pg.url();
    assert!(
        url.starts_with(&format!(
            "postgres://{}:{}@127.0.0.1:{}/{}",
            pg.user(),
            pg.password(),
            pg.port(),
            pg.database()
        )),
        "{url}"
    );
    assert_eq!(pg.host(), "127.0.0.1");
    let out = psql_url(
        &url,
        &format!(
            "CREATE TABLE t (id int PRIMARY KEY, v text); \
             INSERT INTO t VALUES (1, '{tag}'), (2, 'two'); \
             SELECT v FROM t ORDER BY id"
        ),
    )
    .unwrap_or_else(|e| panic!("psql on {url}: {e}\n{}", pg.log_tail(20)));
    assert_eq!(out.lines().collect::<Vec<_>>(), [tag, "two"], "{out}");
    // A second connection sees the committed rows.
    assert_eq!(
        psql_url(&url, "SELECT count(*) FROM t").unwrap(),
        "2",
        "second session"
    );
}

#[test]
fn two_instances_at_once_logins_databases_and_teardown() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Postgres::start);
        let b = s.spawn(Postgres::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
    std::thread::scope(|s| {
        s.spawn(|| exercise(&a, "from-a"));
        s.spawn(|| exercise(&b, "from-b"));
    });
    assert_eq!(
        a.psql(a.database(), "SELECT v FROM t WHERE id = 1")
            .unwrap()
            .trim(),
        "from-a"
    );
    assert_eq!(
        b.psql(b.database(), "SELECT v FROM t WHERE id = 1")
            .unwrap()
            .trim(),
        "from-b"
    );

    // Only 127.0.0.1, the version the kit picked, durability off.
    assert_eq!(
        a.psql("postgres", "SHOW listen_addresses").unwrap().trim(),
        "127.0.0.1"
    );
    assert_eq!(a.psql("postgres", "SHOW fsync").unwrap().trim(), "off");

    // A wrong password, or an unknown user, is refused.
    let wrong = a
        .psql_as(a.user(), "not-the-password", a.database(), "SELECT 1")
        .unwrap_err();
    assert!(
        wrong.contains("password authentication failed"),
        "wrong password: {wrong}"
    );
    let bad_url = a.url().replace(a.password(), "nope");
    let err = psql_url(&bad_url, "SELECT 1").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
    // A's password does not open B.
    assert!(b
        .psql_as(a.user(), a.password(), b.database(), "SELECT 1")
        .is_err());

    // create_database: a new empty database, reachable by its URL.
    let url = a.create_database("second_db");
    assert!(url.ends_with(&format!(":{}/second_db", a.port())), "{url}");
    assert_eq!(
        psql_url(
            &url,
            "SELECT current_database(), count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        .unwrap(),
        "second_db|0"
    );
    assert_eq!(a.url_for("second_db"), url);

    // Logins are in the log: ours with their application name.
    let logins = a.connections_from_log();
    let tests: Vec<_> = logins
        .iter()
        .filter(|c| c.application_name.as_deref() == Some("pg-test"))
        .collect();
    assert_eq!(tests.len(), 3, "{logins:?}\n{}", a.log());
    assert!(tests
        .iter()
        .any(|c| c.database == "second_db" && c.user == a.user()));
    assert!(logins
        .iter()
        .any(|c| c.application_name.as_deref() == Some(KIT_APPLICATION_NAME)));

    // Drop: the port stops accepting and the directory is gone.
    let (port, dir) = (a.port(), a.dir().to_path_buf());
    assert!(accepts(port));
    drop(a);
    assert!(!accepts(port), "port {port} still accepts after drop");
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    // The other instance is unaffected.
    assert_eq!(b.psql(b.database(), "SELECT 1").unwrap().trim(), "1");
    let (port, dir) = (b.port(), b.dir().to_path_buf());
    drop(b);
    assert!(!accepts(port));
    assert!(!dir.exists());
}
