//! The scripted IMAP server, spoken to with raw bytes over a `TcpStream`:
//! every expectation is the exact wire text.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imapmig_testkit::{BodyAnswer, Command, ScriptedFolder, ScriptedMessage, ScriptedServer};
use support::Imap;

const DATE: &str = "01-Jan-2024 12:00:00 +0000";

/// A raw client: sends bytes, reads until a tagged line; every
/// expectation in bytes.
struct Raw(Imap);

impl Raw {
    fn connect(server: &ScriptedServer) -> Raw {
        Raw(Imap::connect(server.port(), Duration::from_secs(10)))
    }

    fn send(&mut self, bytes: &[u8]) {
        self.0.writer.write_all(bytes).unwrap();
    }

    fn line(&mut self) -> Vec<u8> {
        self.0.raw_line()
    }

    /// Every byte up to and including the line tagged `tag`.
    fn until_tagged(&mut self, tag: &str) -> Vec<u8> {
        let mut all = Vec::new();
        loop {
            let l = self.line();
            let done = l.starts_with(format!("{tag} ").as_bytes());
            all.extend_from_slice(&l);
            if done {
                return all;
            }
        }
    }

    /// Sends `tag command` and returns everything up to its tagged line.
    fn cmd(&mut self, tag: &str, command: &str) -> String {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        String::from_utf8_lossy(&self.until_tagged(tag)).into_owned()
    }

    fn login(server: &ScriptedServer) -> Raw {
        let mut raw = Raw::connect(server);
        let done = raw.cmd("l", "LOGIN alice secret");
        assert!(done.starts_with("l OK "), "{done}");
        raw
    }
}

fn message(uid: u32, text: &str) -> ScriptedMessage {
    ScriptedMessage::new(
        uid,
        format!("Subject: {text}\r\n\r\n{text}\r\n").into_bytes(),
    )
}

/// INBOX with UIDs 1, 2, 3 (bodies "one", "two", "three"), message 2
/// answering its body fetch as `answer`.
fn inbox_answering(answer: BodyAnswer) -> ScriptedServer {
    let mut two = message(2, "two");
    two.body_answer = answer;
    let inbox = ScriptedFolder::new(
        "INBOX",
        42,
        vec![message(1, "one"), two, message(3, "three")],
    );
    ScriptedServer::start("alice", "secret", vec![inbox])
}

/// The exchange `f UID FETCH 2 (UID BODY.PEEK[])` after EXAMINE INBOX.
fn body_fetch_of_uid_2(server: &ScriptedServer) -> String {
    let mut raw = Raw::login(server);
    let done = raw.cmd("e", "EXAMINE INBOX");
    assert!(
        done.ends_with("e OK [READ-ONLY] EXAMINE completed\r\n"),
        "{done}"
    );
    raw.cmd("f", "UID FETCH 2 (UID BODY.PEEK[])")
}

#[test]
fn greeting_announces_only_what_is_served() {
    let server = ScriptedServer::start("alice", "secret", vec![]);
    let mut raw = Raw::connect(&server);
    assert_eq!(
        raw.0.greeting,
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID NAMESPACE AUTH=PLAIN] Scripted server ready.\r\n"
    );
    let done = raw.cmd("a", "LOGIN alice secret");
    assert_eq!(
        done,
        "a OK [CAPABILITY IMAP4rev1 LITERAL+ ID NAMESPACE] Logged in\r\n"
    );
    assert_eq!(
        raw.cmd("b", "NAMESPACE"),
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nb OK NAMESPACE completed\r\n"
    );
    assert_eq!(
        raw.cmd("c", "LOGOUT"),
        "* BYE Logging out\r\nc OK LOGOUT completed\r\n"
    );
}

