//! The IMAP client (`imapmig_core::imap::Session`) against real Dovecot servers.
//!
//! Every test starts its own Dovecot (imapmig-testkit), so the tests are independent and run in
//! parallel. One test per behaviour; each asserts what the server really does and prints what it
//! said where that helps a reader of the log (`cargo test --test client -- --nocapture`).

use imapmig_testsupport as common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::XorShift;
use imapmig_core::imap::{
    AuthMethod, BodyEvent, Credentials, Endpoint, ImapError, SearchKey, Security, Session,
    TlsVerify,
};
use imapmig_core::model::{Flags, InternalDate, SpecialUse, Uid};
use imapmig_core::secret::Secret;
use imapmig_core::wire::{ResponseCode, StatusKind};
use imapmig_testkit::{Dovecot, DovecotOptions, Flavour, TestUser};
use tokio::io::AsyncReadExt;

/// Longest wait for any single read or write in these tests.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The framer's default inline limit: bodies above it are streamed.
const INLINE_LIMIT: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// An endpoint for `server`: TLS and STARTTLS trust the testkit's CA.
fn endpoint(server: &Dovecot, security: Security) -> Endpoint {
    let port = match security {
        Security::Tls => server.imaps_port(),
        Security::StartTls | Security::Cleartext => server.imap_port(),
    };
    let mut ep = Endpoint::new(server.host(), port, security);
    ep.verify = TlsVerify::CaFile(server.ca_file().to_path_buf());
    ep.timeout = TIMEOUT;
    ep
}

fn creds(user: &TestUser) -> Credentials {
    Credentials::password(user.name.clone(), user.password.clone())
}

/// Logs `user` in over cleartext (loopback; cheapest on a 2-core machine).
async fn login(server: &Dovecot, user: &TestUser) -> Session {
    login_over(server, user, Security::Cleartext).await
}

async fn login_over(server: &Dovecot, user: &TestUser, security: Security) -> Session {
    match Session::open(&endpoint(server, security), &creds(user)).await {
        Ok(s) => s,
        Err(e) => panic!(
            "login of {} failed: {e}\n{}",
            user.name,
            server.log_tail(30)
        ),
    }
}

/// A printable ASCII character drawn from `rng`.
fn ascii(rng: &mut XorShift) -> u8 {
    const SET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:-_+=/()";
    SET[(rng.next_u64() % SET.len() as u64) as usize]
}

/// An RFC 5322 message of about `size` bytes with CRLF line ends (so the server stores it byte
/// for byte), a distinct subject, and pseudo-random body lines. `eight_bit` mixes in bytes
/// >= 0x80 (never NUL, CR or LF), as real mail in legacy charsets has.
fn message(subject: &str, date: &str, size: usize, seed: u64, eight_bit: bool) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{seed}.{subject_len}@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        subject_len = subject.len()
    )
    .into_bytes();
    // Reproducible pseudo-random lines: the same seed, the same message.
    let mut rng = XorShift::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    while m.len() + 2 < size {
        let line_len = (size - m.len() - 2).min(76);
        for _ in 0..line_len {
            let b = if eight_bit && rng.next_u64() % 7 == 0 {
                0x80 + (rng.next_u64() % 0x80) as u8
            } else {
                ascii(&mut rng)
            };
            m.push(b);
        }
        m.extend_from_slice(b"\r\n");
    }
    if m.len() < size {
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn small_message(subject: &str) -> Vec<u8> {
    message(
        subject,
        "Mon, 1 Mar 2021 10:00:00 +0000",
        600,
        subject.len() as u64,
        false,
    )
}

fn date(s: &str) -> InternalDate {
    InternalDate::parse_imap(s).unwrap_or_else(|| panic!("bad test date {s:?}"))
}

fn day(y: i32, m: time::Month, d: u8) -> time::Date {
    time::Date::from_calendar_date(y, m, d).unwrap()
}

fn flags(list: &[&str]) -> Flags {
    list.iter().copied().collect()
}

/// Appends and returns the new UID (Dovecot always has UIDPLUS).
async fn append(s: &mut Session, folder: &str, body: &[u8]) -> Uid {
    s.append(folder, &Flags::new(), None, body)
        .await
        .expect("APPEND")
        .expect("Dovecot answers APPEND with APPENDUID")
        .uid
}

/// Reads a whole fetched body through its `AsyncRead` side.
async fn read_all(body: &mut imapmig_core::imap::FetchedBody<'_>) -> Vec<u8> {
    let mut v = Vec::new();
    body.read_to_end(&mut v).await.expect("reading a body");
    v
}

// ---------------------------------------------------------------------------------------------
// 1. Connecting: cleartext, STARTTLS, implicit TLS, certificate checks
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cleartext_connection_logs_in_without_tls() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login_over(&server, &alice, Security::Cleartext).await;
    assert!(!s.is_tls());
    assert!(
        s.greeting().contains("Dovecot ready"),
        "greeting: {:?}",
        s.greeting()
    );
    s.select("INBOX").await.expect("SELECT INBOX after login");
    s.logout().await;
}

#[tokio::test]
async fn starttls_with_the_ca_file_upgrades_and_rereads_capabilities() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let s = Session::connect(&endpoint(&server, Security::StartTls))
        .await
        .expect("STARTTLS");
    assert!(s.is_tls());
    // Capabilities seen in clear are thrown away; Dovecot does not offer STARTTLS again, and
    // the list after TLS is the one we hold.
    assert!(
        !s.capabilities().has("STARTTLS"),
        "capabilities after STARTTLS still announce STARTTLS: {:?}",
        s.capabilities().list()
    );
    assert!(s.capabilities().has_auth("PLAIN"));
    drop(s);
    let mut s = login_over(&server, &alice, Security::StartTls).await;
    assert!(s.is_tls());
    s.select("INBOX").await.expect("SELECT over STARTTLS");
    s.logout().await;
}

#[tokio::test]
async fn implicit_tls_with_the_ca_file_logs_in() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login_over(&server, &alice, Security::Tls).await;
    assert!(s.is_tls());
    s.select("INBOX").await.expect("SELECT over TLS");
    s.logout().await;
}

#[tokio::test]
async fn untrusted_certificate_is_refused_for_tls_and_starttls() {
    let server = Dovecot::start(Flavour::Slash);
    for security in [Security::Tls, Security::StartTls] {
        let mut ep = endpoint(&server, security);
        // System roots only: the testkit's self-made CA is not among them.
        ep.verify = TlsVerify::System;
        match Session::connect(&ep).await {
            Err(ImapError::Tls { host, detail }) => {
                println!("{security:?} to an untrusted certificate: {detail}");
                assert_eq!(host, "127.0.0.1");
                assert!(
                    detail.to_ascii_lowercase().contains("certificate"),
                    "{security:?}: the TLS error should say it is about the certificate: {detail}"
                );
            }
            Err(other) => panic!("{security:?}: expected ImapError::Tls, got {other:?}"),
            Ok(_) => panic!("{security:?}: an untrusted certificate was accepted"),
        }
    }
}

#[tokio::test]
async fn insecure_mode_accepts_the_self_signed_certificate() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    for security in [Security::Tls, Security::StartTls] {
        let mut ep = endpoint(&server, security);
        ep.verify = TlsVerify::Insecure;
        let mut s = Session::open(&ep, &creds(&alice))
            .await
            .unwrap_or_else(|e| panic!("{security:?} with TlsVerify::Insecure: {e}"));
        assert!(s.is_tls());
        s.noop().await.expect("NOOP");
        s.logout().await;
    }
}

