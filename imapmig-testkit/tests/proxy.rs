//! The fault-injection proxy in front of a real private Dovecot, spoken to
//! with hand-written IMAP lines over plain `TcpStream`s.

mod support;

use std::io::{BufRead, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use imapmig_testkit::{Direction, Dovecot, FaultProxy, Flavour, TestUser};
use support::Imap;

const REFUSAL: &str = "NO [UNAVAILABLE] Temporary failure, try later";

/// How long a read of the test's own IMAP sessions waits.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Imap {
    /// LOGIN with both arguments as synchronising literals; returns the
    /// tagged answer.
    fn login_with_literals(&mut self, user: &str, password: &str) -> String {
        let tag = self.tag();
        write!(self.writer, "{tag} LOGIN {{{}}}\r\n", user.len()).unwrap();
        let go = self.line();
        assert!(go.starts_with('+'), "no continuation: {go}");
        write!(self.writer, "{user} {{{}}}\r\n", password.len()).unwrap();
        let go = self.line();
        assert!(go.starts_with('+'), "no continuation: {go}");
        write!(self.writer, "{password}\r\n").unwrap();
        self.collect(&tag).1
    }

    /// Everything until the server closes the connection.
    fn rest(mut self) -> Vec<u8> {
        let mut v = self.reader.buffer().to_vec();
        let n = v.len();
        self.reader.consume(n);
        read_to_eof(self.reader.get_mut(), &mut v);
        v
    }
}

fn read_to_eof(s: &mut TcpStream, into: &mut Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match s.read_to_end(into) {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no EOF: {e}"),
    }
}

fn ok(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("OK")
}

fn server_with_user() -> (Dovecot, TestUser) {
    let server = Dovecot::start(Flavour::Slash);
    let user = server.user("alice");
    (server, user)
}

/// What a connection gets before it is closed, within 10 s.
fn everything_from(port: u16, send: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let _ = s.write_all(send);
    let mut v = Vec::new();
    read_to_eof(&mut s, &mut v);
    v
}

#[test]
fn forwards_greeting_login_and_list() {
    let (server, alice) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    assert_eq!(proxy.host(), "127.0.0.1");
    assert_eq!(proxy.addr().port(), proxy.port());
    assert_eq!(proxy.upstream(), server.imap_addr());

    let mut imap = Imap::connect(proxy.port(), READ_TIMEOUT);
    assert!(imap.greeting.starts_with("* OK"), "{}", imap.greeting);
    let (_, done) = imap.cmd(&format!("LOGIN alice {}", alice.password));
    assert!(ok(&done), "{done}");
    let (lines, done) = imap.cmd("LIST \"\" \"*\"");
    assert!(ok(&done), "{done}");
    assert!(lines.iter().any(|l| l.contains("INBOX")), "{lines:?}");
    let (_, done) = imap.cmd("LOGOUT");
    assert!(ok(&done), "{done}");
    let _ = imap.rest();

    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.cuts(), 0);
    assert!(proxy.bytes(Direction::ToServer) > 40);
    assert!(proxy.bytes(Direction::ToClient) > 100);
}

#[test]
fn cut_after_delivers_exactly_that_many_bytes_then_eof() {
    let (server, _) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    let greeting_len = Imap::connect(server.imap_port(), READ_TIMEOUT)
        .greeting
        .len() as u64;

    // Counted over all connections: the cut falls 7 bytes into the answer
    // to CAPABILITY in the second session, which alone is closed.
    proxy.cut_after(Direction::ToClient, 2 * greeting_len + 7);
    let mut first = Imap::connect(proxy.port(), READ_TIMEOUT);
    let second = Imap::connect(proxy.port(), READ_TIMEOUT);
    let mut second_writer = second.writer.try_clone().unwrap();
    write!(second_writer, "a CAPABILITY\r\n").unwrap();
    let got = second.rest();
    assert_eq!(got, b"* CAPAB", "{:?}", String::from_utf8_lossy(&got));
    assert!(proxy.wait_for_cut(Duration::from_secs(5)));
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(proxy.bytes(Direction::ToClient), 2 * greeting_len + 7);

    // One-shot: the other session, and the next one, are whole.
    let (_, done) = first.cmd("NOOP");
    assert!(ok(&done), "{done}");
    let mut again = Imap::connect(proxy.port(), READ_TIMEOUT);
    let (_, done) = again.cmd("CAPABILITY");
    assert!(ok(&done), "{done}");
    assert_eq!(proxy.cuts(), 1);
}

#[test]
fn cut_after_toward_the_server_stops_a_command_short() {
    let (server, _) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    proxy.cut_after(Direction::ToServer, 5);
    let mut imap = Imap::connect(proxy.port(), READ_TIMEOUT);
    write!(imap.writer, "a NOOP\r\n").unwrap();
    let got = imap.rest();
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert!(proxy.wait_for_cut(Duration::from_secs(5)));
    assert_eq!(proxy.bytes(Direction::ToServer), 5);
}

