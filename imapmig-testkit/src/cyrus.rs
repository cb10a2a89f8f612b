//! A private Cyrus IMAP 3.6 (Debian 12) for tests.
//!
//! [`Cyrus::start`] runs Cyrus's `master` with its own `imapd.conf` and
//! `cyrus.conf` in a temporary directory: plain IMAP (STARTTLS offered) and
//! IMAPS on free loopback ports, users in a private sasldb (`saslpasswd2
//! -f`), mail in a private partition. Dropping the [`Cyrus`] stops every
//! process and deletes the directory; if the test process dies, the
//! watchdog of [`crate::instance`] stops it. Any number can run at once.
//!
//! # Installation
//!
//! Debian's `cyrus-imapd` conflicts with `dovecot-imapd` (both provide
//! `imap-server`), so `scripts/setup` installs `cyrus-common`, `cyrus-admin`
//! and `sasl2-bin` normally (for `master`, `ctl_cyrusdb` and `saslpasswd2`)
//! and unpacks `cyrus-imapd` (the `imapd` binary) with `apt-get download` +
//! `dpkg -x` into `/opt/imapmig-testkit/cyrus` (or `$IMAPMIG_TESTKIT_OPT/cyrus`).
//! A missing piece makes [`Cyrus::start`] panic naming `bash scripts/setup`.
//! Cyrus must be started as root (its `master` switches to the `cyrus`
//! user, which owns the instance's files).
//!
//! # Configuration
//!
//! Cyrus's own defaults apply wherever they matter to a client, except one:
//! `allowplaintext` is on by default here ([`CyrusOptions::allow_plaintext`])
//! so tests can log in without TLS, as with the private Dovecot. In
//! particular `munge8bit` is Cyrus's default (on) unless
//! [`CyrusOptions::munge8bit`] says otherwise, and the namespace is Cyrus
//! 3's default (`altnamespace: 1`, `unixhierarchysep: 1`), not Debian's
//! packaged `imapd.conf` (which turns both off). Each user gets an empty
//! `INBOX` (`CREATE user/<name>` by the admin); nothing else is created.
//!
//! # Observed behaviour (Cyrus IMAP 3.6.1-4+deb12u5, by `tests/servers.rs`)
//!
//! - Greeting capabilities, plain port: `IMAP4rev1 LITERAL+ ID ENABLE
//!   STARTTLS AUTH=PLAIN AUTH=LOGIN SASL-IR` (with `allowplaintext: 0`,
//!   Cyrus's default, it says `LOGINDISABLED` instead of the AUTH= list and
//!   refuses `LOGIN` with `NO Login only available under a layer`).
//!   After STARTTLS (with `allowplaintext: 0`): `AUTH=PLAIN AUTH=LOGIN
//!   SASL-IR`, no `LOGINDISABLED`.
//! - The `CAPABILITY` command, before login as after: `UIDPLUS` (APPENDUID), `CONDSTORE`, `QRESYNC`,
//!   `SPECIAL-USE`, `CREATE-SPECIAL-USE`, `LIST-EXTENDED`, `LIST-STATUS`,
//!   `MULTIAPPEND`, `MOVE`, `NAMESPACE`, `ID`, `QUOTA`, `BINARY`,
//!   `CATENATE`, `METADATA`, `COMPRESS=DEFLATE`, `IDLE`,
//!   `APPENDLIMIT=4294967295`, `OBJECTID`, `SAVEDATE`, `XLIST`; the list
//!   also carries `LOGINDISABLED`, oddly, after a successful login.
//! - Namespace: `(("" "/")) (("Other Users/" "/")) (("Shared Folders/"
//!   "/"))`: separator `/`, no personal prefix; a new user's `LIST "" "*"`
//!   shows only `INBOX`, with no special-use folders.
//! - A message with a bare LF is refused: `NO Message contains bare
//!   newlines`.
//! - 8-bit bytes in a header are replaced by `X` (munge8bit on, Cyrus's
//!   default): `Subject: äö` comes back as `Subject: XX`; with
//!   `munge8bit: no` the bytes are kept.
//! - A message not ending in CRLF is stored and returned unchanged.
//! - INTERNALDATE is returned in `+0000` (the same instant), and with a
//!   leading space for one-digit days (`" 5-Dec-2020 09:11:12 +0000"`).
//! - APPEND flags and keywords are kept (`$Forwarded` is accepted and
//!   added to FLAGS / PERMANENTFLAGS); `\Recent` is set.
//! - Fetching `BODY[]` of an unseen message sets `\Seen` and the FLAGS
//!   item comes *before* the body in the same FETCH response.
//! - The UIDVALIDITY of an empty INBOX is the same in every session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};