#[tokio::test]
async fn missing_ca_file_is_a_tls_error_naming_the_file() {
    let server = Dovecot::start(Flavour::Slash);
    let mut ep = endpoint(&server, Security::Tls);
    ep.verify = TlsVerify::CaFile("/nonexistent/imapmig-ca.pem".into());
    match Session::connect(&ep).await {
        Err(ImapError::Tls { detail, .. }) => {
            assert!(detail.contains("/nonexistent/imapmig-ca.pem"), "{detail}")
        }
        Err(other) => panic!("expected ImapError::Tls, got {other:?}"),
        Ok(_) => panic!("connected with a CA file that does not exist"),
    }
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut ep = Endpoint::new("127.0.0.1", port, Security::Cleartext);
    ep.timeout = TIMEOUT;
    match Session::connect(&ep).await {
        Err(e @ ImapError::Connect { .. }) => assert!(e.is_transient()),
        Err(other) => panic!("expected ImapError::Connect, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Authentication
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_password_is_authentication_failed_and_never_printed() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let wrong = "Wr0ng-Pa55\"word\\-xyzzy";
    for method in [AuthMethod::Login, AuthMethod::Plain] {
        let c = Credentials {
            user: alice.name.clone(),
            secret: Secret::new(wrong),
            method,
            authzid: None,
        };
        let err = match Session::open(&endpoint(&server, Security::Tls), &c).await {
            Err(e) => e,
            Ok(_) => panic!("{method:?}: a wrong password was accepted"),
        };
        let shown = format!("{err} / {err:?}");
        println!("{method:?}: {err}");
        match &err {
            ImapError::AuthenticationFailed {
                user, server_says, ..
            } => {
                assert_eq!(user, "alice");
                assert!(
                    server_says.contains("AUTHENTICATIONFAILED"),
                    "{method:?}: Dovecot's code should be kept: {server_says}"
                );
            }
            other => panic!("{method:?}: expected AuthenticationFailed, got {other:?}"),
        }
        assert!(!err.is_transient(), "a wrong password is not transient");
        for part in [wrong, "Wr0ng-Pa55", "xyzzy"] {
            assert!(
                !shown.contains(part),
                "{method:?}: the password leaked: {shown}"
            );
        }
        // The credentials themselves never print the secret either.
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("xyzzy"),
            "Credentials Debug leaked: {shown}"
        );
    }
}

#[tokio::test]
async fn login_and_plain_both_log_in() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    for method in [AuthMethod::Login, AuthMethod::Plain, AuthMethod::Auto] {
        let c = Credentials {
            method,
            ..creds(&alice)
        };
        let mut s = Session::open(&endpoint(&server, Security::Tls), &c)
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        // Logged in: a command that needs authentication works.
        s.select("INBOX")
            .await
            .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        s.logout().await;
    }
}

#[tokio::test]
async fn password_with_quotes_and_non_ascii_logs_in() {
    let server = Dovecot::start(Flavour::Slash);
    let odd = "p\"a\\s s{5}Grüße";
    server.set_password("carol", odd);
    let user = TestUser {
        name: "carol".into(),
        password: odd.into(),
    };
    // LOGIN cannot carry non-ASCII; the client says so instead of sending garbage.
    let c = Credentials {
        method: AuthMethod::Login,
        ..creds(&user)
    };
    match Session::open(&endpoint(&server, Security::Tls), &c).await {
        Err(ImapError::Sasl(why)) => assert!(why.contains("PLAIN"), "{why}"),
        Err(other) => panic!("expected a Sasl error for LOGIN, got {other:?}"),
        Ok(_) => panic!("LOGIN with a non-ASCII password should be refused by the client"),
    }
    // PLAIN carries it fine.
    let c = Credentials {
        method: AuthMethod::Plain,
        ..creds(&user)
    };
    let mut s = Session::open(&endpoint(&server, Security::Tls), &c)
        .await
        .expect("PLAIN with quotes, backslash, braces and UTF-8 in the password");
    s.noop().await.unwrap();
    // An ASCII password with quotes and backslashes goes through LOGIN's quoting.
    let ascii = "q\"uo\\te {3}";
    server.set_password("dave", ascii);
    let c = Credentials {
        user: "dave".into(),
        secret: Secret::new(ascii),
        method: AuthMethod::Login,
        authzid: None,
    };
    Session::open(&endpoint(&server, Security::Tls), &c)
        .await
        .expect("LOGIN with quotes and backslashes in the password");
}

#[tokio::test]
async fn auto_uses_login_when_plain_is_not_offered() {
    let server = Dovecot::start_with(
        Flavour::Slash,
        DovecotOptions {
            extra_config: Some("auth_mechanisms = login".into()),
            ..DovecotOptions::default()
        },
    );
    let alice = server.user("alice");
    let s = Session::connect(&endpoint(&server, Security::Tls))
        .await
        .unwrap();
    assert!(
        !s.capabilities().has_auth("PLAIN"),
        "{:?}",
        s.capabilities().list()
    );
    drop(s);
    // Auto sends the LOGIN command. (Dovecot runs LOGIN through its PLAIN mechanism, so with
    // PLAIN switched off it refuses the login itself: that answer proves LOGIN was sent, where
    // AUTHENTICATE PLAIN would have been stopped by the client as MissingCapability.)
    match Session::open(&endpoint(&server, Security::Tls), &creds(&alice)).await {
        Err(ImapError::AuthenticationFailed { server_says, .. }) => {
            println!("Dovecot without PLAIN answers LOGIN with: {server_says}");
            assert!(server_says.contains("Unsupported authentication mechanism"));
        }
        Err(other) => panic!("expected the server to refuse LOGIN, got {other:?}"),
        Ok(_) => panic!("Dovecot accepted LOGIN without its PLAIN mechanism"),
    }
    // PLAIN asked for by name is not silently replaced.
    let c = Credentials {
        method: AuthMethod::Plain,
        ..creds(&alice)
    };
    match Session::open(&endpoint(&server, Security::Tls), &c).await {
        Err(ImapError::MissingCapability { capability, .. }) => {
            assert_eq!(capability, "AUTH=PLAIN")
        }
        Err(other) => panic!("expected MissingCapability, got {other:?}"),
        Ok(_) => panic!("PLAIN worked on a server that does not offer it"),
    }
}

#[tokio::test]
async fn master_user_acts_for_the_target_user() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let master = server.master_user();
    let c = Credentials {
        user: master.name.clone(),
        secret: Secret::new(master.password.clone()),
        method: AuthMethod::Plain,
        authzid: Some("alice".into()),
    };
    let mut admin = Session::open(&endpoint(&server, Security::Tls), &c)
        .await
        .unwrap_or_else(|e| panic!("master login: {e}\n{}", server.log_tail(20)));
    let body = small_message("put there by the master user");
    let uid = append(&mut admin, "INBOX", &body).await;
    admin.logout().await;

    // Alice, logged in as herself, sees it.
    let mut s = login(&server, &alice).await;
    s.select("INBOX").await.unwrap();
    assert_eq!(s.uid_search(&[SearchKey::All]).await.unwrap(), vec![uid]);
    let got = s.fetch_bodies_collected(&[uid]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1.as_ref(), body.as_slice());

    // Acting for someone needs PLAIN: LOGIN cannot carry an authzid, and the client says so.
    let c = Credentials {
        method: AuthMethod::Login,
        ..c
    };
    match Session::open(&endpoint(&server, Security::Tls), &c).await {
        Err(ImapError::Sasl(why)) => assert!(why.contains("PLAIN"), "{why}"),
        Err(other) => panic!("expected a Sasl error, got {other:?}"),
        Ok(_) => panic!("LOGIN with an authzid should be refused by the client"),
    }
}

