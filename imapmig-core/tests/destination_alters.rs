//! Regression tests for destinations that change what APPEND gave them: each test is named
//! after the server whose defect it plays.
//!
//! Until real Cyrus and GNU Mailutils servers are in the testkit, the testkit's scripted server
//! plays them as a destination ([`ScriptedServer::start_destination`] with
//! [`DestinationQuirks`]): no UIDPLUS, and the quirk each test names. The source is a scripted
//! server too, because it must serve bare-LF messages as they are (a Dovecot source would have
//! turned them into CRLF on the way in).

use imapmig_testsupport as common;

use std::time::Duration;

use common::*;
use imapmig_core::engine::{Account, FolderReport, MigrationReport};
use imapmig_core::imap::{Credentials, Endpoint, Security};
use imapmig_testkit::scripted::{DestinationQuirks, REPLACED_DATE};
use imapmig_testkit::{
    Dovecot, Flavour, Mailutils, ScriptedFolder, ScriptedMessage, ScriptedServer,
};

const USER: &str = "alice";
const PASSWORD: &str = "secret";

/// An account on a loopback server that takes LOGIN in the clear.
fn cleartext_account(host: &str, port: u16, user: &str, password: &str) -> Account {
    let mut endpoint = Endpoint::new(host, port, Security::Cleartext);
    endpoint.timeout = Duration::from_secs(20);
    Account {
        endpoint,
        credentials: Credentials::password(user, password),
    }
}

fn scripted_account(server: &ScriptedServer) -> Account {
    cleartext_account(server.host(), server.port(), USER, PASSWORD)
}

fn has_bare_lf(b: &[u8]) -> bool {
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'\n' && (i == 0 || b[i - 1] != b'\r'))
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 20);
    for (i, &c) in b.iter().enumerate() {
        if c == b'\n' && (i == 0 || b[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    out
}

/// Real-world messages from the corpus that the scripted server can carry (under its 1 MiB
/// literal limit) and that have no 8-bit byte in their header: `bare` of them with bare
/// newlines, `clean` with CRLF only.
fn corpus_sample(bare: usize, clean: usize) -> Vec<Vec<u8>> {
    let header_8bit = |b: &[u8]| {
        let end = b
            .windows(2)
            .position(|w| w == b"\n\n")
            .or_else(|| b.windows(4).position(|w| w == b"\r\n\r\n"))
            .unwrap_or(b.len());
        b[..end].iter().any(|&c| c >= 0x80)
    };
    let all: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|(_, b)| b)
        .filter(|b| !b.is_empty() && b.len() < 900 * 1024 && !header_8bit(b))
        .collect();
    let mut out: Vec<Vec<u8>> = all
        .iter()
        .filter(|b| has_bare_lf(b))
        .take(bare)
        .cloned()
        .collect();
    assert_eq!(out.len(), bare, "the corpus has too few bare-LF messages");
    out.extend(all.iter().filter(|b| !has_bare_lf(b)).take(clean).cloned());
    out
}

fn source_with(bodies: &[Vec<u8>]) -> ScriptedServer {
    let messages = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| ScriptedMessage::new(i as u32 + 1, b.clone()))
        .collect();
    ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 7, messages)],
    )
}

fn destination(quirks: DestinationQuirks) -> ScriptedServer {
    ScriptedServer::start_destination(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 1, Vec::new())],
        quirks,
    )
}

fn inbox(report: &MigrationReport) -> &FolderReport {
    report
        .folders
        .iter()
        .find(|f| f.source == "INBOX")
        .unwrap_or_else(|| panic!("no INBOX: {report:#?}"))
}

