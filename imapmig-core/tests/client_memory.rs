//! Memory stays flat whatever the message size: a 30 MB message goes up (APPEND from a reader
//! that makes its bytes on the fly), comes back (streamed FETCH) and moves server to server
//! (FETCH streamed straight into APPEND), and the process's peak RSS grows far less than the
//! message.
//!
//! A test binary of its own, so no other test's allocations land in the figures; its two tests
//! take turns (a lock) for the same reason. The figures are printed: run with `--nocapture`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use imapmig_core::imap::{BodyEvent, Credentials, Endpoint, Security, Session, TlsVerify};
use imapmig_core::model::{Flags, InternalDate, Uid};
use imapmig_testkit::{Dovecot, Flavour, TestUser};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, ReadBuf};

/// The message size: 30 MiB, give or take a line.
const MESSAGE_SIZE: u64 = 30 * 1024 * 1024;

/// The most the peak RSS may rise over the RSS before a transfer. Buffers are a few hundred
/// KiB; 12 MiB leaves room for allocator slack and the TLS state, and is far below 30 MiB.
const MAX_GROWTH_KIB: u64 = 12 * 1024;

/// The two tests measure the same process: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A deterministic message of exactly `len` bytes, generated as it is read: headers, then
/// lines of 76 pseudo-random printable ASCII characters and CRLF (so the server stores it
/// byte for byte). It hashes what it hands out, so nothing has to be kept to check the copy.
struct GeneratedMessage {
    len: u64,
    produced: u64,
    header: Vec<u8>,
    state: u64,
    line: [u8; 78],
    line_pos: usize,
    hash: Sha256,
}

impl GeneratedMessage {
    const LINE: usize = 78;

    fn new(seed: u64, target: u64) -> GeneratedMessage {
        let header = format!(
            "From: Big Sender <big@example.org>\r\nTo: Archive <archive@example.org>\r\n\
             Subject: a generated message of about {target} bytes (seed {seed})\r\n\
             Date: Thu, 4 Jan 2024 08:15:00 +0100\r\nMessage-ID: <big.{seed}@example.org>\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        )
        .into_bytes();
        let lines = (target - header.len() as u64) / Self::LINE as u64;
        GeneratedMessage {
            len: header.len() as u64 + lines * Self::LINE as u64,
            produced: 0,
            header,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            line: [0; 78],
            line_pos: Self::LINE,
            hash: Sha256::new(),
        }
    }

    /// Makes the next body line (xorshift64; 8 characters per step).
    fn refill(&mut self) {
        const SET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .";
        let mut i = 0;
        while i < Self::LINE - 2 {
            let mut x = self.state;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.state = x;
            for k in 0..8 {
                if i < Self::LINE - 2 {
                    self.line[i] = SET[((x >> (k * 6)) & 63) as usize];
                    i += 1;
                }
            }
        }
        self.line[Self::LINE - 2] = b'\r';
        self.line[Self::LINE - 1] = b'\n';
        self.line_pos = 0;
    }

    fn digest(self) -> [u8; 32] {
        assert_eq!(self.produced, self.len, "the whole message was read");
        self.hash.finalize().into()
    }
}

impl AsyncRead for GeneratedMessage {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        while buf.remaining() > 0 && this.produced < this.len {
            let part: &[u8] = if (this.produced as usize) < this.header.len() {
                &this.header[this.produced as usize..]
            } else {
                if this.line_pos == Self::LINE {
                    this.refill();
                }
                &this.line[this.line_pos..]
            };
            let n = part.len().min(buf.remaining());
            buf.put_slice(&part[..n]);
            this.hash.update(&part[..n]);
            if (this.produced as usize) >= this.header.len() {
                this.line_pos += n;
            }
            this.produced += n as u64;
        }
        Poll::Ready(Ok(()))
    }
}

/// The process's memory from `/proc/self/status`, in KiB.
#[derive(Clone, Copy, Debug)]
struct Memory {
    /// VmRSS: resident now.
    rss: u64,
    /// VmHWM: the highest VmRSS ever (it cannot be reset).
    peak: u64,
}

