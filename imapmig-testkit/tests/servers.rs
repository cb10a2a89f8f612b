//! Cyrus, Courier and GNU Mailutils as the testkit starts them, spoken to
//! with hand-written IMAP/POP3 lines (and `openssl s_client` for TLS). Each
//! test pins down a behaviour the module docs state, so that the docs stay
//! true: capabilities, namespaces and the quirks an interoperability suite
//! must expect.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use imapmig_testkit::{Courier, Cyrus, CyrusOptions, LoginSecurity, Mailutils, TestUser};
use support::Imap;

/// How long a read of the test's own sessions waits.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// One IMAP response: its line(s) with any literal inline, as bytes.
type Response = Vec<u8>;

impl Imap {
    fn open(port: u16, user: &TestUser) -> Imap {
        let mut imap = Imap::connect(port, READ_TIMEOUT);
        let (_, done) = imap.cmd(&format!("LOGIN {} {}", user.name, user.password));
        assert!(ok(&done), "LOGIN {} failed: {done}", user.name);
        imap
    }

    /// One response (a line, plus literals and the lines that continue
    /// it), as bytes.
    fn response(&mut self) -> Response {
        let mut out = Vec::new();
        loop {
            let line = self.raw_line();
            out.extend_from_slice(&line);
            let Some(n) = literal_len(&line) else {
                return out;
            };
            let mut lit = vec![0u8; n];
            self.reader.read_exact(&mut lit).unwrap();
            out.extend_from_slice(&lit);
        }
    }

    /// Sends `cmd`; returns (untagged responses, tagged line).
    fn exchange(&mut self, cmd: &str) -> (Vec<Response>, String) {
        let tag = self.tag();
        write!(self.writer, "{tag} {cmd}\r\n").unwrap();
        self.responses_until(&tag)
    }

    fn responses_until(&mut self, tag: &str) -> (Vec<Response>, String) {
        let mut untagged = Vec::new();
        loop {
            let r = self.response();
            if r.starts_with(format!("{tag} ").as_bytes()) {
                return (untagged, String::from_utf8_lossy(&r).into_owned());
            }
            untagged.push(r);
        }
    }

    /// APPEND with a synchronizing literal and optional flags / date;
    /// returns (untagged responses, tagged line). The server may refuse
    /// before the literal is sent.
    fn append(&mut self, mailbox: &str, extra: &str, message: &[u8]) -> (Vec<Response>, String) {
        let tag = self.tag();
        let sp = if extra.is_empty() { "" } else { " " };
        write!(
            self.writer,
            "{tag} APPEND {mailbox}{sp}{extra} {{{}}}\r\n",
            message.len()
        )
        .unwrap();
        let mut untagged = Vec::new();
        loop {
            let r = self.response();
            if r.starts_with(b"+") {
                break;
            }
            if r.starts_with(format!("{tag} ").as_bytes()) {
                return (untagged, String::from_utf8_lossy(&r).into_owned());
            }
            untagged.push(r);
        }
        self.writer.write_all(message).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        let (more, done) = self.responses_until(&tag);
        untagged.extend(more);
        (untagged, done)
    }

    /// The UIDVALIDITY that SELECT reports.
    fn select_uidvalidity(&mut self, mailbox: &str) -> u32 {
        let (untagged, done) = self.exchange(&format!("SELECT {mailbox}"));
        assert!(ok(&done), "SELECT {mailbox}: {done}");
        untagged
            .iter()
            .find_map(|r| {
                let s = String::from_utf8_lossy(r);
                let rest = s.split("[UIDVALIDITY ").nth(1)?;
                rest.split(']').next()?.trim().parse().ok()
            })
            .expect("SELECT reports UIDVALIDITY")
    }
}

fn ok(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("OK")
}

/// `n` if `line` ends with a literal announcement `{n}` (or `{n+}`).
fn literal_len(line: &[u8]) -> Option<usize> {
    let line = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))?;
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn text(responses: &[Response]) -> String {
    responses
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect()
}

