//! `--trace FILE` and `IMAPMIG_TRACE`: the protocol conversation of a run, both sides, written
//! to a file without a single secret and without message bodies. Against real Dovecot servers:
//! a refused login by every mechanism the CLI can choose, a whole IMAP migration, a POP3 source.
//! And `RUST_LOG`/`IMAPMIG_LOG`: the library's events on stderr, no secret among them either.

use imapmig_testsupport as common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use common::*;
use imapmig_testkit::{Dovecot, Flavour, TestUser};

/// A password nobody has, distinctive enough to grep for.
const WRONG_PASSWORD: &str = "Wr0ng-Trace-Secret-4711";
/// An OAuth2 access token, as distinctive.
const TOKEN: &str = "ya29.Trace-Token-Qx7Vb9";
/// A line only the seeded message bodies hold.
const BODY_MARKER: &str = "Zebra-Quokka-Body-Marker-81";

fn imapmig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imapmig"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run imapmig");
    eprintln!(
        "imapmig exited {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every form a secret could take on the wire: itself, and each SASL response made of it.
fn secret_forms(user: &str, secret: &str) -> Vec<String> {
    vec![
        secret.to_string(),
        b64(format!("\0{user}\0{secret}").as_bytes()),
        b64(format!("{user}\0{user}\0{secret}").as_bytes()),
        b64(format!("user={user}\x01auth=Bearer {secret}\x01\x01").as_bytes()),
        b64(format!("n,a={user},\x01auth=Bearer {secret}\x01\x01").as_bytes()),
    ]
    .into_iter()
    .chain(aligned_base64(secret))
    .collect()
}

/// What the base64 of any longer text holding `secret` holds, whatever comes before and after
/// it: the secret encoded at each of the three alignments, without the groups of four that
/// also encode a neighbouring byte.
fn aligned_base64(secret: &str) -> Vec<String> {
    (0..3)
        .map(|k| {
            let mut bytes = vec![0u8; k];
            bytes.extend_from_slice(secret.as_bytes());
            let encoded = b64(&bytes);
            let start = if k == 0 { 0 } else { 4 };
            encoded[start..encoded.len() - 4].to_string()
        })
        .collect()
}

/// The trace's text, after checking that it exists and only its owner may read it.
fn read_trace(path: &Path) -> String {
    let meta = std::fs::metadata(path).expect("the trace file exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path:?}");
    }
    let _ = meta;
    std::fs::read_to_string(path).expect("the trace is text")
}

fn assert_no_secret(trace: &str, user: &str, secret: &str) {
    for form in secret_forms(user, secret) {
        // base64 of a short prefix can be a few letters; only the long forms prove a leak.
        if form.len() >= 12 {
            assert!(
                !trace.contains(&form),
                "the trace holds a secret ({form:?}):\n{trace}"
            );
        }
    }
}

/// The lines of the trace sent by the client (`C:`) or the server (`S:`).
fn lines<'a>(trace: &'a str, dir: &str) -> Vec<&'a str> {
    let marker = format!(" {dir}: ");
    trace
        .lines()
        .filter(|l| l.contains(&marker) || l.ends_with(&format!(" {dir}:")))
        .collect()
}

fn check_cmd(server: &Dovecot, user: &TestUser, auth: &str, secret: &str) -> Command {
    let mut cmd = imapmig();
    cmd.arg("check");
    side_flags(
        &mut cmd,
        "src",
        server.host(),
        server.imap_port(),
        &user.name,
        secret,
    );
    cmd.args(["--src-auth", auth]);
    cmd
}