/// The destination INBOX's messages.
fn held(server: &ScriptedServer) -> Vec<ScriptedMessage> {
    server
        .folders()
        .into_iter()
        .find(|f| f.name == b"INBOX")
        .map(|f| f.messages)
        .unwrap_or_default()
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

fn cyrus() -> DestinationQuirks {
    let mut q = DestinationQuirks::default();
    q.refuse_bare_lf = true;
    q
}

/// Defect: "Cyrus refuses messages with bare LF line endings (`NO Message contains bare
/// newlines`: 264 of 385 real-world messages of the corpus); such a message is refused and left
/// behind." Played by the scripted destination (refuse_bare_lf) until a real Cyrus is in the
/// testkit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_bare_newlines_are_sent_again_with_crlf() {
    let bodies = corpus_sample(24, 8);
    let src = source_with(&bodies);
    let dst = destination(cyrus());
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("cyrus-bare-lf"),
        state_file(&dir),
    )
    .await;
    let f = inbox(&report);
    assert!(f.refused.is_empty(), "{f:#?}");
    assert_eq!(f.copied, 32, "{f:#?}");
    assert_eq!(f.altered.line_endings_normalised, 24, "{f:#?}");
    assert_eq!(report.altered.line_endings_normalised, 24);
    assert!(report.altering_destination.is_some(), "{report:#?}");
    // The copies are the source's messages with CRLF line endings, nothing else changed.
    let want = sorted(bodies.iter().map(|b| crlf(b)).collect());
    let got = sorted(held(&dst).into_iter().map(|m| m.body).collect());
    assert!(
        want == got,
        "the destination does not hold the normalised messages"
    );
    // Normalising line endings is what the user asked for by default: complete.
    assert_eq!(report.exit_status(), 0, "{report:#?}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["altered"]["line_endings_normalised"], 24);
    assert_eq!(json["folders"][0]["altered"]["line_endings_normalised"], 24);
}

/// Same defect, with the option that keeps the strict behaviour: the refusal stands, with the
/// server's words. Played by the scripted destination
/// (refuse_bare_lf) until a real Cyrus is in the testkit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_bare_newlines_refused_with_strict_line_endings() {
    let bodies = corpus_sample(5, 3);
    let src = source_with(&bodies);
    let dst = destination(cyrus());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("cyrus-strict");
    opts.strict_line_endings = true;
    let report = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &opts,
        state_file(&dir),
    )
    .await;
    let f = inbox(&report);
    assert_eq!(f.copied, 3, "{f:#?}");
    assert_eq!(f.refused.len(), 5, "{f:#?}");
    assert!(
        f.refused.iter().all(|r| r.reason.contains("bare newlines")),
        "{f:#?}"
    );
    assert_eq!(f.altered.line_endings_normalised, 0);
    assert_eq!(held(&dst).len(), 3);
    assert_eq!(report.exit_status(), 1);
}

/// Same defect: after a normalised copy, a lost state file (or a crash) must not copy the
/// messages again — the destination's copies differ from the source's bytes (and sizes) only in
/// their line endings. Played by the scripted destination
/// (refuse_bare_lf) until a real Cyrus is in the testkit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_normalised_copies_are_found_again_without_state() {
    let bodies = corpus_sample(10, 4);
    let src = source_with(&bodies);
    let dst = destination(cyrus());
    let first = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("cyrus-rematch"),
        state_file(&first),
    )
    .await;
    assert_eq!(inbox(&report).copied, 14, "{report:#?}");
    let lost = tempfile::tempdir().unwrap();
    let again = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("cyrus-rematch"),
        state_file(&lost),
    )
    .await;
    let f = inbox(&again);
    assert_eq!((f.copied, f.already_there), (0, 14), "{f:#?}");
    assert_eq!(held(&dst).len(), 14);
}

