//! A private Courier-IMAP 5.0 and Courier POP3 (Debian 12) for tests.
//!
//! [`Courier::start`] runs, in a temporary directory, Courier's
//! `couriertcpd` on four free loopback ports — IMAP (STARTTLS offered),
//! IMAPS, POP3 (STLS offered), POP3S — and a private `authdaemond` with the
//! `authuserdb` module. Mail is Maildir++ under the instance directory.
//! Dropping the [`Courier`] stops every process and deletes the directory;
//! if the test process dies, the watchdog of [`crate::instance`] stops it.
//! Any number can run at once.
//!
//! # How it is made private
//!
//! Courier's authentication library has its paths compiled in:
//! `/etc/courier/authdaemonrc`, `/etc/courier/userdb.dat` and the socket
//! `/run/courier/authdaemon/socket`. So each instance runs in a mount
//! namespace of its own (`unshare --mount`): the instance's `etc/` is bound
//! over `/etc/courier` and its `authdaemon/` over `/run/courier/authdaemon`,
//! visible to that instance's processes only. This needs root (as CI runs);
//! the host's `/etc/courier` is never written to. It is a PID namespace as
//! well (`--pid --fork --kill-child`): `couriertcpd` leaves the watchdog's
//! process group, but nothing leaves the namespace, whose processes all die
//! with its first one.
//!
//! Users are `authuserdb` records (`etc/userdb`, compiled with `makeuserdb
//! -f`), password as a SHA-512 crypt (`openssl passwd -6`), mail owned by
//! the `mail` account.
//!
//! # Installation
//!
//! `courier-imap` and `courier-pop` conflict with `dovecot-imapd` and
//! `dovecot-pop3d` (they provide `imap-server` / `pop3-server`), so
//! `scripts/setup` installs `courier-base`, `courier-authdaemon` and
//! `courier-authlib-userdb` normally (no conflict: `couriertcpd`,
//! `couriertls`, `authdaemond`, `makeuserdb` and the libraries) and unpacks
//! `courier-imap` and `courier-pop` with `apt-get download` + `dpkg -x`
//! into `/opt/imapmig-testkit/courier` (or `$IMAPMIG_TESTKIT_OPT/courier`).
//! A missing piece makes [`Courier::start`] panic naming `bash scripts/setup`.
//!
//! # Configuration
//!
//! The Debian package's `/etc/courier/imapd`, `imapd-ssl`, `pop3d` and
//! `pop3d-ssl` settings, given as environment: capabilities `IMAP4rev1
//! UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT
//! QUOTA IDLE`, keywords and ACLs on, `AUTH=PLAIN` only under TLS, POP3
//! SASL (`LOGIN PLAIN`) only under TLS, TLS not required.
//!
//! # Observed behaviour (courier-imap 5.0.13+1.0.16-3+b6, by `tests/servers.rs`)
//!
//! - IMAP greeting capabilities: `IMAP4rev1 UIDPLUS CHILDREN NAMESPACE
//!   THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE ACL
//!   ACL2=UNION STARTTLS ENABLE UTF8=ACCEPT` — no AUTH= mechanism before
//!   TLS (`LOGIN` works in the clear); after STARTTLS (and on IMAPS)
//!   `AUTH=PLAIN` is added (seen on IMAPS by the tests, after STARTTLS by
//!   hand with a Python client: `openssl s_client -starttls imap` does not
//!   get through Courier's STARTTLS). No `SPECIAL-USE`, `CONDSTORE`, `LITERAL+`,
//!   `MOVE`, `ID` or `LIST-EXTENDED`. `UIDPLUS` is there (APPENDUID).
//! - Namespace: `(("INBOX." ".")) NIL (("#shared." ".")("shared." "."))`:
//!   separator `.`, personal prefix `INBOX.` (so a folder is
//!   `INBOX.Sent`); a new user's `LIST "" "*"` shows only `INBOX`.
//! - APPEND into the selected mailbox sends no `EXISTS`; the message shows
//!   up after the next `NOOP`.
//! - A bare LF in a message is stored and returned as CRLF; a message not
//!   ending in CRLF gets one added (`RFC822.SIZE` and `BODY[]` grow by 2).
//! - 8-bit header bytes are kept, but each time such a message is appended
//!   or fetched without `ENABLE UTF8=ACCEPT` an untagged `OK [ALERT]`
//!   about Unicode messages is sent.
//! - APPEND flags and keywords are kept; INTERNALDATE comes back in
//!   `+0000` (the same instant).
//! - FETCH items come in the order asked; `FETCH n (BODY[] FLAGS)` gives
//!   FLAGS after the body, and the `\Seen` that fetching `BODY[]` sets is
//!   sent as a separate untagged `FETCH (FLAGS ...)` after the response.
//! - UIDVALIDITY is kept between sessions, for an empty INBOX too (two
//!   sessions a second apart saw the same value).
//! - POP3: `USER`/`PASS` work in the clear; `CAPA`: `STLS TOP USER
//!   LOGIN-DELAY 10 PIPELINING UIDL UTF8 USER IMPLEMENTATION Courier Mail
//!   Server`; after STLS `STLS` goes and `SASL LOGIN PLAIN` comes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::instance::{self, Probe, ProcessGroup, StartError, PORT_ATTEMPTS};
use crate::{lock, sys, tls, LoginSecurity, TestUser, HOST};