#[test]
fn a_refused_login_is_traced_without_its_secret() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let dir = tempfile::tempdir().unwrap();

    // LOGIN, asked for by --trace.
    let path = dir.path().join("login.trace");
    let out = run(check_cmd(&server, &alice, "login", WRONG_PASSWORD)
        .arg("--trace")
        .arg(&path));
    assert_eq!(out.status.code(), Some(3), "a refused login keeps exit 3");
    let trace = read_trace(&path);
    let sent = lines(&trace, "C");
    assert!(
        sent.iter()
            .any(|l| l.contains(" LOGIN \"alice\" <redacted>")),
        "{trace}"
    );
    assert!(
        lines(&trace, "S").iter().any(|l| l.contains(" NO ")),
        "the server's refusal is shown:\n{trace}"
    );
    assert!(trace.contains(" source "), "the side is named:\n{trace}");
    assert!(
        trace.contains(&format!("{}:{}", server.host(), server.imap_port())),
        "{trace}"
    );
    assert_no_secret(&trace, &alice.name, WRONG_PASSWORD);

    // AUTHENTICATE PLAIN, asked for by IMAPMIG_TRACE.
    let path = dir.path().join("plain.trace");
    let out = run(check_cmd(&server, &alice, "plain", WRONG_PASSWORD).env("IMAPMIG_TRACE", &path));
    assert_eq!(out.status.code(), Some(3));
    let trace = read_trace(&path);
    assert!(
        lines(&trace, "C")
            .iter()
            .any(|l| l.contains(" AUTHENTICATE PLAIN <redacted>")),
        "{trace}"
    );
    assert!(
        lines(&trace, "S").iter().any(|l| l.contains(" NO ")),
        "{trace}"
    );
    assert_no_secret(&trace, &alice.name, WRONG_PASSWORD);

    // XOAUTH2 and OAUTHBEARER: this server offers neither, so the token must not even be
    // prepared into the trace; the run fails without sending it.
    for mech in ["xoauth2", "oauthbearer"] {
        let path = dir.path().join(format!("{mech}.trace"));
        let out = run(check_cmd(&server, &alice, mech, TOKEN)
            .arg("--trace")
            .arg(&path));
        assert_ne!(out.status.code(), Some(0));
        let trace = read_trace(&path);
        assert!(
            lines(&trace, "S").iter().any(|l| l.contains("CAPABILITY")),
            "{trace}"
        );
        assert_no_secret(&trace, &alice.name, TOKEN);
        let all = format!("{out:?}");
        assert!(!all.contains(TOKEN), "{all}");
    }

    // The right password: the trace shows the login succeed, still without it.
    let path = dir.path().join("ok.trace");
    let out = run(check_cmd(&server, &alice, "auto", &alice.password)
        .arg("--trace")
        .arg(&path));
    assert_eq!(out.status.code(), Some(0));
    let trace = read_trace(&path);
    assert!(trace.contains("<redacted>"), "{trace}");
    assert_no_secret(&trace, &alice.name, &alice.password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_traced_with_bodies_elided_and_no_password() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::DotInbox);
    let (su, du) = (src.user("alice"), dst.user("alice"));
    let body = |subject: &str| {
        let mut m = message(subject, 3);
        m.extend_from_slice(format!("{BODY_MARKER}\r\n").as_bytes());
        m
    };
    fill(
        &account(&src, &su),
        &[
            seed("INBOX", body("one"), "\\Seen", None),
            seed("Projects", body("two"), "", None),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("migrate.trace");
    let mut cmd = imapmig();
    cmd.args(["migrate", "--json", "--state"])
        .arg(dir.path().join("state.sqlite"))
        .arg("--trace")
        .arg(&path);
    side_flags(
        &mut cmd,
        "src",
        src.host(),
        src.imap_port(),
        &su.name,
        &su.password,
    );
    side_flags(
        &mut cmd,
        "dst",
        dst.host(),
        dst.imap_port(),
        &du.name,
        &du.password,
    );
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is still one JSON object");
    assert_eq!(report["copied"], 2, "{report}");

    let trace = read_trace(&path);
    let sent = lines(&trace, "C");
    for verb in [" SELECT ", " APPEND ", " UID FETCH "] {
        assert!(
            sent.iter().any(|l| l.contains(verb)),
            "no{verb}line:\n{trace}"
        );
    }
    assert!(trace.contains(" source "), "{trace}");
    assert!(trace.contains(" destination "), "{trace}");
    assert!(trace.contains("bytes elided}"), "{trace}");
    assert!(
        !trace.contains(BODY_MARKER),
        "a message body is in the trace:\n{trace}"
    );
    assert_no_secret(&trace, &su.name, &su.password);
    assert_no_secret(&trace, &du.name, &du.password);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop3_source_is_traced_without_its_password() {
    let src = Dovecot::start(Flavour::Slash);
    let dst = Dovecot::start(Flavour::Slash);
    let (su, du) = (src.user("kim"), dst.user("kim"));
    let mut body = message("pop", 2);
    body.extend_from_slice(format!("{BODY_MARKER}\r\n").as_bytes());
    fill(&account(&src, &su), &[seed("INBOX", body, "", None)]).await;
    let dir = tempfile::tempdir().unwrap();

    // USER/PASS, through a whole migration.
    let path = dir.path().join("pop3.trace");
    let mut cmd = imapmig();
    cmd.args(["migrate", "--json", "--src-protocol", "pop3", "--state"])
        .arg(dir.path().join("state.sqlite"))
        .env("IMAPMIG_TRACE", &path);
    side_flags(
        &mut cmd,
        "src",
        src.host(),
        src.pop3_port(),
        &su.name,
        &su.password,
    );
    cmd.args(["--src-auth", "login"]);
    side_flags(
        &mut cmd,
        "dst",
        dst.host(),
        dst.imap_port(),
        &du.name,
        &du.password,
    );
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(0));
    let trace = read_trace(&path);
    let sent = lines(&trace, "C");
    assert!(sent.iter().any(|l| l.ends_with(" C: USER kim")), "{trace}");
    assert!(
        sent.iter().any(|l| l.ends_with(" C: PASS <redacted>")),
        "{trace}"
    );
    assert!(sent.iter().any(|l| l.contains(" C: RETR ")), "{trace}");
    assert!(trace.contains("pop3://"), "{trace}");
    assert!(trace.contains("bytes elided}"), "{trace}");
    assert!(!trace.contains(BODY_MARKER), "{trace}");
    assert_no_secret(&trace, &su.name, &su.password);
    assert_no_secret(&trace, &du.name, &du.password);

    // AUTH PLAIN with a wrong password.
    let path = dir.path().join("pop3-plain.trace");
    let mut cmd = imapmig();
    cmd.args(["check", "--src-protocol", "pop3", "--trace"])
        .arg(&path);
    side_flags(
        &mut cmd,
        "src",
        src.host(),
        src.pop3_port(),
        &su.name,
        WRONG_PASSWORD,
    );
    cmd.args(["--src-auth", "plain"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(3));
    let trace = read_trace(&path);
    assert!(
        lines(&trace, "C")
            .iter()
            .any(|l| l.ends_with(" C: AUTH PLAIN <redacted>") || l.ends_with(" C: <redacted>")),
        "{trace}"
    );
    assert!(
        lines(&trace, "S").iter().any(|l| l.contains("-ERR")),
        "{trace}"
    );
    assert_no_secret(&trace, &su.name, WRONG_PASSWORD);
}

#[test]
fn library_events_go_to_stderr_when_asked_for_and_only_then() {
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    // By default the output is what it always was: no log lines.
    let out = run(&mut check_cmd(&server, &alice, "auto", WRONG_PASSWORD));
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("DEBUG") && !stderr.contains("imapmig_core"),
        "{stderr}"
    );

    for var in ["RUST_LOG", "IMAPMIG_LOG"] {
        let out = run(check_cmd(&server, &alice, "auto", WRONG_PASSWORD).env(var, "debug"));
        assert_eq!(out.status.code(), Some(3), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("DEBUG"), "{var}: {stderr}");
        assert!(stderr.contains("imapmig_core"), "{var}: {stderr}");
        for form in secret_forms(&alice.name, WRONG_PASSWORD) {
            assert!(!stderr.contains(&form), "{var}: {stderr}");
        }
    }
}

/// A loopback IMAP server that offers XOAUTH2 and OAUTHBEARER (which the test Dovecot does
/// not) and refuses every token the way Gmail does: an error challenge in JSON, answered by
/// the client with an empty line, then NO. With `sasl_ir` false the token comes on its own
/// line after a `+`, the path where only the client knows the line is a secret.
fn oauth_refuser(sasl_ir: bool) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                let mut out = stream.try_clone().unwrap();
                let mut input = BufReader::new(stream);
                let ir = if sasl_ir { " SASL-IR" } else { "" };
                let _ = write!(
                    out,
                    "* OK [CAPABILITY IMAP4rev1{ir} AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n"
                );
                let mut line = String::new();
                while input.read_line(&mut line).unwrap_or(0) > 0 {
                    let words: Vec<&str> = line.trim_end().split(' ').collect();
                    let tag = words[0].to_string();
                    let verb = words.get(1).map(|v| v.to_ascii_uppercase());
                    let reply = match verb.as_deref() {
                        Some("AUTHENTICATE") => {
                            let mut rest = String::new();
                            if words.len() < 4 {
                                let _ = write!(out, "+ \r\n");
                                let _ = input.read_line(&mut rest);
                            }
                            // {"status":"401","schemes":"Bearer"}
                            let _ = write!(out, "+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiQmVhcmVyIn0=\r\n");
                            rest.clear();
                            let _ = input.read_line(&mut rest);
                            format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n")
                        }
                        Some("CAPABILITY") => format!(
                            "* CAPABILITY IMAP4rev1{ir} AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\n{tag} OK done\r\n"
                        ),
                        Some("LOGOUT") => format!("* BYE bye\r\n{tag} OK done\r\n"),
                        _ => format!("{tag} BAD unknown\r\n"),
                    };
                    if out.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                    line.clear();
                }
            });
        }
    });
    port
}