#[tokio::test]
async fn master_user_with_wrong_password_is_refused() {
    let server = Dovecot::start(Flavour::Slash);
    server.user("alice");
    let c = Credentials {
        user: server.master_user().name,
        secret: Secret::new("not-the-master-password"),
        method: AuthMethod::Plain,
        authzid: Some("alice".into()),
    };
    match Session::open(&endpoint(&server, Security::Tls), &c).await {
        Err(ImapError::AuthenticationFailed { server_says, .. }) => println!("{server_says}"),
        Err(other) => panic!("expected AuthenticationFailed, got {other:?}"),
        Ok(_) => panic!("a wrong master password was accepted"),
    }
}

// ---------------------------------------------------------------------------------------------
// 3. CAPABILITY, ID, NAMESPACE
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn capability_lists_what_dovecot_offers() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let caps = s.capability().await.expect("CAPABILITY").clone();
    println!("Dovecot capabilities after login: {:?}", caps.list());
    for c in [
        "IMAP4rev1",
        "UIDPLUS",
        "LITERAL+",
        "CONDSTORE",
        "SPECIAL-USE",
        "LIST-EXTENDED",
        "LIST-STATUS",
        "IDLE",
        "NAMESPACE",
        "ID",
        "QUOTA",
        "MULTIAPPEND",
        "MOVE",
        "ENABLE",
    ] {
        assert!(
            caps.has(c),
            "Dovecot should announce {c}: {:?}",
            caps.list()
        );
        assert!(
            caps.has(&c.to_ascii_lowercase()),
            "has() is case-insensitive"
        );
    }
    assert!(!caps.has("X-NO-SUCH-EXTENSION"));
    // Dovecot 2.3 does not announce APPENDLIMIT (see DovecotOptions::max_message_size).
    assert_eq!(caps.append_limit(), None);
    // After login the list is the post-login one: AUTH= mechanisms are gone.
    assert!(!caps.has_auth("PLAIN"), "{:?}", caps.list());
}

#[tokio::test]
async fn capabilities_before_login_offer_auth_mechanisms() {
    let server = Dovecot::start(Flavour::Slash);
    let s = Session::connect(&endpoint(&server, Security::Tls))
        .await
        .unwrap();
    let caps = s.capabilities();
    println!("Dovecot capabilities before login: {:?}", caps.list());
    assert!(
        caps.has_auth("PLAIN") && caps.has_auth("LOGIN"),
        "{:?}",
        caps.list()
    );
    assert!(caps.has("SASL-IR"));
    assert!(!caps.has("LOGINDISABLED"));
}

#[tokio::test]
async fn id_returns_the_servers_fields() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let id = s
        .id()
        .await
        .expect("ID")
        .expect("Dovecot answers ID with fields");
    println!("ID: {id:?}");
    assert_eq!(
        id.get("name").map(String::as_str),
        Some("Dovecot"),
        "{id:?}"
    );
}

async fn check_namespace(flavour: Flavour, prefix: &str, delimiter: char) {
    let server = Dovecot::start(flavour);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let ns = s.namespace().await.expect("NAMESPACE");
    assert_eq!(ns.prefix, prefix, "{flavour:?}");
    assert_eq!(ns.delimiter, Some(delimiter), "{flavour:?}");
}

#[tokio::test]
async fn namespace_of_slash_server_is_empty_prefix_and_slash() {
    check_namespace(Flavour::Slash, "", '/').await;
}

#[tokio::test]
async fn namespace_of_dot_inbox_server_is_inbox_dot() {
    check_namespace(Flavour::DotInbox, "INBOX.", '.').await;
}

// ---------------------------------------------------------------------------------------------
// 4. LIST, STATUS, SELECT, EXAMINE
// ---------------------------------------------------------------------------------------------

async fn check_special_use(flavour: Flavour) {
    let server = Dovecot::start(flavour);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let folders = s.list().await.expect("LIST");
    for f in &folders {
        println!(
            "{flavour:?}: {:?} {:?} {:?}",
            f.name, f.attributes, f.special_use
        );
    }
    let inbox = folders
        .iter()
        .find(|f| f.raw == "INBOX")
        .expect("INBOX is listed");
    assert!(inbox.is_inbox() && inbox.selectable());
    assert_eq!(inbox.special_use, None);
    for (name, attr) in flavour.special_use_folders() {
        let f = folders
            .iter()
            .find(|f| f.raw == name)
            .unwrap_or_else(|| panic!("{flavour:?}: {name} is not listed"));
        assert_eq!(f.name, name);
        assert_eq!(f.delimiter, Some(flavour.separator()));
        assert_eq!(f.special_use, SpecialUse::from_attribute(attr), "{name}");
        assert!(
            f.attributes.iter().any(|a| a == attr),
            "{name}: {:?}",
            f.attributes
        );
    }
    let sent = flavour.folder_name(&[if flavour == Flavour::Slash {
        "Sent"
    } else {
        "Sent Items"
    }]);
    let f = folders.iter().find(|f| f.raw == sent).unwrap();
    assert_eq!(f.special_use, Some(SpecialUse::Sent));
    assert_eq!(folders.len(), 6, "INBOX and five special-use folders");
}

#[tokio::test]
async fn list_reports_special_use_on_slash_server() {
    check_special_use(Flavour::Slash).await;
}

#[tokio::test]
async fn list_reports_special_use_on_dot_inbox_server() {
    check_special_use(Flavour::DotInbox).await;
}

#[tokio::test]
async fn list_with_status_counts_messages() {
    let server = Dovecot::start(Flavour::DotInbox);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let work = "INBOX.Work";
    s.create(work).await.unwrap();
    for i in 0..3 {
        let f = if i == 0 {
            flags(&["\\Seen"])
        } else {
            Flags::new()
        };
        s.append(work, &f, None, &small_message(&format!("w{i}")))
            .await
            .unwrap();
    }
    append(&mut s, "INBOX", &small_message("in")).await;
    let all = s.list_with_status().await.expect("LIST-STATUS");
    let get = |raw: &str| {
        all.iter()
            .find(|(f, _)| f.raw == raw)
            .unwrap_or_else(|| panic!("{raw} not listed"))
            .1
            .clone()
    };
    let w = get(work);
    assert_eq!(w.messages, Some(3));
    assert_eq!(w.unseen, Some(2));
    assert_eq!(w.uid_next, Some(4));
    assert!(w.uid_validity.is_some());
    assert!(w.highest_modseq.is_some_and(|m| m > 0), "{w:?}");
    let i = get("INBOX");
    assert_eq!(i.messages, Some(1));
    assert_eq!(get("INBOX.Drafts").messages, Some(0));
    // The same numbers as STATUS gives.
    let st = s.status(work).await.unwrap();
    assert_eq!(st, w);
}

