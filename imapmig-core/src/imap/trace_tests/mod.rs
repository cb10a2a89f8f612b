//! Trace tests: the real client against scripted servers that play the quirks of real ones.
//!
//! Each test replays one fixture of `imapmig-core/src/imap/traces/` (the format is in
//! [`script`]) through the client's public calls and checks what the client does with the
//! misbehaviour: the error it returns and how it is classified, the data it hands on, what it
//! sends next. Tests are named after the server and the quirk, one per fixture.

mod script;

use std::time::Duration;

use script::Scripted;

use super::error::ImapError;
use super::session::{Credentials, Session};
use super::{AppendUid, BodyEvent};
use crate::failure::ErrorKind;
use crate::model::{Flags, InternalDate, Uid, UidValidity};
use crate::wire::{Limits, ResponseCode, StatusKind};

/// The message every fixture appends or serves: 22 bytes.
const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

/// Framing limits under which even a 22-byte body is streamed out of band, as a large
/// message would be, instead of staying inside its response line.
fn streaming() -> Limits {
    Limits {
        max_inline_literal: 8,
        ..Limits::default()
    }
}

fn seen() -> Flags {
    ["\\Seen"].into_iter().collect()
}

/// Connects to the fixture's server and logs in; panics (with the script's diff) if either
/// fails.
async fn logged_in(name: &str, user: &str, limits: Limits) -> (Session, Scripted) {
    let (session, server) = Scripted::connect_with(name, limits).await;
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            server.finish().await;
            panic!("{name}: connecting failed: {e}");
        }
    };
    if let Err(e) = session.login(&Credentials::password(user, "secret")).await {
        server.finish().await;
        panic!("{name}: login failed: {e}");
    }
    (session, server)
}

/// Reads one body event, which must be a body, to its end.
async fn whole_body(session: &mut Session) -> (Uid, Vec<u8>) {
    match session.next_body().await {
        Ok(Some(BodyEvent::Body(mut body))) => {
            let mut got = Vec::new();
            while let Some(chunk) = body.chunk().await.expect("the body reads to its end") {
                got.extend_from_slice(&chunk);
            }
            assert_eq!(
                got.len() as u64,
                body.len,
                "the body is as long as announced"
            );
            (body.uid, got)
        }
        Ok(Some(_)) => panic!("expected a body, got another event"),
        Ok(None) => panic!("expected a body, no fetch was in flight"),
        Err(e) => panic!("expected a body, got {e}"),
    }
}

#[tokio::test]
async fn office365_throttling_bye_is_transient_with_the_servers_backoff() {
    let (session, server) = logged_in(
        "office365-throttled-bye",
        "user@example.com",
        Limits::default(),
    )
    .await;
    let mut session = session;
    let got = session.select("INBOX").await.map(|_| ());
    server.finish().await;
    let e = got.expect_err("a BYE is no answer to SELECT");
    assert!(
        matches!(&e, ImapError::Closed { bye: Some(b), .. } if b.contains("Request is throttled")),
        "{e:?}"
    );
    assert!(e.is_throttled(), "{e}");
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.suggested_backoff(), Some(Duration::from_millis(21_000)));
    assert_eq!(ErrorKind::of_imap(&e), ErrorKind::Connection);
}

