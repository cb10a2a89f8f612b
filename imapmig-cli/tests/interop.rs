//! Interoperability: the same scenarios against every pair of real servers that makes sense.
//!
//! Each scenario migrates with the `imapmig` binary between two private servers started by the
//! test kit, then checks the destination message by message against the source: bytes, flags
//! and INTERNALDATE. What a server is documented to change on APPEND (see [`Alters`]) is
//! applied to the expected value explicitly, for that server only; the comparison itself is
//! never loosened.

use imapmig_testsupport as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use imapmig_core::engine::Account;
use imapmig_core::imap::{Credentials, Endpoint, Security, TlsVerify};
use imapmig_core::model::{Flags, InternalDate};
use imapmig_testkit::{Courier, Cyrus, Dovecot, Flavour, LoginSecurity, Mailutils, TestUser};
use serde_json::Value;

/// What a server does to a message it is given, as documented in the README's server table.
/// The expected destination content is the source's, changed by exactly these.
#[derive(Clone, Copy, Debug, Default)]
struct Alters {
    /// Bare LF line endings become CRLF (Dovecot does it itself; a server that refuses them is
    /// sent the CRLF form by imapmig, which reports it).
    bare_lf_to_crlf: bool,
    /// A message that does not end with CRLF gets one appended.
    adds_final_crlf: bool,
    /// 8-bit bytes in the header section become `X`.
    munges_8bit_headers: bool,
    /// INTERNALDATE is not taken from APPEND: dates are not compared on this destination.
    loses_dates: bool,
    /// The server keeps its mbox bookkeeping in the message header (`X-IMAPbase:`, `X-UID:`,
    /// `Status:`, inserted when it saves the folder): those header fields are left out of the
    /// comparison, on both sides, and nothing else.
    mbox_headers: bool,
    /// NUL bytes become 0x80 (the size is kept).
    nul_to_0x80: bool,
    /// A message with very many MIME parts is stored cut short after one of its boundary
    /// lines (Courier: 2,987,765 bytes held as 293,107; the read-back reports it).
    cuts_long_mime_messages: bool,
    /// Headers are rewritten when the server saves a folder, after the session that
    /// appended (GNU Mailutils: a leading `From ` line dropped, whitespace after field names
    /// changed, blank lines added to a header-only message): such copies are held to their
    /// flags and body, and the report must name them.
    rewrites_headers_on_save: bool,
    /// A CR right before a CRLF is dropped, and so is a CR that ends the message (Dovecot:
    /// `x\r\r\ny` is held as `x\r\ny`, `end\r` as `end`; a lone CR elsewhere is kept).
    drops_stray_cr: bool,
}

impl Alters {
    /// The bytes this server is expected to hold after APPEND of `body`.
    fn apply(&self, body: &[u8]) -> Vec<u8> {
        let mut out = if self.bare_lf_to_crlf {
            crlf(body)
        } else {
            body.to_vec()
        };
        if self.munges_8bit_headers {
            let end = header_end(&out);
            for b in &mut out[..end] {
                if *b >= 0x80 {
                    *b = b'X';
                }
            }
        }
        if self.adds_final_crlf && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        if self.drops_stray_cr {
            let mut kept = Vec::with_capacity(out.len());
            for (i, &b) in out.iter().enumerate() {
                let stray = b == b'\r' && (i + 1 == out.len() || out[i + 1..].starts_with(b"\r\n"));
                if !stray {
                    kept.push(b);
                }
            }
            out = kept;
        }
        if self.nul_to_0x80 {
            for b in &mut out {
                if *b == 0 {
                    *b = 0x80;
                }
            }
        }
        out
    }
}

