//! A private GNU Mailutils 3.15 `imap4d` and `pop3d` (Debian 12) for tests.
//!
//! [`Mailutils::start`] runs `imap4d` and `pop3d` as daemons in the
//! foreground (`--config-file`, which also keeps the site-wide config out)
//! with configs in a temporary directory: IMAP (STARTTLS offered), IMAPS,
//! POP3 (STLS offered) and POP3S on free loopback ports. Dropping the
//! [`Mailutils`] stops them and deletes the directory; if the test process
//! dies, the watchdog of [`crate::instance`] stops them. Any number can run
//! at once.
//!
//! # Users
//!
//! Mailutils' `virtdomain` module, with `generic` authentication: a
//! passwd-format file `domains/mailutils.test` (SHA-512 crypt passwords,
//! `openssl passwd -6`). It finds a user only by a name with a domain, so
//! **logins are `<name>@mailutils.test`**: [`Mailutils::user`] returns that
//! as [`TestUser::name`]. (`virtdomain` would find a bare `name` by the
//! server's address, `domains/127.0.0.1`, but only in inetd mode, where
//! the client socket is standard input; the daemons here do not do that.)
//! A user's mail is an mbox, `<home>/INBOX` (mbox is Mailutils' default
//! format); other folders are mbox files beside it.
//!
//! As root, the daemons run as the `mail` account (which owns the mail):
//! run as root, `imap4d` creates a new mailbox as root and then, switched
//! to the user's uid, cannot open it (`NO APPEND [TRYCREATE] failed`). As
//! another user they run as that user.
//!
//! # Installation
//!
//! `mailutils-imap4d` and `mailutils-pop3d` provide `imap-server` /
//! `pop3-server` but declare no conflict with Dovecot: `scripts/setup`
//! installs them normally (`/usr/sbin/imap4d`, `/usr/sbin/pop3d`). A
//! missing one makes [`Mailutils::start`] panic naming `bash scripts/setup`.
//!
//! # Observed behaviour (mailutils 1:3.15-4, by `tests/servers.rs`)
//!
//! - `imap4d` greets `* OK IMAP4rev1` (no capabilities in the greeting).
//!   `CAPABILITY` before login: `IMAP4rev1 NAMESPACE ID IDLE LITERAL+
//!   UNSELECT STARTTLS` and a long AUTH= list from GNU SASL (`AUTH=PLAIN`,
//!   `AUTH=LOGIN`, `AUTH=CRAM-MD5`, `AUTH=SCRAM-SHA-256`, ...); after
//!   STARTTLS the same without `STARTTLS`; after login the pre-login list
//!   again. `LOGIN` and `AUTHENTICATE PLAIN` both work in the clear, but
//!   the tagged `OK` of a successful AUTHENTICATE ends in a bare LF (`a OK
//!   AUTHENTICATE PLAIN authentication successful\n`), which strict
//!   clients (Python's imaplib) reject. No `UIDPLUS` (no APPENDUID),
//!   `CONDSTORE`, `SPECIAL-USE`, `MOVE` or `MULTIAPPEND`.
//! - Namespace: `(("" "/")) NIL NIL`; `LIST "" "*"` shows `INBOX` with
//!   `\NoInferiors` and a NIL separator; created folders have `/`.
//! - APPEND with a keyword (`$Forwarded`) is refused: `BAD APPEND
//!   Unrecognized flag`.
//! - APPEND without an INTERNALDATE is refused (`NO APPEND [TRYCREATE]
//!   failed`) unless the message has a `From:` header; then it is stored
//!   with INTERNALDATE `01-Jan-1970 00:00:00 +0000`.
//! - APPEND into a mailbox the session has NOT selected keeps the system
//!   flags (`\Seen \Flagged` and `\Answered` came back, with `\Recent`)
//!   and every message. No APPENDUID.
//! - APPEND into the mailbox the session HAS selected loses mail: the
//!   session sees only the first new message (`NOOP` says `1 EXISTS` after
//!   three APPENDs) and, when it ends, imap4d rewrites the mbox from that
//!   view. Seen: SELECT INBOX (empty), three APPENDs with `(\Seen
//!   \Flagged)` answered `OK`, LOGOUT: the next session finds one message
//!   with `FLAGS ()`; SELECT of a 3-message INBOX, one APPEND, connection
//!   dropped: the next session finds 2 messages. A client that selects the
//!   target folder before appending (as imapmig does, for speed on Dovecot)
//!   must not do so here.
//! - INTERNALDATE loses its zone: `05-Dec-2020 10:11:12 +0100` comes back
//!   as `05-Dec-2020 10:11:12 +0000` (an hour off).
//! - UIDVALIDITY: an empty INBOX gets a new one in every session; a
//!   non-empty one keeps it.
//! - The message is changed once the mailbox is saved (from the next
//!   session on; within the appending session `BODY[]` is unchanged):
//!   `X-IMAPbase:` (first message), `X-UID:` and `Status:` headers are
//!   inserted into the header, and `BODY[]` / `RFC822.SIZE` include them.
//! - A bare LF comes back as CRLF; a message not ending in a newline gets
//!   CRLF added.
//! - `pop3d`: greets `+OK POP3 Ready <pid.time@host>`; `CAPA`: `TOP UIDL
//!   RESP-CODES PIPELINING AUTH-RESP-CODE EXPIRENEVER USER STLS` (after
//!   STLS the same without `STLS`; no SASL);
//!   `USER`/`PASS` work in the clear; RETR returns the mbox-rewritten
//!   message (with `X-UID`, `Status`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::instance::{self, Probe, ProcessGroup, StartError, PORT_ATTEMPTS};
use crate::{lock, sys, tls, LoginSecurity, TestUser, HOST};

