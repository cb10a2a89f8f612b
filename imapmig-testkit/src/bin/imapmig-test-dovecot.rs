//! `imapmig-test-dovecot`: one private Dovecot for tests written outside Rust (the Python,
//! C and Go bindings' tests), started exactly as the Rust tests start theirs.
//!
//! ```text
//! imapmig-test-dovecot [--flavour slash|dot-inbox] [--user NAME]... [--quota NAME=KIB]...
//!                      [--max-message-size BYTES] [--seed USER:FOLDER:COUNT[:SIZE]]...
//! ```
//!
//! Prints one JSON line on stdout once the server greets:
//!
//! ```json
//! {"host":"127.0.0.1","imap_port":..,"imaps_port":..,"pop3_port":..,"pop3s_port":..,
//!  "ca_file":"/tmp/..../ca.pem","dir":"...","flavour":"slash","separator":"/","prefix":"",
//!  "users":{"alice":"<password>"},"master":{"name":"master","password":"..."}}
//! ```
//!
//! then reads commands, one per line, from stdin and answers each with one JSON line:
//!
//! * `user NAME` → `{"name":..,"password":..}` (created if new)
//! * `quota NAME KIB` → `{"name":..,"password":..}`
//! * `password NAME PASSWORD` → `{"ok":true}`
//! * `seed USER FOLDER COUNT [SIZE]` → `{"seeded":COUNT}`: COUNT distinct messages of about
//!   SIZE bytes (default 2000) appended to FOLDER (created if missing; ASCII names, the
//!   server's own separator) over IMAP
//! * `count USER FOLDER` → `{"messages":N}`
//! * `doveadm ARG...` → `{"status":..,"stdout":..,"stderr":..}` (arguments split on spaces)
//!
//! A failed command answers `{"error":"..."}`. When stdin closes (the test finished, or its
//! process died) the server is stopped and its directory deleted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use imapmig_testkit::{Dovecot, DovecotOptions, Flavour, TestUser};
use serde_json::{json, Value};

const USAGE: &str = "usage: imapmig-test-dovecot [--flavour slash|dot-inbox] [--user NAME]... \
[--quota NAME=KIB]... [--max-message-size BYTES] [--seed USER:FOLDER:COUNT[:SIZE]]...";

/// Body size of a seeded message when none is given.
const DEFAULT_SEED_SIZE: usize = 2000;

struct Args {
    flavour: Flavour,
    users: Vec<String>,
    quotas: Vec<(String, u64)>,
    max_message_size: Option<u64>,
    seeds: Vec<Seed>,
}

struct Seed {
    user: String,
    folder: String,
    count: usize,
    size: usize,
}

fn parse_seed(spec: &str) -> Result<Seed, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = || format!("--seed {spec:?}: expected USER:FOLDER:COUNT[:SIZE]");
    if !(3..=4).contains(&parts.len()) {
        return Err(bad());
    }
    Ok(Seed {
        user: parts[0].to_string(),
        folder: parts[1].to_string(),
        count: parts[2].parse().map_err(|_| bad())?,
        size: match parts.get(3) {
            Some(s) => s.parse().map_err(|_| bad())?,
            None => DEFAULT_SEED_SIZE,
        },
    })
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        flavour: Flavour::Slash,
        users: Vec::new(),
        quotas: Vec::new(),
        max_message_size: None,
        seeds: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--flavour" => {
                args.flavour = match value()?.as_str() {
                    "slash" => Flavour::Slash,
                    "dot-inbox" => Flavour::DotInbox,
                    other => return Err(format!("unknown flavour {other:?}")),
                }
            }
            "--user" => args.users.push(value()?),
            "--quota" => {
                let v = value()?;
                let (name, kib) = v
                    .split_once('=')
                    .and_then(|(n, k)| Some((n.to_string(), k.parse().ok()?)))
                    .ok_or_else(|| format!("--quota {v:?}: expected NAME=KIB"))?;
                args.quotas.push((name, kib));
            }
            "--max-message-size" => {
                let v = value()?;
                args.max_message_size = Some(
                    v.parse()
                        .map_err(|_| format!("--max-message-size {v:?}: expected bytes"))?,
                );
            }
            "--seed" => args.seeds.push(parse_seed(&value()?)?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("imapmig-test-dovecot: {e}");
            return ExitCode::from(2);
        }
    };
    let server = Dovecot::start_with(
        args.flavour,
        DovecotOptions {
            max_message_size: args.max_message_size,
            ..DovecotOptions::default()
        },
    );
    let mut users = serde_json::Map::new();
    for name in &args.users {
        users.insert(name.clone(), server.user(name).password.into());
    }
    for (name, kib) in &args.quotas {
        users.insert(
            name.clone(),
            server.user_with_quota(name, *kib).password.into(),
        );
    }
    for seed in &args.seeds {
        let user = server.user(&seed.user);
        users.insert(user.name.clone(), user.password.clone().into());
        if let Err(e) = append_messages(&server, &user, &seed.folder, seed.count, seed.size) {
            eprintln!("imapmig-test-dovecot: seeding failed: {e}");
            return ExitCode::from(1);
        }
    }
    let master = server.master_user();
    let hello = json!({
        "host": server.host(),
        "imap_port": server.imap_port(),
        "imaps_port": server.imaps_port(),
        "pop3_port": server.pop3_port(),
        "pop3s_port": server.pop3s_port(),
        "ca_file": server.ca_file(),
        "dir": server.dir(),
        "flavour": match args.flavour {
            Flavour::Slash => "slash",
            Flavour::DotInbox => "dot-inbox",
        },
        "separator": args.flavour.separator().to_string(),
        "prefix": args.flavour.prefix(),
        "users": users,
        "master": {"name": master.name, "password": master.password},
    });
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{hello}").and_then(|()| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = command(&server, &line).unwrap_or_else(|e| json!({ "error": e }));
        if writeln!(out, "{answer}")
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    // Dropping the server stops it and deletes its directory.
    drop(server);
    ExitCode::SUCCESS
}

