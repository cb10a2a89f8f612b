//! Real mail servers for integration tests — no mocks.
//!
//! [`Dovecot::start`] launches a private Dovecot (2.3) instance: its own
//! configuration, sockets, state, log and mail, all in a temporary
//! directory, listening on free loopback ports chosen at run time (plain IMAP
//! with STARTTLS, IMAPS, POP3 with STLS, POP3S). Dropping the [`Dovecot`]
//! stops every process of the instance and deletes the directory. Any number
//! of instances can run at the same time, in one test process (tests run in
//! parallel threads) or in many.
//!
//! ```no_run
//! use imapmig_testkit::{Dovecot, Flavour};
//!
//! let server = Dovecot::start(Flavour::Slash);
//! let alice = server.user("alice");
//! let addr = (server.host(), server.imap_port());
//! // ... connect, `LOGIN alice <alice.password>`, migrate, check ...
//! # let _ = (alice, addr);
//! ```
//!
//! Requirements: the Debian/Ubuntu packages `dovecot-imapd`,
//! `dovecot-pop3d` and `openssl` (the system Dovecot service itself is never
//! used and need not run). The tests are meant to run as root (as CI does);
//! running as an ordinary user works too, with every Dovecot process running
//! as that user.
//!
//! Even if the test process is killed (SIGKILL, Ctrl-C), its Dovecot
//! instances stop on their own: each runs under a small `sh` watchdog that
//! ends the instance's process group when the pipe from the test process
//! closes.
//!
//! Other real servers for interoperability tests, each in its own module
//! with its observed capabilities and quirks: [`Cyrus`] (Cyrus IMAP 3.6),
//! [`Courier`] (Courier-IMAP 5.0 and POP3) and [`Mailutils`] (GNU Mailutils
//! 3.15 imap4d and pop3d). `bash scripts/setup` installs them.
//!
//! [`Postgres::start`] runs a private PostgreSQL (Debian's `postgresql`
//! package, the newest version installed) the same way: `initdb` into a
//! temporary directory, 127.0.0.1 only on a free port, password logins as a
//! superuser the kit chose, a first database ([`Postgres::url`]) and more on
//! demand ([`Postgres::create_database`]); stopped on drop and by the
//! watchdog. As root it runs as the system user `postgres` (PostgreSQL
//! refuses root). For tests of several `imapmig run` workers sharing one
//! task.
//!
//! For faults a real server will not show on demand, [`FaultProxy`] sits in
//! front of an instance and cuts connections at an exact byte or pattern,
//! plays dead for a while, or refuses logins in the server's place; and
//! [`ScriptedServer`] plays a source server that misbehaves in ways scripted
//! per message (wrong UIDs, missing bodies, malformed dates, 8-bit names).

#![deny(missing_docs)]

mod config;
pub mod courier;
pub mod cyrus;
mod instance;
mod listener;
pub mod mailutils;
pub mod postgres;
pub mod proxy;
pub mod scripted;
mod sys;
mod tls;

pub use courier::{Courier, CourierOptions};
pub use cyrus::{Cyrus, CyrusOptions};
pub use mailutils::{Mailutils, MailutilsOptions};
pub use postgres::Postgres;
pub use proxy::{Direction, FaultProxy};
pub use scripted::{BodyAnswer, Command, ScriptedFolder, ScriptedMessage, ScriptedServer};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use config::{ConfigParams, Ports};
use instance::{
    free_ports, make_instance_dir, Probe, ProcessGroup, StartError, PORT_ATTEMPTS, START_TIMEOUT,
};

/// Loopback address every instance listens on.
const HOST: &str = "127.0.0.1";

/// The folder layout a [`Dovecot`] instance presents — the two shapes real
/// servers commonly have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Separator `/`, no namespace prefix; SPECIAL-USE folders `Sent`,
    /// `Trash`, `Junk`, `Drafts`, `Archive` (attributes `\Sent` `\Trash`
    /// `\Junk` `\Drafts` `\Archive`) auto-created and subscribed.
    /// Storage: `maildir:…:LAYOUT=fs`.
    Slash,
    /// Separator `.`, personal namespace prefix `INBOX.`, Outlook-style
    /// names: `Sent Items` (`\Sent`), `Deleted Items` (`\Trash`),
    /// `Junk E-mail` (`\Junk`), `Drafts` (`\Drafts`), `Archive`
    /// (`\Archive`) auto-created and subscribed (seen by clients as
    /// `INBOX.Sent Items` etc.). Storage: Maildir++.
    DotInbox,
}