/// The domain every Mailutils test user logs in with.
pub const DOMAIN: &str = "mailutils.test";

/// Knobs for [`Mailutils::start_with`]; `MailutilsOptions::default()` is
/// what [`Mailutils::start`] uses.
#[derive(Debug, Clone, Default)]
pub struct MailutilsOptions {
    /// Raw statements appended to both daemons' config files.
    pub extra_config: Option<String>,
}

struct Binaries {
    imap4d: PathBuf,
    pop3d: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        let bins = Binaries {
            imap4d: PathBuf::from("/usr/sbin/imap4d"),
            pop3d: PathBuf::from("/usr/sbin/pop3d"),
        };
        instance::require("GNU Mailutils", &[&bins.imap4d, &bins.pop3d]);
        bins
    })
}

/// A running private Mailutils `imap4d` + `pop3d`. Dropping it stops them
/// and deletes the directory.
pub struct Mailutils {
    options: MailutilsOptions,
    dir: tempfile::TempDir,
    ca_path: PathBuf,
    /// imap, imaps, pop3, pop3s.
    ports: [u16; 4],
    /// The account the daemons run as and the mail belongs to.
    run_uid: u32,
    run_gid: u32,
    /// `name:hash:...` lines of the user file, by name, with passwords.
    users: Mutex<Vec<(String, String, String)>>,
    running: Mutex<Option<ProcessGroup>>,
}