/// The literal that follows `BODY[] ` in `response`.
fn body_of(response: &[u8]) -> Vec<u8> {
    let at = find(response, b"BODY[] {").expect("BODY[] in the response");
    let rest = &response[at + b"BODY[] ".len()..];
    let close = find(rest, b"}\r\n").unwrap();
    let n: usize = std::str::from_utf8(&rest[1..close])
        .unwrap()
        .parse()
        .unwrap();
    rest[close + 3..close + 3 + n].to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The FETCH response for sequence number `seq` that carries a body.
fn fetch_with_body(responses: &[Response], seq: u32) -> Vec<u8> {
    let head = format!("* {seq} FETCH (");
    responses
        .iter()
        .find(|r| r.starts_with(head.as_bytes()) && find(r, b"BODY[] {").is_some())
        .unwrap_or_else(|| panic!("no FETCH with a body for {seq} in:\n{}", text(responses)))
        .clone()
}

const MESSAGE: &[u8] = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: kit\r\n\
Message-ID: <kit-1@example.org>\r\n\r\nHello from the test kit.\r\n";

/// CAPABILITY (or CAPA) lines after `openssl s_client` connected to `port`,
/// verifying the certificate against `ca`; `starttls` is `imap`, `pop3` or
/// `None` for implicit TLS. `commands` are sent once connected.
fn over_tls(port: u16, ca: &Path, starttls: Option<&str>, commands: &str) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .arg("-CAfile")
        .arg(ca)
        .args(["-verify_return_error", "-quiet", "-crlf"]);
    if let Some(proto) = starttls {
        cmd.args(["-starttls", proto]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Wait for the (first) server line after the handshake before talking.
    let mut reader = BufReader::new(stdout);
    let mut out = String::new();
    if starttls.is_none() {
        reader.read_line(&mut out).unwrap();
    }
    stdin.write_all(commands.as_bytes()).unwrap();
    // The last command is a logout: the server closes, s_client ends. In
    // case it does not, it is killed after a while.
    let reading = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    out.push_str(&reading.join().unwrap());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        status.success() || !out.is_empty(),
        "openssl s_client to {port} failed ({status}): {err}"
    );
    assert!(
        !err.contains("verify error"),
        "certificate not verified: {err}"
    );
    out
}

/// A POP3 session: greeting, then each command with its answer (multi-line
/// answers up to the terminating dot).
fn pop3(port: u16, commands: &[&str]) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut answers = vec![line.clone()];
    for c in commands {
        write!(writer, "{c}\r\n").unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        let multi = ["CAPA", "LIST", "UIDL", "RETR", "TOP"]
            .iter()
            .any(|m| c.split_whitespace().next() == Some(m))
            && (c.split_whitespace().count() == 1 || c.starts_with("RETR") || c.starts_with("TOP"));
        if multi && answer.starts_with("+OK") {
            loop {
                let mut l = String::new();
                reader.read_line(&mut l).unwrap();
                answer.push_str(&l);
                if l == ".\r\n" || l.is_empty() {
                    break;
                }
            }
        }
        answers.push(answer);
    }
    answers
}

// ---------------------------------------------------------------- Cyrus