fn memory() -> Memory {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// Prints the figures (to stdout for `--nocapture`, to stderr for CI logs) and checks that the
/// peak rose less than [`MAX_GROWTH_KIB`] over the resident size before the transfer.
fn report_and_check(what: &str, before: Memory, after: Memory, bytes: u64, took: Option<Duration>) {
    // The peak after can only be reached during the transfer or earlier; the transfer's own
    // peak is therefore at most `after.peak`, and its rise at most `after.peak - before.rss`.
    let rise = after.peak.saturating_sub(before.rss);
    let speed = took
        .map(|t| {
            format!(
                " in {t:.2?} ({:.0} MiB/s)",
                bytes as f64 / 1048576.0 / t.as_secs_f64()
            )
        })
        .unwrap_or_default();
    let line = format!(
        "{what}: {:.1} MiB{speed}; VmRSS before {} KiB, after {} KiB; \
         VmHWM before {} KiB, after {} KiB; peak rise over the RSS before: {} KiB \
         (VmHWM growth {} KiB; limit {} KiB)",
        bytes as f64 / 1048576.0,
        before.rss,
        after.rss,
        before.peak,
        after.peak,
        rise,
        after.peak.saturating_sub(before.peak),
        MAX_GROWTH_KIB,
    );
    println!("{line}");
    eprintln!("{line}");
    assert!(
        rise < MAX_GROWTH_KIB,
        "{what}: memory grew by {rise} KiB moving a {bytes}-byte message: it was buffered"
    );
}

fn endpoint(server: &Dovecot) -> Endpoint {
    let mut ep = Endpoint::new(server.host(), server.imaps_port(), Security::Tls);
    ep.verify = TlsVerify::CaFile(server.ca_file().to_path_buf());
    ep.timeout = Duration::from_secs(60);
    ep
}

async fn login(server: &Dovecot, user: &TestUser) -> Session {
    Session::open(
        &endpoint(server),
        &Credentials::password(user.name.clone(), user.password.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("login: {e}\n{}", server.log_tail(20)))
}

/// Exercises every code path once with a small message, so the buffers, TLS state and lazily
/// made statics of a session exist before the baseline is taken.
async fn warm_up(s: &mut Session, folder: &str) {
    let small = b"Subject: warm-up\r\n\r\nhello\r\n";
    let au = s
        .append(folder, &Flags::new(), None, small)
        .await
        .unwrap()
        .unwrap();
    s.select(folder).await.unwrap();
    let got = s.fetch_bodies_collected(&[au.uid]).await.unwrap();
    assert_eq!(got[0].1.as_ref(), &small[..]);
}

/// Fetches one body streamed and returns (its SHA-256, its length, the largest chunk seen).
async fn fetch_hashed(s: &mut Session, uid: Uid) -> ([u8; 32], u64, usize) {
    s.send_fetch_bodies(&[uid]).await.unwrap();
    let mut result = None;
    while let Some(ev) = s.next_body().await.unwrap() {
        match ev {
            BodyEvent::Body(mut b) => {
                assert!(b.as_inline().is_none(), "a 30 MB body must be streamed");
                let mut hash = Sha256::new();
                let mut n = 0u64;
                let mut biggest = 0;
                while let Some(c) = b.chunk().await.unwrap() {
                    hash.update(&c);
                    n += c.len() as u64;
                    biggest = biggest.max(c.len());
                }
                assert_eq!(n, b.len);
                result = Some((hash.finalize().into(), n, biggest));
            }
            BodyEvent::Missing(u) => panic!("UID {u} missing"),
            BodyEvent::Failed(u, st) => panic!("UID {u} failed: {st:?}"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    result.expect("the body")
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_megabytes_up_and_down_in_constant_memory() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = Dovecot::start(Flavour::Slash);
    let alice = server.user("alice");
    let mut s = login(&server, &alice).await;
    warm_up(&mut s, "INBOX").await;

    let before = memory();
    let started = Instant::now();
    let mut gen = GeneratedMessage::new(1, MESSAGE_SIZE);
    let len = gen.len;
    let when = InternalDate::parse_imap("04-Jan-2024 08:15:00 +0100").unwrap();
    let tag = s
        .append_send("Archive", &Flags::new(), Some(&when), len, &mut gen)
        .await
        .expect("APPEND of 30 MB");
    let au = s
        .append_wait(&tag, "Archive")
        .await
        .expect("APPEND completes")
        .expect("APPENDUID");
    let sent = gen.digest();
    let after_append = memory();
    report_and_check(
        "APPEND (streamed from a generator)",
        before,
        after_append,
        len,
        Some(started.elapsed()),
    );

    let started = Instant::now();
    s.select("Archive").await.unwrap();
    let (got, n, biggest) = fetch_hashed(&mut s, au.uid).await;
    let after_fetch = memory();
    report_and_check(
        "FETCH (streamed, hashed per chunk)",
        after_append,
        after_fetch,
        n,
        Some(started.elapsed()),
    );
    println!("largest chunk handed on: {biggest} bytes");
    assert_eq!(n, len);
    assert_eq!(
        hex(&got),
        hex(&sent),
        "the fetched body differs from what was appended"
    );
    // The size as the server sees it, too.
    let meta = s.fetch_meta(&au.uid.to_string(), None).await.unwrap();
    assert_eq!(meta[0].size, len);
    // Both steps together stay under the bound as well.
    report_and_check("APPEND + FETCH", before, after_fetch, 2 * len, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_megabytes_server_to_server_in_constant_memory() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let source = Dovecot::start(Flavour::Slash);
    let destination = Dovecot::start(Flavour::DotInbox);
    let alice = source.user("alice");
    let bob = destination.user("bob");
    let mut src = login(&source, &alice).await;
    let mut dst = login(&destination, &bob).await;
    warm_up(&mut src, "Archive").await;
    dst.create("INBOX.Copied").await.unwrap();
    warm_up(&mut dst, "INBOX.Copied").await;

    // The source message, put there by streaming from the generator.
    let mut gen = GeneratedMessage::new(2, MESSAGE_SIZE);
    let len = gen.len;
    let when = InternalDate::parse_imap("04-Jan-2024 08:15:00 +0100").unwrap();
    let flags: Flags = ["\\Seen", "$Archived"].into_iter().collect();
    let tag = src
        .append_send("Archive", &flags, Some(&when), len, &mut gen)
        .await
        .unwrap();
    let src_uid = src.append_wait(&tag, "Archive").await.unwrap().unwrap().uid;
    let original = gen.digest();
    src.select("Archive").await.unwrap();
    let meta = src
        .fetch_meta(&src_uid.to_string(), None)
        .await
        .unwrap()
        .remove(0);

    // The copy: each chunk read from the source goes to the destination and is dropped.
    let before = memory();
    let started = Instant::now();
    dst.select("INBOX.Copied").await.unwrap();
    src.send_fetch_bodies(&[src_uid]).await.unwrap();
    let mut observed = Sha256::new();
    let mut observed_len = 0u64;
    let mut tags = Vec::new();
    while let Some(ev) = src.next_body().await.unwrap() {
        match ev {
            BodyEvent::Body(mut body) => {
                assert!(body.as_inline().is_none(), "a 30 MB body must be streamed");
                assert_eq!(body.len, len);
                let tag = dst
                    .append_send_fetched(
                        "INBOX.Copied",
                        &meta.flags,
                        meta.internal_date.as_ref(),
                        &mut body,
                        |c| {
                            observed.update(c);
                            observed_len += c.len() as u64;
                        },
                    )
                    .await
                    .expect("APPEND streamed from the FETCH");
                tags.push(tag);
            }
            BodyEvent::Missing(u) => panic!("UID {u} missing"),
            BodyEvent::Failed(u, st) => panic!("UID {u} failed: {st:?}"),
            BodyEvent::Withheld { uid, detail } | BodyEvent::Unasked { uid, detail } => {
                panic!("UID {uid}: {detail}")
            }
        }
    }
    assert_eq!(tags.len(), 1);
    let landed = dst
        .append_wait(&tags[0], "INBOX.Copied")
        .await
        .expect("the copy's APPEND completes")
        .expect("APPENDUID");
    let after = memory();
    report_and_check(
        "server-to-server copy (FETCH into APPEND)",
        before,
        after,
        len,
        Some(started.elapsed()),
    );
    assert_eq!(observed_len, len);
    let observed: [u8; 32] = observed.finalize().into();
    assert_eq!(hex(&observed), hex(&original), "bytes seen in passing");

    // What the destination holds is what the source had, flags and date included.
    dst.select("INBOX.Copied").await.unwrap();
    let (copied, n, _) = fetch_hashed(&mut dst, landed.uid).await;
    assert_eq!(n, len);
    assert_eq!(
        hex(&copied),
        hex(&original),
        "the destination's copy differs"
    );
    let dmeta = dst
        .fetch_meta(&landed.uid.to_string(), None)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(dmeta.flags, meta.flags);
    assert_eq!(
        dmeta.internal_date.map(|d| d.unix()),
        meta.internal_date.map(|d| d.unix())
    );
    let end = memory();
    report_and_check("copy + verification FETCH", before, end, 2 * len, None);
}