fn eight_bit(n: u32) -> Vec<u8> {
    format!(
        "From: a@example.org\r\nSubject: Gr\u{fc}\u{df}e {n}\r\nMessage-ID: <m{n}@8bit>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// Defect: "Cyrus by default rewrites 8-bit header bytes" (to `X`), silently accepted. The
/// copy is reported as altered, and a lost state still finds it (matched on a form with 8-bit
/// header bytes masked). Played by the scripted destination (munge_8bit_headers) until
/// a real Cyrus is in the testkit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cyrus_8bit_headers_rewritten_are_reported_and_found_again() {
    let mut bodies = vec![eight_bit(1), eight_bit(2), message("plain", 3)];
    bodies.push(message("plain two", 2));
    let src = source_with(&bodies);
    let mut q = cyrus();
    q.munge_8bit_headers = true;
    let dst = destination(q);
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("cyrus-8bit"),
        state_file(&dir),
    )
    .await;
    let f = inbox(&report);
    assert_eq!(f.copied, 4, "{f:#?}");
    assert_eq!(f.altered.headers_altered, 2, "{f:#?}");
    for uid in [1, 2] {
        assert!(
            f.anomalies
                .iter()
                .any(|a| a.uid == Some(uid) && a.detail.contains("header")),
            "{f:#?}"
        );
    }
    assert!(report.altering_destination.is_some());
    assert_eq!(report.exit_status(), 1);

    let lost = tempfile::tempdir().unwrap();
    let again = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("cyrus-8bit"),
        state_file(&lost),
    )
    .await;
    let f = inbox(&again);
    assert_eq!((f.copied, f.already_there), (0, 4), "{f:#?}");
    assert_eq!(held(&dst).len(), 4);
}

fn flagged(uid: u32, flags: &str, date: &str) -> ScriptedMessage {
    let mut m = ScriptedMessage::new(uid, message(&format!("flagged {uid}"), 2));
    m.flags = flags.to_string();
    m.internal_date = date.to_string();
    m
}

/// Defect: "GNU Mailutils answers `OK APPEND completed` but stores no flags and takes
/// INTERNALDATE from a header instead of the APPEND argument; it has no UIDPLUS, so nothing
/// tells imapmig. imapmig exited 0." The copies are read back (found by UIDNEXT and content),
/// flags repaired with STORE, every date not kept reported. Played by the scripted destination
/// (drop_flags, replace_dates) until a real Mailutils is in the testkit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailutils_dropped_flags_are_repaired_and_lost_dates_reported() {
    let messages = vec![
        flagged(1, "\\Seen", "02-Feb-2021 10:00:00 +0000"),
        flagged(2, "\\Answered \\Flagged", "03-Mar-2022 11:00:00 +0100"),
        flagged(3, "", "04-Apr-2023 12:00:00 +0000"),
        flagged(4, "\\Draft $Label1", "05-May-2020 13:00:00 +0000"),
    ];
    let src = ScriptedServer::start(
        USER,
        PASSWORD,
        vec![ScriptedFolder::new("INBOX", 7, messages.clone())],
    );
    let mut q = DestinationQuirks::default();
    q.drop_flags = true;
    q.replace_dates = true;
    let dst = destination(q);
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(&src),
        &scripted_account(&dst),
        &options("mailutils"),
        state_file(&dir),
    )
    .await;
    let f = inbox(&report);
    assert_eq!(f.copied, 4, "{f:#?}");
    assert_eq!(f.altered.flags_repaired, 3, "{f:#?}");
    assert_eq!(f.altered.flags_lost, 0, "{f:#?}");
    assert_eq!(f.altered.dates_not_kept, 4, "{f:#?}");
    for uid in 1..=4 {
        assert!(
            f.anomalies
                .iter()
                .any(|a| a.uid == Some(uid) && a.detail.contains("INTERNALDATE")),
            "{f:#?}"
        );
    }
    // The flags are the source's now.
    let mut got: Vec<(Vec<u8>, String)> = held(&dst)
        .into_iter()
        .map(|m| (m.body, sorted_flags(&m.flags)))
        .collect();
    got.sort();
    let mut want: Vec<(Vec<u8>, String)> = messages
        .iter()
        .map(|m| (m.body.clone(), sorted_flags(&m.flags)))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert!(held(&dst).iter().all(|m| m.internal_date == REPLACED_DATE));
    assert!(report.altering_destination.is_some());
    assert_eq!(report.exit_status(), 1);
}