impl std::fmt::Debug for Mailutils {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailutils")
            .field("dir", &self.dir.path())
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl Mailutils {
    /// Starts `imap4d` and `pop3d` with default options; blocks until both
    /// greet (at most ~15 s).
    ///
    /// # Panics
    /// If Mailutils is not installed (the message names `bash
    /// scripts/setup`) or the servers do not come up.
    pub fn start() -> Mailutils {
        Mailutils::start_with(MailutilsOptions::default())
    }

    /// Starts an instance with the given options; see [`Mailutils::start`].
    pub fn start_with(options: MailutilsOptions) -> Mailutils {
        let _ = binaries();
        let as_root = sys::euid() == 0;
        let (run_uid, run_gid) = if as_root {
            let mail = sys::account_by_name("mail")
                .expect("imapmig-testkit: system user `mail` missing (Debian has it)");
            (mail.uid, mail.gid)
        } else {
            (sys::euid(), sys::egid())
        };
        let owner = Some((run_uid, run_gid));
        let tls = tls::material();
        let dir = instance::make_instance_dir("imapmig-mailutils-", as_root);
        let root = dir.path().to_path_buf();
        instance::make_dir(&root, "domains", owner, 0o750);
        instance::make_dir(&root, "mail", owner, 0o755);
        instance::make_dir(&root, "tls", owner, 0o750);
        instance::write_file(&root.join("tls/ca.pem"), &tls.ca_pem, 0o644, owner);
        instance::write_file(&root.join("tls/server.pem"), &tls.cert_pem, 0o644, owner);
        // Mailutils refuses a key file others can read.
        instance::write_file(&root.join("tls/server.key"), &tls.key_pem, 0o600, owner);
        instance::write_file(&root.join("domains").join(DOMAIN), "", 0o640, owner);

        let mut server = Mailutils {
            options,
            ca_path: root.join("tls/ca.pem"),
            dir,
            ports: [0; 4],
            run_uid,
            run_gid,
            users: Mutex::new(Vec::new()),
            running: Mutex::new(None),
        };
        let mut last_error = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            let p = instance::free_ports(4);
            server.ports = [p[0], p[1], p[2], p[3]];
            server.write_configs();
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::PortInUse) => {
                    last_error = "ports kept being taken by other processes".to_string();
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "imapmig-testkit: Mailutils did not start after {PORT_ATTEMPTS} attempts: {last_error}\n{}",
            server.log_tail(40)
        );
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &MailutilsOptions {
        &self.options
    }

    /// The address to connect to: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// `imap4d`'s plain port; STARTTLS is offered.
    pub fn imap_port(&self) -> u16 {
        self.ports[0]
    }

    /// `imap4d` over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.ports[1]
    }

    /// `pop3d`'s plain port; STLS is offered.
    pub fn pop3_port(&self) -> u16 {
        self.ports[2]
    }

    /// `pop3d` over implicit TLS.
    pub fn pop3s_port(&self) -> u16 {
        self.ports[3]
    }

    /// PEM file of the CA that signed the server certificate (SAN: IP
    /// 127.0.0.1 and DNS localhost); the same CA as [`crate::Dovecot`]'s.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The hierarchy separator of created folders: `/` (`INBOX` itself is
    /// listed with a NIL separator).
    pub fn separator(&self) -> char {
        '/'
    }

