//! The POP3 source (RFC 1939): a hosted-service style import of the inbox.
//!
//! # What it reads, and what it never does
//!
//! A POP3 mailbox is one folder, presented as `INBOX` (no separator, no special use). The
//! source logs in over implicit TLS, STLS or (when asked for by name) cleartext, with AUTH
//! PLAIN when the server offers it or an authorization identity is given, USER/PASS otherwise,
//! or XOAUTH2/OAUTHBEARER when asked for. It sends CAPA, STAT, UIDL, LIST, TOP and RETR, and
//! QUIT at the end. It **never sends DELE**, so QUIT (which commits deletions) deletes nothing;
//! some servers, Dovecot among them, do mark retrieved messages as read at QUIT, which is what
//! RETR means to them.
//!
//! # UIDs: a persistent UIDL table
//!
//! Messages are tracked by their UIDL. Each new UIDL gets the next number of a table kept in a
//! small file ([`Pop3Spec::uid_map`], see `uidmap.rs` for the format and its crash safety), so
//! the same message has the same UID on every run and the engine's state store can skip what
//! it copied before: a re-run copies only messages whose UIDL is new. A server without UIDL
//! cannot be migrated resumably and is refused.
//!
//! # Dates and flags
//!
//! POP3 has no INTERNALDATE. The arrival date is taken from the topmost `Received:` header (the
//! hop added last, by the server that delivered the message), else from the `Date:` header,
//! else it is the time the message was first seen. It is read with `TOP n 0` (headers only)
//! once per message, when its UIDL is new, and kept in the table, so it is the same on every
//! run. POP3 has no flags either: messages are copied without any.
//!
//! # Bodies
//!
//! RETR responses are un-stuffed on the fly and streamed into the destination; no message is
//! held whole in memory. The destination needs the length before the first byte, and the only
//! length POP3 gives is LIST's. RFC 1939 says it is exact, and Dovecot's is (the tests check
//! it), but a server's size can be wrong, and a wrong APPEND length must never be sent. So:
//!
//! * bodies of up to 64 KiB are read whole first (their length is then known for certain);
//! * until one body has shown that this server's LIST sizes are exact, larger bodies are
//!   spooled (kept in memory up to 256 KiB, beyond that in an unnamed temporary file that
//!   disappears by itself) and appended with their real length;
//! * once trusted, bodies are streamed, and the reader still checks the size: it holds back
//!   the last byte until the terminator confirms the message ends there. If it does not, the
//!   read fails (the destination stores nothing for that message), the table notes that this
//!   server's sizes are unreliable, and every later body from it is spooled.
//!
//! A server that adds CRLF to a message that did not end with one (RFC 1939 leaves it no
//! choice) is recognised, and the CRLF is not counted.

mod uidmap;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use time::OffsetDateTime;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use self::uidmap::UidMap;
use super::headers::{self, MAX_HEADER_BYTES};
use super::{AccessError, DateRange, FolderList, MigrationSource, OpenedFolder};
use crate::body::{BodyEvent, BodyOrigin, FetchedBody};
use crate::failure::ErrorKind;
use crate::filter::DateField;
use crate::imap::Account;
use crate::model::{Flags, Folder, InternalDate, MessageMeta, Uid};
use crate::pop3::client::{self, Pop3Conn, RetrReader};
use crate::wire::{StatusKind, StatusResponse};

/// Bodies up to this size are read whole before they are handed on.
const SMALL_BODY: u64 = 64 * 1024;
/// A spooled body is kept in memory up to this size, beyond it in a temporary file.
const SPOOL_IN_MEMORY: usize = 256 * 1024;
/// TOP commands sent at once when the server pipelines.
const TOP_WINDOW: usize = 64;

/// How to reach a POP3 mailbox.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Pop3Spec {
    /// The server and the login (the same types as for IMAP).
    pub account: Account,
    /// The file that keeps the UIDL → UID table of this mailbox (created when missing). Keep it
    /// with the state file: losing it makes the next run re-identify copied messages by
    /// content (reading every message again) instead of skipping them by UID.
    pub uid_map: PathBuf,
}

impl Pop3Spec {
    /// A POP3 mailbox and the file for its UID table.
    pub fn new(account: Account, uid_map: impl Into<PathBuf>) -> Pop3Spec {
        Pop3Spec {
            account,
            uid_map: uid_map.into(),
        }
    }

