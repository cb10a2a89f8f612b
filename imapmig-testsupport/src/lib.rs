//! Helpers shared by the integration tests: accounts for testkit servers, seeding mailboxes,
//! reading the shared corpus.
#![allow(dead_code)]

pub mod browser;
pub mod console;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use imapmig_core::engine::{Account, MigrationOptions, MigrationReport};
use imapmig_core::imap::{Credentials, Endpoint, Security, Session};
use imapmig_core::model::{Flags, InternalDate};
use imapmig_core::state::SqliteStore;
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour, TestUser};
use tokio_util::sync::CancellationToken;

/// A logged-in account on a testkit server, over cleartext on loopback.
pub fn account(d: &Dovecot, u: &TestUser) -> Account {
    let mut endpoint = Endpoint::new(d.host(), d.imap_port(), Security::Cleartext);
    endpoint.timeout = Duration::from_secs(60);
    Account {
        endpoint,
        credentials: Credentials::password(u.name.clone(), u.password.clone()),
    }
}

/// The `imapmig` flags for one side (`side` is `src` or `dst`) on a server without TLS:
/// `--<side>-host`, `--<side>-port`, `--<side>-user` and `--<side>-tls none`, the password in
/// `IMAPMIG_<SIDE>_PASSWORD`.
pub fn side_flags<'a>(
    cmd: &'a mut Command,
    side: &str,
    host: &str,
    port: u16,
    user: &str,
    password: &str,
) -> &'a mut Command {
    cmd.args([format!("--{side}-host").as_str(), host])
        .args([format!("--{side}-port"), port.to_string()])
        .args([format!("--{side}-user").as_str(), user])
        .args([format!("--{side}-tls").as_str(), "none"])
        .env(
            format!("IMAPMIG_{}_PASSWORD", side.to_uppercase()),
            password,
        )
}

/// xorshift64*: a tiny PRNG, so that generated test data (and a fault run) can be replayed from
/// its seed.
pub struct XorShift(u64);

impl XorShift {
    /// Starts from `seed` (0, which xorshift never leaves, counts as 1).
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A number in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
}

/// A server that lets each user in from one connection at a time: a second login is refused
/// ("Maximum number of connections from user+IP exceeded"). One, not two: Dovecot counts a
/// connection only once its login is done, so logins at the same moment could all get past a
/// limit of two.
pub fn one_connection_per_user() -> Dovecot {
    Dovecot::start_with(
        Flavour::Slash,
        DovecotOptions {
            extra_config: Some("mail_max_userip_connections = 1\n".into()),
            ..DovecotOptions::default()
        },
    )
}

/// One message to put in a folder.
pub struct Seed {
    /// Decoded folder name.
    pub folder: String,
    /// The bytes.
    pub body: Vec<u8>,
    /// Flags, space separated.
    pub flags: &'static str,
    /// INTERNALDATE in IMAP form.
    pub date: Option<&'static str>,
}

pub fn seed(
    folder: &str,
    body: impl Into<Vec<u8>>,
    flags: &'static str,
    date: Option<&'static str>,
) -> Seed {
    Seed {
        folder: folder.to_string(),
        body: body.into(),
        flags,
        date,
    }
}

/// Appends the messages, creating folders as needed.
pub async fn fill(acct: &Account, seeds: &[Seed]) {
    let mut s = acct.open().await.expect("login to seed");
    // Folders that exist are not created again: not every server answers CREATE of an
    // existing folder with words that say so (Courier: "Cannot create this folder.").
    let mut created: std::collections::HashSet<String> = s
        .list()
        .await
        .expect("list to seed")
        .into_iter()
        .map(|f| f.raw)
        .collect();
    for m in seeds {
        let raw = s.encode_name(&m.folder);
        if !m.folder.eq_ignore_ascii_case("INBOX") && created.insert(raw.clone()) {
            s.create(&raw).await.expect("create folder");
        }
        let date = m
            .date
            .map(|d| InternalDate::parse_imap(d).expect("test date"));
        s.append(&raw, &Flags::from_line(m.flags), date.as_ref(), &m.body)
            .await
            .unwrap_or_else(|e| panic!("append to {}: {e}", m.folder));
    }
    s.logout().await;
}