impl Flavour {
    /// Both flavours, for tests that run against each.
    pub const ALL: [Flavour; 2] = [Flavour::Slash, Flavour::DotInbox];

    /// The hierarchy separator the server announces in LIST.
    pub fn separator(self) -> char {
        match self {
            Flavour::Slash => '/',
            Flavour::DotInbox => '.',
        }
    }

    /// The personal namespace prefix (`""` or `"INBOX."`).
    pub fn prefix(self) -> &'static str {
        match self {
            Flavour::Slash => "",
            Flavour::DotInbox => "INBOX.",
        }
    }

    /// The special-use folders as `(name without prefix, attribute)`.
    pub fn special_use_names(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Flavour::Slash => &[
                ("Sent", "\\Sent"),
                ("Trash", "\\Trash"),
                ("Junk", "\\Junk"),
                ("Drafts", "\\Drafts"),
                ("Archive", "\\Archive"),
            ],
            Flavour::DotInbox => &[
                ("Sent Items", "\\Sent"),
                ("Deleted Items", "\\Trash"),
                ("Junk E-mail", "\\Junk"),
                ("Drafts", "\\Drafts"),
                ("Archive", "\\Archive"),
            ],
        }
    }

    /// The special-use folders as `(full IMAP name, attribute)`, exactly
    /// as `LIST` returns them (e.g. `("INBOX.Sent Items", "\\Sent")`).
    pub fn special_use_folders(self) -> Vec<(String, &'static str)> {
        self.special_use_names()
            .iter()
            .map(|(name, attr)| (format!("{}{name}", self.prefix()), *attr))
            .collect()
    }

    /// The full IMAP name of a folder given by its path components, e.g.
    /// `["Projects", "2024"]` → `Projects/2024` or `INBOX.Projects.2024`.
    pub fn folder_name(self, parts: &[&str]) -> String {
        let mut sep = [0u8; 4];
        let sep = self.separator().encode_utf8(&mut sep);
        format!("{}{}", self.prefix(), parts.join(sep))
    }
}

/// What a client must do on a server's plain IMAP port before it may log in
/// with a password: the words of `imapmig::imap::Security` that apply (the
/// test kit does not depend on the core crate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginSecurity {
    /// `LOGIN` in the clear is accepted (loopback tests may use
    /// `Security::Cleartext`).
    Cleartext,
    /// Passwords are refused until STARTTLS (`LOGINDISABLED`): use
    /// `Security::StartTls` on the plain port, or implicit TLS.
    StartTls,
}

/// Credentials of a user of a [`Dovecot`] instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser {
    /// Login name.
    pub name: String,
    /// Plaintext password.
    pub password: String,
}

/// Knobs for [`Dovecot::start_with`]. `DovecotOptions::default()` is what
/// [`Dovecot::start`] uses.
#[derive(Debug, Clone)]
pub struct DovecotOptions {
    /// Largest message the server accepts, in bytes (Dovecot's
    /// `quota_max_mail_size`). A bigger APPEND is refused up front with
    /// `NO [LIMIT] Mail size is larger than the maximum size allowed by
    /// server configuration`. Dovecot 2.3 does not announce it as
    /// `APPENDLIMIT`. `None`: no limit.
    pub max_message_size: Option<u64>,
    /// Storage quota of every user without a quota of their own, in KiB
    /// (default 1 GiB). See [`Dovecot::user_with_quota`]; going over it
    /// gives `NO [OVERQUOTA] Quota exceeded`.
    pub default_quota_kib: u64,
    /// Dovecot's `auth_failure_delay` in seconds: the pause before a failed
    /// login is answered. Dovecot's own default is 2; the test default 0
    /// (failures are then answered on Dovecot's next 0.5 s tick).
    pub auth_failure_delay_secs: u32,
    /// Whether Dovecot's anvil auth penalty (delays of 2, 4, 8, 15 s after
    /// repeated failed logins from one IP) applies. Default `false`: tests
    /// all come from 127.0.0.1 and would slow each other down.
    pub auth_penalty: bool,
    /// Raw configuration lines appended at the end of `dovecot.conf` (later
    /// settings override earlier ones), for one-off needs.
    pub extra_config: Option<String>,
    /// Whether the flavour's special-use folders are configured (created at
    /// login, listed with their RFC 6154 attributes). Default `true`. With
    /// `false` the server looks like Courier or Mailutils: no folder carries
    /// a special-use attribute and none exists until a client creates it.
    pub special_use_folders: bool,
}