    /// `pop3://user@host:port`: the mailbox's name in its UID table.
    pub fn mailbox(&self) -> String {
        format!(
            "pop3://{}@{}:{}",
            self.account.credentials.mailbox_user(),
            self.account.endpoint.host,
            self.account.endpoint.port
        )
    }
}

/// One message of the session's listing.
struct Listed {
    msgno: u32,
    size: u64,
    uidl: String,
}

struct Queued {
    uid: Uid,
    /// Whether its RETR was sent already (pipelined).
    sent: bool,
}

/// What this session knows of the server's LIST sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trust {
    /// Not checked yet: spool.
    Unknown,
    /// One body matched its LIST size exactly: stream (still checked).
    Trusted,
    /// A body did not match: spool everything.
    Distrusted,
}

/// A POP3 mailbox as a source.
pub struct Pop3Source {
    conn: Pop3Conn,
    spec: Pop3Spec,
    map: Option<UidMap>,
    listing: HashMap<Uid, Listed>,
    queue: VecDeque<Queued>,
    trust: Trust,
    /// Set by a body reader that caught a wrong LIST size.
    lied: Arc<AtomicBool>,
}

fn msgno_and(line: &[u8]) -> Option<(u32, &[u8])> {
    let mut parts = line.splitn(2, |&b| b == b' ');
    let n = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let rest = parts.next()?;
    let rest = &rest[..rest.iter().position(|&b| b == b' ').unwrap_or(rest.len())];
    Some((n, rest))
}

impl Pop3Source {
    /// Connects and logs in.
    pub async fn open(spec: &Pop3Spec) -> Result<Pop3Source, AccessError> {
        let mut conn = Pop3Conn::connect(&spec.account.endpoint).await?;
        conn.login(&spec.account.credentials).await?;
        Ok(Pop3Source {
            conn,
            spec: spec.clone(),
            map: None,
            listing: HashMap::new(),
            queue: VecDeque::new(),
            trust: Trust::Unknown,
            lied: Arc::new(AtomicBool::new(false)),
        })
    }

    /// What the server announced in CAPA (after login).
    pub fn capabilities(&self) -> &[String] {
        &self.conn.caps
    }

    /// The server's greeting text.
    pub fn greeting(&self) -> &str {
        &self.conn.greeting
    }

