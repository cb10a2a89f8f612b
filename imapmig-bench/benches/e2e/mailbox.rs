//! The generated mailboxes: deterministic (fixed seed), shaped like real mail, and put on the
//! source server over IMAP.
//!
//! Sizes: most messages 2–60 KB (log-uniform, so the median is about 11 KB), a few percent with
//! a 1–8 MB base64 attachment. A dozen folders (system, custom, nested, one non-ASCII name),
//! the usual flags in realistic proportions, a handful of keywords, INTERNALDATEs spread over
//! twelve years in several time zones. Nothing depends on the clock or the machine: the same
//! settings give the same bytes everywhere.

use std::collections::{BTreeMap, HashSet, VecDeque};

use imapmig_core::engine::Account;
use imapmig_core::model::{Flags, InternalDate};

/// SplitMix64: tiny, fast, and its output never changes between versions of anything.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `[lo, hi]`.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.unit() * (hi.ln() - lo.ln())).exp()
    }
}

/// The folders of the generated account and the share of the mail each holds (per cent).
/// Parents are real folders with mail of their own, so every contender sees the same tree.
pub const FOLDERS: [(&str, u32); 12] = [
    ("INBOX", 30),
    ("Sent", 15),
    ("Archive", 12),
    ("Drafts", 1),
    ("Trash", 5),
    ("Junk", 3),
    ("Work", 5),
    ("Work/2023", 7),
    ("Work/2024", 7),
    ("Lists", 2),
    ("Lists/rust-users", 10),
    ("Reisen & Größe", 3),
];

const KEYWORDS: [(&str, f64); 5] = [
    ("$Forwarded", 0.05),
    ("$MDNSent", 0.02),
    ("$Label1", 0.03),
    ("Work", 0.06),
    ("Todo", 0.02),
];

const WORDS: [&str; 48] = [
    "the",
    "meeting",
    "migration",
    "server",
    "report",
    "quarterly",
    "please",
    "attached",
    "regards",
    "thanks",
    "budget",
    "schedule",
    "review",
    "draft",
    "invoice",
    "project",
    "deadline",
    "update",
    "mailbox",
    "folder",
    "archive",
    "customer",
    "contract",
    "delivery",
    "Grüße",
    "Überweisung",
    "naïve",
    "café",
    "你好",
    "会议",
    "こんにちは",
    "确认",
    "and",
    "of",
    "to",
    "in",
    "for",
    "with",
    "on",
    "we",
    "will",
    "can",
    "next",
    "week",
    "Monday",
    "see",
    "below",
    "notes",
];

/// How a generated set of messages looks.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Smallest and largest size of an ordinary message, bytes (log-uniform between).
    pub small: (f64, f64),
    /// Share of messages that carry a large attachment.
    pub large_share: f64,
    /// Smallest and largest size of such an attachment, bytes (log-uniform between).
    pub large: (f64, f64),
}

/// Real-looking mail: 2–60 KB, and `large_share` of the messages with 1–8 MB attachments.
pub fn realistic(large_share: f64) -> Shape {
    Shape {
        small: (2_000.0, 60_000.0),
        large_share,
        large: (1_000_000.0, 8_000_000.0),
    }
}

/// Small messages only (1–8 KB): many messages, few bytes; what stresses per-message costs.
pub fn small_only() -> Shape {
    Shape {
        small: (1_000.0, 8_000.0),
        large_share: 0.0,
        large: (0.0, 0.0),
    }
}

/// One message, before its bytes are made.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Index into [`FOLDERS`].
    pub folder: usize,
    /// Size of the text part, bytes (approximate: whole lines).
    pub text: usize,
    /// Size of the base64 attachment, bytes (0: none).
    pub attachment: usize,
    pub flags: Flags,
    pub date: InternalDate,
    /// Seeds the bytes of this message.
    pub seed: u64,
    /// A number unique in the mailbox (Message-ID, subject).
    pub n: u64,
}