    /// The personal namespace prefix: `""`.
    pub fn prefix(&self) -> &'static str {
        ""
    }

    /// The full IMAP name of a folder given by its path components, as
    /// this server spells it (like [`crate::Flavour::folder_name`]).
    pub fn folder_name(&self, parts: &[&str]) -> String {
        instance::folder_name(self.prefix(), self.separator(), parts)
    }

    /// [`LoginSecurity::Cleartext`]: `LOGIN` works on the plain port
    /// (observed).
    pub fn login_security(&self) -> LoginSecurity {
        LoginSecurity::Cleartext
    }

    /// The instance's directory (configs, user file, mail, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The mbox file of `user`'s INBOX (for tests that peek at the file).
    pub fn inbox_of(&self, user: &str) -> PathBuf {
        self.home_of(&login_local_part(user)).join("INBOX")
    }

    /// Creates user `name` (given without domain) with a random password
    /// and an empty INBOX if it does not exist yet, and returns its
    /// credentials: the login name is `name@mailutils.test`.
    pub fn user(&self, name: &str) -> TestUser {
        let key = crate::user_key(&login_local_part(name));
        assert!(
            !key.contains(['@', '!', ':']),
            "imapmig-testkit: Mailutils test user names cannot hold `@`, `!` or `:`: {name:?}"
        );
        let login = format!("{key}@{DOMAIN}");
        let mut users = lock(&self.users);
        if let Some((_, password, _)) = users.iter().find(|(n, _, _)| *n == key) {
            return TestUser {
                name: login,
                password: password.clone(),
            };
        }
        let password = sys::random_hex(12);
        let home = self.home_of(&key);
        let owner = Some((self.run_uid, self.run_gid));
        instance::make_dir(self.dir.path(), &format!("mail/{key}"), owner, 0o700);
        instance::write_file(&home.join("INBOX"), "", 0o600, owner);
        let line = format!(
            "{key}:{hash}:{uid}:{gid}::{home}:/bin/false\n",
            hash = instance::crypt_sha512(&password),
            uid = self.run_uid,
            gid = self.run_gid,
            home = home.display()
        );
        users.push((key, password.clone(), line));
        let text: String = users.iter().map(|(_, _, l)| l.as_str()).collect();
        instance::write_file(
            &self.dir.path().join("domains").join(DOMAIN),
            &text,
            0o640,
            owner,
        );
        TestUser {
            name: login,
            password,
        }
    }

    /// What both daemons logged (their logging goes to stderr here).
    pub fn log(&self) -> String {
        instance::read_lossy(&self.dir.path().join("mailutils.log"))
    }

    /// The last `n` lines of [`Mailutils::log`], labelled, for panic
    /// messages.
    pub fn log_tail(&self, n: usize) -> String {
        instance::tail("Mailutils log", &self.log(), n)
    }

    fn home_of(&self, key: &str) -> PathBuf {
        self.dir.path().join("mail").join(key)
    }

    fn write_configs(&self) {
        let d = self.dir.path().display();
        let [imap, imaps, pop3, pop3s] = self.ports;
        let common = format!(
            "logging {{ syslog no; }};\n\
             auth {{\n  authentication generic;\n  authorization virtdomain;\n}};\n\
             virtdomain {{\n  passwd-dir \"{d}/domains\";\n}};\n\
             tls {{\n  ssl-certificate-file \"{d}/tls/server.pem\";\n  \
             ssl-key-file \"{d}/tls/server.key\";\n}};\n\
             mode daemon;\nforeground yes;\n"
        );
        let extra = self.options.extra_config.clone().unwrap_or_default();
        for (name, plain, tls) in [("imap4d", imap, imaps), ("pop3d", pop3, pop3s)] {
            let text = format!(
                "{common}\
                 server {HOST}:{plain} {{\n  tls-mode ondemand;\n}};\n\
                 server {HOST}:{tls} {{\n  tls-mode connection;\n}};\n\
                 {extra}\n"
            );
            instance::write_file(
                &self.dir.path().join(format!("{name}.conf")),
                &text,
                0o644,
                Some((self.run_uid, self.run_gid)),
            );
        }
    }

    fn launch(&self) -> Result<(), StartError> {
        use std::os::unix::process::CommandExt;
        let b = binaries();
        let root = self.dir.path();
        let log = std::fs::File::create(root.join("mailutils.log"))
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: mailutils.log: {e}")))?;
        let mut group = ProcessGroup::start("imapmig-mailutils-watchdog")?;
        for (bin, conf) in [(&b.imap4d, "imap4d.conf"), (&b.pop3d, "pop3d.conf")] {
            let out = log
                .try_clone()
                .map_err(|e| StartError::Failed(format!("imapmig-testkit: dup: {e}")))?;
            let err = log
                .try_clone()
                .map_err(|e| StartError::Failed(format!("imapmig-testkit: dup: {e}")))?;
            let mut cmd = Command::new(bin);
            cmd.arg(format!("--config-file={}", root.join(conf).display()))
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .current_dir(root);
            if sys::euid() == 0 {
                cmd.uid(self.run_uid).gid(self.run_gid);
            }
            if let Err(e) = group.spawn(&mut cmd) {
                group.stop();
                return Err(e);
            }
        }
        let [imap, imaps, pop3, pop3s] = self.ports;
        let probes = [
            Probe::Greets {
                port: imap,
                prefix: "* OK IMAP4rev1",
                token: None,
            },
            Probe::Greets {
                port: pop3,
                prefix: "+OK POP3 Ready",
                token: None,
            },
            Probe::Accepts { port: imaps },
            Probe::Accepts { port: pop3s },
        ];
        match instance::wait_ready(&group, &probes, &|| self.log()) {
            Ok(()) => {
                *lock(&self.running) = Some(group);
                Ok(())
            }
            Err(e) => {
                group.stop();
                Err(match e {
                    StartError::Failed(why) => StartError::Failed(format!(
                        "imapmig-testkit: Mailutils did not start: {why}\n{}",
                        self.log_tail(40)
                    )),
                    other => other,
                })
            }
        }
    }
}

impl Drop for Mailutils {
    fn drop(&mut self) {
        if let Some(group) = lock(&self.running).take() {
            group.stop();
        }
    }
}

/// `name` without a `@mailutils.test` suffix.
fn login_local_part(name: &str) -> String {
    name.strip_suffix(&format!("@{DOMAIN}"))
        .unwrap_or(name)
        .to_string()
}