fn sorted_flags(f: &str) -> String {
    // `\Recent` is the session's, not the message's.
    let mut v: Vec<String> = f
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .filter(|f| f != "\\recent")
        .collect();
    v.sort();
    v.join(" ")
}

/// Real Dovecot keeps flags and dates: the read-back confirms them, nothing is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_keeps_what_append_gives_and_nothing_is_reported() {
    let d = Dovecot::start(Flavour::Slash);
    let (a, b) = (d.user("a"), d.user("b"));
    let (src, dst) = (account(&d, &a), account(&d, &b));
    let mut seeds = Vec::new();
    for i in 0..40 {
        let flags = ["\\Seen", "\\Answered \\Flagged", "", "\\Draft $Label1"][i % 4];
        seeds.push(seed(
            "INBOX",
            message(&format!("m {i}"), 3),
            flags,
            Some("02-Feb-2021 10:00:00 +0000"),
        ));
    }
    fill(&src, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(&src, &dst, &options("dovecot-readback"), state_file(&dir)).await;
    assert_eq!(inbox(&report).copied, 40);
    assert!(report.altered.is_empty(), "{report:#?}");
    assert!(report.altering_destination.is_none());
    assert_eq!(report.exit_status(), 0, "{report:#?}");
    assert_eq!(snapshot(&src).await, snapshot(&dst).await);
}

/// Defect (found by the interoperability suite against a real GNU Mailutils 3.15 imap4d): a
/// message APPENDed into the folder the session has SELECTed is lost: imap4d's view of the
/// folder takes in only the first new message, and it rewrites the mbox from that view when the
/// session ends. imapmig selected the target folder before appending (cheaper on Dovecot), so
/// copies answered `OK` vanished once it logged out, and the read-back could only say that it
/// did not find them. Every message and its flags must be there in a later session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailutils_keeps_every_message_appended_and_its_flags() {
    let d = Dovecot::start(Flavour::Slash);
    let a = d.user("a");
    let src = account(&d, &a);
    let m = Mailutils::start();
    let b = m.user("b");
    let dst = cleartext_account(m.host(), m.imap_port(), &b.name, &b.password);
    let mut seeds = Vec::new();
    for i in 0..30 {
        let folder = if i % 3 == 0 { "INBOX" } else { "Work" };
        let flags = ["\\Seen", "\\Answered \\Flagged", "", "\\Draft \\Seen"][i % 4];
        seeds.push(seed(
            folder,
            message(&format!("m {i}"), 3),
            flags,
            Some("02-Feb-2021 10:00:00 +0000"),
        ));
    }
    fill(&src, &seeds).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("mailutils-selected");
    opts.batch = 4;
    let report = migrate(&src, &dst, &opts, state_file(&dir)).await;
    assert_eq!(report.copied, 30, "{report:#?}");
    // What a later session finds: every message, with the source's flags.
    let want = snapshot(&src).await;
    let got = snapshot(&dst).await;
    let flags_of = |snap: &Snapshot, name: &str| {
        let mut v: Vec<String> = snap
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, msgs)| msgs.iter().map(|(_, fl, _)| sorted_flags(fl)).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    for folder in ["INBOX", "Work"] {
        assert_eq!(
            flags_of(&got, folder),
            flags_of(&want, folder),
            "{folder} on Mailutils after the migration; report: {report:#?}"
        );
    }
    // A re-run finds every copy and copies nothing.
    let again = migrate(&src, &dst, &opts, state_file(&dir)).await;
    assert_eq!(again.copied, 0, "{again:#?}");
}