/// The messages `first..first + count` of the mailbox generated from `seed`. Asking for
/// `0..n` and then `n..n + k` gives the same messages as `0..n + k`: the "new mail" of an
/// incremental pass is the continuation of the same mailbox.
pub fn specs(seed: u64, shape: Shape, first: u64, count: u64) -> Vec<Spec> {
    let total: u32 = FOLDERS.iter().map(|f| f.1).sum();
    (first..first + count)
        .map(|n| {
            let mut r = Rng::new(seed ^ n.wrapping_mul(0xA076_1D64_78BD_642F));
            let mut pick = r.below(u64::from(total)) as u32;
            let mut folder = 0;
            for (i, (_, share)) in FOLDERS.iter().enumerate() {
                if pick < *share {
                    folder = i;
                    break;
                }
                pick -= share;
            }
            let text = r.log_uniform(shape.small.0, shape.small.1) as usize;
            let attachment = if shape.large_share > 0.0 && r.chance(shape.large_share) {
                r.log_uniform(shape.large.0, shape.large.1) as usize
            } else {
                0
            };
            let name = FOLDERS[folder].0;
            let mut flags = Flags::new();
            match name {
                "Drafts" => flags.insert("\\Draft"),
                "Trash" => {
                    flags.insert("\\Seen");
                    if r.chance(0.3) {
                        flags.insert("\\Deleted");
                    }
                }
                "INBOX" => {
                    // The newest mail is unread.
                    if r.chance(0.8) {
                        flags.insert("\\Seen");
                    }
                }
                _ => flags.insert("\\Seen"),
            }
            if r.chance(0.12) {
                flags.insert("\\Answered");
            }
            if r.chance(0.04) {
                flags.insert("\\Flagged");
            }
            for (k, p) in KEYWORDS {
                if r.chance(p) {
                    flags.insert(k);
                }
            }
            let year = 2013 + r.below(12);
            let month = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ][r.below(12) as usize];
            let zone = [
                "+0000", "+0100", "+0200", "-0500", "-0800", "+0530", "+0900",
            ][r.below(7) as usize];
            let date = format!(
                "{:02}-{month}-{year} {:02}:{:02}:{:02} {zone}",
                1 + r.below(28),
                r.below(24),
                r.below(60),
                r.below(60)
            );
            Spec {
                folder,
                text,
                attachment,
                flags,
                date: InternalDate::parse_imap(&date).expect("a generated date parses"),
                seed: r.next_u64(),
                n,
            }
        })
        .collect()
}

/// The bytes of a message: headers, a text part of about `spec.text` bytes, and a base64
/// attachment of `spec.attachment` bytes when there is one. CRLF line ends, lines under 78.
pub fn render(spec: &Spec) -> Vec<u8> {
    let mut r = Rng::new(spec.seed);
    let mut out = Vec::with_capacity(spec.text + spec.attachment + 2048);
    let who = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let from = who[r.below(6) as usize];
    let to = who[r.below(6) as usize];
    let date = spec.date.to_imap();
    let subject: Vec<&str> = (0..3 + r.below(6))
        .map(|_| WORDS[r.below(48) as usize])
        .collect();
    let boundary = format!("=_bench_{:016x}", r.next_u64());
    let head = format!(
        "Return-Path: <{from}@old.example>\r\n\
         Received: from mx.old.example (mx.old.example [192.0.2.7])\r\n\tby imap.old.example with ESMTPS id {:x}; {date}\r\n\
         From: {from} <{from}@old.example>\r\n\
         To: {to} <{to}@old.example>\r\n\
         Subject: =?UTF-8?B?{}?= #{}\r\n\
         Date: {date}\r\n\
         Message-ID: <{}.{:x}@bench.old.example>\r\n\
         MIME-Version: 1.0\r\n",
        r.next_u64(),
        b64(subject.join(" ").as_bytes()),
        spec.n,
        spec.n,
        spec.seed
    );
    out.extend_from_slice(head.as_bytes());
    if spec.attachment > 0 {
        out.extend_from_slice(
            format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
                 This is a multi-part message in MIME format.\r\n\r\n--{boundary}\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            )
            .as_bytes(),
        );
    } else {
        out.extend_from_slice(
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        );
    }
    // The text part fills the message up to its drawn size (headers included).
    let text_end = spec.text.max(out.len() + 100);
    while out.len() < text_end {
        let mut line = 0;
        while line < 64 {
            let w = WORDS[r.below(48) as usize];
            out.extend_from_slice(w.as_bytes());
            out.push(b' ');
            line += w.len() + 1;
        }
        out.extend_from_slice(b"\r\n");
    }
    if spec.attachment > 0 {
        out.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream; name=\"scan-{}.bin\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"scan-{}.bin\"\r\n\r\n",
                spec.n, spec.n
            )
            .as_bytes(),
        );
        append_base64_noise(&mut out, &mut r, spec.attachment);
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    }
    out
}