impl Default for DovecotOptions {
    fn default() -> Self {
        DovecotOptions {
            max_message_size: None,
            default_quota_kib: 1024 * 1024,
            auth_failure_delay_secs: 0,
            auth_penalty: false,
            extra_config: None,
            special_use_folders: true,
        }
    }
}

/// The paths of the Dovecot tools.
struct Binaries {
    dovecot: PathBuf,
    doveadm: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = BINS.get_or_init(|| {
        const INSTALL: &str = "install it with `apt-get install dovecot-imapd dovecot-pop3d` \
             (Debian/Ubuntu; the system service need not run), or point \
             IMAPMIG_DOVECOT / IMAPMIG_DOVEADM at the binaries";
        let dovecot = match std::env::var_os("IMAPMIG_DOVECOT") {
            Some(p) => PathBuf::from(p),
            None => sys::find_executable("dovecot", &["/usr/sbin", "/usr/local/sbin", "/sbin"])
                .ok_or_else(|| {
                    format!("Dovecot is not installed: no `dovecot` binary in $PATH or /usr/sbin; {INSTALL}")
                })?,
        };
        let doveadm = match std::env::var_os("IMAPMIG_DOVEADM") {
            Some(p) => PathBuf::from(p),
            None => sys::find_executable("doveadm", &["/usr/bin", "/usr/local/bin"]).ok_or_else(
                || format!("Dovecot's `doveadm` is not installed; {INSTALL}"),
            )?,
        };
        // The protocol binaries live in Dovecot's libexec dir; check the
        // usual places so a missing dovecot-pop3d is named clearly.
        for libexec in ["/usr/lib/dovecot", "/usr/libexec/dovecot", "/usr/local/libexec/dovecot"] {
            let dir = Path::new(libexec);
            if dir.join("imap-login").exists() || dir.join("pop3-login").exists() {
                for (bin, pkg) in [("imap", "dovecot-imapd"), ("pop3", "dovecot-pop3d")] {
                    if !dir.join(bin).exists() {
                        return Err(format!(
                            "Dovecot's {bin} server is missing ({libexec}/{bin}); install it with \
                             `apt-get install {pkg}`"
                        ));
                    }
                }
                break;
            }
        }
        Ok(Binaries { dovecot, doveadm })
    });
    match found {
        Ok(b) => b,
        Err(e) => panic!("imapmig-testkit: {e}"),
    }
}

/// One registered user.
#[derive(Debug, Clone)]
struct UserEntry {
    password: String,
    quota_kib: Option<u64>,
}

/// A running private Dovecot instance. Dropping it stops the server (all of
/// its processes) and deletes its directory.
pub struct Dovecot {
    flavour: Flavour,
    options: DovecotOptions,
    dir: tempfile::TempDir,
    ca_path: PathBuf,
    ports: Ports,
    token: String,
    mail_uid: u32,
    mail_gid: u32,
    /// Owner of the auth files (Dovecot's auth processes must read them).
    auth_uid: u32,
    auth_gid: u32,
    /// `default_internal_group` when not running as root.
    internal_group: Option<String>,
    master: TestUser,
    /// The users, by normalised (lower-case) name; mirrored into
    /// `auth/passdb/<name>` and `auth/userdb/<name>`.
    users: Mutex<BTreeMap<String, UserEntry>>,
    /// The watchdog and `dovecot -F`, the master process.
    running: Mutex<Option<ProcessGroup>>,
}

impl std::fmt::Debug for Dovecot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dovecot")
            .field("flavour", &self.flavour)
            .field("dir", &self.dir.path())
            .field("imap_port", &self.ports.imap)
            .field("imaps_port", &self.ports.imaps)
            .field("pop3_port", &self.ports.pop3)
            .field("pop3s_port", &self.ports.pop3s)
            .finish_non_exhaustive()
    }
}