use crate::instance::{self, Probe, ProcessGroup, StartError, PORT_ATTEMPTS};
use crate::{lock, sys, tls, LoginSecurity, TestUser, HOST, INSTANCE_COUNTER};

/// Knobs for [`Cyrus::start_with`]; `CyrusOptions::default()` is what
/// [`Cyrus::start`] uses.
#[derive(Debug, Clone)]
pub struct CyrusOptions {
    /// Cyrus's `munge8bit`: `None` leaves Cyrus's default (on: 8-bit bytes
    /// in headers are replaced by `X`); `Some(false)` keeps them.
    pub munge8bit: Option<bool>,
    /// Cyrus's `allowplaintext`. Default `true` here so that tests can log
    /// in without TLS; `false` is Cyrus's own default (`LOGINDISABLED`
    /// until STARTTLS, or on the IMAPS port).
    pub allow_plaintext: bool,
    /// Raw lines appended to `imapd.conf`, for one-off needs.
    pub extra_config: Option<String>,
}

impl Default for CyrusOptions {
    fn default() -> Self {
        CyrusOptions {
            munge8bit: None,
            allow_plaintext: true,
            extra_config: None,
        }
    }
}

/// The programs a Cyrus instance runs.
struct Binaries {
    master: PathBuf,
    ctl_cyrusdb: PathBuf,
    imapd: PathBuf,
    saslpasswd2: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| {
        let bins = Binaries {
            master: PathBuf::from("/usr/lib/cyrus/bin/master"),
            ctl_cyrusdb: PathBuf::from("/usr/lib/cyrus/bin/ctl_cyrusdb"),
            imapd: instance::opt_root().join("cyrus/usr/lib/cyrus/bin/imapd"),
            saslpasswd2: PathBuf::from("/usr/sbin/saslpasswd2"),
        };
        instance::require(
            "Cyrus IMAP",
            &[
                &bins.master,
                &bins.ctl_cyrusdb,
                &bins.imapd,
                &bins.saslpasswd2,
            ],
        );
        bins
    })
}

/// A running private Cyrus IMAP instance. Dropping it stops the server and
/// deletes its directory.
pub struct Cyrus {
    options: CyrusOptions,
    dir: tempfile::TempDir,
    ca_path: PathBuf,
    imap_port: u16,
    imaps_port: u16,
    /// A plain-IMAP port where LOGIN is always allowed, for the admin
    /// chores of [`Cyrus::user`] (its service name `adminimap` carries
    /// `adminimap_allowplaintext: 1`).
    admin_port: u16,
    /// Put in the greeting (`servername`) to recognise this instance.
    token: String,
    cyrus_uid: u32,
    cyrus_gid: u32,
    admin: TestUser,
    /// Users by name, with their passwords.
    users: Mutex<BTreeMap<String, String>>,
    running: Mutex<Option<ProcessGroup>>,
}

impl std::fmt::Debug for Cyrus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cyrus")
            .field("dir", &self.dir.path())
            .field("imap_port", &self.imap_port)
            .field("imaps_port", &self.imaps_port)
            .finish_non_exhaustive()
    }
}