#[test]
fn list_sends_an_8bit_name_as_a_literal_and_accepts_it_back() {
    let latin1 = b"Entw\xfcrfe".to_vec();
    let mut forced = ScriptedFolder::new("Plain", 2, vec![]);
    forced.as_literal = true;
    let folders = vec![
        ScriptedFolder::new("INBOX", 1, vec![message(1, "a")]),
        ScriptedFolder::new(latin1.clone(), 7, vec![message(4, "b"), message(9, "c")]),
        forced,
        ScriptedFolder::new("a \"quoted\" one", 3, vec![]),
    ];
    let server = ScriptedServer::start("alice", "secret", folders);
    let mut raw = Raw::login(&server);

    raw.send(b"a LIST \"\" \"*\"\r\n");
    let mut want = b"* LIST () \"/\" \"INBOX\"\r\n* LIST () \"/\" {8}\r\nEntw\xfcrfe\r\n".to_vec();
    want.extend_from_slice(b"* LIST () \"/\" {5}\r\nPlain\r\n");
    want.extend_from_slice(b"* LIST () \"/\" \"a \\\"quoted\\\" one\"\r\n");
    want.extend_from_slice(b"a OK LIST completed\r\n");
    assert_eq!(
        String::from_utf8_lossy(&raw.until_tagged("a")),
        String::from_utf8_lossy(&want)
    );

    // The name comes back as a synchronising literal.
    raw.send(b"b STATUS {8}\r\n");
    assert_eq!(raw.line(), b"+ Ready for literal data\r\n");
    raw.send(&latin1);
    raw.send(b" (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)\r\n");
    let mut want =
        b"* STATUS {8}\r\nEntw\xfcrfe (MESSAGES 2 UIDNEXT 10 UIDVALIDITY 7 UNSEEN 2)\r\n".to_vec();
    want.extend_from_slice(b"b OK STATUS completed\r\n");
    assert_eq!(raw.until_tagged("b"), want);

    raw.send(b"c EXAMINE {8+}\r\n");
    raw.send(&latin1);
    raw.send(b"\r\n");
    let got = String::from_utf8_lossy(&raw.until_tagged("c")).into_owned();
    assert_eq!(
        got,
        "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n\
         * OK [PERMANENTFLAGS ()] Flags\r\n\
         * 2 EXISTS\r\n\
         * 0 RECENT\r\n\
         * OK [UIDVALIDITY 7] UIDs valid\r\n\
         * OK [UIDNEXT 10] Predicted next UID\r\n\
         c OK [READ-ONLY] EXAMINE completed\r\n"
    );
    assert_eq!(raw.cmd("d", "LIST \"\" \"%\"").matches("* LIST").count(), 4);
    assert_eq!(
        raw.cmd("e", "LIST \"\" \"\""),
        "* LIST (\\Noselect) \"/\" \"\"\r\ne OK LIST completed\r\n"
    );
    assert_eq!(
        raw.cmd("f", "EXAMINE Nowhere"),
        "f NO [NONEXISTENT] Mailbox doesn't exist\r\n"
    );
}

#[test]
fn meta_override_replaces_the_generated_metadata() {
    let mut zero = message(1, "zero");
    zero.meta_override = Some("UID 0 FLAGS () INTERNALDATE \"not a date\" RFC822.SIZE 5".into());
    let mut normal = message(7, "normal");
    normal.flags = "\\Seen $Label1".into();
    let big = ScriptedMessage {
        meta_override: Some("UID 4294967296 FLAGS (\\Seen)".into()),
        ..message(8, "big")
    };
    let inbox = ScriptedFolder::new("INBOX", 1, vec![zero, normal.clone(), big]);
    let server = ScriptedServer::start("alice", "secret", vec![inbox]);
    let mut raw = Raw::login(&server);
    raw.cmd("e", "EXAMINE INBOX");
    let got = raw.cmd("f", "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE)");
    assert_eq!(
        got,
        format!(
            "* 1 FETCH (UID 0 FLAGS () INTERNALDATE \"not a date\" RFC822.SIZE 5)\r\n\
             * 2 FETCH (UID 7 FLAGS (\\Seen $Label1) INTERNALDATE \"{DATE}\" RFC822.SIZE {})\r\n\
             * 3 FETCH (UID 4294967296 FLAGS (\\Seen))\r\n\
             f OK UID FETCH completed\r\n",
            normal.body.len()
        )
    );
}