impl Dovecot {
    /// Starts an instance with default options; blocks until it greets on
    /// IMAP and POP3 (at most ~15 s).
    ///
    /// # Panics
    /// If Dovecot or openssl is not installed (the message names the
    /// packages to install) or the server does not come up (the message
    /// includes the tail of its log).
    pub fn start(flavour: Flavour) -> Dovecot {
        Dovecot::start_with(flavour, DovecotOptions::default())
    }

    /// Starts an instance with the given options; see [`Dovecot::start`].
    pub fn start_with(flavour: Flavour, options: DovecotOptions) -> Dovecot {
        let _ = binaries();
        let tls = tls::material();
        let as_root = sys::euid() == 0;

        // Who owns what. As root: mail belongs to the unprivileged `mail`
        // account (Dovecot refuses uid 0 for mail), the passwd-files to
        // Dovecot's internal user (the auth process reads them). Otherwise
        // everything is the current user.
        let (login_user, internal_user, mail, auth) = if as_root {
            let login = sys::account_by_name("dovenull")
                .expect("imapmig-testkit: system user `dovenull` missing; reinstall dovecot-core");
            let internal = sys::account_by_name("dovecot")
                .expect("imapmig-testkit: system user `dovecot` missing; reinstall dovecot-core");
            let mail = sys::account_by_name("mail")
                .or_else(|| sys::account_by_name("nobody"))
                .expect("imapmig-testkit: neither system user `mail` nor `nobody` exists");
            (login.name, internal.name.clone(), mail, internal)
        } else {
            let me = sys::account_by_uid(sys::euid()).unwrap_or_else(|| {
                panic!(
                    "imapmig-testkit: the current uid {} has no passwd entry; Dovecot needs a user name",
                    sys::euid()
                )
            });
            let me = sys::Account {
                gid: sys::egid(),
                ..me
            };
            (me.name.clone(), me.name.clone(), me.clone(), me)
        };

        let dir = make_instance_dir("imapmig-dovecot-", as_root);
        let root = dir.path().to_path_buf();
        let token = format!(
            "imt-{}-{}",
            std::process::id(),
            INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed)
        );

        // Directory tree.
        let mkdir = |rel: &str, owner: Option<(u32, u32)>, mode: u32| {
            use std::os::unix::fs::PermissionsExt;
            let p = root.join(rel);
            std::fs::create_dir_all(&p)
                .unwrap_or_else(|e| panic!("imapmig-testkit: cannot create {}: {e}", p.display()));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .unwrap_or_else(|e| panic!("imapmig-testkit: chmod {}: {e}", p.display()));
            if let (true, Some((uid, gid))) = (as_root, owner) {
                sys::chown(&p, uid, gid)
                    .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", p.display()));
            }
        };
        mkdir("state", None, 0o755);
        mkdir("tls", None, 0o755);
        mkdir("mail", Some((mail.uid, mail.gid)), 0o755);
        mkdir("home", Some((mail.uid, mail.gid)), 0o755);
        mkdir("auth/passdb", None, 0o755);
        mkdir("auth/userdb", None, 0o755);
        let write_tls = |name: &str, text: &str, mode: u32| {
            let p = root.join("tls").join(name);
            tls::write_private(&p, text, mode)
                .unwrap_or_else(|e| panic!("imapmig-testkit: cannot write {}: {e}", p.display()));
        };
        write_tls("ca.pem", &tls.ca_pem, 0o644);
        write_tls("server.pem", &tls.cert_pem, 0o644);
        write_tls("server.key", &tls.key_pem, 0o600);