#[test]
fn cut_at_pattern_falls_inside_a_fetch_literal() {
    let (server, alice) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    let mut message = b"From: a@example.org\r\nSubject: cut\r\n\r\n".to_vec();
    while message.len() < 5000 {
        message.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop\r\n",
        );
    }
    {
        let mut direct = Imap::connect(server.imap_port(), READ_TIMEOUT);
        let (_, done) = direct.cmd(&format!("LOGIN alice {}", alice.password));
        assert!(ok(&done), "{done}");
        write!(direct.writer, "a APPEND INBOX {{{}+}}\r\n", message.len()).unwrap();
        direct.writer.write_all(&message).unwrap();
        direct.writer.write_all(b"\r\n").unwrap();
        let (_, done) = direct.collect("a");
        assert!(ok(&done), "{done}");
    }

    let pattern = format!("BODY[] {{{}}}\r\n", message.len());
    proxy.cut_at_pattern(
        Direction::ToClient,
        pattern.as_bytes(),
        pattern.len() as u64 + 300,
    );
    let mut imap = Imap::connect(proxy.port(), READ_TIMEOUT);
    let (_, done) = imap.cmd(&format!("LOGIN alice {}", alice.password));
    assert!(ok(&done), "{done}");
    let (_, done) = imap.cmd("EXAMINE INBOX");
    assert!(ok(&done), "{done}");
    write!(imap.writer, "f UID FETCH 1 (BODY.PEEK[])\r\n").unwrap();
    let head = imap.line();
    assert!(head.ends_with(&pattern), "{head}");
    let body = imap.rest();
    assert_eq!(body, &message[..300]);
    assert!(proxy.wait_for_cut(Duration::from_secs(5)));
    assert_eq!(proxy.cuts(), 1);
}

#[test]
fn stay_down_after_cut_refuses_then_recovers() {
    let (server, _) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    proxy.stay_down_after_cut(Duration::from_millis(700));
    proxy.cut_after(Direction::ToClient, 4);
    assert_eq!(everything_from(proxy.port(), b""), b"* OK");
    assert!(proxy.wait_for_cut(Duration::from_secs(5)));
    assert!(proxy.is_down());

    // While down: accepted, closed at once, nothing said.
    assert!(everything_from(proxy.port(), b"a NOOP\r\n").is_empty());
    assert!(proxy.connections_refused() >= 1);

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = everything_from(proxy.port(), b"a LOGOUT\r\n");
        if got.starts_with(b"* OK") {
            break;
        }
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert!(Instant::now() < deadline, "the proxy stayed down");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!proxy.is_down());
}

#[test]
fn set_down_refuses_new_connections_and_cut_all_closes_live_ones() {
    let (server, _) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    let mut live = Imap::connect(proxy.port(), READ_TIMEOUT);
    let (_, done) = live.cmd("NOOP");
    assert!(ok(&done), "{done}");

    proxy.set_down(true);
    assert!(everything_from(proxy.port(), b"").is_empty());
    // The live session is left alone by set_down ...
    let (_, done) = live.cmd("NOOP");
    assert!(ok(&done), "{done}");
    // ... and ended by cut_all.
    proxy.cut_all();
    assert!(live.rest().is_empty());
    assert_eq!(proxy.cuts(), 1);
    assert!(!proxy.wait_for_cut(Duration::ZERO), "no cut was armed");

    proxy.set_down(false);
    let mut back = Imap::connect(proxy.port(), READ_TIMEOUT);
    let (_, done) = back.cmd("NOOP");
    assert!(ok(&done), "{done}");
}

#[test]
fn refuse_logins_answers_unavailable_including_for_a_synchronising_literal() {
    let (server, alice) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    proxy.refuse_logins(Some(REFUSAL.to_string()));

    let mut imap = Imap::connect(proxy.port(), READ_TIMEOUT);
    // The greeting and CAPABILITY still come from Dovecot.
    assert!(imap.greeting.starts_with("* OK"));
    let (caps, done) = imap.cmd("CAPABILITY");
    assert!(
        ok(&done) && caps[0].contains("AUTH=PLAIN"),
        "{caps:?} {done}"
    );

    let (_, done) = imap.cmd(&format!("LOGIN alice {}", alice.password));
    assert_eq!(done, format!("t2 {REFUSAL}\r\n"));
    let done = imap.login_with_literals("alice", &alice.password);
    assert_eq!(done, format!("t3 {REFUSAL}\r\n"));
    let (_, done) = imap.cmd("AUTHENTICATE PLAIN");
    assert_eq!(done, format!("t4 {REFUSAL}\r\n"));
    let (_, done) = imap.cmd("AUTHENTICATE PLAIN AGFsaWNlAHg=");
    assert_eq!(done, format!("t5 {REFUSAL}\r\n"));
    assert_eq!(proxy.logins_refused(), 4);
    // The session is still in step with the server.
    let (_, done) = imap.cmd("NOOP");
    assert!(ok(&done), "{done}");

    // Forwarding again: Dovecot itself takes the literal login.
    proxy.refuse_logins(None);
    let done = imap.login_with_literals("alice", &alice.password);
    assert!(ok(&done), "{done}");
    let (_, done) = imap.cmd("SELECT INBOX");
    assert!(ok(&done), "{done}");
}

#[test]
fn refuse_logins_for_n_refuses_only_the_next_n() {
    let (server, alice) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    proxy.refuse_logins_for(REFUSAL, 2);
    for expect_refusal in [true, true, false] {
        let mut imap = Imap::connect(proxy.port(), READ_TIMEOUT);
        let (_, done) = imap.cmd(&format!("LOGIN alice {}", alice.password));
        assert_eq!(done.contains("[UNAVAILABLE]"), expect_refusal, "{done}");
        assert_eq!(ok(&done), !expect_refusal, "{done}");
    }
    assert_eq!(proxy.logins_refused(), 2);
}

#[test]
fn drop_closes_live_connections_and_stops_accepting() {
    let (server, _) = server_with_user();
    let proxy = FaultProxy::start(server.imap_addr());
    let port = proxy.port();
    let mut live = Imap::connect(port, READ_TIMEOUT);
    let (_, done) = live.cmd("NOOP");
    assert!(ok(&done), "{done}");
    assert_eq!(proxy.live_connections(), 1);

    let started = Instant::now();
    drop(proxy);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(live.rest().is_empty());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port still accepts"
    );
}
