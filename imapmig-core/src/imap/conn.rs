//! One connection: the framer over the transport, tags, and the bookkeeping that lets several
//! commands be in flight at once.
//!
//! A tagged completion that arrives while the client waits for another tag (or for a
//! continuation) is kept, so commands can be pipelined and their results collected in any
//! order. Untagged responses go to whoever is waiting at the time.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWriteExt, BufWriter};

use super::error::{ImapError, Result};
use crate::net::Timed;
use crate::trace::{ConnTrace, ImapTracer};
use crate::wire::response::{alert_text, parse_line, Parsed};
use crate::wire::{Frame, Framer, Limits, StatusKind, StatusResponse};

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;
/// Bytes gathered before they go to the socket.
const WRITE_BUFFER: usize = 64 * 1024;
/// Distinct alerts kept until taken: a server that alerts on every command over a long run
/// (and a caller that never asks) must not cost memory without end.
const MAX_ALERTS: usize = 32;

pub(crate) struct Connection {
    pub(crate) host: String,
    io: BufWriter<Timed>,
    rbuf: BytesMut,
    framer: Framer,
    next_tag: u64,
    /// Tagged completions that arrived while waiting for something else.
    completed: HashMap<String, StatusResponse>,
    /// The text of an untagged BYE, kept for the error when the socket then closes.
    bye: Option<String>,
    /// Set when the byte stream is in an unknown state (e.g. an APPEND body ended early).
    broken: bool,
    /// The protocol trace, when one is asked for.
    trace: Option<Box<ImapTracer>>,
    /// `[ALERT]` texts not yet taken (RFC 3501 7.1: they must reach the user).
    alerts: Vec<String>,
}

impl Connection {
    pub(crate) fn new(host: String, io: Timed, limits: Limits) -> Connection {
        Connection {
            host,
            io: BufWriter::with_capacity(WRITE_BUFFER, io),
            rbuf: BytesMut::with_capacity(READ_SIZE),
            framer: Framer::new(limits),
            next_tag: 1,
            completed: HashMap::new(),
            bye: None,
            broken: false,
            trace: None,
            alerts: Vec::new(),
        }
    }

    /// Writes this connection's lines to a protocol trace from now on.
    pub(crate) fn set_trace(&mut self, trace: Option<ConnTrace>) {
        self.trace = trace.map(|t| Box::new(ImapTracer::new(t)));
    }

    /// Takes the transport back, for the STARTTLS upgrade. Refuses if the server sent anything
    /// after its OK: bytes that arrived in clear must not be read as if they came over TLS.
    pub(crate) fn into_transport(self) -> Result<Timed> {
        if !self.rbuf.is_empty() || !self.framer.is_idle() {
            return Err(ImapError::Protocol {
                host: self.host,
                command: "STARTTLS",
                detail: "the server sent data after agreeing to STARTTLS (possible injection)"
                    .into(),
            });
        }
        Ok(self.io.into_inner())
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.io.get_ref().is_tls()
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.io.get_ref().timeout()
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.io.get_mut().set_timeout(timeout);
    }

    fn io_error(&self, doing: &'static str, source: std::io::Error) -> ImapError {
        ImapError::Io {
            host: self.host.clone(),
            doing,
            source,
        }
    }

    fn closed(&self) -> ImapError {
        ImapError::Closed {
            host: self.host.clone(),
            bye: self.bye.clone(),
        }
    }

    /// The `[ALERT]` texts received since the last call, each once.
    pub(crate) fn take_alerts(&mut self) -> Vec<String> {
        std::mem::take(&mut self.alerts)
    }