#[tokio::test]
async fn status_reports_counts_and_uidnext() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let empty = s.status("Sent").await.expect("STATUS");
    assert_eq!(empty.messages, Some(0));
    assert_eq!(empty.uid_next, Some(1));
    for i in 0..2 {
        append(&mut s, "Sent", &small_message(&format!("s{i}"))).await;
    }
    let st = s.status("Sent").await.unwrap();
    assert_eq!(st.messages, Some(2));
    assert_eq!(st.unseen, Some(2));
    assert_eq!(st.uid_next, Some(3));
    assert_eq!(st.uid_validity, empty.uid_validity);
    assert!(
        st.highest_modseq > empty.highest_modseq,
        "{empty:?} -> {st:?}"
    );
    match s.status("No Such Folder").await {
        Err(e @ ImapError::Refused { .. }) => println!("STATUS of a missing folder: {e}"),
        other => panic!("expected Refused, got {other:?}"),
    }
}

#[tokio::test]
async fn select_and_examine_report_the_folder_state() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    append(&mut s, "INBOX", &small_message("one")).await;
    append(&mut s, "INBOX", &small_message("two")).await;
    let status = s.status("INBOX").await.unwrap();

    let sel = s.select("INBOX").await.expect("SELECT").clone();
    println!("SELECT: {sel:?}");
    assert_eq!(sel.raw, "INBOX");
    assert_eq!(sel.exists, 2);
    assert_eq!(sel.uid_validity, status.uid_validity);
    assert!(sel.uid_validity.is_some());
    assert_eq!(sel.uid_next, Some(3));
    assert!(
        sel.highest_modseq.is_some_and(|m| m > 0),
        "CONDSTORE: {sel:?}"
    );
    let pf = sel.permanent_flags.as_ref().expect("PERMANENTFLAGS");
    for f in [
        "\\Seen",
        "\\Deleted",
        "\\Flagged",
        "\\Answered",
        "\\Draft",
        "\\*",
    ] {
        assert!(
            pf.iter().any(|x| x == f),
            "PERMANENTFLAGS lacks {f}: {pf:?}"
        );
    }
    assert!(sel.accepts_new_keywords());
    assert!(sel.accepts("\\seen") && sel.accepts("$Forwarded"));
    assert!(!sel.read_only);
    assert_eq!(s.selected().map(|x| x.raw.as_str()), Some("INBOX"));

    let ex = s.examine("Sent").await.expect("EXAMINE").clone();
    println!("EXAMINE: {ex:?}");
    assert!(ex.read_only);
    assert_eq!(ex.exists, 0);
    assert_eq!(ex.uid_next, Some(1));
    assert_eq!(s.selected().map(|x| x.raw.as_str()), Some("Sent"));
}

#[tokio::test]
async fn examine_and_peek_leave_seen_alone() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let uid = append(&mut s, "INBOX", &small_message("unread")).await;
    // A body fetch after SELECT uses BODY.PEEK: \Seen must not be set.
    s.select("INBOX").await.unwrap();
    s.fetch_bodies_collected(&[uid]).await.unwrap();
    let meta = s.fetch_meta("1:*", None).await.unwrap();
    assert!(!meta[0].flags.contains("\\Seen"), "{:?}", meta[0].flags);
    assert_eq!(s.status("INBOX").await.unwrap().unseen, Some(1));
}

// ---------------------------------------------------------------------------------------------
// 5. Folder names: CREATE, LIST, SUBSCRIBE round trips
// ---------------------------------------------------------------------------------------------

/// Creates every name (decoded Unicode), then checks LIST gives each back decoded exactly,
/// with the wire form the client would send, and that SUBSCRIBE reached the server.
async fn check_names_round_trip(flavour: Flavour, names: &[&str]) {
    let server = Dovecot::start(flavour);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let mut raws = Vec::new();
    for name in names {
        let raw = s.encode_name(name);
        s.create(&raw)
            .await
            .unwrap_or_else(|e| panic!("CREATE {name:?} as {raw:?}: {e}"));
        s.subscribe(&raw)
            .await
            .unwrap_or_else(|e| panic!("SUBSCRIBE {name:?}: {e}"));
        raws.push(raw);
    }
    let folders = s.list().await.expect("LIST");
    for (name, raw) in names.iter().zip(&raws) {
        let f = folders.iter().find(|f| f.raw == *raw).unwrap_or_else(|| {
            panic!(
                "{name:?} ({raw:?}) not listed; LIST gave {:?}",
                folders
                    .iter()
                    .map(|f| (&f.name, &f.raw))
                    .collect::<Vec<_>>()
            )
        });
        assert_eq!(f.name, *name, "decoded name of {raw:?}");
        assert!(f.selectable(), "{name:?}: {:?}", f.attributes);
        // The listed wire name opens the folder.
        let sel = s.select(&f.raw).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sel.exists, 0);
        let st = s.status(&f.raw).await.unwrap();
        assert_eq!(st.messages, Some(0));
    }
    // The server really subscribed them (doveadm prints names decoded).
    let subscribed = server.doveadm_ok(&["mailbox", "list", "-s", "-u", "alice"]);
    for name in names {
        assert!(
            subscribed.lines().any(|l| l.trim() == *name),
            "{name:?} not subscribed; doveadm says:\n{subscribed}"
        );
    }
}

#[tokio::test]
async fn unicode_folder_names_round_trip_on_slash_server() {
    check_names_round_trip(
        Flavour::Slash,
        &[
            "已发送",
            "已发送/旧邮件",
            "送信済みアイテム",
            "Entwürfe & Notizen",
            "Отправленные",
            "Archiv/2019/Überweisungen",
            "emoji 📬 box",
        ],
    )
    .await;
}

#[tokio::test]
async fn unicode_folder_names_round_trip_on_dot_inbox_server() {
    check_names_round_trip(
        Flavour::DotInbox,
        &[
            "INBOX.已发送",
            "INBOX.已发送.旧邮件",
            "INBOX.送信済みアイテム",
            "INBOX.Entwürfe & Notizen",
        ],
    )
    .await;
}

#[tokio::test]
async fn odd_ascii_folder_names_round_trip() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    // (name, whether Dovecot must accept it). '*' and '%' are LIST wildcards, which Dovecot
    // may refuse in names; the others are plain characters in a quoted string.
    let cases: &[(&str, bool)] = &[
        ("a+b", true),
        ("Tom & Jerry", true),
        ("&", true),
        ("&-", true),
        ("quote\"d", true),
        ("back\\slash", true),
        ("brackets [x] (y) {3}", true),
        ("star*name", false),
        ("per%cent", false),
    ];
    let mut created = Vec::new();
    for (name, must) in cases {
        let raw = s.encode_name(name);
        match s.create(&raw).await {
            Ok(()) => created.push((*name, raw)),
            Err(e @ ImapError::Refused { .. }) if !must => {
                println!("Dovecot refuses {name:?}: {e}");
            }
            Err(e) => panic!("CREATE {name:?} ({raw:?}): {e}"),
        }
    }
    let folders = s.list().await.expect("LIST");
    let listed: Vec<_> = folders.iter().map(|f| (&f.name, &f.raw)).collect();
    println!("LIST: {listed:?}");
    for (name, raw) in &created {
        let f = folders
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("{name:?} not listed exactly; LIST gave {listed:?}"));
        assert_eq!(&f.raw, raw, "wire name of {name:?}");
        s.select(&f.raw)
            .await
            .unwrap_or_else(|e| panic!("SELECT of listed {name:?}: {e}"));
        let uid = append(&mut s, &f.raw, &small_message(name)).await;
        assert_eq!(uid, Uid(1));
    }
}

