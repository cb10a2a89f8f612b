//! The testkit against real Dovecot instances, spoken to with hand-written
//! IMAP/POP3 lines over plain `TcpStream`s.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use imapmig_testkit::{Dovecot, DovecotOptions, Flavour};
use support::Imap;

/// How long a read of the test's own IMAP sessions waits.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

impl Imap {
    /// APPEND with a synchronizing literal; returns the tagged line (the
    /// server may refuse before the literal is sent).
    fn append(&mut self, mailbox: &str, message: &[u8]) -> String {
        let tag = self.tag();
        write!(
            self.writer,
            "{tag} APPEND {mailbox} {{{}}}\r\n",
            message.len()
        )
        .unwrap();
        let l = self.line();
        if !l.starts_with('+') {
            assert!(l.starts_with(&tag), "unexpected: {l}");
            return l;
        }
        self.writer.write_all(message).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        self.collect(&tag).1
    }

    fn login_ok(&mut self, user: &str, password: &str) {
        let (_, done) = self.cmd(&format!("LOGIN {user} {password}"));
        assert!(done.contains(" OK "), "LOGIN {user} failed: {done}");
    }
}

fn ok(line: &str) -> bool {
    line.split_whitespace().nth(1) == Some("OK")
}

/// A message of exactly `size` bytes, CRLF line endings.
fn message(size: usize) -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: test\r\n\r\n".to_vec();
    assert!(size >= m.len() + 2);
    while m.len() < size {
        let remaining = size - m.len();
        let n = if remaining - 2 > 72 {
            70
        } else {
            remaining - 2
        };
        m.extend(std::iter::repeat_n(b'x', n));
        m.extend_from_slice(b"\r\n");
    }
    assert_eq!(m.len(), size);
    m
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn both_flavours_start_and_greet() {
    for flavour in Flavour::ALL {
        let server = Dovecot::start(flavour);
        assert_eq!(server.flavour(), flavour);
        assert_eq!(server.host(), "127.0.0.1");
        let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
        assert!(imap.greeting.starts_with("* OK"), "{}", imap.greeting);
        let (caps, done) = imap.cmd("CAPABILITY");
        assert!(ok(&done), "{done}");
        assert!(caps[0].contains("STARTTLS"), "{caps:?}");
        assert!(caps[0].contains("AUTH=PLAIN"), "{caps:?}");

        let pop = TcpStream::connect(("127.0.0.1", server.pop3_port())).unwrap();
        pop.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut pop = BufReader::new(pop);
        let mut l = String::new();
        pop.read_line(&mut l).unwrap();
        assert!(l.starts_with("+OK"), "{l}");

        for port in [server.imaps_port(), server.pop3s_port()] {
            TcpStream::connect(("127.0.0.1", port)).expect("TLS port accepts");
        }
        let ca = std::fs::read_to_string(server.ca_file()).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    }
}

#[test]
fn login_and_wrong_password() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    assert_eq!(server.user("alice"), alice, "user() is idempotent");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    let (_, done) = imap.cmd(&format!("LOGIN alice {}x", alice.password));
    assert!(done.contains("NO [AUTHENTICATIONFAILED]"), "{done}");
    let (_, done) = imap.cmd("LOGIN nobody-here whatever");
    assert!(done.contains(" NO "), "{done}");
    imap.login_ok(&alice.name, &alice.password);
    let (_, done) = imap.cmd("SELECT INBOX");
    assert!(ok(&done), "{done}");
}