/// Knobs for [`Courier::start_with`]; `CourierOptions::default()` is what
/// [`Courier::start`] uses.
#[derive(Debug, Clone, Default)]
pub struct CourierOptions {
    /// Extra environment for the IMAP and POP3 servers (e.g.
    /// `("IMAP_TLS_REQUIRED", "1")`), applied after the defaults.
    pub extra_env: Vec<(String, String)>,
}

/// The programs a Courier instance runs.
struct Binaries {
    couriertcpd: PathBuf,
    couriertls: PathBuf,
    authdaemond: PathBuf,
    makeuserdb: PathBuf,
    imaplogin: PathBuf,
    imapd: PathBuf,
    pop3login: PathBuf,
    pop3d: PathBuf,
    unshare: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        let opt = instance::opt_root().join("courier");
        let bins = Binaries {
            couriertcpd: PathBuf::from("/usr/sbin/couriertcpd"),
            couriertls: PathBuf::from("/usr/bin/couriertls"),
            authdaemond: PathBuf::from("/usr/lib/courier/courier-authlib/authdaemond"),
            makeuserdb: PathBuf::from("/usr/sbin/makeuserdb"),
            imaplogin: opt.join("usr/lib/courier/courier/imaplogin"),
            imapd: opt.join("usr/bin/imapd"),
            pop3login: opt.join("usr/lib/courier/courier/courierpop3login"),
            pop3d: opt.join("usr/lib/courier/courier/courierpop3d"),
            unshare: sys::find_executable("unshare", &["/usr/bin", "/bin"])
                .unwrap_or_else(|| PathBuf::from("/usr/bin/unshare")),
        };
        instance::require(
            "Courier-IMAP",
            &[
                &bins.couriertcpd,
                &bins.couriertls,
                &bins.authdaemond,
                &bins.makeuserdb,
                &bins.imaplogin,
                &bins.imapd,
                &bins.pop3login,
                &bins.pop3d,
                &bins.unshare,
                Path::new("/etc/courier"),
            ],
        );
        bins
    })
}

/// A running private Courier instance (IMAP and POP3). Dropping it stops
/// the servers and deletes the directory.
pub struct Courier {
    options: CourierOptions,
    dir: tempfile::TempDir,
    ca_path: PathBuf,
    ports: [u16; 4],
    mail_uid: u32,
    mail_gid: u32,
    /// Users by name: password and its crypt (all mirrored in
    /// `etc/userdb`).
    users: Mutex<BTreeMap<String, (String, String)>>,
    running: Mutex<Option<ProcessGroup>>,
}