    /// Whether the connection is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.conn.is_tls()
    }

    fn pipelining(&self) -> bool {
        self.conn.has("PIPELINING")
    }

    /// Reads and drops the answers to RETRs sent but not handed out, so that the next command's
    /// answer is its own.
    async fn settle(&mut self) -> Result<(), AccessError> {
        self.conn.finish_multiline().await?;
        while let Some(q) = self.queue.pop_front() {
            if q.sent && self.conn.read_status("RETR").await?.is_ok() {
                self.conn.begin_multiline();
                self.conn.finish_multiline().await?;
            }
        }
        Ok(())
    }

    fn map(&self) -> Result<&UidMap, AccessError> {
        self.map
            .as_ref()
            .ok_or_else(|| self.conn.error("INBOX is not open", false))
    }

    async fn listing(&mut self, verb: &'static str) -> Result<Vec<(u32, Vec<u8>)>, AccessError> {
        self.conn.command(verb, verb.as_bytes()).await.map_err(|e| match e {
            AccessError::Server {
                server,
                detail,
                transient: false,
                kind,
            } if verb == "UIDL" => AccessError::Server {
                server,
                detail: format!(
                    "{detail}; without UIDL messages cannot be tracked across runs, so this server cannot be migrated"
                ),
                transient: false,
                kind,
            },
            e => e,
        })?;
        let lines = self.conn.read_lines(verb).await?;
        let mut out = Vec::with_capacity(lines.len());
        for l in &lines {
            let (n, rest) = msgno_and(l).ok_or_else(|| {
                self.conn.error(
                    format!("{verb} sent a malformed line: {}", client::show(l)),
                    false,
                )
            })?;
            out.push((n, rest.to_vec()));
        }
        Ok(out)
    }

    /// Reads the headers of these messages (TOP n 0, pipelined when the server can; RETR when
    /// it has no TOP) and returns (arrival, Date:) for each.
    async fn header_dates(&mut self, msgnos: &[u32]) -> Result<Vec<Dates>, AccessError> {
        let mut out = Vec::with_capacity(msgnos.len());
        let Some((&first, rest)) = msgnos.split_first() else {
            return Ok(out);
        };
        // The first message tells whether TOP works (it is optional in RFC 1939).
        let top = match self.heads(&[first], true).await? {
            Some(d) => {
                out.extend(d);
                true
            }
            None => {
                let d = self.heads(&[first], false).await?.unwrap_or_default();
                out.extend(d);
                false
            }
        };
        let window = if self.pipelining() { TOP_WINDOW } else { 1 };
        for chunk in rest.chunks(window) {
            out.extend(self.heads(chunk, top).await?.unwrap_or_default());
        }
        Ok(out)
    }

    /// Sends TOP n 0 (or RETR n) for each message at once, then reads every answer. `None`
    /// when the first TOP was refused for good (the server has no TOP).
    async fn heads(
        &mut self,
        msgnos: &[u32],
        top: bool,
    ) -> Result<Option<Vec<Dates>>, AccessError> {
        let verb = if top { "TOP" } else { "RETR" };
        for n in msgnos {
            let line = if top {
                format!("TOP {n} 0")
            } else {
                format!("RETR {n}")
            };
            self.conn.send(line.as_bytes()).await?;
        }
        let mut out = Vec::with_capacity(msgnos.len());
        let mut failed = None;
        for n in msgnos {
            // Every answer is read, even after a refusal, so the connection stays in step.
            match self.conn.read_status(verb).await? {
                Ok(_) => {
                    self.conn.begin_multiline();
                    let (head, _) = self
                        .conn
                        .read_multiline_capped("reading headers", MAX_HEADER_BYTES)
                        .await?;
                    out.push(dates_of(&head));
                }
                Err(r) => {
                    if failed.is_none() {
                        failed = Some((*n, r));
                    }
                }
            }
        }
        match failed {
            None => Ok(Some(out)),
            Some((_, r)) if top && !r.transient && msgnos.len() == 1 => Ok(None),
            Some((n, r)) => Err(self.conn.refused(&format!("{verb} {n}"), &r)),
        }
    }

    /// Reads the open RETR response whole: in memory up to [`SPOOL_IN_MEMORY`], beyond that
    /// in an unnamed temporary file. Returns the body with its real length, cut to `expected`
    /// when the server only added a final CRLF, and whether `expected` was right.
    async fn spool(
        &mut self,
        uid: Uid,
        expected: u64,
    ) -> Result<(FetchedBody<'static>, bool), AccessError> {
        let mut mem = BytesMut::new();
        let mut file: Option<(tokio::fs::File, u64)> = None;
        let mut chunk = BytesMut::new();
        let mut last2 = [0u8; 2];
        let mut total = 0u64;
        // The two bytes at positions expected-2 and expected-1.
        let mut at_expected = [0u8; 2];
        loop {
            chunk.clear();
            let n = self.conn.feed_multiline(&mut chunk);
            for (k, slot) in at_expected.iter_mut().enumerate() {
                if let Some(pos) = (expected + k as u64).checked_sub(2) {
                    if pos >= total && pos < total + n as u64 {
                        *slot = chunk[(pos - total) as usize];
                    }
                }
            }
            for &b in &chunk[..] {
                last2 = [last2[1], b];
            }
            total += n as u64;
            if n > 0 {
                match &mut file {
                    Some((f, len)) => {
                        f.write_all(&chunk).await.map_err(|e| spool_error(&e))?;
                        *len += n as u64;
                    }
                    None if mem.len() + n > SPOOL_IN_MEMORY => {
                        let std_file = tempfile::tempfile().map_err(|e| spool_error(&e))?;
                        let mut f = tokio::fs::File::from_std(std_file);
                        f.write_all(&mem).await.map_err(|e| spool_error(&e))?;
                        f.write_all(&chunk).await.map_err(|e| spool_error(&e))?;
                        file = Some((f, (mem.len() + n) as u64));
                        mem = BytesMut::new();
                    }
                    None => mem.extend_from_slice(&chunk),
                }
            }
            if self.conn.multiline_done() {
                self.conn.multiline = None;
                break;
            }
            if !self.conn.has_buffered() {
                self.conn.read_more("reading a message").await?;
            }
        }
        let exact = total == expected;
        let padded =
            total == expected + 2 && last2 == *b"\r\n" && (expected < 2 || at_expected != *b"\r\n");
        let len = if padded { expected } else { total };
        let body = match file {
            None => {
                mem.truncate(len as usize);
                FetchedBody::from_bytes(uid, Bytes::from(mem))
            }
            Some((mut f, _)) => {
                let res = async {
                    f.flush().await?;
                    f.set_len(len).await?;
                    f.seek(std::io::SeekFrom::Start(0)).await?;
                    Ok::<_, std::io::Error>(())
                }
                .await;
                res.map_err(|e| spool_error(&e))?;
                FetchedBody::from_reader(
                    uid,
                    len,
                    f,
                    BodyOrigin {
                        name: format!(
                            "{} (the message spooled to a temporary file)",
                            self.conn.server
                        ),
                        kind: ErrorKind::Storage,
                    },
                )
            }
        };
        Ok((body, exact || padded))
    }
}