#[test]
fn special_use_folders_per_flavour() {
    for flavour in Flavour::ALL {
        let server = Dovecot::start(flavour);
        let u = server.user("bob");
        let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
        imap.login_ok(&u.name, &u.password);
        let (lines, done) = imap.cmd("LIST \"\" \"*\" RETURN (SPECIAL-USE)");
        assert!(ok(&done), "{done}");
        let sep = flavour.separator();
        for (name, attr) in flavour.special_use_folders() {
            let quoted = if name.contains(' ') {
                format!("\"{name}\"")
            } else {
                name.clone()
            };
            let want = format!("* LIST ({attr}) \"{sep}\" {quoted}\r\n");
            assert!(
                lines.contains(&want),
                "{flavour:?}: missing {want:?} in {lines:?}"
            );
        }
        let (lines, _) = imap.cmd("LIST (SPECIAL-USE) \"\" \"*\"");
        assert_eq!(lines.len(), 5, "{lines:?}");
        let (lines, _) = imap.cmd("LSUB \"\" \"*\"");
        assert_eq!(lines.len(), 5, "auto-subscribed: {lines:?}");
        let (lines, _) = imap.cmd("NAMESPACE");
        let want = match flavour {
            Flavour::Slash => "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n",
            Flavour::DotInbox => "* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n",
        };
        assert_eq!(lines, vec![want.to_string()]);
        // A nested folder uses the flavour's separator.
        let nested = flavour.folder_name(&["Projects", "2024"]);
        let (_, done) = imap.cmd(&format!("CREATE \"{nested}\""));
        assert!(ok(&done), "{done}");
        let (lines, _) = imap.cmd(&format!("LIST \"\" \"{nested}\""));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains(&format!("\"{sep}\"")), "{lines:?}");
    }
}

#[test]
fn master_user_logins() {
    let server = Dovecot::start(Flavour::DotInbox);
    let carol = server.user("carol");
    let master = server.master_user();
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&format!("carol*{}", master.name), &master.password);
    let (_, done) = imap.cmd("SELECT INBOX");
    assert!(ok(&done), "{done}");

    // SASL PLAIN: authzid = target user, authcid = master.
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    let ir = base64(format!("carol\0{}\0{}", master.name, master.password).as_bytes());
    let (_, done) = imap.cmd(&format!("AUTHENTICATE PLAIN {ir}"));
    assert!(ok(&done), "{done}");
    assert!(server.log().contains("Master user logging in as carol"));

    // Wrong master password fails; the user's own password still works.
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    let (_, done) = imap.cmd(&format!("LOGIN carol*{} nope", master.name));
    assert!(done.contains(" NO "), "{done}");
    imap.login_ok("carol", &carol.password);
}

#[test]
fn set_password_takes_effect_immediately() {
    let server = Dovecot::start(Flavour::Slash);
    let dave = server.user("dave");
    // Changes right after a login (same second, same length) must be seen.
    let new1 = "a".repeat(dave.password.len());
    let new2 = "b".repeat(dave.password.len());
    for (old, new) in [(dave.password.as_str(), new1.as_str()), (&new1, &new2)] {
        let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
        imap.login_ok("dave", old);
        server.set_password("dave", new);
        let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
        let (_, done) = imap.cmd(&format!("LOGIN dave {old}"));
        assert!(done.contains(" NO "), "old password still accepted: {done}");
        imap.login_ok("dave", new);
    }
    assert_eq!(server.user("dave").password, new2);

    // Passwords with characters that need quoting/escaping.
    server.set_password("dave", "p:a\"ss\\w rd");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok("dave", "\"p:a\\\"ss\\\\w rd\"");
    // A user created by set_password, logging in with another case.
    server.set_password("Eve", "evepw");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok("EVE", "evepw");
    assert!(server.maildir_of("eVe").ends_with("eve"));
}

