//! A private PostgreSQL server for tests (Debian 12: PostgreSQL 15).
//!
//! [`Postgres::start`] runs `initdb` into a temporary directory and starts
//! `postgres` there, listening only on 127.0.0.1 on a free port chosen at
//! run time (its unix socket stays inside the directory). Clients log in
//! over TCP with a password (`scram-sha-256`) as a superuser whose name and
//! password the kit chose; a first database, [`Postgres::database`], exists
//! already and [`Postgres::create_database`] makes more, so parallel tests
//! can share one server or each start their own. Dropping the [`Postgres`]
//! stops the server (an immediate shutdown) and deletes the directory. If
//! the test process dies (even by SIGKILL), the kit's watchdog — the same as
//! the mail servers' — shuts the server down at once, clients or not (the
//! directory then stays behind in `$TMPDIR`). Any number can run at once.
//!
//! Durability is off (`fsync`, `synchronous_commit`, `full_page_writes`):
//! this server holds test data only. `log_connections` is on, so the log
//! ([`Postgres::log`]) lists every login and [`Postgres::connections_from_log`]
//! counts them.
//!
//! ```no_run
//! use imapmig_testkit::Postgres;
//!
//! let pg = Postgres::start();
//! let url = pg.url(); // postgres://imapmig:<password>@127.0.0.1:<port>/imapmig
//! let other = pg.create_database("second"); // an empty database of its own
//! assert_eq!(pg.psql(pg.database(), "SELECT 1").unwrap().trim(), "1");
//! # let _ = (url, other);
//! ```
//!
//! # Installation
//!
//! The Debian package `postgresql` (`bash scripts/setup` installs it); its
//! system cluster is neither used nor needed. The binaries are taken from
//! the newest `/usr/lib/postgresql/<version>/bin`, or from
//! `$IMAPMIG_PG_BINDIR`. `initdb` and `postgres` refuse to run as root: a
//! test process running as root (as CI does) runs them as the system user
//! `postgres` (or `nobody`), which owns the instance's directory; an
//! ordinary user runs them as itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::instance::{self, ProcessGroup, StartError, PORT_ATTEMPTS, START_TIMEOUT};
use crate::{lock, sys, HOST};

/// `application_name` of the kit's own client connections (those of
/// [`Postgres::create_database`] and [`Postgres::psql`]), so that a test
/// counting logins can leave them out.
pub const KIT_APPLICATION_NAME: &str = "imapmig-testkit";

/// The PostgreSQL programs an instance runs.
struct Binaries {
    dir: PathBuf,
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

const INSTALL: &str = "install the Debian package `postgresql` with `bash scripts/setup` \
     (its system service need not run), or point IMAPMIG_PG_BINDIR at a directory \
     holding initdb, postgres and psql";

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = BINS.get_or_init(|| {
        let dir = match std::env::var_os("IMAPMIG_PG_BINDIR") {
            Some(d) => PathBuf::from(d),
            None => newest_bin_dir(Path::new("/usr/lib/postgresql")).ok_or_else(|| {
                format!(
                    "PostgreSQL is not installed: no /usr/lib/postgresql/<version>/bin/postgres; \
                     {INSTALL}"
                )
            })?,
        };
        let bins = Binaries {
            initdb: dir.join("initdb"),
            postgres: dir.join("postgres"),
            psql: dir.join("psql"),
            dir,
        };
        for p in [&bins.initdb, &bins.postgres, &bins.psql] {
            if !p.exists() {
                return Err(format!(
                    "PostgreSQL is incomplete: {} is missing; {INSTALL}",
                    p.display()
                ));
            }
        }
        Ok(bins)
    });
    match found {
        Ok(b) => b,
        Err(e) => panic!("imapmig-testkit: {e}"),
    }
}