#[tokio::test]
async fn creating_an_existing_folder_is_ok() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    s.create("Projects").await.expect("first CREATE");
    s.create("Projects")
        .await
        .expect("second CREATE of the same folder");
    s.create("Sent")
        .await
        .expect("CREATE of an auto-created folder");
    s.create("INBOX").await.expect("CREATE INBOX");
    let n = s
        .list()
        .await
        .unwrap()
        .iter()
        .filter(|f| f.raw == "Projects")
        .count();
    assert_eq!(n, 1);
    // A real failure is still an error.
    match s.create("bad\u{1}name").await {
        Err(ImapError::Refused { status, .. }) => {
            println!("CREATE with a control char: {status:?}")
        }
        other => panic!("expected CREATE to be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn create_with_special_use_where_offered() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    s.create_with_use("Mein Archiv", Some(SpecialUse::Archive))
        .await
        .expect("CREATE with USE");
    let f = s
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.raw == "Mein Archiv")
        .expect("listed");
    if s.capabilities().has("CREATE-SPECIAL-USE") {
        assert_eq!(
            f.special_use,
            Some(SpecialUse::Archive),
            "{:?}",
            f.attributes
        );
    } else {
        println!("Dovecot does not offer CREATE-SPECIAL-USE; the folder is plain: {f:?}");
    }
}

#[tokio::test]
async fn folder_name_with_line_break_is_unsendable() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    match s.create("two\r\nlines").await {
        Err(ImapError::Unsendable { what, .. }) => assert_eq!(what, "folder name"),
        other => panic!("expected Unsendable, got {other:?}"),
    }
    // Nothing went on the wire: the session is fine.
    s.noop().await.expect("NOOP after a refused name");
}

// ---------------------------------------------------------------------------------------------
// 6. APPEND, FETCH, STORE, SEARCH, IDLE, QUOTA, NOOP, LOGOUT
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn append_with_flags_and_date_round_trips() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let body = message(
        "with flags",
        "Sun, 14 Mar 2021 09:26:53 +0530",
        5000,
        7,
        true,
    );
    let f = flags(&["\\Seen", "\\Flagged", "\\Answered", "$Forwarded", "Work"]);
    let when = date("14-Mar-2021 09:26:53 +0530");
    let au = s
        .append("INBOX", &f, Some(&when), &body)
        .await
        .expect("APPEND")
        .expect("APPENDUID");
    let sel = s.select("INBOX").await.unwrap().clone();
    assert_eq!(Some(au.validity), sel.uid_validity);
    assert_eq!(au.uid, Uid(1));
    let meta = s.fetch_meta("1:*", None).await.expect("FETCH meta");
    assert_eq!(meta.len(), 1);
    let m = &meta[0];
    println!("fetched meta: {m:?}");
    assert_eq!(m.uid, au.uid);
    assert_eq!(m.flags, f, "flags (\\Recent is never kept)");
    let got = m.internal_date.expect("INTERNALDATE");
    // The instant is kept exactly; Dovecot's maildir answers in its own zone.
    assert_eq!(got.unix(), when.unix(), "{got} vs {when}");
    assert_eq!(m.size, body.len() as u64);
    assert!(m.modseq.is_some());
    let bodies = s.fetch_bodies_collected(&[au.uid]).await.unwrap();
    assert_eq!(bodies[0].1.as_ref(), body.as_slice());
}

#[tokio::test]
async fn append_without_date_gets_now() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    append(&mut s, "INBOX", &small_message("now")).await;
    s.select("INBOX").await.unwrap();
    let m = s.fetch_meta("1", None).await.unwrap();
    let d = m[0].internal_date.unwrap().unix();
    assert!((d - before).abs() < 60, "INTERNALDATE {d} vs now {before}");
}

#[tokio::test]
async fn uid_store_replaces_adds_and_removes_flags() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let a = append(&mut s, "INBOX", &small_message("a")).await;
    let b = append(&mut s, "INBOX", &small_message("b")).await;
    s.select("INBOX").await.unwrap();
    let flags_of = |meta: &[imapmig_core::model::MessageMeta], uid: Uid| {
        meta.iter().find(|m| m.uid == uid).unwrap().flags.clone()
    };

    s.uid_store(&a.to_string(), "", &flags(&["\\Seen", "Work"]))
        .await
        .expect("replace");
    let meta = s.fetch_meta("1:*", None).await.unwrap();
    assert_eq!(flags_of(&meta, a), flags(&["\\Seen", "Work"]));
    assert_eq!(flags_of(&meta, b), Flags::new());

    s.uid_store(&format!("{a},{b}"), "+", &flags(&["\\Flagged", "$Label1"]))
        .await
        .expect("add");
    let meta = s.fetch_meta("1:*", None).await.unwrap();
    assert_eq!(
        flags_of(&meta, a),
        flags(&["\\Seen", "Work", "\\Flagged", "$Label1"])
    );
    assert_eq!(flags_of(&meta, b), flags(&["\\Flagged", "$Label1"]));

    s.uid_store("1:*", "-", &flags(&["\\Seen", "$Label1"]))
        .await
        .expect("remove");
    let meta = s.fetch_meta("1:*", None).await.unwrap();
    assert_eq!(flags_of(&meta, a), flags(&["Work", "\\Flagged"]));
    assert_eq!(flags_of(&meta, b), flags(&["\\Flagged"]));

    // Replace with nothing clears.
    s.uid_store(&b.to_string(), "", &Flags::new())
        .await
        .unwrap();
    let meta = s.fetch_meta(&b.to_string(), None).await.unwrap();
    assert_eq!(meta[0].flags, Flags::new());

    // CHANGEDSINCE: only what changed after a MODSEQ.
    let modseq = s.select("INBOX").await.unwrap().highest_modseq.unwrap();
    s.uid_store(&a.to_string(), "+", &flags(&["\\Answered"]))
        .await
        .unwrap();
    let changed = s.fetch_meta("1:*", Some(modseq)).await.unwrap();
    assert_eq!(changed.iter().map(|m| m.uid).collect::<Vec<_>>(), vec![a]);
}

#[tokio::test]
async fn uid_store_needs_a_selected_folder_and_atom_keywords() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    assert!(matches!(
        s.uid_store("1", "+", &flags(&["\\Seen"])).await,
        Err(ImapError::Protocol { .. })
    ));
    append(&mut s, "INBOX", &small_message("k")).await;
    s.select("INBOX").await.unwrap();
    match s.uid_store("1", "+", &flags(&["two words"])).await {
        Err(ImapError::Unsendable { what, .. }) => assert_eq!(what, "keyword"),
        other => panic!("expected Unsendable, got {other:?}"),
    }
    s.noop().await.unwrap();
}