#[test]
fn two_instances_at_once_and_drop_stops() {
    let a = Dovecot::start(Flavour::Slash);
    let b = Dovecot::start(Flavour::DotInbox);
    let ports_a = [a.imap_port(), a.imaps_port(), a.pop3_port(), a.pop3s_port()];
    let ports_b = [b.imap_port(), b.imaps_port(), b.pop3_port(), b.pop3s_port()];
    for p in ports_a {
        assert!(!ports_b.contains(&p));
    }
    let ua = a.user("same");
    let ub = b.user("same");
    assert_ne!(ua.password, ub.password);
    let mut ia = Imap::connect(a.imap_port(), READ_TIMEOUT);
    let mut ib = Imap::connect(b.imap_port(), READ_TIMEOUT);
    ia.login_ok("same", &ua.password);
    ib.login_ok("same", &ub.password);
    let (_, done) = ia.cmd(&format!("LOGIN same {}", ub.password));
    assert!(!ok(&done));

    let dir = a.dir().to_path_buf();
    drop(ia);
    drop(a);
    for p in ports_a {
        assert!(
            TcpStream::connect(("127.0.0.1", p)).is_err(),
            "port {p} still accepts after drop"
        );
    }
    assert!(!dir.exists(), "instance directory not removed");
    // The other instance is unaffected, including its open session.
    let (_, done) = ib.cmd("NOOP");
    assert!(ok(&done), "{done}");
}

#[test]
fn drop_with_open_sessions_is_prompt() {
    let server = Dovecot::start(Flavour::Slash);
    let u = server.user("erin");
    let mut sessions: Vec<Imap> = (0..5)
        .map(|_| Imap::connect(server.imap_port(), READ_TIMEOUT))
        .collect();
    for s in &mut sessions {
        s.login_ok(&u.name, &u.password);
        s.cmd("SELECT INBOX");
    }
    let port = server.imap_port();
    let t = std::time::Instant::now();
    drop(server);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn quota_per_user() {
    let server = Dovecot::start(Flavour::Slash);
    let f = server.user_with_quota("frank", 20);
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&f.name, &f.password);
    let (lines, _) = imap.cmd("GETQUOTAROOT INBOX");
    assert!(
        lines.iter().any(|l| l.contains("(STORAGE 0 20)")),
        "{lines:?}"
    );
    let done = imap.append("INBOX", &message(15_000));
    assert!(ok(&done), "{done}");
    let done = imap.append("INBOX", &message(15_000));
    assert!(done.contains("NO [OVERQUOTA]"), "{done}");
    // Users without their own quota get the default (1 GiB).
    let g = server.user("grace");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&g.name, &g.password);
    let (lines, _) = imap.cmd("GETQUOTAROOT INBOX");
    assert!(
        lines.iter().any(|l| l.contains("(STORAGE 0 1048576)")),
        "{lines:?}"
    );
}

#[test]
fn max_message_size_refuses_big_appends() {
    let server = Dovecot::start_with(
        Flavour::DotInbox,
        DovecotOptions {
            max_message_size: Some(10_000),
            ..DovecotOptions::default()
        },
    );
    let h = server.user("heidi");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&h.name, &h.password);
    let done = imap.append("INBOX", &message(10_000));
    assert!(ok(&done), "exactly at the limit: {done}");
    let done = imap.append("INBOX", &message(10_001));
    assert!(done.contains("NO [LIMIT]"), "{done}");
    // The session goes on.
    let done = imap.append("INBOX", &message(500));
    assert!(ok(&done), "{done}");
    let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
    assert!(lines[0].contains("MESSAGES 2"), "{lines:?}");
}