#[test]
fn cyrus_round_trip() {
    let server = Cyrus::start();
    let alice = server.user("alice");
    assert_eq!(
        server.user("alice"),
        alice,
        "a second call returns the same user"
    );
    let mut imap = Imap::open(server.imap_port(), &alice);
    assert!(imap.greeting.contains("AUTH=PLAIN"), "{}", imap.greeting);

    let (caps, _) = imap.exchange("CAPABILITY");
    let caps = text(&caps);
    for cap in [
        "UIDPLUS",
        "CONDSTORE",
        "QRESYNC",
        "SPECIAL-USE",
        "LIST-STATUS",
        "MULTIAPPEND",
        "MOVE",
        "NAMESPACE",
        "ID",
        "LITERAL+",
        "COMPRESS=DEFLATE",
        "APPENDLIMIT=4294967295",
    ] {
        assert!(caps.contains(&format!(" {cap}")), "{cap} missing: {caps}");
    }
    let (ns, _) = imap.exchange("NAMESPACE");
    assert!(
        text(&ns)
            .contains(r#"* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared Folders/" "/"))"#),
        "{}",
        text(&ns)
    );
    assert_eq!(server.separator(), '/');
    assert_eq!(server.prefix(), "");

    let (_, done) = imap.exchange("SELECT INBOX");
    assert!(ok(&done), "{done}");
    let (untagged, done) = imap.append(
        "INBOX",
        r#"(\Flagged $Forwarded) "05-Dec-2020 10:11:12 +0100""#,
        MESSAGE,
    );
    assert!(done.contains("[APPENDUID "), "{done}");
    assert!(
        text(&untagged).contains("* 1 EXISTS"),
        "{}",
        text(&untagged)
    );
    let (fetched, done) = imap.exchange("FETCH 1 (UID FLAGS INTERNALDATE BODY.PEEK[])");
    assert!(ok(&done), "{done}");
    let f = fetch_with_body(&fetched, 1);
    let head = String::from_utf8_lossy(&f);
    assert!(
        head.contains(r#"INTERNALDATE " 5-Dec-2020 09:11:12 +0000""#),
        "{head}"
    );
    assert!(
        head.contains(r"\Flagged") && head.contains("$Forwarded"),
        "{head}"
    );
    assert_eq!(body_of(&f), MESSAGE);

    assert_eq!(server.login_security(), LoginSecurity::Cleartext);
    let archive = server.folder_name(&["Archive", "2024"]);
    assert_eq!(archive, "Archive/2024");
    let (_, done) = imap.exchange(&format!("CREATE {archive}"));
    assert!(ok(&done), "{done}");
    let (list, _) = imap.exchange(r#"LIST "" "*""#);
    let list = text(&list);
    assert!(list.contains(r#""/" INBOX"#), "{list}");
    assert!(list.contains(r#""/" Archive/2024"#), "{list}");
}

#[test]
fn cyrus_quirks() {
    let server = Cyrus::start();
    let bob = server.user("bob");
    let mut imap = Imap::open(server.imap_port(), &bob);
    let (list, _) = imap.exchange(r#"LIST "" "*""#);
    assert_eq!(text(&list), "* LIST (\\HasNoChildren) \"/\" INBOX\r\n");

    let (_, done) = imap.append("INBOX", "", b"Subject: bare\n\nline\n");
    assert!(done.contains("NO Message contains bare newlines"), "{done}");

    let first = imap.select_uidvalidity("INBOX");
    let eight = b"Subject: \xe4\xf6 8-bit\r\n\r\nbody\r\n";
    let (_, done) = imap.append("INBOX", "", eight);
    assert!(ok(&done), "{done}");
    let unterminated = b"Subject: no end\r\n\r\nno CRLF at the end";
    let (_, done) = imap.append("INBOX", "", unterminated);
    assert!(ok(&done), "{done}");
    let (fetched, _) = imap.exchange("FETCH 1:2 (BODY[] FLAGS)");
    assert_eq!(
        body_of(&fetch_with_body(&fetched, 1)),
        b"Subject: XX 8-bit\r\n\r\nbody\r\n",
        "munge8bit (Cyrus's default) replaces 8-bit header bytes by X"
    );
    let second = fetch_with_body(&fetched, 2);
    assert_eq!(body_of(&second), unterminated);
    // FLAGS (with the \Seen that BODY[] sets) come before the body.
    let flags_at = find(&second, b"FLAGS (").unwrap();
    assert!(
        flags_at < find(&second, b"BODY[]").unwrap(),
        "{}",
        String::from_utf8_lossy(&second)
    );
    drop(imap);

    let mut again = Imap::open(server.imap_port(), &bob);
    assert_eq!(again.select_uidvalidity("INBOX"), first);
    let carol = server.user("carol");
    let mut c1 = Imap::open(server.imap_port(), &carol);
    let empty = c1.select_uidvalidity("INBOX");
    drop(c1);
    let mut c2 = Imap::open(server.imap_port(), &carol);
    assert_eq!(
        c2.select_uidvalidity("INBOX"),
        empty,
        "an empty INBOX keeps its UIDVALIDITY"
    );
}

#[test]
fn cyrus_munge8bit_off_keeps_header_bytes() {
    let server = Cyrus::start_with(CyrusOptions {
        munge8bit: Some(false),
        ..CyrusOptions::default()
    });
    let dave = server.user("dave");
    let mut imap = Imap::open(server.imap_port(), &dave);
    let eight = b"Subject: \xe4\xf6 8-bit\r\n\r\nbody\r\n";
    let (_, done) = imap.append("INBOX", "", eight);
    assert!(ok(&done), "{done}");
    imap.select_uidvalidity("INBOX");
    let (fetched, _) = imap.exchange("FETCH 1 BODY.PEEK[]");
    assert_eq!(body_of(&fetch_with_body(&fetched, 1)), eight);
}

#[test]
fn cyrus_tls_and_default_plaintext_refusal() {
    let server = Cyrus::start_with(CyrusOptions {
        allow_plaintext: false,
        ..CyrusOptions::default()
    });
    assert_eq!(server.login_security(), LoginSecurity::StartTls);
    let erin = server.user("erin");
    let mut plain = Imap::connect(server.imap_port(), READ_TIMEOUT);
    assert!(
        plain.greeting.contains("LOGINDISABLED"),
        "{}",
        plain.greeting
    );
    assert!(!plain.greeting.contains("AUTH="), "{}", plain.greeting);
    let (_, done) = plain.cmd(&format!("LOGIN {} {}", erin.name, erin.password));
    assert!(
        done.contains("NO Login only available under a layer"),
        "{done}"
    );

    let login = format!("a LOGIN {} {}\nb LOGOUT\n", erin.name, erin.password);
    let out = over_tls(server.imaps_port(), server.ca_file(), None, &login);
    assert!(out.contains("a OK"), "{out}");
    let out = over_tls(
        server.imap_port(),
        server.ca_file(),
        Some("imap"),
        &format!("c CAPABILITY\n{login}"),
    );
    assert!(out.contains("AUTH=PLAIN"), "{out}");
    assert!(out.contains("a OK"), "{out}");
}

// ---------------------------------------------------------------- Courier

#[test]
fn courier_round_trip() {
    let server = Courier::start();
    let alice = server.user("alice");
    let mut imap = Imap::open(server.imap_port(), &alice);
    let g = &imap.greeting;
    assert!(
        g.starts_with("* OK [CAPABILITY IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE ACL ACL2=UNION STARTTLS ENABLE UTF8=ACCEPT]"),
        "{g}"
    );
    for absent in [
        "AUTH=",
        "SPECIAL-USE",
        "CONDSTORE",
        "LITERAL+",
        "MOVE",
        " ID ",
    ] {
        assert!(!g.contains(absent), "{absent} in {g}");
    }
    let (ns, _) = imap.exchange("NAMESPACE");
    assert!(
        text(&ns)
            .contains(r##"* NAMESPACE (("INBOX." ".")) NIL (("#shared." ".")("shared." "."))"##),
        "{}",
        text(&ns)
    );
    assert_eq!((server.separator(), server.prefix()), ('.', "INBOX."));

    imap.select_uidvalidity("INBOX");
    let (untagged, done) = imap.append(
        "INBOX",
        r#"(\Flagged $Forwarded) "05-Dec-2020 10:11:12 +0100""#,
        MESSAGE,
    );
    assert!(done.contains("[APPENDUID "), "{done}");
    // Courier says nothing of the new message until the next NOOP.
    assert!(!text(&untagged).contains("EXISTS"), "{}", text(&untagged));
    let (noop, _) = imap.exchange("NOOP");
    assert!(text(&noop).contains("* 1 EXISTS"), "{}", text(&noop));
    let (fetched, done) = imap.exchange("FETCH 1 (UID FLAGS INTERNALDATE BODY.PEEK[])");
    assert!(ok(&done), "{done}");
    let f = fetch_with_body(&fetched, 1);
    let head = String::from_utf8_lossy(&f);
    assert!(
        head.contains(r#"INTERNALDATE "05-Dec-2020 09:11:12 +0000""#),
        "{head}"
    );
    assert!(
        head.contains(r"\Flagged") && head.contains("$Forwarded"),
        "{head}"
    );
    assert_eq!(body_of(&f), MESSAGE);

    assert_eq!(server.login_security(), LoginSecurity::Cleartext);
    let archive = server.folder_name(&["Archive", "2024"]);
    assert_eq!(archive, "INBOX.Archive.2024");
    let (_, done) = imap.exchange(&format!("CREATE {archive}"));
    assert!(ok(&done), "{done}");
    let (list, _) = imap.exchange(r#"LIST "" "*""#);
    let list = text(&list);
    assert!(list.contains(r#""." "INBOX""#), "{list}");
    assert!(list.contains(r#""." "INBOX.Archive.2024""#), "{list}");

    let answers = pop3(
        server.pop3_port(),
        &[
            "CAPA",
            &format!("USER {}", alice.name),
            &format!("PASS {}", alice.password),
            "STAT",
            "RETR 1",
            "QUIT",
        ],
    );
    assert!(answers[0].starts_with("+OK"), "{answers:?}");
    assert!(answers[1].contains("STLS"), "{answers:?}");
    assert!(
        !answers[1].contains("SASL"),
        "SASL only under TLS: {answers:?}"
    );
    assert!(answers[3].starts_with("+OK"), "{answers:?}");
    assert!(answers[4].starts_with("+OK 1 "), "{answers:?}");
    let retr = &answers[5];
    let body = retr
        .split_once("\r\n")
        .unwrap()
        .1
        .strip_suffix(".\r\n")
        .unwrap();
    assert_eq!(body.as_bytes(), MESSAGE);
}

#[test]
fn courier_quirks() {
    let server = Courier::start();
    let bob = server.user("bob");
    let mut imap = Imap::open(server.imap_port(), &bob);
    let first = imap.select_uidvalidity("INBOX");
    let (_, done) = imap.append("INBOX", "", b"Subject: bare\n\nline\n");
    assert!(ok(&done), "Courier takes bare LF: {done}");
    let unterminated = b"Subject: no end\r\n\r\nno CRLF at the end";
    let (_, done) = imap.append("INBOX", "", unterminated);
    assert!(ok(&done), "{done}");
    let eight = b"Subject: \xe4\xf6 8-bit\r\n\r\nbody\r\n";
    let (untagged, done) = imap.append("INBOX", "", eight);
    assert!(ok(&done), "{done}");
    assert!(
        text(&untagged).contains("* OK [ALERT]"),
        "{}",
        text(&untagged)
    );
    imap.exchange("NOOP");
    let (fetched, _) = imap.exchange("FETCH 1:3 (BODY[] FLAGS)");
    assert_eq!(
        body_of(&fetch_with_body(&fetched, 1)),
        b"Subject: bare\r\n\r\nline\r\n"
    );
    assert_eq!(
        body_of(&fetch_with_body(&fetched, 2)),
        b"Subject: no end\r\n\r\nno CRLF at the end\r\n",
        "Courier adds a CRLF to a message that does not end with one"
    );
    assert_eq!(body_of(&fetch_with_body(&fetched, 3)), eight);
    let second = fetch_with_body(&fetched, 2);
    let flags_at = find(&second, b" FLAGS (").expect("FLAGS in the same response");
    assert!(
        flags_at > find(&second, b"BODY[]").unwrap(),
        "Courier sends FLAGS after BODY[]: {}",
        String::from_utf8_lossy(&second)
    );
    drop(imap);
    let mut again = Imap::open(server.imap_port(), &bob);
    assert_eq!(
        again.select_uidvalidity("INBOX"),
        first,
        "a non-empty INBOX keeps its UIDVALIDITY"
    );
}

#[test]
fn courier_empty_inbox_uidvalidity() {
    let server = Courier::start();
    let carol = server.user("carol");
    let mut s1 = Imap::open(server.imap_port(), &carol);
    let a = s1.select_uidvalidity("INBOX");
    drop(s1);
    std::thread::sleep(Duration::from_millis(1100));
    let mut s2 = Imap::open(server.imap_port(), &carol);
    let b = s2.select_uidvalidity("INBOX");
    println!("courier empty INBOX UIDVALIDITY: {a} then {b}");
    assert_eq!(
        a, b,
        "Courier keeps an empty INBOX's UIDVALIDITY between sessions"
    );
}

#[test]
fn courier_tls() {
    // STARTTLS (IMAP and POP3) was seen to work, with AUTH=PLAIN added
    // after it, from a Python client; `openssl s_client -starttls imap`
    // does not finish its exchange with Courier, so only implicit TLS is
    // checked here.
    let server = Courier::start();
    let dave = server.user("dave");
    let out = over_tls(
        server.imaps_port(),
        server.ca_file(),
        None,
        &format!(
            "c CAPABILITY\na LOGIN {} {}\nb LOGOUT\n",
            dave.name, dave.password
        ),
    );
    assert!(out.contains("AUTH=PLAIN") && out.contains("a OK"), "{out}");
    let out = over_tls(
        server.pop3s_port(),
        server.ca_file(),
        None,
        &format!("CAPA\nUSER {}\nPASS {}\nQUIT\n", dave.name, dave.password),
    );
    assert!(out.contains("SASL LOGIN PLAIN"), "{out}");
    assert!(out.matches("+OK").count() >= 4, "{out}");
}

// ---------------------------------------------------------------- Mailutils

#[test]
fn mailutils_round_trip() {
    let server = Mailutils::start();
    let alice = server.user("alice");
    assert_eq!(alice.name, "alice@mailutils.test");
    assert_eq!(server.user("alice@mailutils.test"), alice);
    let mut imap = Imap::open(server.imap_port(), &alice);
    assert_eq!(imap.greeting, "* OK IMAP4rev1\r\n");
    let (caps, _) = imap.exchange("CAPABILITY");
    let caps = text(&caps);
    for cap in [
        "IMAP4rev1",
        "NAMESPACE",
        "ID",
        "IDLE",
        "LITERAL+",
        "UNSELECT",
    ] {
        assert!(caps.contains(&format!(" {cap}")), "{cap} missing: {caps}");
    }
    for absent in ["UIDPLUS", "CONDSTORE", "SPECIAL-USE", "MOVE", "MULTIAPPEND"] {
        assert!(!caps.contains(absent), "{absent} in {caps}");
    }
    let (ns, _) = imap.exchange("NAMESPACE");
    assert!(
        text(&ns).contains(r#"* NAMESPACE (("" "/")) NIL NIL"#),
        "{}",
        text(&ns)
    );

    imap.select_uidvalidity("INBOX");
    let (_, done) = imap.append(
        "INBOX",
        r#"(\Flagged) "05-Dec-2020 10:11:12 +0000""#,
        MESSAGE,
    );
    assert!(ok(&done), "{done}");
    let (fetched, _) = imap.exchange("FETCH 1 (UID FLAGS INTERNALDATE BODY.PEEK[])");
    let f = fetch_with_body(&fetched, 1);
    let head = String::from_utf8_lossy(&f);
    assert!(
        head.contains(r#"INTERNALDATE "05-Dec-2020 10:11:12 +0000""#),
        "{head}"
    );
    let body = body_of(&f);
    assert_eq!(body, MESSAGE, "unchanged while the session lasts");

    assert_eq!(server.login_security(), LoginSecurity::Cleartext);
    let archive = server.folder_name(&["Archive", "2024"]);
    assert_eq!(archive, "Archive/2024");
    let (_, done) = imap.exchange(&format!("CREATE {archive}"));
    assert!(ok(&done), "{done}");
    let (list, _) = imap.exchange(r#"LIST "" "*""#);
    let list = text(&list);
    assert!(list.contains("* LIST (\\NoInferiors) NIL INBOX"), "{list}");
    assert!(list.contains(r#""/" Archive/2024"#), "{list}");
    drop(imap);

    let answers = pop3(
        server.pop3_port(),
        &[
            "CAPA",
            &format!("USER {}", alice.name),
            &format!("PASS {}", alice.password),
            "STAT",
            "RETR 1",
            "QUIT",
        ],
    );
    assert!(answers[0].starts_with("+OK POP3 Ready"), "{answers:?}");
    assert!(
        answers[1].contains("STLS") && answers[1].contains("USER"),
        "{answers:?}"
    );
    assert!(answers[3].starts_with("+OK"), "{answers:?}");
    assert!(
        answers[5].contains("Hello from the test kit."),
        "{answers:?}"
    );
    assert!(answers[5].contains("X-UID: 1"), "{answers:?}");
}

#[test]
fn mailutils_append_fidelity() {
    let server = Mailutils::start();
    let bob = server.user("bob");
    let mut imap = Imap::open(server.imap_port(), &bob);
    let first = imap.select_uidvalidity("INBOX");

    let (_, done) = imap.append(
        "INBOX",
        r#"($Forwarded) "05-Dec-2020 10:11:12 +0100""#,
        MESSAGE,
    );
    assert!(done.contains("BAD APPEND Unrecognized flag"), "{done}");
    // Without an INTERNALDATE, a message needs a From: header (for the
    // mbox envelope line) and then gets the epoch as its date.
    let (_, done) = imap.append("INBOX", r"(\Seen)", b"Subject: no from\r\n\r\nx\r\n");
    assert!(done.contains("NO APPEND [TRYCREATE] failed"), "{done}");

    let (_, done) = imap.append(
        "INBOX",
        r#"(\Seen \Answered \Flagged \Draft) "05-Dec-2020 10:11:12 +0100""#,
        MESSAGE,
    );
    assert!(ok(&done), "{done}");
    assert!(!done.contains("APPENDUID"), "{done}");
    let (_, done) = imap.append(
        "INBOX",
        r#"() "06-Dec-2020 10:11:12 +0000""#,
        b"Subject: bare\n\nline",
    );
    assert!(ok(&done), "{done}");
    let (_, done) = imap.append("INBOX", "", MESSAGE);
    assert!(ok(&done), "{done}");
    // Read back in a new session.
    drop(imap);
    let mut imap = Imap::open(server.imap_port(), &bob);
    let second = imap.select_uidvalidity("INBOX");
    let (fetched, _) = imap.exchange("FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[])");
    let all = text(&fetched);
    println!("mailutils FETCH after APPEND:\n{all}");
    let one = String::from_utf8_lossy(&fetch_with_body(&fetched, 1)).into_owned();
    assert!(
        one.contains(r#"INTERNALDATE "05-Dec-2020 10:11:12 +0000""#),
        "the zone is dropped: {one}"
    );
    // Of the three APPENDs answered OK in the session that had SELECTed
    // the (empty) INBOX, only the first is there in the next session, and
    // without its flags: imap4d saved its own stale view of the mailbox.
    let kept = fetched.iter().filter(|r| r.starts_with(b"* ")).count();
    assert_eq!(kept, 1, "{all}");
    println!("mailutils UIDVALIDITY: {first} then {second}");
    assert!(
        !one.contains(r"\Flagged") && !one.contains(r"\Answered") && !one.contains(r"\Draft"),
        "flags lost with the stale view: {one}"
    );

    drop(imap);

    // Appending to a mailbox the session has not selected keeps every
    // message and its system flags.
    let dave = server.user("dave");
    let mut imap = Imap::open(server.imap_port(), &dave);
    for _ in 0..3 {
        let (_, done) = imap.append(
            "INBOX",
            r#"(\Seen \Flagged) "05-Dec-2020 10:11:12 +0100""#,
            MESSAGE,
        );
        assert!(ok(&done), "{done}");
    }
    let (_, done) = imap.cmd("LOGOUT");
    assert!(ok(&done), "{done}");
    let mut imap = Imap::open(server.imap_port(), &dave);
    let kept = imap.select_uidvalidity("INBOX");
    let (fetched, _) = imap.exchange("FETCH 1:* FLAGS");
    let flags = text(&fetched);
    assert_eq!(fetched.len(), 3, "{flags}");
    assert_eq!(
        flags.matches(r"(\Flagged \Seen").count(),
        3,
        "flags kept: {flags}"
    );
    drop(imap);
    let mut imap = Imap::open(server.imap_port(), &dave);
    assert_eq!(
        imap.select_uidvalidity("INBOX"),
        kept,
        "a non-empty INBOX keeps its UIDVALIDITY"
    );
    drop(imap);

    let carol = server.user("carol");
    let mut c1 = Imap::open(server.imap_port(), &carol);
    let a = c1.select_uidvalidity("INBOX");
    drop(c1);
    std::thread::sleep(Duration::from_millis(1100));
    let mut c2 = Imap::open(server.imap_port(), &carol);
    let b = c2.select_uidvalidity("INBOX");
    println!("mailutils empty INBOX UIDVALIDITY: {a} then {b}");
    assert_ne!(
        a, b,
        "Mailutils gives an empty INBOX a new UIDVALIDITY each session"
    );
}

/// Standard base64 (for a SASL PLAIN response).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn mailutils_authenticate_plain_ends_in_bare_lf() {
    assert_eq!(base64(b"\0ab\0cd"), "AGFiAGNk");
    let server = Mailutils::start();
    let frank = server.user("frank");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    write!(imap.writer, "a AUTHENTICATE PLAIN\r\n").unwrap();
    assert!(imap.raw_line().starts_with(b"+"));
    let response = base64(format!("\0{}\0{}", frank.name, frank.password).as_bytes());
    write!(imap.writer, "{response}\r\n").unwrap();
    assert_eq!(
        imap.raw_line(),
        b"a OK AUTHENTICATE PLAIN authentication successful\n"
    );
    let (_, done) = imap.cmd("NOOP");
    assert!(ok(&done), "{done}");
}

#[test]
fn mailutils_tls() {
    let server = Mailutils::start();
    let erin = server.user("erin");
    let login = format!("a LOGIN {} {}\nb LOGOUT\n", erin.name, erin.password);
    let out = over_tls(server.imaps_port(), server.ca_file(), None, &login);
    assert!(out.contains("a OK"), "{out}");
    let out = over_tls(
        server.imap_port(),
        server.ca_file(),
        Some("imap"),
        &format!("c CAPABILITY\n{login}"),
    );
    assert!(out.contains("a OK"), "{out}");
    let out = over_tls(
        server.pop3s_port(),
        server.ca_file(),
        None,
        &format!("USER {}\nPASS {}\nQUIT\n", erin.name, erin.password),
    );
    assert!(out.matches("+OK").count() >= 3, "{out}");
}

// ---------------------------------------------------------------- all

/// Several instances of each server at once, from parallel threads, each
/// serving its own users.
#[test]
fn many_instances_at_once() {
    let threads: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let cyrus = Cyrus::start();
                let courier = Courier::start();
                let mailutils = Mailutils::start();
                let name = format!("user{i}");
                for (port, user) in [
                    (cyrus.imap_port(), cyrus.user(&name)),
                    (courier.imap_port(), courier.user(&name)),
                    (mailutils.imap_port(), mailutils.user(&name)),
                ] {
                    let mut imap = Imap::open(port, &user);
                    let (_, done) = imap.cmd("LOGOUT");
                    assert!(ok(&done), "{done}");
                }
                (
                    cyrus.imap_port(),
                    courier.imap_port(),
                    mailutils.imap_port(),
                )
            })
        })
        .collect();
    let mut ports = Vec::new();
    for t in threads {
        let (a, b, c) = t.join().expect("an instance failed");
        ports.extend([a, b, c]);
    }
    let n = ports.len();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), n, "every instance had its own port");
}