/// A message without the header fields mbox-based servers keep their bookkeeping in.
fn without_bookkeeping(body: &[u8]) -> Vec<u8> {
    const FIELDS: &[&[u8]] = &[b"x-imapbase:", b"x-uid:", b"status:"];
    let end = header_end(body);
    let mut out = Vec::with_capacity(body.len());
    let mut dropping = false;
    for line in body[..end].split_inclusive(|&b| b == b'\n') {
        let continued = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continued {
            dropping = FIELDS
                .iter()
                .any(|f| line.len() >= f.len() && line[..f.len()].eq_ignore_ascii_case(f));
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&body[end..]);
    out
}

/// Whether the server refuses these bytes from a plain client too (one APPEND of the
/// source's copy, as the test itself sends it, into a scratch folder): a refusal the report
/// names is the server's own, not something imapmig did to the message.
async fn refused_again(server: &Server, acct: &Account, body: &[u8]) -> bool {
    let mut s = acct.open().await.expect("login to try the refused message");
    let scratch = s.encode_name(&server.folder(&["Refusal check"]));
    let _ = s.create(&scratch).await;
    let date = InternalDate::parse_imap("05-Dec-2026 09:15:00 +0100").expect("date");
    let refused = s
        .append(&scratch, &Flags::new(), Some(&date), body)
        .await
        .is_err();
    s.logout().await;
    refused
}

/// LF not preceded by CR becomes CRLF.
fn crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 32);
    let mut prev = 0u8;
    for &b in body {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Where the header section ends (after its blank line), or the whole message.
fn header_end(body: &[u8]) -> usize {
    body.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| body.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
        .unwrap_or(body.len())
}

/// One real server of the suite, as a migration side.
enum Server {
    Dovecot(Dovecot),
    Cyrus(Cyrus),
    Courier(Courier),
    Mailutils(Mailutils),
}

/// The same call on whichever server it is.
macro_rules! on_each {
    ($server:expr, $s:ident => $e:expr) => {
        match $server {
            Server::Dovecot($s) => $e,
            Server::Cyrus($s) => $e,
            Server::Courier($s) => $e,
            Server::Mailutils($s) => $e,
        }
    };
}

impl Server {
    fn start(kind: Kind) -> Server {
        match kind {
            Kind::Dovecot => Server::Dovecot(Dovecot::start(Flavour::Slash)),
            Kind::Cyrus => Server::Cyrus(Cyrus::start()),
            Kind::Courier => Server::Courier(Courier::start()),
            Kind::Mailutils => Server::Mailutils(Mailutils::start()),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Server::Dovecot(_) => "Dovecot",
            Server::Cyrus(_) => "Cyrus",
            Server::Courier(_) => "Courier",
            Server::Mailutils(_) => "Mailutils",
        }
    }

    fn host(&self) -> &str {
        on_each!(self, s => s.host())
    }

    fn imap_port(&self) -> u16 {
        on_each!(self, s => s.imap_port())
    }

    fn pop3_port(&self) -> Option<u16> {
        match self {
            Server::Dovecot(d) => Some(d.pop3_port()),
            Server::Courier(c) => Some(c.pop3_port()),
            Server::Mailutils(m) => Some(m.pop3_port()),
            Server::Cyrus(_) => None,
        }
    }

    /// How a client must connect: STARTTLS where the server lets no password travel in the
    /// clear, else cleartext on loopback.
    fn security(&self) -> Security {
        let needs_tls = match self {
            Server::Dovecot(_) => false,
            Server::Cyrus(s) => matches!(s.login_security(), LoginSecurity::StartTls),
            Server::Courier(s) => matches!(s.login_security(), LoginSecurity::StartTls),
            Server::Mailutils(s) => matches!(s.login_security(), LoginSecurity::StartTls),
        };
        if needs_tls {
            Security::StartTls
        } else {
            Security::Cleartext
        }
    }

    fn ca_file(&self) -> Option<&Path> {
        Some(on_each!(self, s => s.ca_file()))
    }

    /// The full name of a folder given by its path components, as this server spells it.
    fn folder(&self, parts: &[&str]) -> String {
        match self {
            Server::Dovecot(d) => d.flavour().folder_name(parts),
            Server::Cyrus(s) => s.folder_name(parts),
            Server::Courier(s) => s.folder_name(parts),
            Server::Mailutils(s) => s.folder_name(parts),
        }
    }

    /// Whether a refusal with these words is one the server is documented to make (Cyrus
    /// refuses some malformed headers; GNU Mailutils messages its parser cannot read, such
    /// as one without `From:` or without an empty line after its header, in words that do
    /// not say so); such a message is reported as refused, and exit 1. The check of the
    /// destination confirms each with the server itself ([`refused_again`]).
    fn documents_refusal(&self, reason: &str) -> bool {
        match self {
            Server::Cyrus(_) => {
                reason.contains("Message contains invalid header")
                    || reason.contains("Message contains NUL characters")
            }
            Server::Mailutils(_) => reason.contains("APPEND [TRYCREATE] failed"),
            _ => false,
        }
    }

    /// Whether the server can hold a folder inside a folder that holds mail. GNU Mailutils
    /// keeps each folder as an mbox file, which cannot also be a directory: `CREATE a/b`
    /// after `a` holds mail is refused (`NO CREATE Cannot create mailbox`).
    fn nests_in_mail_folders(&self) -> bool {
        !matches!(self, Server::Mailutils(_))
    }

    /// Whether a folder that failed failed as the server is documented to (above).
    fn documents_failure(&self, folder: &str, message: &str) -> bool {
        !self.nests_in_mail_folders()
            && folder.contains(self.separator())
            && message.contains("Cannot create mailbox")
    }

    fn separator(&self) -> char {
        match self {
            Server::Dovecot(d) => d.flavour().separator(),
            Server::Cyrus(s) => s.separator(),
            Server::Courier(s) => s.separator(),
            Server::Mailutils(s) => s.separator(),
        }
    }

    /// Whether the server stores keywords (`$Forwarded`, `Projekt_X`) given by APPEND.
    fn keeps_keywords(&self) -> bool {
        // GNU Mailutils answers `BAD APPEND Unrecognized flag`.
        !matches!(self, Server::Mailutils(_))
    }

    fn user(&self, name: &str) -> TestUser {
        on_each!(self, s => s.user(name))
    }

    /// What this server changes in what it is given by APPEND, as its test-kit module
    /// documents it.
    fn alters(&self) -> Alters {
        Server::alters_of(match self {
            Server::Dovecot(_) => Kind::Dovecot,
            Server::Cyrus(_) => Kind::Cyrus,
            Server::Courier(_) => Kind::Courier,
            Server::Mailutils(_) => Kind::Mailutils,
        })
    }

    fn alters_of(kind: Kind) -> Alters {
        match kind {
            Kind::Dovecot => Alters {
                bare_lf_to_crlf: true,
                nul_to_0x80: true,
                drops_stray_cr: true,
                ..Alters::default()
            },
            // Cyrus refuses bare newlines (imapmig sends CRLF instead) and writes 8-bit
            // header bytes as `X` by default.
            Kind::Cyrus => Alters {
                bare_lf_to_crlf: true,
                munges_8bit_headers: true,
                ..Alters::default()
            },
            Kind::Courier => Alters {
                bare_lf_to_crlf: true,
                adds_final_crlf: true,
                cuts_long_mime_messages: true,
                drops_stray_cr: true,
                ..Alters::default()
            },
            Kind::Mailutils => Alters {
                bare_lf_to_crlf: true,
                adds_final_crlf: true,
                loses_dates: true,
                mbox_headers: true,
                rewrites_headers_on_save: true,
                ..Alters::default()
            },
        }
    }

    fn account(&self, u: &TestUser) -> Account {
        let mut endpoint = Endpoint::new(self.host(), self.imap_port(), self.security());
        if let Some(ca) = self.ca_file() {
            endpoint.verify = TlsVerify::CaFile(ca.to_path_buf());
        }
        endpoint.timeout = Duration::from_secs(60);
        Account {
            endpoint,
            credentials: Credentials::password(u.name.clone(), u.password.clone()),
        }
    }

    /// The CLI flags for one side (`src` or `dst`), the password in the environment.
    fn side_args(&self, cmd: &mut Command, side: &str, u: &TestUser, port: u16) {
        let tls = match self.security() {
            Security::Cleartext => "none",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
        };
        cmd.args([format!("--{side}-host").as_str(), self.host()])
            .args([format!("--{side}-port"), port.to_string()])
            .args([format!("--{side}-user").as_str(), &u.name])
            .args([format!("--{side}-tls").as_str(), tls])
            .env(
                format!("IMAPMIG_{}_PASSWORD", side.to_uppercase()),
                &u.password,
            );
        if let Some(ca) = self.ca_file() {
            cmd.arg(format!("--{side}-ca-file")).arg(ca);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Dovecot,
    Cyrus,
    Courier,
    Mailutils,
}

/// A source and a destination account on two private servers.
struct Pair {
    src: Server,
    dst: Server,
    su: TestUser,
    du: TestUser,
    dir: tempfile::TempDir,
}

impl Pair {
    /// What of a message is compared: where either side keeps mbox bookkeeping in the header
    /// (and changes it as flags and sessions come and go), the message without those fields,
    /// on both sides of the comparison; else all of it.
    fn compared(&self, body: Vec<u8>) -> Vec<u8> {
        if self.src.alters().mbox_headers || self.dst.alters().mbox_headers {
            without_bookkeeping(&body)
        } else {
            body
        }
    }

    fn start(src: Kind, dst: Kind) -> Pair {
        let src = Server::start(src);
        let dst = Server::start(dst);
        let su = src.user("alice");
        let du = dst.user("bob");
        Pair {
            src,
            dst,
            su,
            du,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn name(&self) -> String {
        format!("{} -> {}", self.src.label(), self.dst.label())
    }

    fn source(&self) -> Account {
        self.src.account(&self.su)
    }

    fn destination(&self) -> Account {
        self.dst.account(&self.du)
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state.sqlite")
    }

    fn command(&self, extra: &[&str]) -> Command {
        self.command_from(self.src.imap_port(), extra)
    }

    /// The command with the source on `port` (its POP3 port, say).
    fn command_from(&self, port: u16, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_imapmig"));
        c.arg("migrate");
        self.src.side_args(&mut c, "src", &self.su, port);
        self.dst
            .side_args(&mut c, "dst", &self.du, self.dst.imap_port());
        c.arg("--state")
            .arg(self.state())
            .arg("--json")
            .args(extra)
            .stdin(Stdio::null());
        c
    }

    /// One `imapmig migrate --json` run; its report, checked against its exit status.
    fn migrate(&self, extra: &[&str]) -> Value {
        let out = self.command(extra).output().expect("run imapmig migrate");
        report_of(&self.name(), &self.dst, &out)
    }
}

fn report_of(pair: &str, dst: &Server, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{pair}: the report is not JSON ({e}); exit {:?}\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // Exit 1 is right only where the destination altered what it was given and said so
    // (the README's exit-status table); anything else is a failure of the run.
    let refusals: Vec<&str> = report["folders"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["refused"].as_array().into_iter().flatten())
        .map(|r| r["reason"].as_str().unwrap_or(""))
        .collect();
    let failures: Vec<(&str, &str)> = report["failed_folders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f[0].as_str().unwrap_or(""), f[1].as_str().unwrap_or("")))
        .collect();
    let altered_only = out.status.code() == Some(1)
        && (report.get("altering_destination").is_some()
            || !refusals.is_empty()
            || !failures.is_empty())
        && failures.iter().all(|(f, m)| dst.documents_failure(f, m))
        && refusals.iter().all(|r| dst.documents_refusal(r));
    assert!(
        out.status.code() == Some(0) || altered_only,
        "{pair}: the migration did not succeed (exit {:?})\nreport: {report:#}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// One message as a server returns it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    body: Vec<u8>,
    /// Flags sorted, `\Recent` left out (it belongs to the session, not the message).
    flags: Vec<String>,
    /// INTERNALDATE in seconds since the epoch, or `None` where it is not compared.
    date: Option<i64>,
}

/// The messages of one folder (decoded name), in UID order.
async fn folder_messages(acct: &Account, folder: &str) -> Vec<(u32, Held)> {
    let mut s = acct.open().await.expect("login to read back");
    let raw = s.encode_name(folder);
    s.examine(&raw)
        .await
        .unwrap_or_else(|e| panic!("examine {folder}: {e}"));
    let metas = s.fetch_meta("1:*", None).await.expect("fetch metadata");
    let uids: Vec<_> = metas.iter().map(|m| m.uid).collect();
    let bodies: BTreeMap<_, _> = s
        .fetch_bodies_collected(&uids)
        .await
        .expect("fetch bodies")
        .into_iter()
        .collect();
    s.logout().await;
    metas
        .iter()
        .map(|m| {
            let mut flags: Vec<String> = m
                .flags
                .to_line()
                .split_ascii_whitespace()
                .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
                .map(str::to_string)
                .collect();
            flags.sort();
            let held = Held {
                body: bodies.get(&m.uid).map(|b| b.to_vec()).unwrap_or_default(),
                flags,
                date: m.internal_date.map(|d| d.unix()),
            };
            (m.uid.0, held)
        })
        .collect()
}

/// Checks every folder the report names: the destination holds exactly the source's messages,
/// changed only by what the destination server is documented to change.
async fn check_destination(pair: &Pair, report: &Value) {
    let alters = pair.dst.alters();
    let compared = |body: Vec<u8>| pair.compared(body);
    let folders = report["folders"].as_array().expect("folders in the report");
    assert!(
        !folders.is_empty(),
        "{}: no folders: {report:#}",
        pair.name()
    );
    // Several source folders may land in one (special-use folders merged by the plan): each
    // destination folder holds the union of its sources.
    let failed: Vec<&str> = report["failed_folders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f[0].as_str())
        .collect();
    let mut by_target: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    // A folder that failed as the destination documents (report_of checked that) holds
    // nothing to compare.
    for f in folders
        .iter()
        .filter(|f| !failed.contains(&f["source"].as_str().unwrap_or_default()))
    {
        by_target
            .entry(f["target"].as_str().expect("target folder"))
            .or_default()
            .push(f);
    }
    for (target, sources) in by_target {
        let mut expected: Vec<Held> = Vec::new();
        let mut source_names = Vec::new();
        for f in sources {
            let source = f["source"].as_str().expect("source folder");
            source_names.push(source);
            // What the destination refused for a reason it documents is not expected there.
            let refused: Vec<u64> = f["refused"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| {
                    pair.dst
                        .documents_refusal(r["reason"].as_str().unwrap_or(""))
                })
                .filter_map(|r| r["uid"].as_u64())
                .collect();
            for (uid, m) in folder_messages(&pair.source(), source).await {
                if refused.contains(&u64::from(uid)) {
                    assert!(
                        refused_again(&pair.dst, &pair.destination(), &m.body).await,
                        "{}: {source:?} UID {uid} refused, but not for what the destination \
                         documents: {report:#}",
                        pair.name()
                    );
                    continue;
                }
                expected.push(Held {
                    body: compared(alters.apply(&m.body)),
                    // A destination that takes no keywords gets the system flags; the
                    // report's dropped_keywords names the others.
                    flags: if pair.dst.keeps_keywords() {
                        m.flags
                    } else {
                        m.flags
                            .into_iter()
                            .filter(|f| f.starts_with('\\'))
                            .collect()
                    },
                    date: if alters.loses_dates { None } else { m.date },
                });
            }
        }
        let source = source_names.join(" + ");
        let mut held: Vec<Held> = folder_messages(&pair.destination(), target)
            .await
            .into_iter()
            .map(|(_, m)| Held {
                date: if alters.loses_dates { None } else { m.date },
                body: compared(m.body),
                ..m
            })
            .collect();
        expected.sort();
        held.sort();
        if expected != held {
            // What is expected and not held, and held and not expected (as multisets).
            let mut missing: Vec<&Held> = Vec::new();
            let mut extra: Vec<&Held> = Vec::new();
            let (mut i, mut j) = (0, 0);
            while i < expected.len() || j < held.len() {
                match (expected.get(i), held.get(j)) {
                    (Some(a), Some(b)) if a == b => {
                        i += 1;
                        j += 1;
                    }
                    (Some(a), Some(b)) if a < b => {
                        missing.push(a);
                        i += 1;
                    }
                    (Some(_), Some(b)) | (None, Some(b)) => {
                        extra.push(b);
                        j += 1;
                    }
                    (Some(a), None) => {
                        missing.push(a);
                        i += 1;
                    }
                    (None, None) => break,
                }
            }
            // A message the destination is documented to cut short (Courier, at a MIME
            // boundary) is accounted for when the report names the cut copy with its size.
            if alters.cuts_long_mime_messages {
                let anomalies = report["folders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|f| f["anomalies"].as_array().into_iter().flatten())
                    .filter_map(|a| a["detail"].as_str())
                    .collect::<Vec<_>>();
                missing.retain(|m| {
                    let Some(k) = extra.iter().position(|e| {
                        e.flags == m.flags
                            && e.date == m.date
                            && e.body.len() < m.body.len()
                            && m.body.starts_with(&e.body)
                            && e.body.ends_with(b"\r\n")
                            && e.body[..e.body.len() - 2]
                                .rsplit(|&c| c == b'\n')
                                .next()
                                .is_some_and(|l| l.starts_with(b"--"))
                            && anomalies.iter().any(|a| {
                                a.contains("changed its content")
                                    && a.contains(&format!("{} held", e.body.len()))
                            })
                    }) else {
                        return true;
                    };
                    extra.remove(k);
                    false
                });
                if missing.is_empty() && extra.is_empty() {
                    continue;
                }
            }
            // A server documented to rewrite headers when it saves a folder (Mailutils) is
            // held to the rest: each such copy keeps its flags and its body (blank lines at
            // the end aside), and the report counts at least as many changed copies.
            if alters.rewrites_headers_on_save {
                let changed = report["altered"]["content_altered"].as_u64().unwrap_or(0);
                let body = |m: &Held| {
                    let b = &m.body[header_end(&m.body)..];
                    let mut end = b.len();
                    while end >= 2 && &b[end - 2..end] == b"\r\n" {
                        end -= 2;
                    }
                    b[..end].to_vec()
                };
                let before = missing.len();
                missing.retain(|m| {
                    let Some(k) = extra
                        .iter()
                        .position(|e| e.flags == m.flags && e.date == m.date && body(e) == body(m))
                    else {
                        return true;
                    };
                    extra.remove(k);
                    false
                });
                let accepted = (before - missing.len()) as u64;
                assert!(
                    accepted <= changed,
                    "{}: {accepted} copies with rewritten headers, the report names {changed}",
                    pair.name()
                );
                if missing.is_empty() && extra.is_empty() {
                    continue;
                }
            }
            let show = |list: &[&Held]| {
                list.iter()
                    .take(4)
                    .map(|m| {
                        format!(
                            "\n    {} bytes, flags {:?}, date {:?}, starts {:?}",
                            m.body.len(),
                            m.flags,
                            m.date,
                            String::from_utf8_lossy(&m.body[..m.body.len().min(100)])
                        )
                    })
                    .collect::<String>()
            };
            panic!(
                "{}: {source:?} -> {target:?}: {} messages expected, {} held; {} expected and \
                 not held:{}\n  {} held and not expected:{}\n  the report's alterations: {}",
                pair.name(),
                expected.len(),
                held.len(),
                missing.len(),
                show(&missing),
                extra.len(),
                show(&extra),
                report["altered"],
            );
        }
    }
}

/// The generated mailbox: non-ASCII folder names at several depths, flags and keywords,
/// dates in several zones.
fn generated(pair: &Pair) -> Vec<Seed> {
    const FOLDERS: &[&str] = &[
        "INBOX",
        "Archiv",
        "Archiv/2024",
        "Projekte/Übersicht",
        "Привет",
        "日本語/メール",
        "Ünïcødé & Co",
    ];
    const FLAGS: &[&str] = &[
        "",
        "\\Seen",
        "\\Seen \\Answered",
        "\\Flagged",
        "\\Seen \\Flagged $Forwarded",
        "\\Draft",
        "$Label1 Projekt_X",
    ];
    const DATES: &[&str] = &[
        "01-Jan-2019 08:00:00 +0000",
        "17-Jul-2021 23:59:59 -0700",
        "29-Feb-2024 12:30:00 +0530",
        "05-Dec-2026 09:15:00 +0100",
    ];
    let mut seeds = Vec::new();
    for (i, folder) in FOLDERS.iter().enumerate() {
        // A source that cannot hold a folder inside one with mail is not given one.
        if nested_in_mail(folder) && !pair.src.nests_in_mail_folders() {
            continue;
        }
        let folder = match *folder {
            "INBOX" => "INBOX".to_string(),
            path => pair.src.folder(&path.split('/').collect::<Vec<_>>()),
        };
        for j in 0..(3 + i % 3) {
            let n = i * 10 + j;
            let flags = FLAGS[n % FLAGS.len()];
            let flags = if pair.src.keeps_keywords() {
                flags
            } else {
                system_flags(flags)
            };
            seeds.push(seed(
                &folder,
                message(&format!("{} message {n}", pair.name()), 3 + n % 7),
                flags,
                Some(DATES[n % DATES.len()]),
            ));
        }
    }
    seeds
}

/// Whether a folder of the generated mailbox sits inside another that holds mail.
fn nested_in_mail(path: &str) -> bool {
    path == "Archiv/2024"
}

/// The system flags of a flag line (a static one, from the table above).
fn system_flags(flags: &'static str) -> &'static str {
    match flags {
        "\\Seen \\Flagged $Forwarded" => "\\Seen \\Flagged",
        "$Label1 Projekt_X" => "",
        other => other,
    }
}

/// Appends each message to INBOX, passing over those the server refuses; how many it took.
async fn fill_accepted(acct: &Account, seeds: &[Seed]) -> u64 {
    let mut s = acct.open().await.expect("login to seed");
    let mut held = 0;
    for m in seeds {
        let date = m
            .date
            .map(|d| InternalDate::parse_imap(d).expect("test date"));
        if s.append("INBOX", &Flags::from_line(m.flags), date.as_ref(), &m.body)
            .await
            .is_ok()
        {
            held += 1;
        }
    }
    s.logout().await;
    held
}

/// Messages the destination refused, all folders.
fn refused(report: &Value) -> u64 {
    report["folders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| f["refused"].as_array().map_or(0, |r| r.len() as u64))
        .sum()
}

fn copied(report: &Value) -> u64 {
    report["copied"].as_u64().expect("copied in the report")
}

/// The generated mailbox arrives exact; a re-run copies nothing; new mail is copied once.
async fn generated_mailbox(src: Kind, dst: Kind) {
    let pair = Pair::start(src, dst);
    let seeds = generated(&pair);
    fill(&pair.source(), &seeds).await;

    let first = pair.migrate(&[]);
    // A destination that cannot hold a folder inside one with mail fails that folder (and
    // says so: report_of checked it).
    let nested = pair.src.folder(&["Archiv", "2024"]);
    let expected = seeds
        .iter()
        .filter(|s| pair.dst.nests_in_mail_folders() || s.folder != nested)
        .count();
    assert_eq!(
        copied(&first),
        expected as u64,
        "{}: {first:#}",
        pair.name()
    );
    check_destination(&pair, &first).await;

    let again = pair.migrate(&[]);
    assert_eq!(
        copied(&again),
        0,
        "{}: re-run copied: {again:#}",
        pair.name()
    );
    check_destination(&pair, &again).await;

    let new = [
        seed("INBOX", message("new one", 4), "\\Seen", None),
        seed(
            &pair.src.folder(&["Привет"]),
            message("new two", 5),
            "",
            None,
        ),
    ];
    fill(&pair.source(), &new).await;
    let third = pair.migrate(&[]);
    assert_eq!(copied(&third), 2, "{}: new mail: {third:#}", pair.name());
    check_destination(&pair, &third).await;
}

/// Every corpus message the source server accepts arrives as the destination server is
/// documented to hold it.
async fn corpus_mailbox(src: Kind, dst: Kind) {
    let pair = Pair::start(src, dst);
    let src_alters = pair.src.alters();
    let seeds: Vec<Seed> = corpus()
        .into_iter()
        .map(|(_, body)| Seed {
            folder: "INBOX".into(),
            // The source holds what it holds: give it the form it accepts.
            body: if src_alters.bare_lf_to_crlf {
                crlf(&body)
            } else {
                body
            },
            flags: "",
            date: Some("05-Dec-2026 09:15:00 +0100"),
        })
        .collect();
    // The source holds what it accepts: a server that refuses some corpus messages (Cyrus:
    // malformed headers; Mailutils: no `From:`) is given the others.
    let held = fill_accepted(&pair.source(), &seeds).await;
    let report = pair.migrate(&[]);
    assert_eq!(
        copied(&report) + refused(&report),
        held,
        "{}: {report:#}",
        pair.name()
    );
    check_destination(&pair, &report).await;
    let again = pair.migrate(&[]);
    assert_eq!(
        copied(&again),
        0,
        "{}: re-run copied: {again:#}",
        pair.name()
    );
}

/// `kill -9` in the middle of a migration, then a re-run: every message exactly once.
async fn killed_and_resumed(src: Kind, dst: Kind) {
    let pair = Pair::start(src, dst);
    let archive = pair.src.folder(&["Archiv"]);
    let seeds: Vec<Seed> = (0..600)
        .map(|n| {
            seed(
                if n % 2 == 0 { "INBOX" } else { &archive },
                message(&format!("bulk {n}"), 40),
                if n % 3 == 0 { "\\Seen" } else { "" },
                Some("17-Jul-2021 23:59:59 -0700"),
            )
        })
        .collect();
    fill(&pair.source(), &seeds).await;

    let mut child = pair
        .command(&["--batch", "8", "--connections", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start imapmig");
    // Kill once something has landed and before everything has.
    let started = Instant::now();
    let mut killed_midway = false;
    while started.elapsed() < Duration::from_secs(60) {
        let landed = count(&pair.destination(), "INBOX").await;
        if landed > 0 {
            killed_midway = landed < 300;
            break;
        }
        if child.try_wait().expect("poll imapmig").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(
        killed_midway,
        "{}: the run was not interrupted in the middle",
        pair.name()
    );

    let report = pair.migrate(&[]);
    check_destination(&pair, &report).await;
    let held: u32 = count(&pair.destination(), "INBOX").await;
    assert_eq!(held, 300, "{}: INBOX after the resume", pair.name());
}

/// A POP3 source: the inbox arrives exact (POP3 has no flags or dates to compare: the
/// messages are checked by their bytes).
async fn pop3_source(src: Kind, dst: Kind) {
    let pair = Pair::start(src, dst);
    let port = pair.src.pop3_port().expect("this source has POP3");
    let seeds: Vec<Seed> = (0..20)
        .map(|n| seed("INBOX", message(&format!("pop {n}"), 6), "", None))
        .collect();
    fill(&pair.source(), &seeds).await;
    let mut cmd = pair.command_from(port, &["--src-protocol", "pop3"]);
    let report = report_of(&pair.name(), &pair.dst, &cmd.output().expect("run"));
    assert_eq!(copied(&report), 20, "{}: {report:#}", pair.name());
    let alters = pair.dst.alters();
    // Mailutils' pop3d serves the bookkeeping fields too (`X-UID:`, `Status:`).
    let compared = |body: Vec<u8>| pair.compared(body);
    let mut expected: Vec<Vec<u8>> = folder_messages(&pair.source(), "INBOX")
        .await
        .into_iter()
        .map(|(_, m)| compared(alters.apply(&m.body)))
        .collect();
    let target = report["folders"][0]["target"].as_str().expect("target");
    let mut held: Vec<Vec<u8>> = folder_messages(&pair.destination(), target)
        .await
        .into_iter()
        .map(|(_, m)| compared(m.body))
        .collect();
    expected.sort();
    held.sort();
    assert!(expected == held, "{}: POP3 bodies differ", pair.name());
    let again = report_of(&pair.name(), &pair.dst, &cmd.output().expect("run"));
    assert_eq!(copied(&again), 0, "{}: {again:#}", pair.name());
}

/// Three scenarios per pair. The attributes in brackets go on the generated-mailbox, corpus
/// and kill-and-resume tests: an `ignore` there names a finding still open (README, "Servers").
macro_rules! pair_tests {
    ($($name:ident: $src:ident -> $dst:ident
        [$(#[$g:meta])*] [$(#[$c:meta])*] [$(#[$k:meta])*];)*) => {
        $(
            mod $name {
                use super::*;

                $(#[$g])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn generated_mailbox() {
                    super::generated_mailbox(Kind::$src, Kind::$dst).await;
                }

                $(#[$c])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn corpus() {
                    super::corpus_mailbox(Kind::$src, Kind::$dst).await;
                }

                $(#[$k])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn killed_and_resumed() {
                    super::killed_and_resumed(Kind::$src, Kind::$dst).await;
                }
            }
        )*
    };
}

pair_tests! {
    dovecot_to_dovecot: Dovecot -> Dovecot [] [] [];
    dovecot_to_cyrus: Dovecot -> Cyrus [] [] [];
    dovecot_to_courier: Dovecot -> Courier [] [] [];
    dovecot_to_mailutils: Dovecot -> Mailutils [] [] [];
    cyrus_to_dovecot: Cyrus -> Dovecot [] [] [];
    courier_to_dovecot: Courier -> Dovecot [] [] [];
    mailutils_to_dovecot: Mailutils -> Dovecot
        []
        []
        [];
    cyrus_to_courier: Cyrus -> Courier [] [] [];
    courier_to_cyrus: Courier -> Cyrus [] [] [];
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_dovecot_to_dovecot() {
    pop3_source(Kind::Dovecot, Kind::Dovecot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_courier_to_dovecot() {
    pop3_source(Kind::Courier, Kind::Dovecot).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pop3_mailutils_to_dovecot() {
    pop3_source(Kind::Mailutils, Kind::Dovecot).await;
}

#[test]
fn alterations_are_applied_exactly() {
    let cyrus_like = Alters {
        bare_lf_to_crlf: true,
        munges_8bit_headers: true,
        ..Alters::default()
    };
    assert_eq!(
        cyrus_like.apply("Subject: Grüße\n\nBody ü\n".as_bytes()),
        b"Subject: Gr\x58\x58\x58\x58e\r\n\r\nBody \xc3\xbc\r\n".to_vec()
    );
    let courier_like = Alters {
        adds_final_crlf: true,
        ..Alters::default()
    };
    assert_eq!(courier_like.apply(b"A: b\r\n\r\nx"), b"A: b\r\n\r\nx\r\n");
    assert_eq!(
        courier_like.apply(b"A: b\r\n\r\nx\r\n"),
        b"A: b\r\n\r\nx\r\n"
    );
    assert_eq!(crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n");
    // As Dovecot was seen to store them.
    let dovecot = Server::alters_of(Kind::Dovecot);
    assert_eq!(
        dovecot.apply(b"A: b\r\n\r\na\rb\r\n"),
        b"A: b\r\n\r\na\rb\r\n"
    );
    assert_eq!(dovecot.apply(b"A: b\r\n\r\nend\r"), b"A: b\r\n\r\nend");
    assert_eq!(
        dovecot.apply(b"A: b\r\n\r\nx\r\r\r\ny"),
        b"A: b\r\n\r\nx\r\r\ny"
    );
    assert_eq!(
        dovecot.apply(b"A: b\r\n\r\nT\0\r\n"),
        b"A: b\r\n\r\nT\x80\r\n"
    );
    let mailutils = Server::alters_of(Kind::Mailutils);
    assert_eq!(
        without_bookkeeping(&mailutils.apply(b"A: b\nStatus: O\nX-UID: 3\n  4\n\nStatus: x\n")),
        b"A: b\r\n\r\nStatus: x\r\n"
    );
}