    pub(crate) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Polls for the next frame, reading from the socket as needed.
    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame>> {
        loop {
            match self.framer.next_frame(&mut self.rbuf) {
                Ok(Some(frame)) => {
                    if let Some(t) = &mut self.trace {
                        t.received(&frame);
                    }
                    // Every line passes here, whoever reads it, so no alert is lost.
                    if let Frame::Line(line) = &frame {
                        if let Some(text) = alert_text(line) {
                            if self.alerts.len() < MAX_ALERTS && !self.alerts.contains(&text) {
                                tracing::warn!(host = %self.host, alert = %text, "the server's alert");
                                self.alerts.push(text);
                            }
                        }
                    }
                    return Poll::Ready(Ok(frame));
                }
                Ok(None) => {}
                Err(source) => {
                    self.broken = true;
                    return Poll::Ready(Err(ImapError::Wire {
                        host: self.host.clone(),
                        source,
                    }));
                }
            }
            if self.broken {
                return Poll::Ready(Err(self.closed()));
            }
            self.rbuf.reserve(READ_SIZE);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.broken = true;
                    return Poll::Ready(Err(self.io_error("reading a response", e)));
                }
                Poll::Ready(Ok(0)) => {
                    self.broken = true;
                    return Poll::Ready(Err(self.closed()));
                }
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    pub(crate) async fn next_frame(&mut self) -> Result<Frame> {
        poll_fn(|cx| self.poll_frame(cx)).await
    }

    /// Discards the rest of a literal being streamed, if any (a body the caller stopped reading).
    pub(crate) async fn drain_literal(&mut self) -> Result<()> {
        while self.framer.in_literal() {
            match self.next_frame().await? {
                Frame::LiteralData(_) => {}
                Frame::LiteralEnd => break,
                _ => {}
            }
        }
        Ok(())
    }

    /// The next complete line. A large literal where none was expected (no command here asks
    /// for one outside a body fetch) is read and dropped; its line keeps the `{0}` placeholder.
    pub(crate) async fn next_line(&mut self) -> Result<Bytes> {
        loop {
            match self.next_frame().await? {
                Frame::Line(l) => return Ok(l),
                Frame::LiteralStart { .. } | Frame::LiteralData(_) | Frame::LiteralEnd => {
                    tracing::debug!(host = %self.host, "dropping an unexpected large literal");
                }
            }
        }
    }

    /// A fresh tag.
    pub(crate) fn tag(&mut self) -> String {
        let t = format!("m{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Writes raw bytes (buffered; see [`Connection::flush`]).
    pub(crate) async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(t) = &mut self.trace {
            t.sent(bytes);
        }
        self.write_untraced(bytes).await
    }

    /// Writes a whole line that holds a secret (CRLF included); the trace shows `shown`
    /// (without CRLF) in its place.
    pub(crate) async fn write_redacted(&mut self, bytes: &[u8], shown: &str) -> Result<()> {
        if let Some(t) = &mut self.trace {
            t.sent_redacted(shown);
        }
        self.write_untraced(bytes).await
    }

    async fn write_untraced(&mut self, bytes: &[u8]) -> Result<()> {
        if self.broken {
            return Err(self.closed());
        }
        if let Err(e) = self.io.write_all(bytes).await {
            self.broken = true;
            return Err(self.io_error("sending a command", e));
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        if let Err(e) = self.io.flush().await {
            self.broken = true;
            return Err(self.io_error("sending a command", e));
        }
        Ok(())
    }

    /// Writes `tag SP command CRLF` and flushes; returns the tag.
    pub(crate) async fn send(&mut self, command: &[u8]) -> Result<String> {
        let tag = self.queue(command).await?;
        self.flush().await?;
        Ok(tag)
    }

    /// Writes `tag SP command CRLF` without flushing, for pipelining several commands.
    pub(crate) async fn queue(&mut self, command: &[u8]) -> Result<String> {
        let tag = self.tag();
        let mut line = Vec::with_capacity(tag.len() + command.len() + 3);
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.write(&line).await?;
        Ok(tag)
    }

    /// Like [`Connection::send`] for a command that carries a secret (LOGIN, AUTHENTICATE
    /// with an initial response): the trace shows `tag SP shown` instead. The line is built
    /// in a buffer that is zeroed when dropped.
    pub(crate) async fn send_redacted(&mut self, command: &[u8], shown: &str) -> Result<String> {
        let tag = self.tag();
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(tag.len() + command.len() + 3));
        line.extend_from_slice(tag.as_bytes());
        line.push(b' ');
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.write_redacted(&line, &format!("{tag} {shown}"))
            .await?;
        self.flush().await?;
        Ok(tag)
    }

    /// Reads responses until `tag` completes, giving every untagged response to `on_data`.
    /// Returns the tagged status whatever its kind; the caller decides what NO means.
    pub(crate) async fn wait<F>(&mut self, tag: &str, mut on_data: F) -> Result<StatusResponse>
    where
        F: FnMut(&Parsed<'_>),
    {
        self.wait_raw(tag, |_, p| on_data(p)).await
    }

    /// Like [`Connection::wait`], but `on_data` also sees the line each response was parsed
    /// from (to tell how a string was written on the wire).
    pub(crate) async fn wait_raw<F>(&mut self, tag: &str, mut on_data: F) -> Result<StatusResponse>
    where
        F: FnMut(&[u8], &Parsed<'_>),
    {
        if let Some(done) = self.completed.remove(tag) {
            return Ok(done);
        }
        self.drain_literal().await?;
        loop {
            let line = self.next_line().await?;
            let parsed = parse_line(&line);
            match &parsed {
                Parsed::Status(s) if s.tag.as_deref() == Some(tag) => return Ok(s.clone()),
                Parsed::Unknown(l) if self.is_our_tag(l) => return Err(self.garbled_completion(l)),
                Parsed::Status(s) if s.tag.is_some() => {
                    self.completed
                        .insert(s.tag.clone().unwrap_or_default(), s.clone());
                }
                Parsed::Status(s) if s.kind == StatusKind::Bye => {
                    self.bye = Some(s.describe());
                    on_data(&line, &parsed);
                }
                _ => on_data(&line, &parsed),
            }
        }
    }

    /// Waits for a continuation request (`+`) for the command `tag`. Returns `Err(status)` in
    /// the inner result when the server completed the command instead (e.g. refused it).
    pub(crate) async fn wait_continuation<F>(
        &mut self,
        tag: &str,
        mut on_data: F,
    ) -> Result<std::result::Result<String, StatusResponse>>
    where
        F: FnMut(&Parsed<'_>),
    {
        self.drain_literal().await?;
        loop {
            let line = self.next_line().await?;
            let parsed = parse_line(&line);
            match &parsed {
                Parsed::Continue(text) => return Ok(Ok(text.clone())),
                Parsed::Unknown(l) if self.is_our_tag(l) => return Err(self.garbled_completion(l)),
                Parsed::Status(s) if s.tag.as_deref() == Some(tag) => return Ok(Err(s.clone())),
                Parsed::Status(s) if s.tag.is_some() => {
                    self.completed
                        .insert(s.tag.clone().unwrap_or_default(), s.clone());
                }
                Parsed::Status(s) if s.kind == StatusKind::Bye => {
                    self.bye = Some(s.describe());
                    on_data(&parsed);
                }
                _ => on_data(&parsed),
            }
        }
    }

    /// Whether `line` starts with a tag this connection has sent (`m<n> `): a tagged line,
    /// though perhaps not one that can be read.
    pub(crate) fn is_our_tag(&self, line: &[u8]) -> bool {
        let Some(sp) = memchr::memchr(b' ', line) else {
            return false;
        };
        line[..sp]
            .strip_prefix(b"m")
            .and_then(|n| std::str::from_utf8(n).ok())
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0 && n < self.next_tag)
    }

    /// The error for a line that carries one of our tags but is no completion: waiting on
    /// would only end in a timeout that blames a silent server. The command's outcome is
    /// unknown, so the connection is not used again.
    pub(crate) fn garbled_completion(&mut self, line: &[u8]) -> ImapError {
        self.broken = true;
        ImapError::Protocol {
            host: self.host.clone(),
            command: "a command",
            detail: format!(
                "its tagged completion cannot be read: {:?}",
                crate::wire::excerpt(line)
            ),
        }
    }

    /// Keeps a completion read by someone else for its owner.
    pub(crate) fn stash_completion(&mut self, status: StatusResponse) {
        if let Some(tag) = status.tag.clone() {
            self.completed.insert(tag, status);
        }
    }

    pub(crate) fn note_bye(&mut self, text: String) {
        self.bye = Some(text);
    }

    /// Copies exactly `len` bytes from `body` to the socket.
    pub(crate) async fn write_body<R>(&mut self, len: u64, body: &mut R) -> Result<()>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        use tokio::io::AsyncReadExt;
        let mut sent = 0u64;
        let mut buf = vec![0u8; READ_SIZE];
        while sent < len {
            let want = (len - sent).min(buf.len() as u64) as usize;
            let n = match body.read(&mut buf[..want]).await {
                Ok(n) => n,
                Err(e) => {
                    self.broken = true;
                    return Err(self.io_error("reading the message body to send", e));
                }
            };
            if n == 0 {
                self.broken = true;
                return Err(ImapError::BodyTooShort {
                    announced: len,
                    got: sent,
                });
            }
            self.write(&buf[..n]).await?;
            sent += n as u64;
        }
        Ok(())
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

impl crate::body::FrameSource for Connection {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame>> {
        Connection::poll_frame(self, cx)
    }

    fn host(&self) -> &str {
        &self.host
    }
}

impl Connection {
    /// Writes one line that is not a tagged command (IDLE's `DONE`) and flushes.
    pub(crate) async fn send_raw_line(&mut self, line: &[u8]) -> Result<()> {
        self.write(line).await?;
        self.write(b"\r\n").await?;
        self.flush().await
    }
}
