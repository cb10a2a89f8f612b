//! Regression tests for sources that misbehave: each test is named after a defect a real or
//! scripted server made visible, and plays it with the testkit's scripted server (source) and a
//! private Dovecot (destination).

use imapmig_testsupport as common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::engine::{Account, FolderReport, MigrationReport};
use imapmig_core::imap::{Credentials, Endpoint, ImapError, Security, Session, TlsVerify};
use imapmig_testkit::{
    BodyAnswer, Dovecot, DovecotOptions, Flavour, ScriptedFolder, ScriptedMessage, ScriptedServer,
};

const USER: &str = "alice";
const PASSWORD: &str = "secret";

/// The account of a scripted server.
fn scripted_account(server: &ScriptedServer) -> Account {
    let mut endpoint = Endpoint::new(server.host(), server.port(), Security::Cleartext);
    endpoint.timeout = Duration::from_secs(20);
    Account {
        endpoint,
        credentials: Credentials::password(USER, PASSWORD),
    }
}

fn body(n: u32) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nSubject: message {n}\r\nMessage-ID: <m{n}@hostile>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

fn msg(uid: u32) -> ScriptedMessage {
    ScriptedMessage::new(uid, body(uid))
}

/// Migrates everything from the scripted server to a fresh Dovecot user.
async fn migrate_to_dovecot(
    server: &ScriptedServer,
    key: &str,
) -> (MigrationReport, Dovecot, Account) {
    let d = Dovecot::start(Flavour::Slash);
    let u = d.user("bob");
    let dst = account(&d, &u);
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(server),
        &dst,
        &options(key),
        state_file(&dir),
    )
    .await;
    (report, d, dst)
}

fn folder<'a>(report: &'a MigrationReport, name: &str) -> &'a FolderReport {
    report
        .folders
        .iter()
        .find(|f| f.source == name)
        .unwrap_or_else(|| panic!("no report for folder {name}: {report:#?}"))
}

/// The bodies of one destination folder, sorted.
async fn bodies_of(dst: &Account, name: &str) -> Vec<Vec<u8>> {
    let snap = snapshot(dst).await;
    let mut bodies: Vec<Vec<u8>> = snap
        .into_iter()
        .find(|(f, _)| f == name)
        .map(|(_, msgs)| msgs.into_iter().map(|(b, _, _)| b).collect())
        .unwrap_or_default();
    bodies.sort();
    bodies
}

fn has_anomaly(rep: &FolderReport, uid: u32, words: &str) -> bool {
    rep.anomalies
        .iter()
        .any(|a| a.uid == Some(uid) && a.detail.contains(words))
}

// Defect: "A FETCH answer for a UID that was not asked for is appended, duplicating messages (a
// server that sends the body of UID u+1 with u: '3 found, 5 copied')."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_answer_for_an_unasked_uid_is_not_appended() {
    // INBOX: UID 1's answer first sends UID 2's body (unsolicited), and UID 3's answer first
    // sends a body under UID 77, which nobody asked for.
    let mut one = msg(1);
    one.body_answer = BodyAnswer::AlsoSend(2);
    let mut three = msg(3);
    three.body_answer = BodyAnswer::AlsoSend(77);
    let inbox = ScriptedFolder::new("INBOX", 7, vec![one, msg(2), three]);
    // Other: UID 1 is answered with UID 2's body under UID 2; UID 1's own body never comes.
    let mut first = msg(1);
    first.body_answer = BodyAnswer::AsUid(2);
    let other = ScriptedFolder::new("Other", 8, vec![first, msg(2)]);
    let server = ScriptedServer::start(USER, PASSWORD, vec![inbox, other]);

    let (report, _d, dst) = migrate_to_dovecot(&server, "unasked").await;
    assert!(report.failed_folders.is_empty(), "{report:#?}");
    assert!(!report.is_complete(), "{report:#?}");

    let inbox = folder(&report, "INBOX");
    assert_eq!((inbox.found, inbox.copied), (3, 3), "{inbox:#?}");
    assert_eq!(
        bodies_of(&dst, "INBOX").await,
        vec![body(1), body(2), body(3)]
    );
    assert!(has_anomaly(inbox, 77, "UID 77"), "{inbox:#?}");
    assert!(has_anomaly(inbox, 2, "UID 2"), "{inbox:#?}");

    let other = folder(&report, "Other");
    assert_eq!((other.found, other.copied), (2, 1), "{other:#?}");
    assert_eq!(bodies_of(&dst, "Other").await, vec![body(2)]);
    assert!(
        other
            .refused
            .iter()
            .any(|r| r.uid == 1 && !r.reason.is_empty()),
        "{other:#?}"
    );
    assert_eq!(other.vanished, 0, "{other:#?}");
    assert!(has_anomaly(other, 2, "UID 2"), "{other:#?}");
}