impl Cyrus {
    /// Starts an instance with default options; blocks until it greets
    /// (at most ~15 s).
    ///
    /// # Panics
    /// If Cyrus is not installed (the message names `bash scripts/setup`),
    /// the process is not root, or the server does not come up.
    pub fn start() -> Cyrus {
        Cyrus::start_with(CyrusOptions::default())
    }

    /// Starts an instance with the given options; see [`Cyrus::start`].
    pub fn start_with(options: CyrusOptions) -> Cyrus {
        let _ = binaries();
        instance::require_root("Cyrus", "its master switches to the `cyrus` user");
        let cyrus = sys::account_by_name("cyrus").unwrap_or_else(|| {
            panic!("imapmig-testkit: system user `cyrus` missing; run `bash scripts/setup`")
        });
        let tls = tls::material();
        let dir = instance::make_instance_dir("imapmig-cyrus-", true);
        let root = dir.path().to_path_buf();
        let owner = Some((cyrus.uid, cyrus.gid));
        for sub in ["conf", "part", "run", "tls"] {
            instance::make_dir(&root, sub, owner, 0o750);
        }
        let tls_dir = root.join("tls");
        instance::write_file(&tls_dir.join("ca.pem"), &tls.ca_pem, 0o644, owner);
        instance::write_file(&tls_dir.join("server.pem"), &tls.cert_pem, 0o644, owner);
        instance::write_file(&tls_dir.join("server.key"), &tls.key_pem, 0o600, owner);

        let mut server = Cyrus {
            options,
            ca_path: tls_dir.join("ca.pem"),
            dir,
            imap_port: 0,
            imaps_port: 0,
            admin_port: 0,
            token: format!(
                "imt-cyrus-{}-{}",
                std::process::id(),
                INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
            cyrus_uid: cyrus.uid,
            cyrus_gid: cyrus.gid,
            admin: TestUser {
                name: "cyrusadmin".to_string(),
                password: sys::random_hex(12),
            },
            users: Mutex::new(BTreeMap::new()),
            running: Mutex::new(None),
        };
        server.write_imapd_conf();
        server.set_sasl_password(&server.admin.name.clone(), &server.admin.password.clone());

        let mut last_error = String::new();
        for _attempt in 0..PORT_ATTEMPTS {
            let p = instance::free_ports(3);
            (server.imap_port, server.imaps_port, server.admin_port) = (p[0], p[1], p[2]);
            server.write_cyrus_conf();
            match server.launch() {
                Ok(()) => return server,
                Err(StartError::PortInUse) => {
                    last_error = "ports kept being taken by other processes".to_string();
                }
                Err(StartError::Failed(msg)) => panic!("{msg}"),
            }
        }
        panic!(
            "imapmig-testkit: Cyrus did not start after {PORT_ATTEMPTS} attempts: {last_error}\n{}",
            server.log_tail(40)
        );
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &CyrusOptions {
        &self.options
    }

    /// The address to connect to: always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// Plain IMAP port; STARTTLS is offered.
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// IMAP over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.imaps_port
    }

    /// PEM file of the CA that signed the server certificate (SAN: IP
    /// 127.0.0.1 and DNS localhost); the same CA as [`crate::Dovecot`]'s.
    pub fn ca_file(&self) -> &Path {
        &self.ca_path
    }

    /// The hierarchy separator: `/` (Cyrus 3's `unixhierarchysep: 1`).
    pub fn separator(&self) -> char {
        '/'
    }

    /// The personal namespace prefix: `""` (Cyrus 3's `altnamespace: 1`;
    /// a user's folders are siblings of `INBOX`).
    pub fn prefix(&self) -> &'static str {
        ""
    }

    /// The full IMAP name of a folder given by its path components, as
    /// this server spells it (like [`crate::Flavour::folder_name`]).
    pub fn folder_name(&self, parts: &[&str]) -> String {
        instance::folder_name(self.prefix(), self.separator(), parts)
    }