fn spool_error(e: &std::io::Error) -> AccessError {
    AccessError::Io {
        path: std::env::temp_dir().display().to_string(),
        source: std::io::Error::new(e.kind(), format!("spooling a POP3 message: {e}")),
    }
}

/// (arrival date, `Date:` header) of one message.
type Dates = (Option<InternalDate>, Option<InternalDate>);

fn dates_of(head: &[u8]) -> Dates {
    let f = headers::fields(headers::header_block(head));
    (headers::arrival_date(&f), headers::date_field(&f))
}

impl MigrationSource for Pop3Source {
    fn describe(&self) -> String {
        self.conn.server.clone()
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        Ok(FolderList {
            folders: vec![Folder {
                name: "INBOX".into(),
                raw: "INBOX".into(),
                delimiter: None,
                attributes: Vec::new(),
                special_use: None,
            }],
            prefix: String::new(),
            delimiter: None,
            messages: Default::default(),
        })
    }

    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError> {
        if !folder.is_inbox() {
            return Err(self.conn.error(
                format!("a POP3 mailbox has only INBOX, not {:?}", folder.name),
                false,
            ));
        }
        self.settle().await?;
        let (path, mailbox) = (self.spec.uid_map.clone(), self.spec.mailbox());
        let map = tokio::task::spawn_blocking(move || UidMap::load(&path, &mailbox))
            .await
            .map_err(|e| {
                self.conn
                    .error(format!("reading the UID table: {e}"), false)
            })??;
        if map.sizes_unreliable {
            self.trust = Trust::Distrusted;
        }
        let validity = map.validity;
        self.map = Some(map);
        let stat = self.conn.command("STAT", b"STAT").await?;
        let messages = stat
            .split_ascii_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| self.conn.error(format!("STAT answered {stat:?}"), false))?;
        Ok(OpenedFolder {
            uid_validity: validity,
            uid_next: None,
            highest_modseq: None,
            messages,
        })
    }

    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError> {
        self.settle().await?;
        self.map()?;
        let uidls = self.listing("UIDL").await?;
        let sizes: HashMap<u32, u64> = self
            .listing("LIST")
            .await?
            .into_iter()
            .filter_map(|(n, s)| Some((n, std::str::from_utf8(&s).ok()?.parse().ok()?)))
            .collect();
        let mut seen = HashSet::new();
        let mut fresh: Vec<(u32, String)> = Vec::new();
        let mut all: Vec<(u32, String)> = Vec::with_capacity(uidls.len());
        for (n, uidl) in uidls {
            if !uidmap::valid_uidl(&uidl) {
                return Err(self.conn.error(
                    format!(
                        "message {n} has the UIDL {:?}, which RFC 1939 does not allow",
                        client::show(&uidl)
                    ),
                    false,
                ));
            }
            let uidl = String::from_utf8_lossy(&uidl).into_owned();
            if !seen.insert(uidl.clone()) {
                return Err(self.conn.error(
                    format!("two messages have the UIDL {uidl}: they cannot be told apart"),
                    false,
                ));
            }
            if self.map()?.get(&uidl).is_none() {
                fresh.push((n, uidl.clone()));
            }
            all.push((n, uidl));
        }
        if !fresh.is_empty() {
            let msgnos: Vec<u32> = fresh.iter().map(|(n, _)| *n).collect();
            let dates = self.header_dates(&msgnos).await?;
            let now = OffsetDateTime::now_utc().replace_nanosecond(0).ok();
            let now = now.map(InternalDate);
            let new: Vec<(String, Option<InternalDate>, Option<InternalDate>)> = fresh
                .into_iter()
                .zip(dates)
                .map(|((_, uidl), (arrival, date))| (uidl, arrival.or(now), date))
                .collect();
            let mailbox = self.spec.mailbox();
            let mut map = self.map.take();
            let res = match map.as_mut() {
                Some(m) => m.assign(&mailbox, new),
                None => Ok(()),
            };
            self.map = map;
            res?;
        }
        self.listing.clear();
        let mut out = Vec::with_capacity(all.len());
        for (n, uidl) in all {
            let Some(entry) = self.map()?.get(&uidl).cloned() else {
                continue;
            };
            let size = sizes.get(&n).copied().unwrap_or(0);
            out.push(MessageMeta {
                uid: entry.uid,
                flags: Flags::new(),
                internal_date: entry.arrival,
                size,
                modseq: None,
            });
            self.listing.insert(
                entry.uid,
                Listed {
                    msgno: n,
                    size,
                    uidl,
                },
            );
        }
        out.sort_by_key(|m| m.uid);
        Ok(out)
    }

    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError> {
        let map = self.map()?;
        Ok(self
            .listing
            .iter()
            .filter(|(_, l)| {
                let Some(e) = map.get(&l.uidl) else {
                    return false;
                };
                let date = match range.field {
                    DateField::Internal => e.arrival.as_ref(),
                    DateField::Header => e.date.as_ref().or(e.arrival.as_ref()),
                };
                range.contains(date)
            })
            .map(|(u, _)| *u)
            .collect())
    }

    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError> {
        let pipelining = self.pipelining();
        for &uid in uids {
            let msgno = self.listing.get(&uid).map(|l| l.msgno);
            let mut sent = false;
            if let (Some(n), true) = (msgno, pipelining) {
                self.conn.send(format!("RETR {n}").as_bytes()).await?;
                sent = true;
            }
            self.queue.push_back(Queued { uid, sent });
        }
        Ok(())
    }

    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError> {
        // A body handed out before may have been dropped half-read.
        self.conn.finish_multiline().await?;
        if self.lied.swap(false, Ordering::Relaxed) {
            self.trust = Trust::Distrusted;
            if let Some(m) = self.map.as_mut() {
                m.sizes_unreliable = true;
            }
        }
        let Some(q) = self.queue.pop_front() else {
            return Ok(None);
        };
        let Some(listed) = self.listing.get(&q.uid) else {
            return Ok(Some(BodyEvent::Missing(q.uid)));
        };
        let (msgno, size, uidl) = (listed.msgno, listed.size, listed.uidl.clone());
        if !q.sent {
            self.conn.send(format!("RETR {msgno}").as_bytes()).await?;
        }
        match self.conn.read_status("RETR").await? {
            Ok(_) => {}
            Err(r) if r.transient => {
                return Err(self.conn.refused(&format!("RETR of UIDL {uidl}"), &r));
            }
            Err(r) => {
                return Ok(Some(BodyEvent::Failed(
                    q.uid,
                    StatusResponse {
                        tag: None,
                        kind: StatusKind::No,
                        code: None,
                        text: format!("POP3 RETR of UIDL {uidl}: -ERR {}", r.text),
                    },
                )));
            }
        }
        self.conn.begin_multiline();
        if size <= SMALL_BODY || self.trust != Trust::Trusted {
            let (body, size_was_right) = self.spool(q.uid, size).await?;
            if size_was_right {
                if self.trust == Trust::Unknown {
                    self.trust = Trust::Trusted;
                }
            } else if self.trust != Trust::Distrusted {
                tracing::warn!(
                    server = %self.conn.server,
                    uidl = %uidl,
                    "LIST size {size} differs from the message's; spooling this server's messages from now on"
                );
                self.trust = Trust::Distrusted;
                if let Some(m) = self.map.as_mut() {
                    m.mark_sizes_unreliable();
                }
            }
            return Ok(Some(BodyEvent::Body(body)));
        }
        let lied = self.lied.clone();
        let path = self.spec.uid_map.clone();
        let on_mismatch = Box::new(move || {
            lied.store(true, Ordering::Relaxed);
            let _ = uidmap::mark_sizes_unreliable(&path);
        });
        let origin = BodyOrigin {
            name: self.conn.server.clone(),
            kind: ErrorKind::Connection,
        };
        let reader = RetrReader::new(&mut self.conn, size, format!("UIDL {uidl}"), on_mismatch);
        Ok(Some(BodyEvent::Body(FetchedBody::from_reader(
            q.uid, size, reader, origin,
        ))))
    }

    async fn close(mut self) {
        let _ = self.settle().await;
        self.conn.quit().await;
    }
}