#[test]
fn body_answer_normal_sends_the_body_as_a_literal() {
    let server = inbox_answering(BodyAnswer::Normal);
    assert_eq!(
        body_fetch_of_uid_2(&server),
        "* 2 FETCH (UID 2 BODY[] {21}\r\nSubject: two\r\n\r\ntwo\r\n)\r\nf OK UID FETCH completed\r\n"
    );
}

#[test]
fn body_answer_nil_sends_body_nil() {
    let server = inbox_answering(BodyAnswer::Nil);
    assert_eq!(
        body_fetch_of_uid_2(&server),
        "* 2 FETCH (UID 2 BODY[] NIL)\r\nf OK UID FETCH completed\r\n"
    );
}

#[test]
fn body_answer_as_uid_sends_another_uid_with_its_body() {
    let server = inbox_answering(BodyAnswer::AsUid(3));
    assert_eq!(
        body_fetch_of_uid_2(&server),
        "* 3 FETCH (UID 3 BODY[] {25}\r\nSubject: three\r\n\r\nthree\r\n)\r\nf OK UID FETCH completed\r\n"
    );
    // A UID the folder does not have: the asked message's body under it.
    let server = inbox_answering(BodyAnswer::AsUid(99));
    assert_eq!(
        body_fetch_of_uid_2(&server),
        "* 2 FETCH (UID 99 BODY[] {21}\r\nSubject: two\r\n\r\ntwo\r\n)\r\nf OK UID FETCH completed\r\n"
    );
}

#[test]
fn body_answer_also_send_sends_an_unsolicited_body_first() {
    let server = inbox_answering(BodyAnswer::AlsoSend(1));
    assert_eq!(
        body_fetch_of_uid_2(&server),
        "* 1 FETCH (UID 1 BODY[] {21}\r\nSubject: one\r\n\r\none\r\n)\r\n\
         * 2 FETCH (UID 2 BODY[] {21}\r\nSubject: two\r\n\r\ntwo\r\n)\r\n\
         f OK UID FETCH completed\r\n"
    );
}

#[test]
fn body_answer_omit_sends_nothing_but_completes() {
    let server = inbox_answering(BodyAnswer::Omit);
    assert_eq!(body_fetch_of_uid_2(&server), "f OK UID FETCH completed\r\n");
}

#[test]
fn pipelined_body_fetches_are_answered_in_order() {
    let server = inbox_answering(BodyAnswer::Normal);
    let mut raw = Raw::login(&server);
    raw.cmd("e", "EXAMINE INBOX");
    raw.send(b"f1 UID FETCH 1 (UID BODY.PEEK[])\r\nf3 UID FETCH 3 (UID BODY.PEEK[])\r\n");
    let one = String::from_utf8(raw.until_tagged("f1")).unwrap();
    let three = String::from_utf8(raw.until_tagged("f3")).unwrap();
    assert!(
        one.starts_with("* 1 FETCH (UID 1 BODY[] {21}\r\nSubject: one"),
        "{one}"
    );
    assert!(
        three.starts_with("* 3 FETCH (UID 3 BODY[] {25}\r\n"),
        "{three}"
    );
    assert_eq!(
        raw.cmd("g", "FETCH 2 (RFC822)"),
        "* 2 FETCH (RFC822 {21}\r\nSubject: two\r\n\r\ntwo\r\n)\r\ng OK FETCH completed\r\n"
    );
}