/// Found by the interoperability suite (Courier → Dovecot): Dovecot stores a NUL byte it is
/// given by APPEND as 0x80, at the same size, and the read-back (which compared sizes) did not
/// see it. A message holding NUL bytes is read back and a replaced one reported. The source is
/// a scripted server, because it must serve the NUL bytes as they are (Dovecot and Cyrus would
/// not keep them; Courier does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_replaced_nul_bytes_are_reported() {
    let mut with_nul = b"From: a@example.org\r\nSubject: utf-16\r\nContent-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: binary\r\n\r\n".to_vec();
    // UTF-16LE text with CRLF line ends, as in the corpus message that showed it.
    for c in b"Test message" {
        with_nul.push(*c);
        with_nul.push(0);
    }
    with_nul.extend_from_slice(b"\r\n\0\r\n");
    let plain = message("plain", 3);
    let src = source_with(&[with_nul.clone(), plain]);
    let d = Dovecot::start(Flavour::Slash);
    let b = d.user("b");
    let dst = account(&d, &b);
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(
        &scripted_account(&src),
        &dst,
        &options("dovecot-nul"),
        state_file(&dir),
    )
    .await;
    let f = inbox(&report);
    assert_eq!(f.copied, 2, "{f:#?}");
    assert_eq!(f.altered.content_altered, 1, "{f:#?}");
    assert!(
        f.anomalies
            .iter()
            .any(|a| a.uid == Some(1) && a.detail.contains("NUL")),
        "{f:#?}"
    );
    assert!(report.altering_destination.is_some());
    assert_eq!(report.exit_status(), 1);
    // What Dovecot holds: the same size, 0x80 for each NUL.
    let held = snapshot(&dst).await;
    let inbox_held = &held.iter().find(|(f, _)| f == "INBOX").expect("INBOX").1;
    let want: Vec<u8> = with_nul
        .iter()
        .map(|&c| if c == 0 { 0x80 } else { c })
        .collect();
    assert!(inbox_held.iter().any(|(body, _, _)| *body == want));
}

/// Found by the interoperability suite (Dovecot → Courier): Courier stores a message with very
/// many MIME parts cut short after one of its boundaries (a 2,987,765-byte corpus message held
/// as 293,107 bytes, RFC822.SIZE agreeing), and the read-back did not see it: Courier shows a
/// message appended into the selected folder only after a NOOP, so the FETCH of the UIDs
/// APPENDUID named came back empty and nothing was compared. Also: a message not ending in a
/// line ending is held with one added, which the report names as such.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_cut_messages_are_reported() {
    let d = Dovecot::start(Flavour::Slash);
    let a = d.user("a");
    let src = account(&d, &a);
    let c = imapmig_testkit::Courier::start();
    let b = c.user("b");
    let dst = cleartext_account(c.host(), c.imap_port(), &b.name, &b.password);
    let many_parts = crlf(&std::fs::read(corpus_dir().join("flanker/0011.eml")).expect("corpus"));
    let no_end = b"From: a@example.org\r\nSubject: no end\r\n\r\nlast line".to_vec();
    fill(
        &src,
        &[
            seed("INBOX", many_parts.clone(), "", None),
            seed("INBOX", no_end.clone(), "\\Seen", None),
            seed("INBOX", message("plain", 3), "", None),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let report = migrate(&src, &dst, &options("courier-cut"), state_file(&dir)).await;
    let f = inbox(&report);
    assert_eq!(f.copied, 3, "{f:#?}");
    assert_eq!(f.altered.content_altered, 2, "{f:#?}");
    assert!(
        f.anomalies.iter().any(|a| a.uid == Some(1)
            && a.detail
                .contains(&format!("{} bytes sent", many_parts.len()))),
        "{f:#?}"
    );
    assert!(
        f.anomalies
            .iter()
            .any(|a| a.uid == Some(2) && a.detail.contains("added a line ending at its end")),
        "{f:#?}"
    );
    assert_eq!(report.exit_status(), 1);
}