    /// Whether the plain port takes a password in the clear: yes with
    /// [`CyrusOptions::allow_plaintext`] (the test default), else only
    /// after STARTTLS (Cyrus's own default, `LOGINDISABLED`).
    pub fn login_security(&self) -> LoginSecurity {
        if self.options.allow_plaintext {
            LoginSecurity::Cleartext
        } else {
            LoginSecurity::StartTls
        }
    }

    /// The instance's directory (config, partition, sasldb, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The Cyrus admin (`admins:` in `imapd.conf`); it sees every user's
    /// folders as `user/<name>/...`.
    pub fn admin_user(&self) -> TestUser {
        self.admin.clone()
    }

    /// Creates user `name` with a random password and an empty INBOX if it
    /// does not exist yet, and returns its credentials.
    ///
    /// # Panics
    /// If `name` is not made of ASCII letters, digits and `. _ -`, or the
    /// server refuses.
    pub fn user(&self, name: &str) -> TestUser {
        assert!(
            !name.contains(['@', '+']),
            "imapmig-testkit: Cyrus test user names cannot hold `@` or `+` (no virtual domains here): {name:?}"
        );
        let key = crate::user_key(name);
        let mut users = lock(&self.users);
        if let Some(password) = users.get(&key) {
            return TestUser {
                name: key,
                password: password.clone(),
            };
        }
        let password = sys::random_hex(12);
        self.set_sasl_password(&key, &password);
        let chat = instance::imap_chat(
            self.admin_port,
            &[
                format!("LOGIN {} {}", self.admin.name, self.admin.password),
                format!("CREATE user/{key}"),
                "LOGOUT".to_string(),
            ],
        );
        if let Err(e) = chat {
            panic!(
                "imapmig-testkit: cannot create the Cyrus mailbox of {key}: {e}\n{}",
                self.log_tail(30)
            );
        }
        users.insert(key.clone(), password.clone());
        TestUser {
            name: key,
            password,
        }
    }

    /// What the server printed (Cyrus logs to syslog, which a private
    /// instance does not capture: this holds only `master`'s stderr).
    pub fn log(&self) -> String {
        instance::read_lossy(&self.dir.path().join("cyrus.stderr"))
    }

    /// The last `n` lines of [`Cyrus::log`], labelled, for panic messages.
    pub fn log_tail(&self, n: usize) -> String {
        instance::tail("Cyrus stderr", &self.log(), n)
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("imapd.conf")
    }

    fn owner(&self) -> Option<(u32, u32)> {
        Some((self.cyrus_uid, self.cyrus_gid))
    }

    fn write_imapd_conf(&self) {
        let d = self.dir.path().display();
        let mut text = format!(
            "configdirectory: {d}/conf\n\
             defaultpartition: default\n\
             partition-default: {d}/part\n\
             servername: {token}\n\
             admins: {admin}\n\
             sasl_pwcheck_method: auxprop\n\
             sasl_auxprop_plugin: sasldb\n\
             sasl_sasldb_path: {d}/sasldb2\n\
             sasl_mech_list: PLAIN LOGIN\n\
             allowplaintext: {plain}\n\
             adminimap_allowplaintext: 1\n\
             tls_server_cert: {d}/tls/server.pem\n\
             tls_server_key: {d}/tls/server.key\n\
             proc_path: {d}/run/proc\n\
             mboxname_lockpath: {d}/run/lock\n\
             idlesocket: {d}/run/idle\n\
             lmtpsocket: {d}/run/lmtp\n\
             notifysocket: {d}/run/notify\n",
            token = self.token,
            admin = self.admin.name,
            plain = u8::from(self.options.allow_plaintext),
        );
        if let Some(munge) = self.options.munge8bit {
            text.push_str(&format!("munge8bit: {}\n", u8::from(munge)));
        }
        if let Some(extra) = &self.options.extra_config {
            text.push_str(extra);
            text.push('\n');
        }
        instance::write_file(&self.config_file(), &text, 0o644, self.owner());
    }