        let master = TestUser {
            name: "master".to_string(),
            password: sys::random_hex(12),
        };
        let server = Dovecot {
            flavour,
            options,
            ca_path: root.join("tls").join("ca.pem"),
            dir,
            ports: Ports {
                imap: 0,
                imaps: 0,
                pop3: 0,
                pop3s: 0,
            },
            token,
            mail_uid: mail.uid,
            mail_gid: mail.gid,
            auth_uid: auth.uid,
            auth_gid: auth.gid,
            internal_group: if as_root {
                None
            } else {
                Some(sys::group_name(auth.gid).unwrap_or_else(|| {
                    panic!(
                        "imapmig-testkit: the current gid {} has no group entry; Dovecot needs a group name",
                        auth.gid
                    )
                }))
            },
            master,
            users: Mutex::new(BTreeMap::new()),
            running: Mutex::new(None),
        };
        server.write_auth_file(
            Path::new("master-users"),
            &format!(
                "{}:{{PLAIN}}{}\n",
                server.master.name, server.master.password
            ),
        );
        server.write_auth_file(
            Path::new("dict-auth.conf"),
            &config::render_dict_auth(&root),
        );

        let mut server = server;
        let mut last_error = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            let p = free_ports(4);
            server.ports = Ports {
                imap: p[0],
                imaps: p[1],
                pop3: p[2],
                pop3s: p[3],
            };
            server.write_config(&login_user, &internal_user, as_root);
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::PortInUse) => {
                    last_error = "ports kept being taken by other processes".to_string();
                    continue;
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "imapmig-testkit: Dovecot did not start after {PORT_ATTEMPTS} attempts: {last_error}\n{}",
            server.log_tail(40)
        );
    }

    /// Stops the server and starts it again on the same ports with the same
    /// users and mail — for tests of reconnecting after a server restart.
    /// Blocks until it greets again.
    pub fn restart(&self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.launch() {
                Ok(()) => return,
                // Someone grabbed a port in the gap; it may be a passing
                // client socket, so try again for a while.
                Err(StartError::PortInUse) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(StartError::PortInUse) => panic!(
                    "imapmig-testkit: cannot restart Dovecot: its ports are taken\n{}",
                    self.log_tail(40)
                ),
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
    }

    /// The flavour this instance was started with.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &DovecotOptions {
        &self.options
    }

    /// The address to connect to: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// Plain IMAP port; STARTTLS is offered.
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAP over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.ports.imaps
    }

    /// Plain POP3 port; STLS is offered.
    pub fn pop3_port(&self) -> u16 {
        self.ports.pop3
    }

    /// POP3 over implicit TLS.
    pub fn pop3s_port(&self) -> u16 {
        self.ports.pop3s
    }

    /// `host:imap_port` as a socket address.
    pub fn imap_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.ports.imap))
    }

    /// PEM file of the CA that signed the server certificate (SAN:
    /// IP 127.0.0.1 and DNS localhost). The CA is made once per test process.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The instance's directory (config, log, mail, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated `dovecot.conf`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("dovecot.conf")
    }

    /// Creates user `name` with a random password if it does not exist yet
    /// and returns its credentials; it can log in immediately.
    ///
    /// User names are matched case-insensitively (Dovecot's default
    /// `auth_username_format = %Lu`); they may contain ASCII letters,
    /// digits and `. _ - + @`.
    pub fn user(&self, name: &str) -> TestUser {
        let key = user_key(name);
        let mut users = lock(&self.users);
        if let Some(u) = users.get(&key) {
            return TestUser {
                name: name.to_string(),
                password: u.password.clone(),
            };
        }
        let entry = UserEntry {
            password: sys::random_hex(12),
            quota_kib: None,
        };
        let password = entry.password.clone();
        self.write_user(&key, &entry);
        users.insert(key, entry);
        TestUser {
            name: name.to_string(),
            password,
        }
    }

    /// Like [`Dovecot::user`], but with a storage quota of `kib` KiB (set
    /// or changed also for an existing user). Appends that would exceed it
    /// fail with `NO [OVERQUOTA] Quota exceeded (mailbox for user is full)`;
    /// `GETQUOTAROOT` reports it.
    pub fn user_with_quota(&self, name: &str, kib: u64) -> TestUser {
        let key = user_key(name);
        let mut users = lock(&self.users);
        let entry = users.entry(key.clone()).or_insert_with(|| UserEntry {
            password: sys::random_hex(12),
            quota_kib: None,
        });
        entry.quota_kib = Some(kib);
        let entry = entry.clone();
        self.write_user(&key, &entry);
        TestUser {
            name: name.to_string(),
            password: entry.password,
        }
    }

    /// Sets the password of user `name` (creating the user if needed).
    /// Effective for the next login; open sessions are not affected.
    ///
    /// # Panics
    /// If the password contains CR, LF or NUL.
    pub fn set_password(&self, name: &str, password: &str) {
        assert!(
            !password.contains(['\r', '\n', '\0']),
            "imapmig-testkit: a test password cannot contain CR, LF or NUL"
        );
        let key = user_key(name);
        let mut users = lock(&self.users);
        let entry = users.entry(key.clone()).or_insert_with(|| UserEntry {
            password: String::new(),
            quota_kib: None,
        });
        entry.password = password.to_string();
        let entry = entry.clone();
        self.write_user(&key, &entry);
    }

    /// The Dovecot master user. Log in as any user `u` with
    /// `LOGIN u*master <password>`, or SASL PLAIN with authzid `u`, authcid
    /// `master` and this password.
    pub fn master_user(&self) -> TestUser {
        self.master.clone()
    }

    /// The maildir of `user` (for tests that peek at the files). It exists
    /// once the user has logged in or received mail.
    pub fn maildir_of(&self, user: &str) -> PathBuf {
        self.dir.path().join("mail").join(user_key(user))
    }

    /// Runs `doveadm -c <this instance's config> <args…>` and returns its
    /// output, e.g. `doveadm(&["mailbox", "status", "-u", "alice",
    /// "messages uidvalidity", "INBOX"])`, `["force-resync", "-u", "alice",
    /// "*"]`, `["expunge", "-u", "alice", "mailbox", "INBOX", "all"]`.
    ///
    /// # Panics
    /// Only if `doveadm` cannot be executed at all; a failing command is
    /// reported in the returned status.
    pub fn doveadm(&self, args: &[&str]) -> Output {
        let bins = binaries();
        std::process::Command::new(&bins.doveadm)
            .arg("-c")
            .arg(self.config_file())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "imapmig-testkit: cannot run {}: {e}",
                    bins.doveadm.display()
                )
            })
    }

    /// Like [`Dovecot::doveadm`] but panics (with stderr and the server log)
    /// unless the command succeeds; returns its stdout.
    pub fn doveadm_ok(&self, args: &[&str]) -> String {
        let out = self.doveadm(args);
        if !out.status.success() {
            panic!(
                "imapmig-testkit: `doveadm {}` failed ({}):\n{}{}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.log_tail(30)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The server's log so far (plus anything Dovecot printed to stderr),
    /// for failure messages.
    pub fn log(&self) -> String {
        let mut text =
            std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default();
        let stderr =
            std::fs::read_to_string(self.dir.path().join("dovecot.stderr")).unwrap_or_default();
        if !stderr.trim().is_empty() {
            text.push_str("--- stderr ---\n");
            text.push_str(&stderr);
        }
        text
    }

    /// The last `n` lines of [`Dovecot::log`], labelled, for panic messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- Dovecot log ({}, last {} lines) ---\n{}\n--- end of Dovecot log ---",
            self.dir.path().join("dovecot.log").display(),
            lines.len() - start,
            lines[start..].join("\n")
        )
    }

    /// Writes the config for the current ports.
    fn write_config(&self, login_user: &str, internal_user: &str, as_root: bool) {
        let text = config::render(&ConfigParams {
            dir: self.dir.path(),
            flavour: self.flavour,
            ports: self.ports,
            token: &self.token,
            mail_uid: self.mail_uid,
            mail_gid: self.mail_gid,
            login_user,
            internal_user,
            internal_group: self.internal_group.as_deref(),
            as_root,
            options: &self.options,
        });
        let path = self.config_file();
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("imapmig-testkit: cannot write {}: {e}", path.display()));
    }

    /// Writes the passdb and userdb records of one user. Dovecot reads them
    /// on every lookup, so the change is effective at once.
    fn write_user(&self, key: &str, entry: &UserEntry) {
        let mut userdb = String::from("{");
        if let Some(kib) = entry.quota_kib {
            userdb.push_str(&format!("\"quota_rule\":\"*:storage={kib}k\""));
        }
        userdb.push_str("}\n");
        let passdb = format!(
            "{{\"password\":\"{}\"}}\n",
            json_escape(&format!("{{PLAIN}}{}", entry.password))
        );
        // userdb first: once the password matches, the user must exist.
        self.write_auth_file(&Path::new("auth/userdb").join(key), &userdb);
        self.write_auth_file(&Path::new("auth/passdb").join(key), &passdb);
    }

    /// Atomically replaces `rel` (relative to the instance directory) with
    /// `text`, readable by Dovecot's auth processes but not by others.
    fn write_auth_file(&self, rel: &Path, text: &str) {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.path().join(rel);
        // `#` cannot occur in user names, so this never clobbers a record.
        let mut tmp = path.clone().into_os_string();
        tmp.push("#tmp");
        let tmp = PathBuf::from(tmp);
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            drop(f);
            if sys::euid() == 0 {
                sys::chown(&tmp, self.auth_uid, self.auth_gid)?;
            }
            std::fs::rename(&tmp, &path)
        })();
        result.unwrap_or_else(|e| panic!("imapmig-testkit: cannot write {}: {e}", path.display()));
    }

    /// Starts the processes for the current ports and waits for readiness.
    fn launch(&self) -> Result<(), StartError> {
        let bins = binaries();
        let root = self.dir.path();
        let stderr = File::create(root.join("dovecot.stderr")).map_err(|e| {
            StartError::Failed(format!(
                "imapmig-testkit: cannot create dovecot.stderr: {e}"
            ))
        })?;
        let stderr2 = stderr.try_clone().map_err(|e| {
            StartError::Failed(format!("imapmig-testkit: cannot dup a file handle: {e}"))
        })?;
        // The watchdog leads a new process group, which Dovecot joins; the
        // group ends when this process drops the instance or dies.
        let mut group = ProcessGroup::start("imapmig-dovecot-watchdog")?;
        // A master killed by SIGKILL leaves its pid file behind, and in
        // containers whose init does not reap orphans that pid may still
        // exist (as a zombie): Dovecot would think it is still running.
        let _ = std::fs::remove_file(root.join("run").join("master.pid"));
        let spawned = group.spawn(
            std::process::Command::new(&bins.dovecot)
                .arg("-F")
                .arg("-c")
                .arg(self.config_file())
                .stdin(Stdio::null())
                .stdout(stderr)
                .stderr(stderr2)
                .current_dir(root),
        );
        if let Err(e) = spawned {
            group.stop();
            return Err(e);
        }
        *lock(&self.running) = Some(group);

        let probes = [
            Probe::Greets {
                port: self.ports.imap,
                prefix: "* OK",
                token: Some(self.token.clone()),
            },
            Probe::Greets {
                port: self.ports.pop3,
                prefix: "+OK",
                token: Some(self.token.clone()),
            },
        ];
        let ready = match &*lock(&self.running) {
            Some(group) => instance::wait_ready(group, &probes, &|| self.log()),
            None => Err(StartError::Failed("stopped while starting".into())),
        };
        match ready {
            Ok(()) => Ok(()),
            Err(e) => {
                self.stop();
                Err(match e {
                    StartError::Failed(why) => StartError::Failed(format!(
                        "imapmig-testkit: Dovecot ({}) did not start: {why}\n{}",
                        bins.dovecot.display(),
                        self.log_tail(40)
                    )),
                    other => other,
                })
            }
        }
    }

    /// Stops the processes (if running) and waits until they are gone.
    ///
    /// A graceful stop takes a few ms; but now and then a Dovecot process
    /// (seen: auth, a just-forked pop3-login) ignores SIGTERM and the master
    /// waits for it for many seconds: after a short grace period the group
    /// gets SIGKILL (Dovecot's maildir storage is crash-safe).
    fn stop(&self) {
        if let Some(group) = lock(&self.running).take() {
            group.stop();
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.stop();
        // The TempDir field then removes the directory.
    }
}

/// Locks `m`, ignoring poisoning: a panicking test must not turn the
/// cleanup in `Drop` into an abort.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Normalises a user name the way Dovecot will (`%Lu`), rejecting names the
/// passwd-file or the maildir path cannot hold.
fn user_key(name: &str) -> String {
    assert!(
        !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c)),
        "imapmig-testkit: invalid test user name {name:?} (use ASCII letters, digits and . _ - + @)"
    );
    name.to_ascii_lowercase()
}

/// Escapes `s` for use inside a JSON string.
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