#[test]
fn doveadm_and_maildir() {
    let server = Dovecot::start(Flavour::Slash);
    let u = server.user("ivan");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&u.name, &u.password);
    for _ in 0..3 {
        assert!(ok(&imap.append("Sent", &message(300))));
    }
    let out = server.doveadm_ok(&[
        "mailbox",
        "status",
        "-u",
        "ivan",
        "messages uidvalidity",
        "Sent",
    ]);
    assert!(out.contains("messages=3"), "{out}");
    let maildir = server.maildir_of("ivan");
    let cur_new: usize = ["cur", "new"]
        .iter()
        .map(|d| std::fs::read_dir(maildir.join("Sent").join(d)).map_or(0, |r| r.count()))
        .sum();
    assert_eq!(cur_new, 3, "{}", maildir.display());
    server.doveadm_ok(&["expunge", "-u", "ivan", "mailbox", "Sent", "all"]);
    let out = server.doveadm_ok(&["mailbox", "status", "-u", "ivan", "messages", "Sent"]);
    assert!(out.contains("messages=0"), "{out}");
    let failed = server.doveadm(&[
        "mailbox",
        "status",
        "-u",
        "ivan",
        "messages",
        "NoSuchFolder",
    ]);
    assert!(!failed.status.success());

    // Changing UIDVALIDITY under a client, as real servers sometimes do.
    server.doveadm_ok(&[
        "mailbox",
        "update",
        "-u",
        "ivan",
        "--uid-validity",
        "4242",
        "Sent",
    ]);
    let (lines, _) = imap.cmd("STATUS Sent (UIDVALIDITY)");
    assert!(lines[0].contains("UIDVALIDITY 4242"), "{lines:?}");
    server.doveadm_ok(&["force-resync", "-u", "ivan", "*"]);
}

#[test]
fn tls_certificate_verifies_with_openssl() {
    let server = Dovecot::start(Flavour::Slash);
    let ca = server.ca_file().to_str().unwrap().to_string();
    let check = |port: u16, extra: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args([
                "-CAfile",
                &ca,
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
            ])
            .args(extra)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "port {port} {extra:?}: {text}"
        );
    };
    check(server.imaps_port(), &[]);
    check(server.pop3s_port(), &["-verify_hostname", "localhost"]);
    check(server.imap_port(), &["-starttls", "imap"]);
    check(server.pop3_port(), &["-starttls", "pop3"]);
}

#[test]
fn dovecot_is_send_and_sync() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Dovecot>();
}

#[test]
fn pop3_login() {
    let server = Dovecot::start(Flavour::Slash);
    let u = server.user("judy");
    let s = TcpStream::connect(("127.0.0.1", server.pop3_port())).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut line = || {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        l
    };
    assert!(line().starts_with("+OK"));
    write!(w, "CAPA\r\n").unwrap();
    let mut caps = Vec::new();
    loop {
        let l = line();
        if l == ".\r\n" {
            break;
        }
        caps.push(l);
    }
    assert!(caps.iter().any(|c| c.starts_with("STLS")), "{caps:?}");
    write!(w, "USER judy\r\nPASS {}\r\n", u.password).unwrap();
    assert!(line().starts_with("+OK"));
    assert!(line().starts_with("+OK"), "PASS failed");
    write!(w, "STAT\r\n").unwrap();
    assert_eq!(line(), "+OK 0 0\r\n");
}

#[test]
fn restart_keeps_ports_users_and_mail() {
    let server = Dovecot::start(Flavour::DotInbox);
    let u = server.user("mallory");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&u.name, &u.password);
    assert!(ok(&imap.append("INBOX", &message(200))));
    let port = server.imap_port();
    server.restart();
    assert_eq!(server.imap_port(), port);
    // The old session was cut.
    let mut buf = String::new();
    let n = imap.reader.read_line(&mut buf).unwrap_or(0);
    assert!(n == 0 || buf.starts_with("* BYE"), "{buf}");
    let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
    imap.login_ok(&u.name, &u.password);
    let (lines, _) = imap.cmd("STATUS INBOX (MESSAGES)");
    assert!(lines[0].contains("MESSAGES 1"), "{lines:?}");
}

#[test]
fn many_instances_in_parallel_threads() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let server = Dovecot::start(Flavour::ALL[i % 2]);
                let u = server.user(&format!("user{i}"));
                let mut imap = Imap::connect(server.imap_port(), READ_TIMEOUT);
                imap.login_ok(&u.name, &u.password);
                server.imap_port()
            })
        })
        .collect();
    let mut ports: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 4);
}