fn command(server: &Dovecot, line: &str) -> Result<Value, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let user_json = |u: TestUser| json!({"name": u.name, "password": u.password});
    match words.as_slice() {
        ["user", name] => Ok(user_json(server.user(name))),
        ["quota", name, kib] => {
            let kib = kib.parse().map_err(|_| format!("bad KiB {kib:?}"))?;
            Ok(user_json(server.user_with_quota(name, kib)))
        }
        ["password", name, password] => {
            server.set_password(name, password);
            Ok(json!({"ok": true}))
        }
        ["seed", user, folder, count, rest @ ..] if rest.len() <= 1 => {
            let count = count.parse().map_err(|_| format!("bad count {count:?}"))?;
            let size = match rest.first() {
                Some(s) => s.parse().map_err(|_| format!("bad size {s:?}"))?,
                None => DEFAULT_SEED_SIZE,
            };
            let u = server.user(user);
            append_messages(server, &u, folder, count, size)?;
            Ok(json!({ "seeded": count }))
        }
        ["count", user, folder] => {
            let out = server.doveadm(&["mailbox", "status", "-u", user, "messages", folder]);
            let text = String::from_utf8_lossy(&out.stdout);
            // `doveadm mailbox status` prints `<folder> messages=N`.
            let n = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("messages="))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "doveadm mailbox status: {}{}",
                        text,
                        String::from_utf8_lossy(&out.stderr)
                    )
                })?;
            Ok(json!({ "messages": n }))
        }
        ["doveadm", args @ ..] => {
            let out = server.doveadm(args);
            Ok(json!({
                "status": out.status.code(),
                "stdout": String::from_utf8_lossy(&out.stdout),
                "stderr": String::from_utf8_lossy(&out.stderr),
            }))
        }
        _ => Err(format!("unknown command {line:?}")),
    }
}

/// A message of about `size` bytes, different for every `n`.
fn seed_message(user: &str, folder: &str, n: usize, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Seed <seed@example.com>\r\nTo: {user}@example.com\r\n\
         Subject: seed {n} in {folder}\r\nMessage-ID: <seed-{n}-{folder}@imapmig.test>\r\n\
         Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\nMessage {n}.\r\n"
    )
    .into_bytes();
    let line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m
}

fn quoted(s: &str) -> Result<String, String> {
    if !s.is_ascii() || s.contains(['\r', '\n']) {
        return Err(format!(
            "folder {s:?}: only ASCII names without CR/LF can be seeded"
        ));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// A bare line-based IMAP connection: enough to log in and append.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: std::io::BufWriter<TcpStream>,
}

fn io_err(e: std::io::Error) -> String {
    format!("IMAP: {e}")
}

impl Conn {
    fn open(server: &Dovecot) -> Result<Conn, String> {
        let stream = TcpStream::connect(server.imap_addr()).map_err(io_err)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(io_err)?;
        let writer = std::io::BufWriter::new(stream.try_clone().map_err(io_err)?);
        let mut conn = Conn {
            reader: BufReader::new(stream),
            writer,
        };
        conn.line()?; // the greeting
        Ok(conn)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).map_err(io_err)? == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(line)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer.write_all(bytes).map_err(io_err)
    }

    /// Sends `tag command` and returns the tagged status (`OK ...`, `NO ...`).
    fn command(&mut self, tag: &str, command: &str) -> Result<String, String> {
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.writer.flush().map_err(io_err)?;
        loop {
            let l = self.line()?;
            if let Some(rest) = l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                return Ok(rest.trim_end().to_string());
            }
        }
    }
}

/// Appends `count` messages to `folder` over cleartext IMAP on loopback, pipelined with
/// LITERAL+ (Dovecot offers it), then waits for every completion.
fn append_messages(
    server: &Dovecot,
    user: &TestUser,
    folder: &str,
    count: usize,
    size: usize,
) -> Result<(), String> {
    let mailbox = quoted(folder)?;
    let mut conn = Conn::open(server)?;
    let login = format!("LOGIN {} {}", quoted(&user.name)?, quoted(&user.password)?);
    let status = conn.command("l", &login)?;
    if !status.starts_with("OK") {
        return Err(format!("LOGIN {}: {status}", user.name));
    }
    if !folder.eq_ignore_ascii_case("INBOX") {
        // NO [ALREADYEXISTS] is fine.
        conn.command("c", &format!("CREATE {mailbox}"))?;
    }
    for n in 0..count {
        let body = seed_message(&user.name, folder, n, size);
        conn.send(format!("a{n} APPEND {mailbox} {{{}+}}\r\n", body.len()).as_bytes())?;
        conn.send(&body)?;
        conn.send(b"\r\n")?;
    }
    conn.writer.flush().map_err(io_err)?;
    let mut done = 0;
    while done < count {
        let l = conn.line()?;
        if let Some((_, status)) = l.strip_prefix('a').and_then(|r| r.split_once(' ')) {
            if !status.starts_with("OK") {
                return Err(format!("APPEND to {folder}: {}", status.trim_end()));
            }
            done += 1;
        }
    }
    conn.command("z", "LOGOUT")?;
    let mut rest = Vec::new();
    let _ = conn.reader.read_to_end(&mut rest);
    Ok(())
}