#[test]
fn uid_sets_stars_and_search() {
    let mut msgs: Vec<ScriptedMessage> =
        [3, 5, 6, 7, 10].iter().map(|&u| message(u, "x")).collect();
    msgs[1].flags = "\\Seen".into();
    msgs[2].internal_date = "15-Mar-2021 10:00:00 +0100".into();
    msgs[3].internal_date = "garbage".into();
    let server = ScriptedServer::start(
        "alice",
        "secret",
        vec![ScriptedFolder::new("INBOX", 9, msgs)],
    );
    let mut raw = Raw::login(&server);
    raw.cmd("e", "EXAMINE INBOX");

    let got = raw.cmd("a", "UID FETCH 3,6:* UID");
    assert_eq!(
        got,
        "* 1 FETCH (UID 3)\r\n* 3 FETCH (UID 6)\r\n* 4 FETCH (UID 7)\r\n* 5 FETCH (UID 10)\r\na OK UID FETCH completed\r\n"
    );
    // n:* with n beyond the largest UID still names the largest.
    assert_eq!(
        raw.cmd("b", "UID FETCH 20:* (UID)"),
        "* 5 FETCH (UID 10)\r\nb OK UID FETCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("c", "FETCH 2:3 (UID)"),
        "* 2 FETCH (UID 5)\r\n* 3 FETCH (UID 6)\r\nc OK FETCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("d", "FETCH 9 (UID)"),
        "d BAD Invalid message number\r\n"
    );

    assert_eq!(
        raw.cmd("s1", "UID SEARCH ALL"),
        "* SEARCH 3 5 6 7 10\r\ns1 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("s2", "UID SEARCH UNSEEN UID 4:7"),
        "* SEARCH 6 7\r\ns2 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("s3", "UID SEARCH SINCE 1-Mar-2021 BEFORE 1-Jan-2022"),
        "* SEARCH 6\r\ns3 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("s4", "UID SEARCH SINCE 1-Jan-2024"),
        "* SEARCH 3 5 10\r\ns4 OK UID SEARCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("s5", "SEARCH OR SEEN UID 10 NOT 1"),
        "* SEARCH 2 5\r\ns5 OK SEARCH completed\r\n"
    );
    assert_eq!(
        raw.cmd("s6", "UID SEARCH WHATEVER"),
        "s6 BAD Unsupported search key WHATEVER\r\n"
    );
}

#[test]
fn login_takes_literals_and_authenticate_plain_takes_both_forms() {
    let server = ScriptedServer::start("alice", "s3cret", vec![]);
    let mut raw = Raw::connect(&server);
    raw.send(b"a LOGIN {5}\r\n");
    assert_eq!(raw.line(), b"+ Ready for literal data\r\n");
    raw.send(b"alice {6+}\r\nwrong!\r\n");
    assert_eq!(
        raw.until_tagged("a"),
        b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );
    raw.send(b"b LOGIN {5}\r\n");
    raw.line();
    raw.send(b"alice {6}\r\n");
    raw.line();
    raw.send(b"s3cret\r\n");
    assert!(raw.until_tagged("b").starts_with(b"b OK "));

    // "\0alice\0s3cret"
    let mut raw = Raw::connect(&server);
    raw.send(b"c AUTHENTICATE PLAIN\r\n");
    assert_eq!(raw.line(), b"+ \r\n");
    raw.send(b"AGFsaWNlAHMzY3JldA==\r\n");
    assert!(raw.until_tagged("c").starts_with(b"c OK "));
    let mut raw = Raw::connect(&server);
    assert!(raw
        .cmd("d", "AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==")
        .starts_with("d OK "));
    let mut raw = Raw::connect(&server);
    assert_eq!(
        raw.cmd("e", "AUTHENTICATE PLAIN AGFsaWNlAHdyb25n"),
        "e NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
    );

    assert_eq!(server.logins(), 3);
    assert_eq!(server.login_attempts(), 5);
    let commands = server.commands();
    assert_eq!(commands[0], "a LOGIN {5} alice ***");
    assert_eq!(commands[3], "d AUTHENTICATE PLAIN ***");
    assert!(
        commands
            .iter()
            .all(|c| !c.contains("s3cret") && !c.contains("wrong!")),
        "{commands:?}"
    );
}