#[tokio::test]
async fn office365_throttling_no_is_transient_and_the_hang_up_is_seen_at_once() {
    let (mut session, server) = logged_in(
        "office365-throttled-no",
        "user@example.com",
        Limits::default(),
    )
    .await;
    let selected = session.select("INBOX").await.map(|s| s.uid_validity);
    let listed = session.fetch_meta("1:*", None).await;
    // The server hung up after its NO: the next command must learn it from the stream's end,
    // not from a timeout.
    let started = std::time::Instant::now();
    let next = session.noop().await;
    server.finish().await;
    assert_eq!(selected.expect("SELECT works"), Some(UidValidity(14)));
    let e = listed.expect_err("the listing was refused");
    assert!(
        matches!(&e, ImapError::Refused { command: "FETCH", status, .. } if status.kind == StatusKind::No),
        "{e:?}"
    );
    assert!(e.is_throttled(), "{e}");
    assert!(e.is_transient(), "{e}");
    assert_eq!(e.suggested_backoff(), Some(Duration::from_millis(2_400)));
    let e = next.expect_err("the connection is gone");
    assert!(matches!(e, ImapError::Closed { .. }), "{e:?}");
    assert!(e.is_transient(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
}

#[tokio::test]
async fn exchange_bad_command_argument_refuses_one_message_and_the_next_goes_through() {
    let (mut session, server) = logged_in(
        "exchange-bad-command-argument",
        "user@example.com",
        Limits::default(),
    )
    .await;
    let refused = session.append("INBOX", &seen(), None, MESSAGE).await;
    let next = session.append("INBOX", &seen(), None, MESSAGE).await;
    server.finish().await;
    let e = refused.expect_err("Exchange refused the message");
    assert!(
        matches!(&e, ImapError::Refused { command: "APPEND", status, .. }
            if status.kind == StatusKind::Bad && status.text == "Command Argument Error. 11"),
        "{e:?}"
    );
    assert!(!e.is_throttled(), "{e}");
    assert!(!e.is_transient(), "{e}");
    assert_eq!(ErrorKind::of_imap(&e), ErrorKind::Server);
    assert_eq!(
        next.expect("the connection is still in step"),
        Some(AppendUid {
            validity: UidValidity(14),
            uid: Uid(3)
        })
    );
}

/// Plays fixture `name` up to a LOGIN as `user` that the server refuses: the error, and the
/// alerts the session kept.
async fn refused_login(name: &str, user: &str) -> (ImapError, Vec<String>) {
    let (session, server) = Scripted::connect(name).await;
    let mut session = session.expect("the server greets");
    let got = session.login(&Credentials::password(user, "secret")).await;
    let alerts = session.take_alerts();
    server.finish().await;
    (got.expect_err("the login was refused"), alerts)
}

#[tokio::test]
async fn gmail_connection_cap_is_throttling_not_a_wrong_password() {
    let (e, alerts) = refused_login("gmail-too-many-connections", "migrator@gmail.com").await;
    assert!(
        !matches!(e, ImapError::AuthenticationFailed { .. }),
        "not a wrong password: {e:?}"
    );
    assert_ne!(ErrorKind::of_imap(&e), ErrorKind::Authentication);
    assert!(e.is_throttled(), "{e}");
    assert!(e.is_transient(), "{e}");
    assert_eq!(alerts, ["Too many simultaneous connections. (Failure)"]);
}

#[tokio::test]
async fn gmail_web_login_required_is_an_authentication_failure_with_its_alert() {
    let (e, alerts) = refused_login("gmail-web-login-required", "migrator@gmail.com").await;
    match &e {
        ImapError::AuthenticationFailed { server_says, .. } => assert!(
            server_says.contains("https://support.google.com/mail/accounts/answer/78754"),
            "{server_says}"
        ),
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    assert_eq!(ErrorKind::of_imap(&e), ErrorKind::Authentication);
    assert!(!e.is_transient(), "{e}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].starts_with("Please log in via your web browser"));
}

#[tokio::test]
async fn hmailserver_without_uidplus_appends_after_the_go_ahead_and_gives_no_uid() {
    let (mut session, server) =
        logged_in("hmailserver-no-uidplus", "alice", Limits::default()).await;
    let got = session.append("INBOX", &seen(), None, MESSAGE).await;
    server.finish().await;
    assert_eq!(got.expect("the APPEND succeeds"), None);
}

#[tokio::test]
async fn dovecot_login_unavailable_is_transient_not_a_wrong_password() {
    let (e, _) = refused_login("dovecot-login-unavailable", "alice").await;
    assert!(
        !matches!(e, ImapError::AuthenticationFailed { .. }),
        "not a wrong password: {e:?}"
    );
    assert_eq!(e.code(), Some(&ResponseCode::Unavailable));
    assert_ne!(ErrorKind::of_imap(&e), ErrorKind::Authentication);
    assert!(e.is_transient(), "{e}");
}

#[tokio::test]
async fn dovecot_trycreate_keeps_its_code_and_names_the_folder() {
    let (mut session, server) = logged_in("dovecot-trycreate", "alice", Limits::default()).await;
    let got = session
        .append("Archive/2019", &Flags::new(), None, MESSAGE)
        .await;
    server.finish().await;
    let e = got.expect_err("the folder does not exist");
    assert_eq!(e.code(), Some(&ResponseCode::TryCreate));
    assert!(
        matches!(&e, ImapError::Refused { folder: Some(f), .. } if f == "Archive/2019"),
        "{e:?}"
    );
    assert!(!e.is_transient(), "{e}");
    assert_eq!(ErrorKind::of_imap(&e), ErrorKind::Server);
}

#[tokio::test]
async fn dovecot_overquota_is_a_quota_failure() {
    let (mut session, server) = logged_in("dovecot-overquota", "alice", Limits::default()).await;
    let got = session.append("INBOX", &Flags::new(), None, MESSAGE).await;
    server.finish().await;
    let e = got.expect_err("the mailbox is full");
    assert_eq!(ErrorKind::of_imap(&e), ErrorKind::Quota);
    assert!(!e.is_transient(), "{e}");
    assert!(!e.is_throttled(), "{e}");
}

/// The body is read by its literal's length whether it stays in its line or is streamed.
async fn rfc822_size_zero(limits: Limits) {
    let (mut session, server) = logged_in("generic-rfc822-size-zero", "alice", limits).await;
    session.select("INBOX").await.expect("SELECT works");
    let listed = session
        .fetch_meta("1:*", None)
        .await
        .expect("listing works");
    session.send_fetch_bodies(&[Uid(7)]).await.expect("sent");
    let (uid, body) = whole_body(&mut session).await;
    assert!(session.next_body().await.expect("completes").is_none());
    let date = listed[0].internal_date;
    let appended = session
        .append("Archive", &listed[0].flags, date.as_ref(), &body)
        .await;
    server.finish().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].size, 0,
        "the size is listed as the server gave it"
    );
    assert_eq!(uid, Uid(7));
    assert_eq!(body, MESSAGE, "the whole body, by the literal's length");
    assert_eq!(
        date,
        InternalDate::parse_imap("02-May-2024 09:14:07 +0200"),
        "the date is kept"
    );
    assert!(appended.expect("the APPEND succeeds").is_some());
}

#[tokio::test]
async fn rfc822_size_zero_does_not_cut_an_inline_body() {
    rfc822_size_zero(Limits::default()).await;
}

#[tokio::test]
async fn rfc822_size_zero_does_not_cut_a_streamed_body() {
    rfc822_size_zero(streaming()).await;
}

async fn literal_split_across_reads(limits: Limits) {
    let (mut session, server) =
        logged_in("generic-literal-split-across-reads", "alice", limits).await;
    session.select("INBOX").await.expect("SELECT works");
    session.send_fetch_bodies(&[Uid(7)]).await.expect("sent");
    let (uid, body) = whole_body(&mut session).await;
    let after = session.next_body().await.map(|e| e.is_none());
    server.finish().await;
    assert_eq!(uid, Uid(7));
    assert_eq!(body, MESSAGE);
    assert!(after.expect("the FETCH completes"));
}

#[tokio::test]
async fn literal_split_across_reads_is_put_together_inline() {
    literal_split_across_reads(Limits::default()).await;
}

#[tokio::test]
async fn literal_split_across_reads_is_put_together_streamed() {
    literal_split_across_reads(streaming()).await;
}

#[tokio::test]
async fn connection_lost_mid_literal_is_an_error_never_a_short_body() {
    // Inline: the line never completes, so no body is handed on at all.
    let (mut session, server) = logged_in(
        "generic-connection-lost-mid-literal",
        "alice",
        Limits::default(),
    )
    .await;
    session.select("INBOX").await.expect("SELECT works");
    session.send_fetch_bodies(&[Uid(7)]).await.expect("sent");
    let inline = session.next_body().await.map(|e| e.is_some());
    server.finish().await;
    let e = inline.expect_err("no body may come of it");
    assert!(matches!(e, ImapError::Closed { .. }), "{e:?}");
    assert!(e.is_transient(), "{e}");

    // Streamed: the body starts, and reading it fails where the bytes stop.
    let (mut session, server) =
        logged_in("generic-connection-lost-mid-literal", "alice", streaming()).await;
    session.select("INBOX").await.expect("SELECT works");
    session.send_fetch_bodies(&[Uid(7)]).await.expect("sent");
    let mut read = Vec::new();
    let ended = match session.next_body().await {
        Ok(Some(BodyEvent::Body(mut body))) => loop {
            match body.chunk().await {
                Ok(Some(c)) => read.extend_from_slice(&c),
                Ok(None) => break Ok(body.len),
                Err(e) => break Err((e, body.source_failed())),
            }
        },
        Ok(_) => panic!("expected the body to start"),
        Err(e) => panic!("expected the body to start, got {e}"),
    };
    server.finish().await;
    let (e, source_failed) = ended.expect_err("a short body must not end normally");
    assert!(matches!(e, ImapError::Closed { .. }), "{e:?}");
    assert!(source_failed, "the failure is the source's");
    assert_eq!(read, b"Subject: hi\r\n");
}

#[tokio::test]
async fn exchange_bye_mid_fetch_hands_on_the_whole_body_then_reports_the_bye() {
    let (mut session, server) =
        logged_in("exchange-bye-mid-fetch", "alice", Limits::default()).await;
    session.examine("INBOX").await.expect("EXAMINE works");
    session
        .send_fetch_bodies(&[Uid(7), Uid(8)])
        .await
        .expect("sent");
    let (uid, body) = whole_body(&mut session).await;
    let started = std::time::Instant::now();
    let next = session.next_body().await.map(|e| e.is_some());
    server.finish().await;
    assert_eq!((uid, body.as_slice()), (Uid(7), MESSAGE));
    let e = next.expect_err("the second body never comes");
    assert!(
        matches!(&e, ImapError::Closed { bye: Some(b), .. } if b == "Connection is closed. 13"),
        "{e:?}"
    );
    assert!(e.is_transient(), "{e}");
    assert!(!e.is_throttled(), "{e}");
    assert!(started.elapsed() < Duration::from_secs(2), "{e}");
}

#[tokio::test]
async fn rfc3501_alert_during_select_is_handed_on() {
    let (mut session, server) =
        logged_in("rfc3501-alert-system-shutdown", "alice", Limits::default()).await;
    let selected = session
        .select("INBOX")
        .await
        .map(|s| (s.exists, s.uid_validity));
    let alerts = session.take_alerts();
    let again = session.take_alerts();
    server.finish().await;
    assert_eq!(
        selected.expect("SELECT works"),
        (2, Some(UidValidity(1_700_000_000)))
    );
    assert_eq!(
        alerts,
        ["System shutdown in 10 minutes"],
        "a repeated alert is handed on once"
    );
    assert!(again.is_empty(), "an alert taken is gone");
}

#[tokio::test]
async fn generic_8bit_folder_name_goes_back_as_a_literal_after_the_go_ahead() {
    let (mut session, server) = logged_in(
        "generic-8bit-folder-name-literal",
        "alice",
        Limits::default(),
    )
    .await;
    let folders = session.list().await.expect("the LIST succeeds");
    let raws: Vec<&str> = folders.iter().map(|f| f.raw.as_str()).collect();
    assert_eq!(raws, ["Cafés", "say \"hi\" \\ bye"]);
    let cafes = session
        .select(&folders[0].raw)
        .await
        .expect("the 8-bit name is selected")
        .clone();
    let quoted = session
        .select(&folders[1].raw)
        .await
        .expect("the escaped name is selected")
        .clone();
    server.finish().await;
    assert_eq!(
        (cafes.exists, cafes.uid_validity),
        (2, Some(UidValidity(7)))
    );
    assert_eq!(
        (quoted.exists, quoted.uid_validity),
        (0, Some(UidValidity(8)))
    );
}
