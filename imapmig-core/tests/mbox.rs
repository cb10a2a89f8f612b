//! mbox archives imported: real-world messages written into an mboxrd archive with their own
//! `From ` lines (and `>From ` escaping) come out byte for byte, into a Maildir and into
//! Dovecot; a directory of archives becomes folders; a grown archive copies only what is new.

use imapmig_testsupport as common;

use std::collections::HashMap;

use common::*;
use imapmig_core::engine::{self, MessageFilter, MigrationReport};
use imapmig_core::model::InternalDate;
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::{MaildirSpec, MboxSpec, MigrationSource, SkippedEntry, SourceSpec};
use imapmig_testkit::{Dovecot, Flavour};
use tokio_util::sync::CancellationToken;

/// Escapes a message for an mboxrd archive: every `>*From ` line gets one more `>`.
fn mboxrd_escape(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    out
}

/// Writes an mboxrd archive as mutt or Python would: `From ` line, escaped message, an empty
/// line after each message.
fn write_mbox(messages: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (from, msg) in messages {
        out.extend_from_slice(from.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&mboxrd_escape(msg));
        out.push(b'\n');
    }
    out
}

struct CorpusMessage {
    bytes: Vec<u8>,
    from_line: Option<String>,
    crlf_only: bool,
}

/// Corpus messages an mbox can hold exactly (they end with a newline), with the `From ` line
/// they came with when they came from an mbox.
fn corpus_messages() -> Vec<CorpusMessage> {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut out = Vec::new();
    for line in manifest.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() < 10 {
            continue;
        }
        let bytes = std::fs::read(dir.join(c[0])).unwrap();
        if !bytes.ends_with(b"\n") {
            continue;
        }
        let from_line = c
            .get(10)
            .filter(|f| f.starts_with("From "))
            .map(|f| f.to_string());
        let has_from = bytes.starts_with(b"From ")
            || bytes.windows(6).any(|w| w == b"\nFrom " || w == b"\n>From");
        if from_line.is_none() && !has_from {
            continue;
        }
        out.push(CorpusMessage {
            crlf_only: c[3] == "1" && c[4] == "0" && c[5] == "0" && !has_lone_cr(&bytes),
            bytes,
            from_line,
        });
    }
    out
}

fn has_lone_cr(b: &[u8]) -> bool {
    b.windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n') || b.ends_with(b"\r")
}

const SYNTHETIC_FROM: &str = "From MAILER-DAEMON Sat Mar 24 23:00:00 2007 +0200";