#[test]
fn a_refused_oauth_token_is_traced_without_it() {
    let dir = tempfile::tempdir().unwrap();
    for sasl_ir in [true, false] {
        let port = oauth_refuser(sasl_ir);
        for mech in ["xoauth2", "oauthbearer"] {
            let path = dir.path().join(format!("{mech}-{sasl_ir}.trace"));
            let mut cmd = imapmig();
            cmd.arg("check").arg("--trace").arg(&path);
            side_flags(&mut cmd, "src", "127.0.0.1", port, "kim@example.org", TOKEN);
            cmd.args(["--src-auth", mech]);
            let out = run(&mut cmd);
            assert_eq!(out.status.code(), Some(3), "{mech}, SASL-IR {sasl_ir}");
            let trace = read_trace(&path);
            let upper = mech.to_ascii_uppercase();
            let sent = lines(&trace, "C");
            if sasl_ir {
                assert!(
                    sent.iter()
                        .any(|l| l.ends_with(&format!(" AUTHENTICATE {upper} <redacted>"))),
                    "{trace}"
                );
            } else {
                assert!(
                    sent.iter()
                        .any(|l| l.ends_with(&format!(" AUTHENTICATE {upper}"))),
                    "{trace}"
                );
                assert!(
                    sent.iter().any(|l| l.ends_with(" C: <redacted>")),
                    "{trace}"
                );
            }
            assert!(
                lines(&trace, "S")
                    .iter()
                    .any(|l| l.contains(" NO [AUTHENTICATIONFAILED]")),
                "{trace}"
            );
            assert_no_secret(&trace, "kim@example.org", TOKEN);
            let all = format!("{out:?}");
            assert!(!all.contains(TOKEN), "{all}");
        }
    }
}

#[test]
fn the_leak_check_finds_a_secret_inside_any_base64() {
    for prefix in [
        "",
        "a",
        "ab",
        "\0kim\0",
        "user=kim@example.org\x01auth=Bearer ",
    ] {
        for suffix in ["", "x", "\x01\x01"] {
            let wire = b64(format!("{prefix}{TOKEN}{suffix}").as_bytes());
            assert!(
                secret_forms("kim", TOKEN)
                    .iter()
                    .any(|f| f.len() >= 12 && wire.contains(f.as_str())),
                "{prefix:?} {suffix:?}: {wire}"
            );
        }
    }
}