// Defect (same issue): a FETCH answer `BODY[] NIL` for a requested UID was counted as vanished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_nil_is_refused_and_reported() {
    let mut two = msg(2);
    two.body_answer = BodyAnswer::Nil;
    let server = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 7, vec![msg(1), two, msg(3)])],
    );
    let (report, _d, dst) = migrate_to_dovecot(&server, "nil").await;
    let inbox = folder(&report, "INBOX");
    assert_eq!(inbox.copied, 2, "{inbox:#?}");
    assert_eq!(bodies_of(&dst, "INBOX").await, vec![body(1), body(3)]);
    let refusal = inbox.refused.iter().find(|r| r.uid == 2);
    assert!(
        refusal.is_some_and(|r| r.reason.contains("NIL")),
        "{inbox:#?}"
    );
    assert!(has_anomaly(inbox, 2, "NIL"), "{inbox:#?}");
    assert_eq!(inbox.vanished, 0, "{inbox:#?}");
    assert!(!report.is_complete());
}

// Defect (same issue): a message the server leaves out of its FETCH answer, though the folder
// still holds it, was counted as vanished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn omitted_body_is_refused_not_vanished() {
    let mut two = msg(2);
    two.body_answer = BodyAnswer::Omit;
    let server = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 7, vec![msg(1), two, msg(3)])],
    );
    let (report, _d, dst) = migrate_to_dovecot(&server, "omit").await;
    let inbox = folder(&report, "INBOX");
    assert_eq!(inbox.copied, 2, "{inbox:#?}");
    assert_eq!(bodies_of(&dst, "INBOX").await, vec![body(1), body(3)]);
    assert!(inbox.refused.iter().any(|r| r.uid == 2), "{inbox:#?}");
    assert_eq!(inbox.vanished, 0, "{inbox:#?}");
    assert!(!report.is_complete());
}

// Defect: "One LIST entry the parser cannot read (an 8-bit name sent as a literal) aborts the
// whole account."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_entry_with_an_8bit_literal_name_does_not_abort_the_account() {
    let mut cafes = ScriptedFolder::new("Cafés".as_bytes(), 9, vec![msg(1), msg(2)]);
    cafes.as_literal = true;
    // Latin-1, not UTF-8: a name that cannot be held; it must be reported, not abort.
    let mut latin1 = ScriptedFolder::new(&b"Caf\xe9"[..], 10, vec![msg(1)]);
    latin1.as_literal = true;
    let server = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![
            ScriptedFolder::new("INBOX", 7, vec![msg(1)]),
            cafes,
            latin1,
            ScriptedFolder::new("Plain", 8, vec![msg(1), msg(2), msg(3)]),
        ],
    );
    let (report, _d, dst) = migrate_to_dovecot(&server, "8bit").await;
    assert!(report.failed_folders.is_empty(), "{report:#?}");
    assert_eq!(folder(&report, "Cafés").copied, 2, "{report:#?}");
    assert_eq!(folder(&report, "Plain").copied, 3, "{report:#?}");
    assert_eq!(folder(&report, "INBOX").copied, 1, "{report:#?}");
    assert_eq!(count(&dst, "Cafés").await, 2);
    // The name went back to the server the way it came: as a literal, byte for byte.
    assert!(
        server
            .commands()
            .iter()
            .any(|c| c.contains("EXAMINE {6+}\r\nCafés")),
        "{:?}",
        server.commands()
    );
    assert_eq!(count(&dst, "Plain").await, 3);
    assert!(
        report
            .anomalies
            .iter()
            .any(|a| a.uid.is_none() && a.detail.contains("Caf")),
        "{report:#?}"
    );
    assert!(!report.is_complete());
}

// Defect: "Odd server data is changed or dropped without a word: a malformed INTERNALDATE
// becomes 'now' on the destination."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_internaldate_is_reported() {
    let mut two = msg(2);
    two.internal_date = "32-Foo-2024 99:00:00 +0000".into();
    let server = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 7, vec![msg(1), two])],
    );
    let (report, _d, _dst) = migrate_to_dovecot(&server, "date").await;
    let inbox = folder(&report, "INBOX");
    assert_eq!(inbox.copied, 2, "{inbox:#?}");
    let a = inbox.anomalies.iter().find(|a| a.uid == Some(2));
    assert!(
        a.is_some_and(|a| a.detail.contains("32-Foo-2024 99:00:00 +0000")
            && a.detail.contains("time of copying")),
        "{inbox:#?}"
    );
    assert!(!report.is_complete());
}

// Defect: "a metadata line with UID 0, negative or beyond 2^32-1 silently drops the message from
// the listing."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_uid_in_metadata_is_reported() {
    let meta = |uid: &str| {
        format!("UID {uid} FLAGS () INTERNALDATE \"01-Jan-2024 12:00:00 +0000\" RFC822.SIZE 9")
    };
    let mut zero = msg(2);
    zero.meta_override = Some(meta("0"));
    let mut negative = msg(3);
    negative.meta_override = Some(meta("-3"));
    let mut huge = msg(4);
    huge.meta_override = Some(meta("4294967296"));
    let server = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new(
            "INBOX",
            7,
            vec![msg(1), zero, negative, huge, msg(5)],
        )],
    );
    let (report, _d, dst) = migrate_to_dovecot(&server, "uid").await;
    assert!(report.failed_folders.is_empty(), "{report:#?}");
    let inbox = folder(&report, "INBOX");
    assert_eq!(inbox.copied, 2, "{inbox:#?}");
    assert_eq!(bodies_of(&dst, "INBOX").await, vec![body(1), body(5)]);
    for uid in ["UID 0", "UID -3", "UID 4294967296"] {
        assert!(
            inbox
                .anomalies
                .iter()
                .any(|a| a.detail.contains(uid) && a.detail.contains("not listed")),
            "{uid}: {inbox:#?}"
        );
    }
    assert!(!report.is_complete());
}