#[tokio::test]
async fn uid_search_by_dates_and_size() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    // (INTERNALDATE, Date header, size). Noon UTC keeps clear of any day boundary.
    let msgs = [
        (
            "10-Jan-2020 12:00:00 +0000",
            "Fri, 10 Jan 2020 12:00:00 +0000",
            1_000,
        ),
        (
            "15-Jun-2021 12:00:00 +0000",
            "Wed, 1 Jan 2014 12:00:00 +0000",
            20_000,
        ),
        (
            "01-Mar-2023 12:00:00 +0000",
            "Wed, 1 Mar 2023 12:00:00 +0000",
            3_000,
        ),
        (
            "20-Dec-2023 12:00:00 +0000",
            "Wed, 20 Dec 2023 12:00:00 +0000",
            50_000,
        ),
    ];
    let mut uids = Vec::new();
    for (i, (idate, hdate, size)) in msgs.iter().enumerate() {
        let body = message(&format!("m{i}"), hdate, *size, i as u64, false);
        let au = s
            .append("INBOX", &Flags::new(), Some(&date(idate)), &body)
            .await
            .unwrap()
            .unwrap();
        uids.push(au.uid);
    }
    s.select("INBOX").await.unwrap();
    use time::Month::*;
    let cases: Vec<(Vec<SearchKey>, Vec<Uid>)> = vec![
        (vec![SearchKey::All], uids.clone()),
        (vec![], uids.clone()),
        (
            vec![SearchKey::Since(day(2021, January, 1))],
            uids[1..].to_vec(),
        ),
        (
            vec![SearchKey::Before(day(2021, January, 1))],
            vec![uids[0]],
        ),
        (
            vec![
                SearchKey::Since(day(2021, January, 1)),
                SearchKey::Before(day(2023, June, 1)),
            ],
            vec![uids[1], uids[2]],
        ),
        // SINCE is inclusive of the day itself.
        (
            vec![SearchKey::Since(day(2023, December, 20))],
            vec![uids[3]],
        ),
        (vec![SearchKey::Before(day(2020, January, 10))], vec![]),
        // The Date header of message 2 says 2014: SENTSINCE/SENTBEFORE look at it.
        (
            vec![SearchKey::SentSince(day(2020, January, 1))],
            vec![uids[0], uids[2], uids[3]],
        ),
        (
            vec![SearchKey::SentBefore(day(2015, January, 1))],
            vec![uids[1]],
        ),
        (vec![SearchKey::Larger(10_000)], vec![uids[1], uids[3]]),
        (vec![SearchKey::Smaller(10_000)], vec![uids[0], uids[2]]),
        (
            vec![
                SearchKey::Larger(10_000),
                SearchKey::Since(day(2022, January, 1)),
            ],
            vec![uids[3]],
        ),
        (
            vec![SearchKey::UidRange(uids[1].0, uids[2].0)],
            vec![uids[1], uids[2]],
        ),
    ];
    for (keys, want) in cases {
        let got = s
            .uid_search(&keys)
            .await
            .unwrap_or_else(|e| panic!("{keys:?}: {e}"));
        assert_eq!(got, want, "UID SEARCH {keys:?}");
    }
    s.uid_store(&uids[2].to_string(), "+", &flags(&["\\Seen", "Work"]))
        .await
        .unwrap();
    assert_eq!(
        s.uid_search(&[SearchKey::Flag("\\Seen".into())])
            .await
            .unwrap(),
        vec![uids[2]]
    );
    assert_eq!(
        s.uid_search(&[SearchKey::Flag("Work".into())])
            .await
            .unwrap(),
        vec![uids[2]]
    );
}

#[tokio::test]
async fn uid_search_without_a_selected_folder_is_an_error() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    assert!(matches!(
        s.uid_search(&[SearchKey::All]).await,
        Err(ImapError::Protocol { .. })
    ));
}