impl std::fmt::Debug for Courier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Courier")
            .field("dir", &self.dir.path())
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl Courier {
    /// Starts an instance with default options; blocks until IMAP and POP3
    /// greet (at most ~15 s).
    ///
    /// # Panics
    /// If Courier is not installed (the message names `bash scripts/setup`),
    /// the process is not root, or the servers do not come up.
    pub fn start() -> Courier {
        Courier::start_with(CourierOptions::default())
    }

    /// Starts an instance with the given options; see [`Courier::start`].
    pub fn start_with(options: CourierOptions) -> Courier {
        let _ = binaries();
        instance::require_root("Courier", "it runs in a private mount namespace");
        let mail = sys::account_by_name("mail")
            .expect("imapmig-testkit: system user `mail` missing (Debian has it)");
        let tls = tls::material();
        let dir = instance::make_instance_dir("imapmig-courier-", true);
        let root = dir.path().to_path_buf();
        instance::make_dir(&root, "etc", None, 0o755);
        instance::make_dir(&root, "authdaemon", None, 0o750);
        instance::make_dir(&root, "mail", Some((mail.uid, mail.gid)), 0o755);
        instance::make_dir(&root, "tls", None, 0o755);
        instance::write_file(&root.join("tls/ca.pem"), &tls.ca_pem, 0o644, None);
        // couriertls wants key and certificate in one file. For STARTTLS it
        // runs as the unprivileged user imaplogin has become: so the file
        // is world-readable (a test key, in a private directory).
        instance::write_file(
            &root.join("tls/server.pem"),
            &format!("{}{}", tls.key_pem, tls.cert_pem),
            0o644,
            None,
        );
        instance::write_file(
            &root.join("etc/authdaemonrc"),
            "authmodulelist=\"authuserdb\"\n\
             authmodulelistorig=\"authuserdb\"\n\
             daemons=3\n\
             authdaemonvar=/run/courier/authdaemon\n\
             DEBUG_LOGIN=0\n\
             DEFAULTOPTIONS=\"\"\n\
             LOGGEROPTS=\"\"\n",
            0o644,
            None,
        );
        // couriertls reads DH parameters if named; Debian makes them when
        // courier-base is installed.
        if let Ok(dh) = std::fs::read_to_string("/etc/courier/dhparams.pem") {
            instance::write_file(&root.join("etc/dhparams.pem"), &dh, 0o644, None);
        }
        instance::write_file(&root.join("etc/userdb"), "", 0o600, None);

        let mut server = Courier {
            options,
            ca_path: root.join("tls/ca.pem"),
            dir,
            ports: [0; 4],
            mail_uid: mail.uid,
            mail_gid: mail.gid,
            users: Mutex::new(BTreeMap::new()),
            running: Mutex::new(None),
        };
        server.compile_userdb();

        let mut last_error = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            let p = instance::free_ports(4);
            server.ports = [p[0], p[1], p[2], p[3]];
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::PortInUse) => {
                    last_error = "ports kept being taken by other processes".to_string();
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "imapmig-testkit: Courier did not start after {PORT_ATTEMPTS} attempts: {last_error}\n{}",
            server.log_tail(40)
        );
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &CourierOptions {
        &self.options
    }

    /// The address to connect to: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// Plain IMAP port; STARTTLS is offered, `LOGIN` works in the clear,
    /// `AUTH=PLAIN` only after STARTTLS.
    pub fn imap_port(&self) -> u16 {
        self.ports[0]
    }

    /// IMAP over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.ports[1]
    }

    /// Plain POP3 port; STLS is offered, `USER`/`PASS` work in the clear.
    pub fn pop3_port(&self) -> u16 {
        self.ports[2]
    }

    /// POP3 over implicit TLS.
    pub fn pop3s_port(&self) -> u16 {
        self.ports[3]
    }

    /// PEM file of the CA that signed the server certificate (SAN: IP
    /// 127.0.0.1 and DNS localhost); the same CA as [`crate::Dovecot`]'s.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The hierarchy separator: `.`.
    pub fn separator(&self) -> char {
        '.'
    }

    /// The personal namespace prefix: `"INBOX."` (folders are
    /// `INBOX.Sent`, `INBOX.Projects.2024`, ...).
    pub fn prefix(&self) -> &'static str {
        "INBOX."
    }

    /// The full IMAP name of a folder given by its path components, as
    /// this server spells it (like [`crate::Flavour::folder_name`]).
    pub fn folder_name(&self, parts: &[&str]) -> String {
        instance::folder_name(self.prefix(), self.separator(), parts)
    }

    /// [`LoginSecurity::Cleartext`]: the `LOGIN` command works on the plain
    /// port (observed); only SASL `AUTH=PLAIN` waits for STARTTLS, which a
    /// client that falls back to `LOGIN` does not need.
    pub fn login_security(&self) -> LoginSecurity {
        LoginSecurity::Cleartext
    }

    /// The instance's directory (etc, mail, logs, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The Maildir++ of `user` (for tests that peek at the files).
    pub fn maildir_of(&self, user: &str) -> PathBuf {
        self.dir
            .path()
            .join("mail")
            .join(crate::user_key(user))
            .join("Maildir")
    }

    /// Creates user `name` with a random password and an empty Maildir if
    /// it does not exist yet, and returns its credentials; it can log in
    /// at once (IMAP and POP3).
    pub fn user(&self, name: &str) -> TestUser {
        let key = crate::user_key(name);
        let mut users = lock(&self.users);
        if let Some((password, _)) = users.get(&key) {
            return TestUser {
                name: key,
                password: password.clone(),
            };
        }
        let password = sys::random_hex(12);
        let maildir = self.maildir_of(&key);
        for sub in ["", "cur", "new", "tmp"] {
            let p = maildir.join(sub);
            std::fs::create_dir_all(&p)
                .unwrap_or_else(|e| panic!("imapmig-testkit: cannot create {}: {e}", p.display()));
        }
        for p in [maildir.parent().expect("home"), &maildir] {
            sys::chown(p, self.mail_uid, self.mail_gid)
                .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", p.display()));
        }
        for sub in ["cur", "new", "tmp"] {
            let p = maildir.join(sub);
            sys::chown(&p, self.mail_uid, self.mail_gid)
                .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", p.display()));
        }
        users.insert(
            key.clone(),
            (password.clone(), instance::crypt_sha512(&password)),
        );
        let mut text = String::new();
        for (name, (_, hash)) in users.iter() {
            let home = self.dir.path().join("mail").join(name);
            text.push_str(&format!(
                "{name}\tuid={uid}|gid={gid}|home={home}|mail={home}/Maildir|systempw={hash}\n",
                uid = self.mail_uid,
                gid = self.mail_gid,
                home = home.display(),
            ));
        }
        instance::write_file(&self.dir.path().join("etc/userdb"), &text, 0o600, None);
        self.compile_userdb();
        TestUser {
            name: key,
            password,
        }
    }

    /// What the servers and `authdaemond` printed (logins, logouts,
    /// errors).
    pub fn log(&self) -> String {
        instance::read_lossy(&self.dir.path().join("courier.log"))
    }

    /// The last `n` lines of [`Courier::log`], labelled, for panic messages.
    pub fn log_tail(&self, n: usize) -> String {
        instance::tail("Courier log", &self.log(), n)
    }

    /// `makeuserdb -f etc/userdb`: the `.dat` files authuserdb reads (it
    /// notices a new one at the next lookup).
    fn compile_userdb(&self) {
        let out = Command::new(&binaries().makeuserdb)
            .arg("-f")
            .arg(self.dir.path().join("etc/userdb"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("imapmig-testkit: cannot run makeuserdb: {e}"));
        assert!(
            out.status.success(),
            "imapmig-testkit: makeuserdb failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The script run inside the mount namespace: bind the private
    /// directories, start authdaemond and the four listeners, and end (so
    /// the instance is seen to fail) as soon as any of them ends.
    fn start_script(&self) -> String {
        let b = binaries();
        let d = self.dir.path().display();
        let [imap, imaps, pop3, pop3s] = self.ports;
        let mut env = vec![
            (
                "IMAP_CAPABILITY",
                "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT \
                 THREAD=REFERENCES SORT QUOTA IDLE"
                    .to_string(),
            ),
            (
                "IMAP_CAPABILITY_TLS",
                "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT \
                 THREAD=REFERENCES SORT QUOTA IDLE AUTH=PLAIN"
                    .to_string(),
            ),
            ("IMAP_KEYWORDS", "1".into()),
            ("IMAP_ACL", "1".into()),
            ("IMAP_IDLE_TIMEOUT", "60".into()),
            ("IMAP_MAILBOX_SANITY_CHECK", "1".into()),
            ("IMAP_UMASK", "022".into()),
            ("IMAP_USELOCKS", "1".into()),
            ("IMAP_TRASHFOLDERNAME", "Trash".into()),
            ("IMAP_EMPTYTRASH", "Trash:7".into()),
            ("IMAP_STARTTLS", "YES".into()),
            ("IMAP_TLS_REQUIRED", "0".into()),
            ("POP3AUTH", "".into()),
            ("POP3AUTH_TLS", "LOGIN PLAIN".into()),
            ("POP3_STARTTLS", "YES".into()),
            ("POP3_TLS_REQUIRED", "0".into()),
            ("COURIERTLS", b.couriertls.display().to_string()),
            ("TLS_CERTFILE", format!("{d}/tls/server.pem")),
            ("TLS_VERIFYPEER", "NONE".into()),
            ("MAILDIRPATH", "Maildir".into()),
        ];
        if self.dir.path().join("etc/dhparams.pem").exists() {
            env.push(("TLS_DHPARAMS", format!("{d}/etc/dhparams.pem")));
        }
        let mut script = format!(
            "set -e\n\
             mkdir -p /etc/courier /run/courier/authdaemon\n\
             mount --bind {d}/etc /etc/courier\n\
             mount --bind {d}/authdaemon /run/courier/authdaemon\n\
             set +e\n\
             {authdaemond} &\n",
            authdaemond = b.authdaemond.display()
        );
        for (k, v) in env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(self.options.extra_env.iter().cloned())
        {
            script.push_str(&format!("export {k}={}\n", shell_quote(&v)));
        }
        let tcpd = format!(
            "{} -address={HOST} -maxprocs=100 -maxperip=100 -nodnslookup -noidentlookup",
            b.couriertcpd.display()
        );
        let (tls, imaplogin, imapd, pop3login, pop3d) = (
            b.couriertls.display(),
            b.imaplogin.display(),
            b.imapd.display(),
            b.pop3login.display(),
            b.pop3d.display(),
        );
        script.push_str(&format!(
            "{tcpd} {imap} {imaplogin} {imapd} Maildir &\n\
             IMAP_TLS=1 IMAP_STARTTLS=NO {tcpd} {imaps} {tls} -server -tcpd {imaplogin} {imapd} Maildir &\n\
             {tcpd} {pop3} {pop3login} {pop3d} Maildir &\n\
             POP3_TLS=1 POP3_STARTTLS=NO {tcpd} {pop3s} {tls} -server -tcpd {pop3login} {pop3d} Maildir &\n\
             wait -n\n\
             echo 'imapmig-testkit: a Courier process ended' >&2\n\
             exit 1\n"
        ));
        script
    }

    fn launch(&self) -> Result<(), StartError> {
        let b = binaries();
        let root = self.dir.path();
        let script = root.join("start.sh");
        instance::write_file(&script, &self.start_script(), 0o644, None);
        let log = std::fs::File::create(root.join("courier.log"))
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: courier.log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: dup: {e}")))?;
        let mut group = ProcessGroup::start("imapmig-courier-watchdog")?;
        let spawned = group.spawn(
            Command::new(&b.unshare)
                // A PID namespace too: couriertcpd puts itself in a process
                // group of its own, out of the watchdog's reach, but every
                // process of the namespace dies with its init (the script,
                // killed when `unshare` dies: --kill-child).
                .args([
                    "--mount",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--propagation",
                    "private",
                    "/bin/bash",
                ])
                .arg(&script)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2)
                .current_dir(root),
        );
        if let Err(e) = spawned {
            group.stop();
            return Err(e);
        }
        let [imap, imaps, pop3, pop3s] = self.ports;
        let probes = [
            Probe::Greets {
                port: imap,
                prefix: "* OK [CAPABILITY",
                token: Some("Courier-IMAP".into()),
            },
            Probe::Greets {
                port: pop3,
                prefix: "+OK",
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
                        "imapmig-testkit: Courier did not start: {why}\n{}",
                        self.log_tail(40)
                    )),
                    other => other,
                })
            }
        }
    }
}

impl Drop for Courier {
    fn drop(&mut self) {
        if let Some(group) = lock(&self.running).take() {
            group.stop();
        }
    }
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