// Defect: "A garbage tagged reply is reported as 'no answer for 10 s'."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_tagged_reply_fails_at_once() {
    let server = ScriptedServer::start_with_hook(USER, PASSWORD, vec![], |cmd| {
        (cmd.name == "NOOP").then(|| format!("{} garbage reply!\r\n", cmd.tag).into_bytes())
    });
    let mut ep = Endpoint::new(server.host(), server.port(), Security::Cleartext);
    ep.timeout = Duration::from_secs(10);
    let mut s = Session::open(&ep, &Credentials::password(USER, PASSWORD))
        .await
        .expect("login");
    let started = Instant::now();
    let err = s.noop().await.expect_err("a garbage reply is an error");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}: {err}",
        started.elapsed()
    );
    assert!(matches!(err, ImapError::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("garbage reply!"), "{err}");
}

/// A self-signed certificate that is its own CA (as `openssl req -x509` makes by default, and as
/// many small servers use), for 127.0.0.1: (certificate path, key path).
fn self_signed_ca_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join("self.pem");
    let key = dir.join("self.key");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=localhost",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command is needed to make a test certificate");
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

// Defect: "A self-signed certificate is reported as `invalid peer certificate:
// Other(OtherError(CaUsedAsEndEntity))` — and `--src-ca-file` with that very certificate still
// fails."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_certificate_is_explained_and_accepted_as_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (cert, key) = self_signed_ca_certificate(dir.path());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = Dovecot::start_with(
        Flavour::Slash,
        DovecotOptions {
            extra_config: Some(format!(
                "ssl_cert = <{}\nssl_key = <{}\n",
                cert.display(),
                key.display()
            )),
            ..DovecotOptions::default()
        },
    );
    let u = d.user("carol");
    let creds = Credentials::password(u.name.clone(), u.password.clone());
    let endpoint = |verify: TlsVerify| {
        let mut ep = Endpoint::new(d.host(), d.imaps_port(), Security::Tls);
        ep.verify = verify;
        ep.timeout = Duration::from_secs(10);
        ep
    };

    // Without the certificate: a plain explanation of what to pass.
    let err = Session::open(&endpoint(TlsVerify::System), &creds)
        .await
        .err()
        .expect("an untrusted self-signed certificate must fail");
    let text = err.to_string();
    assert!(matches!(err, ImapError::Tls { .. }), "{err:?}");
    assert!(text.contains("self-signed"), "{text}");
    assert!(text.contains("--src-ca-file"), "{text}");
    assert!(!text.contains("CaUsedAsEndEntity"), "{text}");

    // With that very certificate as the CA file: it works.
    let mut s = Session::open(&endpoint(TlsVerify::CaFile(cert.clone())), &creds)
        .await
        .unwrap_or_else(|e| panic!("the self-signed certificate given as CA file: {e}"));
    assert!(s.is_tls());
    s.noop().await.unwrap();
    s.logout().await;

    // The testkit's own CA does not vouch for it.
    let err = Session::open(&endpoint(TlsVerify::CaFile(d.ca_file().into())), &creds)
        .await
        .err()
        .expect("another CA's file must not make it trusted");
    assert!(matches!(err, ImapError::Tls { .. }), "{err:?}");
}

/// RFC 3501 says an `[ALERT]` must be shown to the user; the client read past every one (a
/// server announcing maintenance, or a mailbox about to be closed). The scripted source plays a
/// server that says one in its answer to ID, on every connection: it reaches the report's notes
/// once per connection that heard it, and a notice is not a fault (the report stays complete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_alerts_reach_the_report() {
    let inbox = ScriptedFolder::new("INBOX", 7, vec![msg(1), msg(2)]);
    let server = ScriptedServer::start_with_hook(USER, PASSWORD, vec![inbox], |cmd| {
        (cmd.name == "ID").then(|| {
            format!(
                "* ID NIL\r\n* OK [ALERT] This mailbox moves on Friday\r\n{} OK ID completed\r\n",
                cmd.tag
            )
            .into_bytes()
        })
    });
    let (report, _d, dst) = migrate_to_dovecot(&server, "alerts").await;
    let said = "the source server says: This mailbox moves on Friday";
    assert!(
        report.plan_notes.iter().any(|n| n == said),
        "{:#?}",
        report.plan_notes
    );
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(bodies_of(&dst, "INBOX").await, vec![body(1), body(2)]);
}