/// Messages on both sides of the inline limit, with 8-bit bytes: (subject, size).
fn mixed_messages() -> Vec<Vec<u8>> {
    let sizes = [
        900,
        INLINE_LIMIT - 1,
        INLINE_LIMIT + 1,
        120_000,
        3 * 1024 * 1024 + 17,
        40,
        700_000,
        INLINE_LIMIT,
    ];
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            message(
                &format!("mixed {i}"),
                "Tue, 2 Feb 2021 10:00:00 +0100",
                size.max(400),
                100 + i as u64,
                i % 2 == 0,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_body_fetch_is_byte_exact_inline_and_streamed() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    // TLS: reads arrive in TLS-record-sized pieces, a different split than cleartext.
    let mut s = login_over(&server, &alice, Security::Tls).await;
    let msgs = mixed_messages();
    let mut by_uid = BTreeMap::new();
    for m in &msgs {
        let uid = append(&mut s, "INBOX", m).await;
        by_uid.insert(uid, m);
    }
    s.select("INBOX").await.unwrap();
    let uids: Vec<Uid> = by_uid.keys().copied().collect();
    s.send_fetch_bodies(&uids).await.expect("send fetches");
    assert_eq!(s.fetches_in_flight(), uids.len());
    let mut seen = Vec::new();
    let mut streamed = 0;
    let mut inline = 0;
    let mut i = 0;
    while let Some(ev) = s.next_body().await.expect("next body") {
        match ev {
            BodyEvent::Body(mut b) => {
                let want = by_uid[&b.uid];
                assert_eq!(b.len, want.len() as u64, "UID {}", b.uid);
                let is_inline = b.as_inline().is_some();
                assert_eq!(
                    is_inline,
                    want.len() <= INLINE_LIMIT,
                    "UID {} of {} bytes",
                    b.uid,
                    want.len()
                );
                if is_inline {
                    inline += 1;
                } else {
                    streamed += 1;
                }
                // Take turns with the ways of reading a body.
                let got = match i % 3 {
                    0 => read_all(&mut b).await,
                    1 => {
                        let mut v = Vec::new();
                        while let Some(c) = b.chunk().await.expect("chunk") {
                            assert!(!c.is_empty());
                            v.extend_from_slice(&c);
                        }
                        v
                    }
                    _ => {
                        // Small reads: a chunk is handed out across many calls.
                        let mut v = Vec::new();
                        let mut buf = [0u8; 1000];
                        loop {
                            let n = b.read(&mut buf).await.expect("read");
                            if n == 0 {
                                break;
                            }
                            v.extend_from_slice(&buf[..n]);
                        }
                        v
                    }
                };
                i += 1;
                assert!(
                    got == *want,
                    "UID {}: body differs ({} vs {} bytes)",
                    b.uid,
                    got.len(),
                    want.len()
                );
                seen.push(b.uid);
            }
            BodyEvent::Missing(u) => panic!("UID {u} reported missing"),
            BodyEvent::Failed(u, st) => panic!("UID {u} failed: {st:?}"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    assert_eq!(seen, uids, "bodies arrive in the order asked for");
    assert!(
        streamed >= 3 && inline >= 4,
        "streamed {streamed}, inline {inline}"
    );
    assert_eq!(s.fetches_in_flight(), 0);
    s.noop().await.expect("the connection is clean afterwards");
}

#[tokio::test]
async fn missing_uid_yields_missing_and_the_pipeline_goes_on() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let small = small_message("present");
    let big = message("big", "Tue, 2 Feb 2021 10:00:00 +0100", 600_000, 3, false);
    let a = append(&mut s, "INBOX", &small).await;
    let b = append(&mut s, "INBOX", &big).await;
    // Expunged after being listed: the UID is gone.
    let gone = append(&mut s, "INBOX", &small_message("gone")).await;
    s.select("INBOX").await.unwrap();
    s.uid_store(&gone.to_string(), "+", &flags(&["\\Deleted"]))
        .await
        .unwrap();
    server.doveadm_ok(&["expunge", "-u", "alice", "mailbox", "INBOX", "deleted"]);
    s.noop().await.unwrap();

    let ask = [Uid(999), a, gone, b, Uid(4242)];
    s.send_fetch_bodies(&ask).await.unwrap();
    let mut bodies = Vec::new();
    let mut missing = Vec::new();
    let mut events = Vec::new();
    while let Some(ev) = s.next_body().await.unwrap() {
        match ev {
            BodyEvent::Body(mut b) => {
                let uid = b.uid;
                let data = read_all(&mut b).await;
                events.push(format!("body {uid}"));
                bodies.push((uid, data.len()));
            }
            BodyEvent::Missing(u) => {
                events.push(format!("missing {u}"));
                missing.push(u);
            }
            BodyEvent::Failed(u, st) => panic!("UID {u} failed: {st:?}"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    // Dovecot runs pipelined FETCHes in parallel: bodies may come before the completion of an
    // earlier command that found nothing. Each UID is reported exactly once either way.
    println!("events: {events:?}");
    assert_eq!(bodies, vec![(a, small.len()), (b, big.len())]);
    assert_eq!(missing, vec![Uid(999), gone, Uid(4242)]);
    assert_eq!(s.fetches_in_flight(), 0);
    s.noop().await.expect("the connection is clean afterwards");
}

#[tokio::test]
async fn dropping_bodies_unread_leaves_the_connection_usable() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let msgs = mixed_messages();
    let mut uids = Vec::new();
    for m in &msgs {
        uids.push(append(&mut s, "INBOX", m).await);
    }
    s.select("INBOX").await.unwrap();

    // Read only the first chunk of each body, then drop it.
    s.send_fetch_bodies(&uids).await.unwrap();
    let mut n = 0;
    while let Some(ev) = s.next_body().await.unwrap() {
        if let BodyEvent::Body(mut b) = ev {
            let c = b.chunk().await.unwrap().expect("a first chunk");
            assert!(msgs[n].starts_with(&c));
            n += 1;
        }
    }
    assert_eq!(n, msgs.len());

    // Ask again and walk away: the next command drains what is still coming.
    s.send_fetch_bodies(&uids).await.unwrap();
    match s.next_body().await.unwrap() {
        Some(BodyEvent::Body(mut b)) => {
            let mut buf = [0u8; 10];
            b.read_exact(&mut buf).await.unwrap();
        }
        _ => panic!("expected a body"),
    }
    let st = s
        .status("Sent")
        .await
        .expect("STATUS after abandoned fetches");
    assert_eq!(st.messages, Some(0));
    assert_eq!(s.fetches_in_flight(), 0);

    // And everything still reads byte-exact.
    let all = s.fetch_bodies_collected(&uids).await.unwrap();
    assert_eq!(all.len(), msgs.len());
    for ((uid, got), want) in all.iter().zip(&msgs) {
        assert!(got.as_ref() == want.as_slice(), "UID {uid}");
    }
}

#[tokio::test]
async fn idle_returns_true_when_another_session_appends() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut watcher = login(&server, &alice).await;
    let mut writer = login(&server, &alice).await;
    watcher.select("INBOX").await.unwrap();
    let started = Instant::now();
    let (changed, appended) = tokio::join!(watcher.idle(Duration::from_secs(20)), async {
        append(&mut writer, "INBOX", &small_message("wake up")).await
    });
    let changed = changed.expect("IDLE");
    println!(
        "IDLE woke after {:?} (UID {appended} appended)",
        started.elapsed()
    );
    assert!(changed, "IDLE did not report the new message");
    assert!(started.elapsed() < Duration::from_secs(15));
    // IDLE ended cleanly: the session goes on.
    watcher.noop().await.expect("NOOP after IDLE");
    assert_eq!(
        watcher.uid_search(&[SearchKey::All]).await.unwrap(),
        vec![appended]
    );
}

#[tokio::test]
async fn idle_returns_false_when_nothing_happens() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    s.select("INBOX").await.unwrap();
    let started = Instant::now();
    let changed = s.idle(Duration::from_secs(1)).await.expect("IDLE");
    let took = started.elapsed();
    assert!(!changed);
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(10),
        "{took:?}"
    );
    s.noop().await.expect("NOOP after IDLE");
}

#[tokio::test]
async fn idle_longer_than_the_read_timeout_is_not_an_error() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    s.select("INBOX").await.unwrap();
    // Waiting in IDLE is not a silent server: the read timeout must not cut it short.
    s.set_timeout(Duration::from_millis(700));
    let changed = s
        .idle(Duration::from_millis(1500))
        .await
        .expect("IDLE longer than the read timeout");
    assert!(!changed);
    s.noop().await.expect("NOOP after a long IDLE");
}

#[tokio::test]
async fn idle_needs_a_selected_folder() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    assert!(matches!(
        s.idle(Duration::from_secs(1)).await,
        Err(ImapError::Protocol { .. })
    ));
}

#[tokio::test]
async fn quota_reports_usage_and_limit() {
    let server = Dovecot::start(Flavour::Slash);
    let q = server.user_with_quota("quinn", 2048);
    let mut s = login(&server, &q).await;
    append(
        &mut s,
        "INBOX",
        &message("q", "Tue, 2 Feb 2021 10:00:00 +0100", 100_000, 1, false),
    )
    .await;
    let usage = s.quota("INBOX").await.expect("GETQUOTAROOT");
    println!("quota: {usage:?}");
    let storage = usage
        .iter()
        .find(|u| u.resource == "STORAGE")
        .unwrap_or_else(|| panic!("no STORAGE resource in {usage:?}"));
    assert_eq!(storage.root, "User quota");
    assert_eq!(storage.limit, 2048);
    assert!(
        (97..=100).contains(&storage.usage),
        "100 000 bytes are 98 KiB: {storage:?}"
    );
    // A user without a quota of their own gets the default (1 GiB).
    let alice = server.user("alice");
    let mut a = login(&server, &alice).await;
    let usage = a.quota("INBOX").await.unwrap();
    let storage = usage.iter().find(|u| u.resource == "STORAGE").unwrap();
    assert_eq!((storage.usage, storage.limit), (0, 1024 * 1024));
}

#[tokio::test]
async fn noop_and_logout() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    for _ in 0..3 {
        s.noop().await.expect("NOOP");
    }
    s.select("INBOX").await.unwrap();
    s.noop().await.expect("NOOP with a folder selected");
    let started = Instant::now();
    s.logout().await;
    // A polite LOGOUT is answered at once (the client gives up after 5 s otherwise).
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 7. Typed errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn select_of_a_missing_folder_is_refused_with_the_servers_words() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let err = match s.select("Nope/Not here").await {
        Err(e) => e,
        Ok(sel) => panic!("selected a missing folder: {sel:?}"),
    };
    println!("SELECT of a missing folder: {err}");
    match &err {
        ImapError::Refused {
            command,
            folder,
            status,
            ..
        } => {
            assert_eq!(*command, "SELECT");
            assert_eq!(folder.as_deref(), Some("Nope/Not here"));
            assert_eq!(status.kind, StatusKind::No);
            assert!(
                status.text.contains("doesn't exist"),
                "Dovecot's own words: {status:?}"
            );
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    assert!(err.to_string().contains("doesn't exist"), "{err}");
    assert!(!err.is_transient());
    assert!(
        s.selected().is_none(),
        "a failed SELECT leaves nothing selected"
    );
    s.noop().await.unwrap();
}

#[tokio::test]
async fn malformed_command_is_refused_with_bad() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    append(&mut s, "INBOX", &small_message("x")).await;
    s.select("INBOX").await.unwrap();
    // Not a UID set: the server cannot parse the command.
    let err = s
        .uid_store("not-a-set", "+", &flags(&["\\Seen"]))
        .await
        .expect_err("STORE with a broken UID set");
    println!("STORE with a broken UID set: {err}");
    match &err {
        ImapError::Refused {
            command, status, ..
        } => {
            assert_eq!(*command, "STORE");
            assert_eq!(status.kind, StatusKind::Bad);
        }
        other => panic!("expected Refused, got {other:?}"),
    }
    s.noop().await.expect("the session goes on after BAD");
}