    fn write_cyrus_conf(&self) {
        let bins = binaries();
        let conf = self.config_file();
        let (conf, imapd, ctl) = (
            conf.display(),
            bins.imapd.display(),
            bins.ctl_cyrusdb.display(),
        );
        // Every command names the config: `master -C` does not pass it on.
        let text = format!(
            "START {{\n  recover cmd=\"{ctl} -C {conf} -r\"\n}}\n\
             SERVICES {{\n\
             \x20 imap cmd=\"{imapd} -C {conf}\" listen=\"{HOST}:{imap}\" prefork=0\n\
             \x20 imaps cmd=\"{imapd} -s -C {conf}\" listen=\"{HOST}:{imaps}\" prefork=0\n\
             \x20 adminimap cmd=\"{imapd} -C {conf}\" listen=\"{HOST}:{admin}\" prefork=0\n\
             }}\nEVENTS {{\n}}\n",
            imap = self.imap_port,
            imaps = self.imaps_port,
            admin = self.admin_port,
        );
        instance::write_file(
            &self.dir.path().join("cyrus.conf"),
            &text,
            0o644,
            self.owner(),
        );
    }

    /// Sets `name`'s password in the private sasldb (created if needed).
    fn set_sasl_password(&self, name: &str, password: &str) {
        use std::io::Write;
        let db = self.dir.path().join("sasldb2");
        let mut child = Command::new(&binaries().saslpasswd2)
            .arg("-f")
            .arg(&db)
            // Cyrus looks users up in the realm of its `servername`.
            .args(["-u", &self.token])
            .args(["-p", "-c", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("imapmig-testkit: cannot run saslpasswd2: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = writeln!(stdin, "{password}");
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("imapmig-testkit: saslpasswd2: {e}"));
        assert!(
            out.status.success(),
            "imapmig-testkit: saslpasswd2 failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((uid, gid)) = self.owner() {
            sys::chown(&db, uid, gid)
                .unwrap_or_else(|e| panic!("imapmig-testkit: chown {}: {e}", db.display()));
        }
    }

    fn launch(&self) -> Result<(), StartError> {
        let bins = binaries();
        let root = self.dir.path();
        let stderr = std::fs::File::create(root.join("cyrus.stderr"))
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: cyrus.stderr: {e}")))?;
        let stderr2 = stderr
            .try_clone()
            .map_err(|e| StartError::Failed(format!("imapmig-testkit: dup: {e}")))?;
        let mut group = ProcessGroup::start("imapmig-cyrus-watchdog")?;
        let spawned = group.spawn(
            Command::new(&bins.master)
                .arg("-C")
                .arg(self.config_file())
                .arg("-M")
                .arg(root.join("cyrus.conf"))
                .arg("-p")
                .arg(root.join("run/master.pid"))
                .arg("-D")
                .stdin(Stdio::null())
                .stdout(stderr)
                .stderr(stderr2)
                .current_dir(root),
        );
        if let Err(e) = spawned {
            group.stop();
            return Err(e);
        }
        let probes = [
            Probe::Greets {
                port: self.imap_port,
                prefix: "* OK",
                token: Some(self.token.clone()),
            },
            Probe::Greets {
                port: self.admin_port,
                prefix: "* OK",
                token: Some(self.token.clone()),
            },
            Probe::Accepts {
                port: self.imaps_port,
            },
        ];
        let ready = instance::wait_ready(&group, &probes, &|| self.log());
        match ready {
            Ok(()) => {
                *lock(&self.running) = Some(group);
                Ok(())
            }
            Err(e) => {
                group.stop();
                Err(match e {
                    StartError::Failed(why) => StartError::Failed(format!(
                        "imapmig-testkit: Cyrus did not start: {why}\n{}",
                        self.log_tail(40)
                    )),
                    other => other,
                })
            }
        }
    }
}

impl Drop for Cyrus {
    fn drop(&mut self) {
        if let Some(group) = lock(&self.running).take() {
            group.stop();
        }
    }
}
