//! The POP3 source against Dovecot's POP3 server (and, for the one defect Dovecot does not
//! have, a scripted server): login over every kind of connection, LIST sizes against RETR,
//! dot-stuffing, arrival dates from the headers, POP3 → IMAP migration, re-runs by UIDL.

use imapmig_testsupport as common;

use std::path::Path;
use std::time::Duration;

use common::*;
use imapmig_core::body::BodyEvent;
use imapmig_core::engine::{self, Account, MessageFilter};
use imapmig_core::imap::{AuthMethod, Credentials, Endpoint, Security, TlsVerify};
use imapmig_core::model::{Folder, MessageMeta, Uid};
use imapmig_core::sink::SinkSpec;
use imapmig_core::source::{
    AccessError, AnySource, ErrorKind, MigrationSource, Pop3Spec, SourceSpec,
};
use imapmig_testkit::{Dovecot, Flavour, TestUser};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

fn pop3_account(d: &Dovecot, u: &TestUser, security: Security) -> Account {
    let port = match security {
        Security::Tls => d.pop3s_port(),
        _ => d.pop3_port(),
    };
    let mut endpoint = Endpoint::new(d.host(), port, security);
    endpoint.verify = TlsVerify::CaFile(d.ca_file().to_path_buf());
    endpoint.timeout = Duration::from_secs(60);
    Account {
        endpoint,
        credentials: Credentials::password(u.name.clone(), u.password.clone()),
    }
}

fn inbox() -> Folder {
    Folder {
        name: "INBOX".into(),
        raw: "INBOX".into(),
        delimiter: None,
        attributes: Vec::new(),
        special_use: None,
    }
}