#[tokio::test]
async fn append_to_a_missing_folder_carries_trycreate() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    // Bigger than a socket buffer: with LITERAL+ the whole body goes out before the NO.
    let body = message("lost", "Tue, 2 Feb 2021 10:00:00 +0100", 300_000, 9, false);
    let err = s
        .append("Missing Folder", &Flags::new(), None, &body)
        .await
        .expect_err("APPEND to a missing folder");
    println!("APPEND to a missing folder: {err}");
    assert_eq!(err.code(), Some(&ResponseCode::TryCreate), "{err:?}");
    match &err {
        ImapError::Refused {
            command, folder, ..
        } => {
            assert_eq!(*command, "APPEND");
            assert_eq!(folder.as_deref(), Some("Missing Folder"));
        }
        other => panic!("{other:?}"),
    }
    // The session survives; after CREATE the same APPEND works.
    s.create("Missing Folder").await.unwrap();
    let au = s
        .append("Missing Folder", &Flags::new(), None, &body)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(au.uid, Uid(1));
}

#[tokio::test]
async fn append_over_quota_is_refused_with_overquota() {
    let server = Dovecot::start(Flavour::Slash);
    let q = server.user_with_quota("quinn", 100);
    let mut s = login(&server, &q).await;
    let body = message(
        "too big",
        "Tue, 2 Feb 2021 10:00:00 +0100",
        200_000,
        4,
        false,
    );
    let err = s
        .append("INBOX", &Flags::new(), None, &body)
        .await
        .expect_err("APPEND over quota");
    println!("APPEND over quota: {err}");
    assert_eq!(err.code(), Some(&ResponseCode::OverQuota), "{err:?}");
    assert!(!err.is_transient());
    // A message that fits still goes in on the same session.
    append(&mut s, "INBOX", &small_message("fits")).await;
    assert_eq!(s.status("INBOX").await.unwrap().messages, Some(1));
}

#[tokio::test]
async fn append_over_the_size_limit_is_refused_with_limit() {
    let server = Dovecot::start_with(
        Flavour::Slash,
        DovecotOptions {
            max_message_size: Some(50_000),
            ..DovecotOptions::default()
        },
    );
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let body = message("huge", "Tue, 2 Feb 2021 10:00:00 +0100", 120_000, 5, false);
    let err = s
        .append("INBOX", &Flags::new(), None, &body)
        .await
        .expect_err("APPEND over the size limit");
    println!(
        "APPEND over the size limit: {err} (is_transient: {})",
        err.is_transient()
    );
    assert!(
        matches!(
            err.code(),
            Some(ResponseCode::Limit) | Some(ResponseCode::TooBig)
        ),
        "{err:?}"
    );
    // The session (or the server's view of the byte stream) is still in order.
    append(&mut s, "INBOX", &small_message("fits")).await;
    assert_eq!(s.status("INBOX").await.unwrap().messages, Some(1));
}

#[tokio::test]
async fn append_of_a_body_shorter_than_announced_is_body_too_short() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let body = small_message("short");
    let mut reader: &[u8] = &body;
    let err = s
        .append_send(
            "INBOX",
            &Flags::new(),
            None,
            body.len() as u64 + 10,
            &mut reader,
        )
        .await
        .expect_err("a short body");
    match err {
        ImapError::BodyTooShort { announced, got } => {
            assert_eq!(announced, body.len() as u64 + 10);
            assert_eq!(got, body.len() as u64);
        }
        other => panic!("expected BodyTooShort, got {other:?}"),
    }
    // The byte stream is out of step: the session refuses further use instead of corrupting.
    assert!(s.noop().await.is_err());
}

// ---------------------------------------------------------------------------------------------
// 8. Pipelining
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_appends_in_flight() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    s.select("INBOX").await.unwrap();
    let mut tags = Vec::new();
    for i in 0..200 {
        let body = small_message(&format!("pipelined {i}"));
        let mut r: &[u8] = &body;
        let f = if i % 3 == 0 {
            flags(&["\\Seen"])
        } else {
            Flags::new()
        };
        let tag = s
            .append_send("INBOX", &f, None, body.len() as u64, &mut r)
            .await
            .expect("append_send");
        tags.push(tag);
    }
    let mut uids = Vec::new();
    for tag in &tags {
        let au = s
            .append_wait(tag, "INBOX")
            .await
            .expect("append_wait")
            .expect("APPENDUID");
        uids.push(au.uid);
    }
    assert!(
        uids.windows(2).all(|w| w[0] < w[1]),
        "UIDs must be distinct and increasing: {uids:?}"
    );
    assert_eq!(uids.first(), Some(&Uid(1)));
    assert_eq!(uids.last(), Some(&Uid(200)));
    let st = s.status("INBOX").await.unwrap();
    assert_eq!(st.messages, Some(200));
    assert_eq!(st.unseen, Some(133));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_body_fetches_in_flight() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let bodies: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            message(
                &format!("fetch me {i}"),
                "Tue, 2 Feb 2021 10:00:00 +0100",
                500 + i * 37,
                i as u64,
                i % 5 == 0,
            )
        })
        .collect();
    let mut tags = Vec::new();
    for b in &bodies {
        let mut r: &[u8] = b;
        tags.push(
            s.append_send("INBOX", &Flags::new(), None, b.len() as u64, &mut r)
                .await
                .unwrap(),
        );
    }
    let mut by_uid = BTreeMap::new();
    for (tag, b) in tags.iter().zip(&bodies) {
        let uid = s.append_wait(tag, "INBOX").await.unwrap().unwrap().uid;
        by_uid.insert(uid, b);
    }
    s.select("INBOX").await.unwrap();
    let uids: Vec<Uid> = by_uid.keys().copied().collect();
    s.send_fetch_bodies(&uids).await.unwrap();
    assert_eq!(s.fetches_in_flight(), 200);
    let mut got = Vec::new();
    while let Some(ev) = s.next_body().await.unwrap() {
        match ev {
            BodyEvent::Body(mut b) => {
                let data = read_all(&mut b).await;
                assert!(data == *by_uid[&b.uid], "UID {} differs", b.uid);
                got.push(b.uid);
            }
            BodyEvent::Missing(u) => panic!("missing {u}"),
            BodyEvent::Failed(u, st) => panic!("failed {u}: {st:?}"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    assert_eq!(got, uids);
}

#[tokio::test]
async fn append_while_fetches_are_in_flight_is_refused() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    let uid = append(&mut s, "INBOX", &small_message("x")).await;
    s.select("INBOX").await.unwrap();
    s.send_fetch_bodies(&[uid]).await.unwrap();
    let body = small_message("y");
    match s.append("INBOX", &Flags::new(), None, &body).await {
        Err(ImapError::Protocol { command, .. }) => assert_eq!(command, "APPEND"),
        other => panic!("expected a Protocol error, got {other:?}"),
    }
    // The fetch is still there to collect.
    match s.next_body().await.unwrap() {
        Some(BodyEvent::Body(mut b)) => assert_eq!(read_all(&mut b).await, small_message("x")),
        _ => panic!("expected the body"),
    };
}