async fn run(source: &SourceSpec, dest: &SinkSpec, key: &str) -> MigrationReport {
    let dir = tempfile::tempdir().unwrap();
    engine::migrate_between(
        source,
        dest,
        &options(key),
        state_file(&dir),
        None,
        CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{key}: {e}"))
}

fn count_by_content(messages: impl IntoIterator<Item = Vec<u8>>) -> HashMap<Vec<u8>, usize> {
    let mut m = HashMap::new();
    for b in messages {
        *m.entry(b).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corpus_mboxrd_archive_lands_byte_exact_in_a_maildir() {
    let corpus = corpus_messages();
    assert!(corpus.len() > 200, "{}", corpus.len());
    let with_from_lines = corpus.iter().filter(|m| m.from_line.is_some()).count();
    let escaped = corpus
        .iter()
        .filter(|m| mboxrd_escape(&m.bytes) != m.bytes)
        .count();
    println!(
        "{} messages, {with_from_lines} with their own From line, {escaped} needing >From escaping",
        corpus.len()
    );
    assert!(escaped > 50);
    let messages: Vec<(String, Vec<u8>)> = corpus
        .iter()
        .map(|m| {
            (
                m.from_line.clone().unwrap_or_else(|| SYNTHETIC_FROM.into()),
                m.bytes.clone(),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("corpus.mbox");
    std::fs::write(&archive, write_mbox(&messages)).unwrap();
    let tree = dir.path().join("tree");
    let source = SourceSpec::Mbox(MboxSpec::new(&archive));
    let dest = SinkSpec::Maildir(MaildirSpec::new(&tree));
    let r = run(&source, &dest, "corpus").await;
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.copied as usize, messages.len());
    assert_eq!(r.folders[0].source, "corpus");

    // The files in the Maildir are the original messages, byte for byte.
    let cur = tree.join(".corpus/cur");
    let stored: Vec<Vec<u8>> = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    let want = count_by_content(messages.iter().map(|(_, b)| b.clone()));
    let got = count_by_content(stored);
    let missing: Vec<String> = want
        .keys()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| String::from_utf8_lossy(&k[..k.len().min(120)]).into_owned())
        .collect();
    assert!(missing.is_empty(), "not byte-exact: {missing:#?}");

    // Flags and INTERNALDATE too, by the library's own check.
    let v = engine::verify_between(
        &source,
        &dest,
        &Default::default(),
        &MessageFilter::default(),
    )
    .await
    .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_lines_flags_and_dates_into_dovecot() {
    let d = Dovecot::start(Flavour::DotInbox);
    let u = d.user("hal");
    let handmade: Vec<(String, Vec<u8>)> = vec![
        (
            "From alice@example.org Fri Jul  8 12:08:34 2011 -0700".into(),
            b"From: alice@example.org\r\nSubject: quoting\r\nStatus: RO\r\nX-Status: AF\r\n\r\n\
From the start of a line\r\n>From already quoted\r\n>>From twice\r\n\r\nFrom after a blank line\r\n"
                .to_vec(),
        ),
        (
            "From - Mon Jan  1 00:00:00 2001".into(),
            b"Subject: second\r\nX-Keywords: $Label1 Project\r\n\r\nbody\r\n\r\n".to_vec(),
        ),
        (
            "From bob@example.org Tue Feb  2 10:00:00 1999".into(),
            b"Subject: draft\r\nX-Status: T\r\n\r\n>\r\n".to_vec(),
        ),
    ];
    let mut messages = handmade.clone();
    // Real-world CRLF messages, which Dovecot keeps byte for byte.
    messages.extend(
        corpus_messages()
            .into_iter()
            .filter(|m| m.crlf_only)
            .map(|m| {
                (
                    m.from_line.unwrap_or_else(|| SYNTHETIC_FROM.into()),
                    m.bytes,
                )
            }),
    );
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("Inbox");
    std::fs::write(&archive, write_mbox(&messages)).unwrap();
    let source = SourceSpec::Mbox(MboxSpec::new(&archive));
    let da = account(&d, &u);
    let dest = SinkSpec::Imap(da.clone());
    let r = run(&source, &dest, "hal").await;
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.copied as usize, messages.len());
    assert_eq!(r.folders[0].target, "INBOX");

    let snap = snapshot(&da).await;
    let inbox = &snap.iter().find(|(f, _)| f == "INBOX").unwrap().1;
    let got = count_by_content(inbox.iter().map(|(b, _, _)| b.clone()));
    let want = count_by_content(messages.iter().map(|(_, b)| b.clone()));
    assert_eq!(got, want, "bodies are not byte-exact");
    let find = |subject: &[u8]| {
        inbox
            .iter()
            .find(|(b, _, _)| b.windows(subject.len()).any(|w| w == subject))
            .map(|(_, f, d)| (f.clone(), *d))
            .unwrap()
    };
    assert_eq!(
        find(b"Subject: quoting"),
        (
            "\\Answered \\Flagged \\Seen".to_string(),
            InternalDate::parse_imap("08-Jul-2011 12:08:34 -0700")
                .unwrap()
                .unix()
        )
    );
    assert_eq!(
        find(b"Subject: second"),
        ("$Label1 Project".to_string(), 978_307_200)
    );
    assert_eq!(find(b"Subject: draft").0, "\\Draft");
    let v = engine::verify_between(
        &source,
        &dest,
        &Default::default(),
        &MessageFilter::default(),
    )
    .await
    .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_archives_and_an_archive_that_grows() {
    let d = Dovecot::start(Flavour::Slash);
    let u = d.user("ida");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Mail");
    std::fs::create_dir_all(root.join("Projects.sbd")).unwrap();
    let from = |i: u32| format!("From x@example.org Mon Jan  {} 00:00:00 2001", i % 9 + 1);
    let msgs = |tag: &str, n: u32| -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (from(i), message(&format!("{tag} {i}"), 2)))
            .collect()
    };
    std::fs::write(root.join("Inbox"), write_mbox(&msgs("inbox", 3))).unwrap();
    std::fs::write(root.join("Sent Items.mbox"), write_mbox(&msgs("sent", 2))).unwrap();
    std::fs::write(root.join("Projects"), write_mbox(&msgs("projects", 1))).unwrap();
    std::fs::write(root.join("Projects.sbd/2019"), write_mbox(&msgs("2019", 2))).unwrap();
    std::fs::write(root.join("Projects.msf"), b"an index, not mail").unwrap();
    let source = SourceSpec::Mbox(MboxSpec::new(&root));
    let da = account(&d, &u);
    let dest = SinkSpec::Imap(da.clone());
    let state = state_file(&dir);
    let opts = options("ida");
    let go = || {
        engine::migrate_between(
            &source,
            &dest,
            &opts,
            state.clone(),
            None,
            CancellationToken::new(),
        )
    };
    let r = go().await.unwrap();
    assert!(r.is_complete(), "{r:#?}");
    assert_eq!(r.copied, 8);
    assert_eq!(count(&da, "INBOX").await, 3);
    // "Sent Items" is recognised as the sent folder; the hierarchy is kept.
    assert_eq!(count(&da, "Sent").await, 2);
    assert_eq!(count(&da, "Projects").await, 1);
    assert_eq!(count(&da, "Projects/2019").await, 2);
    assert_eq!(go().await.unwrap().copied, 0);

    // The archive grows: its UIDVALIDITY changes, the old messages are recognised by content,
    // and only the new one is copied.
    let mut grown = msgs("inbox", 3);
    grown.push((from(7), message("inbox new", 2)));
    std::fs::write(root.join("Inbox"), write_mbox(&grown)).unwrap();
    let r = go().await.unwrap();
    assert_eq!(r.copied, 1, "{r:#?}");
    assert_eq!(count(&da, "INBOX").await, 4);
    let v = engine::verify_between(&source, &dest, &opts.plan, &MessageFilter::default())
        .await
        .unwrap();
    assert!(v.is_identical(), "{v:#?}");
}

/// Paths reported as passed over, each with its reason.
fn skipped_by_path(skipped: &[SkippedEntry]) -> HashMap<String, String> {
    skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason.clone()))
        .collect()
}

/// Regression: a directory source passed over files that do not start with `From ` (and
/// hidden, unreadable, looping or clashing entries) without a word, while the same file given
/// alone is an error. Every entry not taken is now reported with its path and why; index
/// files that never hold mail are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_source_reports_every_file_it_does_not_import() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Mail");
    std::fs::create_dir_all(root.join("Projects.sbd")).unwrap();
    let mbox = write_mbox(&[(SYNTHETIC_FROM.into(), message("one", 1))]);
    std::fs::write(root.join("Inbox"), &mbox).unwrap();
    std::fs::write(root.join("Projects.sbd/2019"), &mbox).unwrap();
    // Not reported: indexes beside the archives, Finder's file.
    std::fs::write(
        root.join("Inbox.msf"),
        "// <!-- <mdb:mork:z v=\"1.4\"/> -->",
    )
    .unwrap();
    std::fs::write(root.join(".DS_Store"), "\0\0\0\x01Bud1").unwrap();
    // Reported.
    let notes = root.join("notes.txt");
    std::fs::write(&notes, "Subject: not an mbox\n\nhello\n").unwrap();
    let exported = root.join("Projects.sbd/exported.eml");
    std::fs::write(&exported, message("an eml, not an mbox", 1)).unwrap();
    let hidden = root.join(".Old");
    std::fs::write(&hidden, &mbox).unwrap();
    let clash = root.join("Inbox.mbox");
    std::fs::write(&clash, &mbox).unwrap();
    let looping = root.join("loop");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    let back = root.join("Projects.sbd/up");
    std::os::unix::fs::symlink(&root, &back).unwrap();
    let dangling = root.join("gone");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let socket = root.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let bad_name = root.join(std::ffi::OsStr::from_bytes(b"Caf\xe9"));
    std::fs::write(&bad_name, &mbox).unwrap();

    let mut src = SourceSpec::Mbox(MboxSpec::new(&root)).open().await.unwrap();
    let listed = src.list_folders().await.unwrap();
    let names: Vec<&str> = listed.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["INBOX", "Projects/2019"]);
    let skipped = skipped_by_path(&src.take_skipped());
    let p = |path: &std::path::Path| path.display().to_string();
    let reason = |path: &std::path::Path| {
        skipped
            .get(&p(path))
            .unwrap_or_else(|| panic!("{} not reported: {skipped:#?}", p(path)))
            .clone()
    };
    assert!(reason(&notes).contains("`From `"), "{skipped:#?}");
    assert!(reason(&exported).contains("`From `"), "{skipped:#?}");
    assert!(reason(&hidden).contains("hidden"), "{skipped:#?}");
    assert!(reason(&clash).contains("INBOX"), "{skipped:#?}");
    assert!(
        reason(&clash).contains(&p(&root.join("Inbox"))),
        "{skipped:#?}"
    );
    assert!(reason(&looping).contains("cannot be read"), "{skipped:#?}");
    assert!(reason(&back).contains("already"), "{skipped:#?}");
    assert!(reason(&dangling).contains("cannot be read"), "{skipped:#?}");
    assert!(
        reason(&socket).contains("not a regular file"),
        "{skipped:#?}"
    );
    assert!(reason(&bad_name).contains("UTF-8"), "{skipped:#?}");
    assert_eq!(skipped.len(), 9, "{skipped:#?}");
    // Reported once: the next call has nothing new, nor has reading the folders.
    assert!(src.take_skipped().is_empty());
    for f in &listed.folders {
        src.open_folder(f).await.unwrap();
        assert_eq!(src.messages().await.unwrap().len(), 1);
        assert!(src.take_skipped().is_empty());
    }
    src.close().await;
}

/// The same kind of file given alone stays a clear error naming the file and its first line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_file_that_is_not_an_mbox_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "Subject: not an mbox\n\nhello\n").unwrap();
    let mut src = SourceSpec::Mbox(MboxSpec::new(&notes))
        .open()
        .await
        .unwrap();
    let err = src.list_folders().await.unwrap_err().to_string();
    assert!(err.contains(&format!("{}:1", notes.display())), "{err}");
    assert!(err.contains("not an mbox"), "{err}");
    // A file that cannot be read says why, rather than "not an mbox".
    let looping = dir.path().join("loop");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    assert!(SourceSpec::Mbox(MboxSpec::new(&looping))
        .open()
        .await
        .is_err());
}