/// The `bin` dir of the highest version under `root` (`15`, `16`, ... or
/// older `9.6`) that holds a `postgres` binary.
fn newest_bin_dir(root: &Path) -> Option<PathBuf> {
    let version = |name: &str| -> Option<Vec<u32>> {
        name.split('.').map(|part| part.parse().ok()).collect()
    };
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let v = version(&name)?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// One login the server logged (`connection authorized: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedConnection {
    /// The role that logged in.
    pub user: String,
    /// The database it connected to.
    pub database: String,
    /// The client's `application_name`, if it set one.
    pub application_name: Option<String>,
}

/// A running private PostgreSQL. Dropping it stops the server and deletes
/// its directory.
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    user: String,
    password: String,
    database: String,
    /// Who runs `initdb` and `postgres` (uid, gid) when we are root.
    run_as: Option<(u32, u32)>,
    /// The watchdog and the postmaster's pid.
    running: Mutex<Option<(ProcessGroup, i32)>>,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("dir", &self.dir.path())
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Creates a cluster, starts the server and creates [`Postgres::database`];
    /// blocks until it accepts logins (typically 1–2 s, mostly `initdb`).
    ///
    /// # Panics
    /// If PostgreSQL is not installed (the message names the package and
    /// `bash scripts/setup`), `initdb` fails, or the server does not come
    /// up (the message includes the tail of its log).
    pub fn start() -> Postgres {
        let bins = binaries();
        let as_root = sys::euid() == 0;
        let run_as = if as_root {
            let account = sys::account_by_name("postgres")
                .or_else(|| sys::account_by_name("nobody"))
                .expect(
                    "imapmig-testkit: PostgreSQL will not run as root and neither system user \
                     `postgres` nor `nobody` exists; run `bash scripts/setup`",
                );
            Some((account.uid, account.gid))
        } else {
            None
        };
        let dir = instance::make_instance_dir("imapmig-postgres-", as_root);
        let root = dir.path().to_path_buf();
        if let Some((uid, gid)) = run_as {
            sys::chown(&root, uid, gid)
                .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", root.display()));
        }
        instance::make_dir(&root, "data", run_as, 0o700);
        instance::make_dir(&root, "sock", run_as, 0o700);

        let mut server = Postgres {
            dir,
            port: 0,
            user: "imapmig".to_string(),
            password: sys::random_hex(16),
            database: "imapmig".to_string(),
            run_as,
            running: Mutex::new(None),
        };
        server.initdb(bins);

        let mut last_error = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            server.port = instance::free_ports(1)[0];
            match server.launch() {
                Ok(()) => {
                    let db = server.database.clone();
                    server.create_database(&db);
                    return server;
                }
                Err(StartError::PortInUse) => {
                    last_error = "ports kept being taken by other processes".to_string();
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "imapmig-testkit: PostgreSQL did not start after {PORT_ATTEMPTS} attempts: \
             {last_error}\n{}",
            server.log_tail(40)
        );
    }

    /// The address to connect to: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port (on 127.0.0.1 only).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The database created at start.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `postgres://USER:PASSWORD@127.0.0.1:PORT/DB` for [`Postgres::database`].
    pub fn url(&self) -> String {
        self.url_for(&self.database)
    }

    /// The URL of database `name` on this server (which need not exist).
    pub fn url_for(&self, name: &str) -> String {
        format!(
            "postgres://{}:{}@{HOST}:{}/{name}",
            self.user, self.password, self.port
        )
    }

    /// The instance's directory (`data/` is the cluster, `sock/` the unix
    /// socket dir, `postgres.log` the server log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates an empty database `name` and returns its URL.
    ///
    /// # Panics
    /// If `name` is not made of ASCII letters, digits and `_` (starting
    /// with a letter or `_`), or the server refuses (e.g. it exists).
    pub fn create_database(&self, name: &str) -> String {
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.len() <= 63
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "imapmig-testkit: invalid test database name {name:?} (use ASCII letters, digits and _)"
        );
        if let Err(e) = self.psql("postgres", &format!("CREATE DATABASE \"{name}\"")) {
            panic!(
                "imapmig-testkit: cannot create database {name}: {e}\n{}",
                self.log_tail(20)
            );
        }
        self.url_for(name)
    }

    /// The `psql` client of the PostgreSQL version the kit runs, for tests
    /// that connect with their own arguments (e.g. a URL from
    /// [`Postgres::url`]).
    ///
    /// # Panics
    /// If PostgreSQL is not installed (as [`Postgres::start`]).
    pub fn psql_path() -> &'static Path {
        &binaries().psql
    }

    /// Runs `sql` in `database` as the superuser with `psql` over TCP and
    /// returns its quiet, unaligned, tuples-only output (`-qAt`: one row a line,
    /// columns separated by `|`), or psql's error message.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, String> {
        self.psql_as(&self.user, &self.password, database, sql)
    }

    /// Like [`Postgres::psql`], logging in as `user` with `password`.
    pub fn psql_as(
        &self,
        user: &str,
        password: &str,
        database: &str,
        sql: &str,
    ) -> Result<String, String> {
        let out = Command::new(&binaries().psql)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", HOST])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", user, "-d", database, "-c", sql])
            .env("PGPASSWORD", password)
            .env("PGAPPNAME", KIT_APPLICATION_NAME)
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGSSLMODE", "disable")
            .env_remove("PGSERVICE")
            .env_remove("PGOPTIONS")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binaries().psql.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "psql failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The server log (its stderr) so far.
    pub fn log(&self) -> String {
        instance::read_lossy(&self.dir.path().join("postgres.log"))
    }

    /// The last `n` lines of [`Postgres::log`], labelled, for panic messages.
    pub fn log_tail(&self, n: usize) -> String {
        instance::tail("PostgreSQL log", &self.log(), n)
    }

    /// Every login so far, in order, as the log lists them (the kit's own,
    /// from [`Postgres::create_database`] and [`Postgres::psql`], carry
    /// [`KIT_APPLICATION_NAME`]). The server writes the line as a login
    /// completes, so a login just made shows up within milliseconds.
    pub fn connections_from_log(&self) -> Vec<LoggedConnection> {
        self.log()
            .lines()
            .filter_map(|line| {
                let rest = line.split("connection authorized: ").nth(1)?;
                let field = |key: &str| {
                    rest.split(' ')
                        .find_map(|w| w.strip_prefix(key))
                        .map(str::to_string)
                };
                Some(LoggedConnection {
                    user: field("user=")?,
                    database: field("database=")?,
                    application_name: field("application_name="),
                })
            })
            .collect()
    }

    /// Runs `initdb` into `data/`.
    fn initdb(&self, bins: &Binaries) {
        let root = self.dir.path();
        let pwfile = root.join("pwfile");
        instance::write_file(&pwfile, &format!("{}\n", self.password), 0o600, self.run_as);
        let mut cmd = Command::new(&bins.initdb);
        cmd.arg("-D")
            .arg(root.join("data"))
            .args(["-U", &self.user])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "--auth=scram-sha-256",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ]);
        self.as_server_user(&mut cmd);
        let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!("imapmig-testkit: cannot run {}: {e}", bins.initdb.display())
        });
        let _ = std::fs::remove_file(&pwfile);
        assert!(
            out.status.success(),
            "imapmig-testkit: initdb ({}) failed ({}):\n{}{}",
            bins.initdb.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Makes `cmd` run as the server's user, in the instance directory,
    /// with a plain environment.
    fn as_server_user(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
    }

    /// Starts `postgres` on the current port and waits until it is ready.
    fn launch(&self) -> Result<(), StartError> {
        let bins = binaries();
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("postgres.log"))
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: postgres.log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: dup: {e}")))?;
        if let Some((uid, gid)) = self.run_as {
            let _ = sys::chown(&root.join("postgres.log"), uid, gid);
        }
        // `postgres` itself, not `pg_ctl start`: pg_ctl detaches the server
        // into a session of its own, out of the watchdog's reach.
        let mut group = ProcessGroup::start("imapmig-postgres-watchdog")?;
        let mut cmd = Command::new(&bins.postgres);
        cmd.arg("-D")
            .arg(root.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(root.join("sock"));
        for setting in [
            format!("listen_addresses={HOST}"),
            "fsync=off".to_string(),
            "synchronous_commit=off".to_string(),
            "full_page_writes=off".to_string(),
            "log_connections=on".to_string(),
            "logging_collector=off".to_string(),
            "log_line_prefix=%m [%p] ".to_string(),
            "lc_messages=C".to_string(),
        ] {
            cmd.arg("-c").arg(setting);
        }
        self.as_server_user(&mut cmd);
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let pid = match group.spawn(&mut cmd) {
            Ok(pid) => pid,
            Err(e) => {
                group.stop();
                return Err(e);
            }
        };
        // The postmaster leads nothing: its children each call setsid(), and
        // the watchdog's SIGTERM asks it only for a smart shutdown, which
        // waits for every client to leave. This guard in the watchdog's group
        // turns that SIGTERM into an immediate shutdown (SIGQUIT), so that a
        // client in a process outliving the test cannot keep the server up.
        let guard = group.spawn(
            Command::new("/bin/sh")
                .arg("-c")
                .arg("trap : TERM; sleep 2147483647 & wait; kill -QUIT \"$1\" 2>/dev/null")
                .arg("imapmig-postgres-guard")
                .arg(pid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        if let Err(e) = guard {
            stop(group, pid);
            return Err(e);
        }
        match self.wait_ready(&group) {
            Ok(()) => {
                *lock(&self.running) = Some((group, pid));
                Ok(())
            }
            Err(e) => {
                stop(group, pid);
                Err(match e {
                    StartError::Failed(why) => StartError::Failed(format!(
                        "imapmig-testkit: PostgreSQL ({}) did not start: {why}\n{}",
                        bins.dir.display(),
                        self.log_tail(40)
                    )),
                    other => other,
                })
            }
        }
    }

    /// Waits until the postmaster says `ready` in its pid file (as
    /// `pg_ctl` does) and the port accepts. It binds 127.0.0.1 before it
    /// gets there, and exits if it cannot: so a ready, living postmaster
    /// owns the port.
    fn wait_ready(&self, group: &ProcessGroup) -> Result<(), StartError> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if group.any_exited() {
                return Err(
                    if self
                        .log()
                        .to_ascii_lowercase()
                        .contains("address already in use")
                    {
                        StartError::PortInUse
                    } else {
                        StartError::Failed("the postmaster exited".to_string())
                    },
                );
            }
            // Line 8 of postmaster.pid is the status: `starting`, `ready`, ...
            let status = instance::read_lossy(&pid_file);
            if status.lines().nth(7).map(str::trim) == Some("ready") {
                let addr = std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port));
                if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StartError::Failed(format!(
                    "not ready on 127.0.0.1:{} within {START_TIMEOUT:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Immediate shutdown (SIGQUIT, what `pg_ctl stop -m immediate` sends): the
/// postmaster ends its backends and removes its shared memory. Then the
/// group is stopped (and killed if anything lingers).
fn stop(group: ProcessGroup, postmaster: i32) {
    // SAFETY: kill has no memory-safety preconditions; the postmaster is our
    // child and not yet reaped, so its pid cannot name another process.
    unsafe {
        libc::kill(postmaster, libc::SIGQUIT);
    }
    sys::poll_until(Duration::from_secs(5), || sys::child_exited(postmaster));
    group.stop();
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some((group, pid)) = lock(&self.running).take() {
            stop(group, pid);
        }
        // The TempDir field then removes the directory.
    }
}