#[test]
fn hook_answers_the_first_two_logins_then_the_default_runs() {
    let seen: Arc<Mutex<Vec<Command>>> = Arc::default();
    let server = {
        let seen = seen.clone();
        ScriptedServer::start_with_hook("alice", "secret", vec![], move |cmd| {
            let mut seen = seen.lock().unwrap();
            seen.push(cmd.clone());
            let logins = seen.iter().filter(|c| c.name == "LOGIN").count();
            match cmd.name.as_str() {
                "LOGIN" if logins <= 2 => Some(
                    format!(
                        "{} NO [UNAVAILABLE] Temporary failure, try later\r\n",
                        cmd.tag
                    )
                    .into_bytes(),
                ),
                "NOOP" => Some(b"* garbage (\r\nzz what?\r\n".to_vec()),
                _ => None,
            }
        })
    };
    for attempt in 1..=3 {
        let mut raw = Raw::connect(&server);
        let done = raw.cmd(&format!("t{attempt}"), "login alice secret");
        if attempt <= 2 {
            assert_eq!(
                done,
                format!("t{attempt} NO [UNAVAILABLE] Temporary failure, try later\r\n")
            );
        } else {
            assert!(done.starts_with("t3 OK "), "{done}");
            raw.send(b"n NOOP\r\n");
            assert_eq!(raw.until_tagged("zz"), b"* garbage (\r\nzz what?\r\n");
            // The session goes on after the hook's garbage.
            assert_eq!(
                raw.cmd("c", "CAPABILITY"),
                "* CAPABILITY IMAP4rev1 LITERAL+ ID NAMESPACE\r\nc OK CAPABILITY completed\r\n"
            );
        }
    }
    assert_eq!(server.logins(), 1);
    assert_eq!(server.login_attempts(), 3);
    let seen = seen.lock().unwrap();
    let names: Vec<(u64, u64, &str, &str)> = seen
        .iter()
        .map(|c| {
            (
                c.connection,
                c.index_in_connection,
                c.name.as_str(),
                c.args.as_str(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (0, 0, "LOGIN", "alice secret"),
            (1, 0, "LOGIN", "alice secret"),
            (2, 0, "LOGIN", "alice secret"),
            (2, 1, "NOOP", ""),
            (2, 2, "CAPABILITY", ""),
        ]
    );
}

#[test]
fn odd_input_gets_bad_and_the_session_goes_on() {
    let server = inbox_answering(BodyAnswer::Normal);
    let mut raw = Raw::connect(&server);
    assert_eq!(raw.cmd("a", "SELECT INBOX"), "a BAD Log in first\r\n");
    raw.send(b"\r\n");
    assert_eq!(raw.line(), b"* BAD Invalid tag or command\r\n");
    raw.send(b"lonely\r\n");
    assert_eq!(raw.line(), b"* BAD Invalid tag or command\r\n");
    assert_eq!(raw.cmd("b", "FROB x"), "b BAD Unknown command FROB\r\n");
    assert_eq!(
        raw.cmd("c", "LOGIN \"alice secret"),
        "c BAD Unterminated quoted string\r\n"
    );
    raw.send(b"d LOGIN {99999999999}\r\n");
    assert_eq!(raw.line(), b"d BAD Literal too large\r\n");
    let mut raw = Raw::login(&server);
    assert_eq!(
        raw.cmd("e", "UID FETCH 1 (UID)"),
        "e BAD No mailbox selected\r\n"
    );
    raw.cmd("s", "EXAMINE INBOX");
    for (tag, bad) in [
        ("f", "UID FETCH x (UID)"),
        ("g", "UID FETCH 0 (UID)"),
        ("h", "UID FETCH 1 (BODY[HEADER])"),
        ("i", "UID FETCH 1 (UID) (CHANGEDSINCE 5)"),
        ("j", "UID FETCH 1 BODY[<0.5>"),
        ("k", "STATUS INBOX (HIGHESTMODSEQ)"),
        ("l", "LIST \"\" \"*\" RETURN (SPECIAL-USE)"),
        ("m", "EXAMINE INBOX (CONDSTORE)"),
    ] {
        let got = raw.cmd(tag, bad);
        assert!(got.starts_with(&format!("{tag} BAD ")), "{bad}: {got}");
    }
    assert_eq!(raw.cmd("z", "NOOP"), "z OK NOOP completed\r\n");
}

#[test]
fn drop_closes_connections_and_stops_accepting() {
    let server = inbox_answering(BodyAnswer::Normal);
    let port = server.port();
    let mut raw = Raw::login(&server);
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(2));
    let mut rest = Vec::new();
    let _ = raw.0.reader.read_to_end(&mut rest);
    assert!(rest.is_empty());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port still accepts"
    );
}