/// Appends about `len` bytes of base64 text (random data), 76 characters a line.
pub fn append_base64_noise(out: &mut Vec<u8>, r: &mut Rng, len: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let lines = len / 78 + 1;
    out.reserve(lines * 78);
    for _ in 0..lines {
        let mut x = r.next_u64();
        for i in 0..76 {
            if i % 10 == 0 {
                x = r.next_u64();
            }
            out.push(ALPHABET[(x & 63) as usize]);
            x >>= 6;
        }
        out.extend_from_slice(b"\r\n");
    }
}

fn b64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// What was put on the source: messages and bytes per folder (bytes as the server stores them).
#[derive(Clone, Debug, Default)]
pub struct Filled {
    pub messages: u64,
    pub bytes: u64,
}

/// Appends the messages to `account`, creating the folders it lacks. Pipelined: up to 32
/// APPENDs in flight, each into the folder selected at the time (what servers do fastest).
pub async fn fill(account: &Account, specs: &[Spec]) -> Filled {
    let mut s = account.open().await.expect("log in to fill the source");
    let existing: HashSet<String> = s
        .list()
        .await
        .expect("LIST")
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut by_folder: BTreeMap<usize, Vec<&Spec>> = BTreeMap::new();
    for sp in specs {
        by_folder.entry(sp.folder).or_default().push(sp);
    }
    let mut filled = Filled::default();
    for (folder, list) in by_folder {
        let name = FOLDERS[folder].0;
        let raw = s.encode_name(name);
        if !existing.contains(name) && !name.eq_ignore_ascii_case("INBOX") {
            // A parent may have been created with an earlier fill; a second CREATE fails.
            let _ = s.create(&raw).await;
        }
        s.select(&raw).await.expect("SELECT the folder to fill");
        let mut in_flight: VecDeque<String> = VecDeque::new();
        for sp in list {
            let body = render(sp);
            filled.messages += 1;
            filled.bytes += body.len() as u64;
            let tag = s
                .append_send(
                    &raw,
                    &sp.flags,
                    Some(&sp.date),
                    body.len() as u64,
                    &mut &body[..],
                )
                .await
                .unwrap_or_else(|e| panic!("APPEND to {name}: {e}"));
            in_flight.push_back(tag);
            if in_flight.len() >= 32 {
                let t = in_flight.pop_front().expect("a tag");
                s.append_wait(&t, &raw).await.expect("APPEND completes");
            }
        }
        for t in in_flight {
            s.append_wait(&t, &raw).await.expect("APPEND completes");
        }
    }
    s.logout().await;
    filled
}

/// One message of exactly about `size` bytes (a short text and a base64 attachment), for the
/// memory measurements.
pub fn one_large(size: usize, seed: u64) -> Spec {
    Spec {
        folder: 0,
        text: 2_000,
        attachment: size.saturating_sub(3_000),
        flags: Flags::from_line("\\Seen $Forwarded"),
        date: InternalDate::parse_imap("14-Mar-2019 10:20:30 +0100").expect("date"),
        seed,
        n: 1,
    }
}