/// A simple message with a subject and body, `n` lines long.
pub fn message(subject: &str, lines: usize) -> Vec<u8> {
    let mut v = format!(
        "From: a@example.org\r\nTo: b@example.org\r\nSubject: {subject}\r\nMessage-ID: <{}@test>\r\n\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes();
    for i in 0..lines {
        v.extend_from_slice(format!("line {i} of {subject}\r\n").as_bytes());
    }
    v
}

pub fn state_file(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    Arc::new(SqliteStore::open(&dir.path().join("state.sqlite")).expect("state store"))
}

pub fn options(key: &str) -> MigrationOptions {
    MigrationOptions {
        account_key: key.to_string(),
        ..MigrationOptions::default()
    }
}

pub async fn migrate(
    src: &Account,
    dst: &Account,
    opts: &MigrationOptions,
    state: Arc<SqliteStore>,
) -> MigrationReport {
    imapmig_core::engine::migrate(src, dst, opts, state, None, CancellationToken::new())
        .await
        .expect("migration")
}

/// Every folder (decoded name) with its messages as [`snapshot`] gives them: (body, flags,
/// INTERNALDATE).
pub type Snapshot = Vec<(String, Vec<(Vec<u8>, String, i64)>)>;

/// Every folder (decoded name) with the messages' bodies, flags and dates, as the server
/// returns them.
pub async fn snapshot(acct: &Account) -> Snapshot {
    let mut s: Session = acct.open().await.expect("login");
    let folders = s.list().await.expect("list");
    let mut out = Vec::new();
    for f in folders.iter().filter(|f| f.selectable()) {
        s.examine(&f.raw).await.expect("examine");
        let metas = s.fetch_meta("1:*", None).await.expect("meta");
        let uids: Vec<_> = metas.iter().map(|m| m.uid).collect();
        let bodies = s.fetch_bodies_collected(&uids).await.expect("bodies");
        let mut msgs: Vec<(Vec<u8>, String, i64)> = metas
            .iter()
            .map(|m| {
                let body = bodies
                    .iter()
                    .find(|(u, _)| *u == m.uid)
                    .map(|(_, b)| b.to_vec())
                    .unwrap_or_default();
                (
                    body,
                    m.flags.to_line(),
                    m.internal_date.map(|d| d.unix()).unwrap_or(0),
                )
            })
            .collect();
        msgs.sort();
        out.push((f.name.clone(), msgs));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    s.logout().await;
    out
}

/// The message count of one folder.
pub async fn count(acct: &Account, folder: &str) -> u32 {
    let mut s = acct.open().await.expect("login");
    let raw = s.encode_name(folder);
    let st = s
        .status(&raw)
        .await
        .unwrap_or_else(|e| panic!("status {folder}: {e}"));
    s.logout().await;
    st.messages.unwrap_or(0)
}

/// The shared corpus directory (`../shared/corpus` beside the repository).
pub fn corpus_dir() -> PathBuf {
    // The tests of the workspace's member crates include this file too: look beside each
    // folder up from the crate's.
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let found = here
        .ancestors()
        .map(|a| a.join("../shared/corpus"))
        .find(|dir| dir.join("MANIFEST.tsv").exists());
    found.unwrap_or_else(|| {
        panic!(
            "the shared corpus is missing: the tests need ../shared/corpus beside the \
             repository (looked up from {})",
            here.display()
        )
    })
}

/// Every corpus message: (relative path, bytes).
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("manifest");
    let mut out = Vec::new();
    for line in manifest.lines().skip(1) {
        let Some(path) = line.split('\t').next() else {
            continue;
        };
        if path.is_empty() {
            continue;
        }
        let bytes = std::fs::read(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        out.push((path.to_string(), bytes));
    }
    out
}