/// Every message of the inbox: metadata and body, read through the source.
async fn read_all(spec: &SourceSpec) -> Vec<(MessageMeta, Vec<u8>)> {
    let mut s: AnySource = spec.open().await.expect("open the POP3 source");
    s.open_folder(&inbox()).await.expect("open INBOX");
    let metas = s.messages().await.expect("messages");
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    s.request_bodies(&uids).await.expect("request");
    let mut out = Vec::new();
    while let Some(ev) = s.next_body().await.expect("body") {
        match ev {
            BodyEvent::Body(mut b) => {
                let uid = b.uid;
                let announced = b.len;
                let mut bytes = Vec::new();
                while let Some(c) = b.chunk().await.expect("chunk") {
                    bytes.extend_from_slice(&c);
                }
                assert_eq!(bytes.len() as u64, announced, "UID {uid}");
                let meta = metas.iter().find(|m| m.uid == uid).expect("meta").clone();
                out.push((meta, bytes));
            }
            BodyEvent::Missing(u) => panic!("UID {u} missing"),
            BodyEvent::Failed(u, s) => panic!("UID {u} failed: {}", s.describe()),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    s.close().await;
    out
}

/// A message of about `kib` KiB with lines that need dot-stuffing.
fn big(subject: &str, kib: usize, header: &str) -> Vec<u8> {
    let mut v =
        format!("{header}Subject: {subject}\r\nMessage-ID: <{subject}@big>\r\n\r\n").into_bytes();
    let mut i = 0;
    while v.len() < kib * 1024 {
        let line = match i % 7 {
            0 => ".starts with a dot\r\n".to_string(),
            1 => "..two dots\r\n".to_string(),
            2 => ".\r\n".to_string(),
            _ => format!("line {i} of {subject}, some text to make it longer\r\n"),
        };
        v.extend_from_slice(line.as_bytes());
        i += 1;
    }
    v
}

/// The inbox of the main test: large and small messages, every date case, every dot case.
fn pop3_inbox() -> Vec<Seed> {
    let received = "Received: from relay.example by mx.example (Postfix) with ESMTP id 1;\r\n\
                    \tTue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n\
                    Received: from client by relay.example; Mon, 30 Jun 2003 09:00:00 +0000\r\n\
                    Date: Sun, 29 Jun 2003 08:00:00 -0500\r\n";
    vec![
        // Large first: spooled while the server's sizes are not yet trusted.
        seed("INBOX", big("first-big", 300, received), "", None),
        seed("INBOX", message("small", 3), "", None),
        // Large after a small one proved the sizes right: streamed.
        seed(
            "INBOX",
            big("second-big", 200, "Date: 2 Jan 2010 12:00:00 +0900\r\n"),
            "\\Flagged",
            None,
        ),
        seed(
            "INBOX",
            &b"Subject: no final newline\r\nDate: Fri, 5 Mar 2021 07:00:00 +0000\r\n\r\nthe end"[..],
            "",
            None,
        ),
        seed(
            "INBOX",
            &b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n.\r\n"[..],
            "",
            None,
        ),
        seed(
            "INBOX",
            &b"Subject: bare LF\nDate: 7 Feb 1994 21:52:25 -0800\n\nline\n.dot\n"[..],
            "",
            None,
        ),
        // Twins are two messages.
        seed("INBOX", message("twin", 2), "", None),
        seed("INBOX", message("twin", 2), "", None),
        // Not in the inbox: POP3 does not see it.
        seed("Archive", message("elsewhere", 1), "", None),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_sizes_match_retr_and_dates_come_from_the_headers() {
    let d = Dovecot::start(Flavour::Slash);
    let u = d.user("ann");
    fill(&account(&d, &u), &pop3_inbox()).await;
    let dir = tempfile::tempdir().unwrap();
    let spec = SourceSpec::Pop3(Pop3Spec::new(
        pop3_account(&d, &u, Security::Cleartext),
        dir.path().join("ann.uids"),
    ));
    let all = read_all(&spec).await;
    assert_eq!(all.len(), 8);
    // What IMAP says the messages are.
    let imap = snapshot(&account(&d, &u)).await;
    let imap_inbox = &imap.iter().find(|(f, _)| f == "INBOX").unwrap().1;
    let mut imap_bodies: Vec<&Vec<u8>> = imap_inbox.iter().map(|(b, _, _)| b).collect();
    imap_bodies.sort();
    let mut pop_bodies: Vec<&Vec<u8>> = all.iter().map(|(_, b)| b).collect();
    pop_bodies.sort();
    assert_eq!(
        pop_bodies, imap_bodies,
        "POP3 bodies differ from IMAP's BODY[]"
    );
    for (meta, body) in &all {
        // Dovecot's LIST is exact, also for the message without a final newline, to which
        // RETR adds a CRLF that LIST does not count (and the source does not pass on).
        assert_eq!(
            meta.size,
            body.len() as u64,
            "LIST size of UID {}",
            meta.uid
        );
        assert!(meta.flags.is_empty(), "POP3 has no flags");
    }
    let date_of = |needle: &[u8]| {
        all.iter()
            .find(|(_, b)| memfind(b, needle))
            .and_then(|(m, _)| m.internal_date)
            .map(|d| d.to_imap())
            .unwrap_or_default()
    };
    // The topmost Received: wins over Date:, with its zone.
    assert_eq!(date_of(b"first-big"), "01-Jul-2003 10:52:37 +0200");
    assert_eq!(date_of(b"second-big"), "02-Jan-2010 12:00:00 +0900");
    assert_eq!(date_of(b"bare LF"), "07-Feb-1994 21:52:25 -0800");
    // Neither: when the message was first seen.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let small = all
        .iter()
        .find(|(_, b)| memfind(b, b"Subject: small"))
        .and_then(|(m, _)| m.internal_date)
        .expect("a date");
    assert!((small.unix() - now).abs() < 120, "{small}");
    // ... and the same on the next read (kept in the UID table).
    let again = read_all(&spec).await;
    let uids: Vec<(u32, i64)> = all
        .iter()
        .map(|(m, _)| (m.uid.0, m.internal_date.map(|d| d.unix()).unwrap_or(0)))
        .collect();
    let uids_again: Vec<(u32, i64)> = again
        .iter()
        .map(|(m, _)| (m.uid.0, m.internal_date.map(|d| d.unix()).unwrap_or(0)))
        .collect();
    assert_eq!(uids, uids_again);
    // Nothing was deleted.
    assert_eq!(count(&account(&d, &u), "INBOX").await, 8);
}

/// What [`snapshot`] returns.
type Snapshot = Vec<(String, Vec<(Vec<u8>, String, i64)>)>;

/// The INBOX bodies of a snapshot, sorted.
fn inbox_bodies(s: &Snapshot) -> Vec<Vec<u8>> {
    let mut b: Vec<Vec<u8>> = s
        .iter()
        .find(|(f, _)| f == "INBOX")
        .map(|(_, m)| m.iter().map(|x| x.0.clone()).collect())
        .unwrap_or_default();
    b.sort();
    b
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_to_imap_and_a_rerun_copies_only_new_uidls() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (su, du) = (src.user("ben"), dst.user("ben"));
    fill(&account(&src, &su), &pop3_inbox()).await;
    let dir = tempfile::tempdir().unwrap();
    let source = SourceSpec::Pop3(Pop3Spec::new(
        pop3_account(&src, &su, Security::Cleartext),
        dir.path().join("ben.uids"),
    ));
    let dest = SinkSpec::Imap(account(&dst, &du));
    let state = state_file(&dir);
    let opts = options("ben-pop3");
    let run = || {
        engine::migrate_between(
            &source,
            &dest,
            &opts,
            state.clone(),
            None,
            CancellationToken::new(),
        )
    };
    let report = run().await.expect("migration");
    assert!(report.is_complete(), "{report:#?}");
    assert_eq!(report.copied, 8, "{report:#?}");
    assert_eq!(report.folders.len(), 1);
    assert_eq!(report.folders[0].target, "INBOX");
    assert_eq!(count(&account(&dst, &du), "INBOX").await, 8);

    // Byte for byte what the source's IMAP says, with the dates from the headers.
    let v = engine::verify_between(&source, &dest, &opts.plan, &MessageFilter::default())
        .await
        .expect("verify");
    assert!(v.is_identical(), "{v:#?}");
    let src_inbox = snapshot(&account(&src, &su)).await;
    let dst_inbox = snapshot(&account(&dst, &du)).await;
    assert_eq!(inbox_bodies(&src_inbox), inbox_bodies(&dst_inbox));
    let dated = dst_inbox[0]
        .1
        .iter()
        .find(|(b, _, _)| memfind(b, b"first-big"))
        .map(|x| x.2);
    assert_eq!(dated, Some(1_057_049_557));

    // Again: nothing new, nothing copied.
    let again = run().await.expect("re-run");
    assert_eq!(again.copied, 0, "{again:#?}");
    assert_eq!(again.folders[0].already_there, 8);
    assert_eq!(count(&account(&dst, &du), "INBOX").await, 8);

    // New mail: only it is copied.
    fill(
        &account(&src, &su),
        &[seed("INBOX", message("new one", 4), "", None)],
    )
    .await;
    let third = run().await.expect("third run");
    assert_eq!(third.copied, 1, "{third:#?}");
    assert_eq!(count(&account(&dst, &du), "INBOX").await, 9);
    // The source still has everything.
    assert_eq!(count(&account(&src, &su), "INBOX").await, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stls_implicit_tls_auth_plain_and_user_pass() {
    let d = Dovecot::start(Flavour::Slash);
    let u = d.user("cat");
    fill(
        &account(&d, &u),
        &[seed("INBOX", message("hello", 2), "", None)],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    for (security, method) in [
        (Security::StartTls, AuthMethod::Plain),
        (Security::Tls, AuthMethod::Login),
        (Security::Tls, AuthMethod::Auto),
        (Security::Cleartext, AuthMethod::Login),
    ] {
        let mut a = pop3_account(&d, &u, security);
        a.credentials.method = method;
        let spec = imapmig_core::source::Pop3Source::open(&Pop3Spec::new(a, dir.path().join("x")))
            .await
            .unwrap_or_else(|e| panic!("{security:?} {method:?}: {e}\n{}", d.log_tail(20)));
        assert_eq!(spec.is_tls(), security != Security::Cleartext);
        assert!(
            spec.capabilities().iter().any(|c| c == "UIDL"),
            "{:?}",
            spec.capabilities()
        );
        spec.close().await;
    }
    // A master user acting for the mailbox owner (AUTH PLAIN with an authzid).
    let master = d.master_user();
    let mut a = pop3_account(&d, &u, Security::Tls);
    a.credentials = Credentials {
        user: master.name.clone(),
        secret: master.password.clone().into(),
        method: AuthMethod::Auto,
        authzid: Some(u.name.clone()),
    };
    let all = read_all(&SourceSpec::Pop3(Pop3Spec::new(a, dir.path().join("m")))).await;
    assert_eq!(all.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_permanent_error_naming_the_user() {
    let d = Dovecot::start(Flavour::Slash);
    let u = d.user("dan");
    let mut a = pop3_account(&d, &u, Security::Cleartext);
    a.credentials.secret = "wrong".to_string().into();
    let dir = tempfile::tempdir().unwrap();
    let err = match imapmig_core::source::Pop3Source::open(&Pop3Spec::new(a, dir.path().join("x")))
        .await
    {
        Ok(_) => panic!("logged in with a wrong password"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert!(text.contains("login as dan refused"), "{text}");
    assert!(!text.contains("wrong"), "the password leaked: {text}");
    assert!(!err.is_transient(), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Authentication, "{err:?}");
    // STLS asked of the implicit-TLS port: that server waits for a TLS handshake, we wait
    // for a greeting; the timeout ends it before any password is sent.
    let mut a = pop3_account(&d, &u, Security::StartTls);
    a.endpoint.port = d.pop3s_port();
    a.endpoint.timeout = Duration::from_secs(5);
    let err = match imapmig_core::source::Pop3Source::open(&Pop3Spec::new(a, dir.path().join("y")))
        .await
    {
        Ok(_) => panic!("STLS on the implicit-TLS port worked"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    // Implicit TLS to the cleartext port: the handshake fails, a TLS error as for IMAP.
    let mut a = pop3_account(&d, &u, Security::Tls);
    a.endpoint.port = d.pop3_port();
    let err = match imapmig_core::source::Pop3Source::open(&Pop3Spec::new(a, dir.path().join("t")))
        .await
    {
        Ok(_) => panic!("TLS on the cleartext port worked"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Tls, "{err:?}");
    // Nobody listening: a connection failure, worth retrying.
    let mut a = pop3_account(&d, &u, Security::Cleartext);
    a.endpoint.port = closed_port();
    let err = match imapmig_core::source::Pop3Source::open(&Pop3Spec::new(a, dir.path().join("z")))
        .await
    {
        Ok(_) => panic!("connected to a closed port"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Connection, "{err:?}");
    assert!(err.is_transient(), "{err:?}");
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------------------------
// A scripted POP3 server, for what Dovecot does not do: LIST sizes that are wrong.
// ---------------------------------------------------------------------------------------------

struct FakeMessage {
    uidl: &'static str,
    body: Vec<u8>,
    /// What LIST claims.
    list_size: usize,
}

fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Serves `messages` over POP3 (no PIPELINING, no TLS) to any number of sessions.
async fn fake_server(messages: Vec<FakeMessage>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages = std::sync::Arc::new(messages);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let messages = messages.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"+OK fake POP3 ready\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let n = |i: usize| {
                        words
                            .get(i)
                            .and_then(|w| w.parse::<usize>().ok())
                            .and_then(|n| n.checked_sub(1))
                            .and_then(|i| messages.get(i))
                    };
                    let reply: Vec<u8> = match words.first().copied().unwrap_or("") {
                        "CAPA" => b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n".to_vec(),
                        "USER" | "PASS" | "NOOP" => b"+OK\r\n".to_vec(),
                        "STAT" => format!("+OK {} 0\r\n", messages.len()).into_bytes(),
                        "UIDL" => {
                            let mut s = String::from("+OK\r\n");
                            for (i, m) in messages.iter().enumerate() {
                                s += &format!("{} {}\r\n", i + 1, m.uidl);
                            }
                            (s + ".\r\n").into_bytes()
                        }
                        "LIST" => {
                            let mut s = String::from("+OK\r\n");
                            for (i, m) in messages.iter().enumerate() {
                                s += &format!("{} {}\r\n", i + 1, m.list_size);
                            }
                            (s + ".\r\n").into_bytes()
                        }
                        "TOP" => match n(1) {
                            Some(m) => {
                                let end = m
                                    .body
                                    .windows(4)
                                    .position(|w| w == b"\r\n\r\n")
                                    .map_or(m.body.len(), |i| i + 4);
                                let mut v = b"+OK\r\n".to_vec();
                                v.extend(stuffed(&m.body[..end]));
                                v
                            }
                            None => b"-ERR no such message\r\n".to_vec(),
                        },
                        "RETR" => match n(1) {
                            Some(m) => {
                                let mut v = b"+OK\r\n".to_vec();
                                v.extend(stuffed(&m.body));
                                v
                            }
                            None => b"-ERR no such message\r\n".to_vec(),
                        },
                        "QUIT" => {
                            let _ = w.write_all(b"+OK bye\r\n").await;
                            return;
                        }
                        "DELE" => panic!("the source sent DELE"),
                        _ => b"-ERR unknown command\r\n".to_vec(),
                    };
                    if w.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn fake_spec(port: u16, map: &Path) -> SourceSpec {
    let mut endpoint = Endpoint::new("127.0.0.1", port, Security::Cleartext);
    endpoint.timeout = Duration::from_secs(10);
    SourceSpec::Pop3(Pop3Spec::new(
        Account {
            endpoint,
            credentials: Credentials::password("u", "p"),
        },
        map,
    ))
}

fn lines(n: usize, tag: &str) -> Vec<u8> {
    let mut v = format!("Subject: {tag}\r\n\r\n").into_bytes();
    for i in 0..n {
        v.extend_from_slice(format!(".{tag} line {i}\r\n").as_bytes());
    }
    v
}

/// A regression test for servers whose LIST sizes are wrong: no wrong length ever reaches a
/// destination; the mismatch is noted and the next session spools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_list_sizes_are_caught_and_then_spooled() {
    let small = lines(3, "small");
    let big = lines(20_000, "big");
    let messages = vec![
        FakeMessage {
            uidl: "u-small",
            list_size: small.len(),
            body: small.clone(),
        },
        // Claims to be 100 bytes shorter than it is.
        FakeMessage {
            uidl: "u-big",
            list_size: big.len() - 100,
            body: big.clone(),
        },
    ];
    let port = fake_server(messages).await;
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("fake.uids");
    let spec = fake_spec(port, &map);

    // First session: the small message proves the sizes right, so the big one is streamed,
    // and the reader refuses to hand out a message that does not match its length.
    let mut s = spec.open().await.unwrap();
    s.open_folder(&inbox()).await.unwrap();
    let metas = s.messages().await.unwrap();
    let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
    s.request_bodies(&uids).await.unwrap();
    let mut outcome = Vec::new();
    while let Some(ev) = s.next_body().await.unwrap() {
        if let BodyEvent::Body(mut b) = ev {
            let mut got = Vec::new();
            let res = loop {
                match b.chunk().await {
                    Ok(Some(c)) => got.extend_from_slice(&c),
                    Ok(None) => break Ok(got),
                    Err(e) => break Err(e.to_string()),
                }
            };
            outcome.push(res);
        }
    }
    s.close().await;
    assert_eq!(outcome[0].as_deref().ok(), Some(&small[..]));
    let err = outcome[1].clone().unwrap_err();
    assert!(
        err.contains("LIST size was wrong") && err.contains("u-big"),
        "{err}"
    );
    assert!(std::fs::read_to_string(&map)
        .unwrap()
        .contains("!sizes-unreliable"));

    // Second session: everything is spooled and comes out whole, with its real length.
    let all = read_all(&spec).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].1, big);
    // The UIDs did not move.
    assert_eq!(all[0].0.uid, metas[0].uid);
    assert_eq!(all[1].0.uid, metas[1].uid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_uidl_cannot_be_tracked_and_says_so() {
    // The scripted server answers UIDL; a server that refuses it is simulated by a port with
    // nothing but a greeting and -ERR for everything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"+OK hi\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let reply: &[u8] = if line.starts_with("USER") || line.starts_with("PASS") {
                        b"+OK\r\n"
                    } else if line.starts_with("STAT") {
                        b"+OK 1 10\r\n"
                    } else {
                        b"-ERR not here\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut s = fake_spec(port, &dir.path().join("x")).open().await.unwrap();
    s.open_folder(&inbox()).await.unwrap();
    let err: AccessError = s.messages().await.unwrap_err();
    assert!(err.to_string().contains("without UIDL"), "{err}");
    assert!(!err.is_transient());
}
