//! The POP3 connection (RFC 1939): implicit TLS or STLS (RFC 2595), CAPA (RFC 2449), USER/PASS
//! or AUTH (RFC 5034), status lines with RFC 2449/3206 response codes, multi-line responses
//! read line by line or streamed through [`Unstuffer`].
//!
//! This is the only POP3 code that touches the socket. Every read and write has the endpoint's
//! timeout (through [`crate::net`]'s [`Timed`] stream). Passwords go on the wire only here
//! and never into an error. A multi-line response that was left half-read (a body dropped
//! early) is skipped before the next command is sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::dot::Unstuffer;
use crate::access::AccessError;
use crate::failure::ErrorKind;
use crate::net::{tls_handshake, Stream, Timed};
use crate::net::{AuthMethod, Credentials, Endpoint, Security};
use crate::sasl;
use crate::trace::render::{self as trace_render, REDACTED};
use crate::trace::ConnTrace;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 * 1024;
/// The longest status or listing line accepted (RFC 1939 allows 512 octets).
const MAX_LINE: usize = 8 * 1024;
/// The most lines a listing (UIDL, LIST, CAPA) may have.
const MAX_LISTING_LINES: usize = 10_000_000;
/// RFC 5034 §4: an initial response longer than this goes after a `+` instead.
const MAX_AUTH_LINE: usize = 255;

/// The server's words for a refused command.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    /// The text after `-ERR`, control characters escaped.
    pub text: String,
    /// Whether RFC 2449/3206 response codes say a later try may work.
    pub transient: bool,
}

/// Server text made safe to print: control characters escaped, at most 300 characters.
pub(crate) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]);
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn refusal(text: &[u8]) -> Refusal {
    let text = show(text.strip_prefix(b" ").unwrap_or(text));
    let upper = text.to_ascii_uppercase();
    // RFC 3206 SYS/TEMP, RFC 2449 IN-USE and LOGIN-DELAY: try again later. AUTH, SYS/PERM and
    // anything without a code: a retry would fail the same way.
    let transient = ["[SYS/TEMP", "[IN-USE", "[LOGIN-DELAY"]
        .iter()
        .any(|c| upper.starts_with(c));
    Refusal { text, transient }
}

/// One POP3 connection.
pub(crate) struct Pop3Conn {
    /// `pop3://host:port`, for messages.
    pub server: String,
    /// The host and port as dialled (OAUTHBEARER names them).
    host: String,
    port: u16,
    io: Timed,
    rbuf: BytesMut,
    /// The multi-line response being read, when one is under way.
    pub(crate) multiline: Option<Unstuffer>,
    /// CAPA's answer, each capability as a line (`SASL PLAIN LOGIN`, `PIPELINING`...).
    pub caps: Vec<String>,
    /// The greeting's text.
    pub greeting: String,
    /// The protocol trace, when one is asked for.
    trace: Option<ConnTrace>,
    /// Bytes of the open multi-line response read so far, for the trace's elided size.
    multiline_bytes: u64,
}

impl Pop3Conn {
    /// An error of this server.
    pub(crate) fn error(&self, detail: impl Into<String>, transient: bool) -> AccessError {
        self.error_of(ErrorKind::Server, detail, transient)
    }

    /// An error of this server, of a given kind.
    pub(crate) fn error_of(
        &self,
        kind: ErrorKind,
        detail: impl Into<String>,
        transient: bool,
    ) -> AccessError {
        AccessError::Server {
            server: self.server.clone(),
            detail: detail.into(),
            transient,
            kind,
        }
    }

    fn io_error(&self, doing: &str, e: &std::io::Error) -> AccessError {
        self.error_of(
            ErrorKind::Connection,
            format!("connection failed while {doing}: {e}"),
            true,
        )
    }

    /// The refusal of a command as an error.
    pub(crate) fn refused(&self, verb: &str, r: &Refusal) -> AccessError {
        self.error(format!("{verb} refused: -ERR {}", r.text), r.transient)
    }

    /// Whether the connection is protected by TLS.
    pub(crate) fn is_tls(&self) -> bool {
        self.io.is_tls()
    }

    /// Whether CAPA announced this capability (its first word).
    pub(crate) fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| {
            c.split_ascii_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(cap))
        })
    }

    /// Whether CAPA's SASL line names this mechanism.
    pub(crate) fn has_sasl(&self, mech: &str) -> bool {
        self.caps.iter().any(|c| {
            let mut words = c.split_ascii_whitespace();
            words.next().is_some_and(|w| w.eq_ignore_ascii_case("SASL"))
                && words.any(|w| w.eq_ignore_ascii_case(mech))
        })
    }

    /// Connects (TLS or STLS as the endpoint says), reads the greeting and the capabilities.
    pub(crate) async fn connect(ep: &Endpoint) -> Result<Pop3Conn, AccessError> {
        let server = format!("pop3://{}:{}", ep.host, ep.port);
        let err = |kind, detail: String, transient| AccessError::Server {
            server: server.clone(),
            detail,
            transient,
            kind,
        };
        let connection = ErrorKind::Connection;
        let tls = ErrorKind::Tls;
        let tcp =
            match tokio::time::timeout(ep.timeout, TcpStream::connect((ep.host.as_str(), ep.port)))
                .await
            {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(err(connection, format!("cannot connect: {e}"), true)),
                Err(_) => {
                    return Err(err(
                        connection,
                        format!("no connection within {} s", ep.timeout.as_secs()),
                        true,
                    ))
                }
            };
        let _ = tcp.set_nodelay(true);
        let trace = ep
            .trace
            .as_ref()
            .map(|t| t.connection("pop3", &ep.host, ep.port));
        let note = |text: &str| {
            if let Some(t) = &trace {
                t.note(text);
            }
        };
        note("connected");
        let tls_failed = |e: String| {
            note(&format!("TLS failed: {e}"));
            err(tls, format!("TLS failed: {e}"), false)
        };
        let stream = match ep.security {
            Security::Tls => tls_handshake(tcp, &ep.host, &ep.verify, ep.timeout)
                .await
                .map_err(tls_failed)?,
            Security::StartTls | Security::Cleartext => Stream::Plain(tcp),
        };
        if let Some(summary) = stream.tls_summary() {
            note(&summary);
        }
        let mut conn = Pop3Conn {
            server: server.clone(),
            host: ep.host.clone(),
            port: ep.port,
            io: Timed::new(stream, ep.timeout),
            rbuf: BytesMut::with_capacity(READ_SIZE),
            multiline: None,
            caps: Vec::new(),
            greeting: String::new(),
            trace: trace.clone(),
            multiline_bytes: 0,
        };
        conn.greeting = conn.greeting().await?;
        conn.caps = conn.capa().await?;
        if ep.security == Security::StartTls {
            if !conn.has("STLS") {
                return Err(err(
                    tls,
                    "the server does not offer STLS; use implicit TLS (usually port 995) or, knowingly, a cleartext connection".into(),
                    false,
                ));
            }
            conn.command("STLS", b"STLS").await?;
            if !conn.rbuf.is_empty() {
                return Err(err(
                    tls,
                    "the server sent data after agreeing to STLS (possible injection)".into(),
                    false,
                ));
            }
            let Some(tcp) = conn.io.into_stream().into_plain() else {
                return Err(err(tls, "STLS on a TLS connection".into(), false));
            };
            let stream = tls_handshake(tcp, &ep.host, &ep.verify, ep.timeout)
                .await
                .map_err(tls_failed)?;
            if let Some(summary) = stream.tls_summary() {
                note(&summary);
            }
            conn = Pop3Conn {
                server,
                host: ep.host.clone(),
                port: ep.port,
                io: Timed::new(stream, ep.timeout),
                rbuf: BytesMut::with_capacity(READ_SIZE),
                multiline: None,
                caps: Vec::new(),
                greeting: conn.greeting,
                trace: trace.clone(),
                multiline_bytes: 0,
            };
            // What was announced in clear cannot be trusted (RFC 2595 §4).
            conn.caps = conn.capa().await?;
        }
        Ok(conn)
    }

    async fn greeting(&mut self) -> Result<String, AccessError> {
        match self.read_status("greeting").await? {
            Ok(text) => Ok(text),
            Err(r) => Err(self.error(
                format!("the server refused the connection: -ERR {}", r.text),
                r.transient,
            )),
        }
    }

    /// CAPA's lines, or none when the server does not know CAPA.
    async fn capa(&mut self) -> Result<Vec<String>, AccessError> {
        self.send(b"CAPA").await?;
        match self.read_status("CAPA").await? {
            Ok(_) => Ok(self
                .read_lines("CAPA")
                .await?
                .iter()
                .map(|l| show(l))
                .collect()),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// Logs in: AUTH PLAIN when offered (or when acting for another user), else USER/PASS;
    /// XOAUTH2 or OAUTHBEARER when asked for.
    pub(crate) async fn login(&mut self, creds: &Credentials) -> Result<(), AccessError> {
        let method = match creds.method {
            AuthMethod::Auto if creds.authzid.is_some() || self.has_sasl("PLAIN") => {
                AuthMethod::Plain
            }
            AuthMethod::Auto => AuthMethod::Login,
            m => m,
        };
        let sasl_err = |e: sasl::SaslError| self.error(e.to_string(), false);
        let who = creds.user.clone();
        let outcome = match method {
            AuthMethod::Login | AuthMethod::Auto => {
                if creds.authzid.is_some() {
                    return Err(self.error(
                        "acting for another user needs AUTH PLAIN, not USER/PASS",
                        false,
                    ));
                }
                self.user_pass(creds).await?
            }
            AuthMethod::Plain => {
                let ir = sasl::plain(creds.authzid.as_deref(), &creds.user, &creds.secret)
                    .map_err(sasl_err)?;
                self.authenticate("PLAIN", ir.expose()).await?
            }
            AuthMethod::XOAuth2 => {
                let ir = sasl::xoauth2(&creds.user, &creds.secret).map_err(sasl_err)?;
                self.authenticate("XOAUTH2", ir.expose()).await?
            }
            AuthMethod::OAuthBearer => {
                let ir = sasl::oauthbearer(&creds.user, &self.host, self.port, &creds.secret)
                    .map_err(sasl_err)?;
                self.authenticate("OAUTHBEARER", ir.expose()).await?
            }
        };
        match outcome {
            Ok(()) => {
                // Capabilities may change after login (RFC 2449 §5).
                let caps = self.capa().await?;
                if !caps.is_empty() {
                    self.caps = caps;
                }
                Ok(())
            }
            // A refusal the server marks as temporary ([IN-USE], [SYS/TEMP]) is not a wrong
            // password.
            Err(r) => Err(self.error_of(
                if r.transient {
                    ErrorKind::Server
                } else {
                    ErrorKind::Authentication
                },
                format!("login as {who} refused: -ERR {}", r.text),
                r.transient,
            )),
        }
    }

    async fn user_pass(&mut self, creds: &Credentials) -> Result<Result<(), Refusal>, AccessError> {
        let bad = |s: &str| s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0));
        if bad(&creds.user) || creds.user.is_empty() {
            return Err(self.error("the user name is empty or holds a line break", false));
        }
        if bad(creds.secret.expose()) {
            return Err(self.error(
                "the password holds characters USER/PASS cannot carry; use AUTH PLAIN",
                false,
            ));
        }
        self.send(format!("USER {}", creds.user).as_bytes()).await?;
        if let Err(r) = self.read_status("USER").await? {
            return Ok(Err(r));
        }
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(64));
        line.extend_from_slice(b"PASS ");
        line.extend_from_slice(creds.secret.expose().as_bytes());
        self.send_redacted(&line, &format!("PASS {REDACTED}"))
            .await?;
        Ok(self.read_status("PASS").await?.map(|_| ()))
    }

    async fn authenticate(
        &mut self,
        mech: &str,
        ir: &str,
    ) -> Result<Result<(), Refusal>, AccessError> {
        let mut line = zeroize::Zeroizing::new(Vec::with_capacity(ir.len() + 32));
        line.extend_from_slice(b"AUTH ");
        line.extend_from_slice(mech.as_bytes());
        let inline = 5 + mech.len() + 1 + ir.len() <= MAX_AUTH_LINE;
        let mut shown = format!("AUTH {mech}");
        if inline {
            line.push(b' ');
            line.extend_from_slice(ir.as_bytes());
            shown.push(' ');
            shown.push_str(REDACTED);
        }
        self.send_redacted(&line, &shown).await?;
        let mut answered = inline;
        loop {
            let reply = self.read_line("AUTH").await?;
            if reply.starts_with(b"+OK") {
                return Ok(Ok(()));
            }
            if let Some(rest) = reply.strip_prefix(b"-ERR") {
                return Ok(Err(refusal(rest)));
            }
            if reply.starts_with(b"+") {
                if !answered {
                    answered = true;
                    let ir = zeroize::Zeroizing::new(ir.as_bytes().to_vec());
                    self.send_redacted(&ir, REDACTED).await?;
                    continue;
                }
                // A challenge after our response is an error report (XOAUTH2, OAUTHBEARER):
                // cancel (RFC 5034 §4) and keep the report for the error.
                let report = reply
                    .strip_prefix(b"+ ")
                    .and_then(|b| sasl::decode_challenge_error(&String::from_utf8_lossy(b)));
                self.send(b"*").await?;
                let last = self.read_line("AUTH").await?;
                let mut r = match last.strip_prefix(b"-ERR") {
                    Some(rest) => refusal(rest),
                    None => refusal(&last),
                };
                if let Some(report) = report {
                    r.text = format!("{} ({report})", r.text);
                }
                return Ok(Err(r));
            }
            return Err(self.error(
                format!("AUTH answered unexpectedly: {}", show(&reply)),
                false,
            ));
        }
    }

    /// Sends one command line (CRLF added), after skipping what is left of an unfinished
    /// multi-line response.
    pub(crate) async fn send(&mut self, line: &[u8]) -> Result<(), AccessError> {
        self.finish_multiline().await?;
        self.send_raw(line).await
    }

    /// Like [`Pop3Conn::send`] for a line that holds a secret: the trace shows `shown`.
    async fn send_redacted(&mut self, line: &[u8], shown: &str) -> Result<(), AccessError> {
        self.finish_multiline().await?;
        if let Some(t) = &self.trace {
            t.client(shown);
        }
        self.write_line(line).await
    }

    async fn send_raw(&mut self, line: &[u8]) -> Result<(), AccessError> {
        if let Some(t) = &self.trace {
            t.client(&trace_render::pop3_client_line(line));
        }
        self.write_line(line).await
    }

    async fn write_line(&mut self, line: &[u8]) -> Result<(), AccessError> {
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(line.len() + 2));
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\r\n");
        let res = async {
            self.io.write_all(&buf).await?;
            self.io.flush().await
        }
        .await;
        res.map_err(|e| self.io_error("sending a command", &e))
    }

    /// Sends a command and reads its status line: the text after `+OK`, or the refusal as an
    /// error.
    pub(crate) async fn command(&mut self, verb: &str, line: &[u8]) -> Result<String, AccessError> {
        self.send(line).await?;
        match self.read_status(verb).await? {
            Ok(text) => Ok(text),
            Err(r) => Err(self.refused(verb, &r)),
        }
    }

    /// Reads one status line: `Ok(text)` after `+OK`, `Err(refusal)` after `-ERR`.
    pub(crate) async fn read_status(
        &mut self,
        verb: &str,
    ) -> Result<Result<String, Refusal>, AccessError> {
        let line = self.read_line(verb).await?;
        if let Some(rest) = line.strip_prefix(b"+OK") {
            return Ok(Ok(show(rest.strip_prefix(b" ").unwrap_or(rest))));
        }
        if let Some(rest) = line.strip_prefix(b"-ERR") {
            return Ok(Err(refusal(rest)));
        }
        Err(self.error(
            format!("{verb} answered with neither +OK nor -ERR: {}", show(&line)),
            false,
        ))
    }

    async fn fill(&mut self, doing: &str) -> Result<(), AccessError> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(READ_SIZE);
        }
        match self.io.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(self.error_of(
                ErrorKind::Connection,
                format!("the server closed the connection during {doing}"),
                true,
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(self.io_error(doing, &e)),
        }
    }

    /// Reads more bytes (for a multi-line response being fed through [`Unstuffer`]).
    pub(crate) async fn read_more(&mut self, doing: &str) -> Result<(), AccessError> {
        self.fill(doing).await
    }

    /// Reads more bytes, for a body reader.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }

    /// Feeds buffered bytes to the open multi-line response; returns what it un-stuffed into
    /// `out` (nothing when the buffer is empty or no response is open).
    pub(crate) fn feed_multiline(&mut self, out: &mut BytesMut) -> usize {
        let Some(u) = self.multiline.as_mut() else {
            return 0;
        };
        let before = out.len();
        let used = u.feed(&self.rbuf, out);
        self.rbuf.advance(used);
        if let Some(t) = &self.trace {
            self.multiline_bytes += (out.len() - before) as u64;
            if used > 0 && u.is_done() {
                // The data (a message, its headers) is elided; the terminator is kept.
                t.server(&trace_render::elided(self.multiline_bytes));
                t.server(".");
                self.multiline_bytes = 0;
            }
        }
        out.len() - before
    }

    /// Whether the open multi-line response has ended (or none is open).
    pub(crate) fn multiline_done(&self) -> bool {
        self.multiline.as_ref().is_none_or(Unstuffer::is_done)
    }

    /// Whether unread bytes are buffered.
    pub(crate) fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }

    async fn read_line(&mut self, doing: &str) -> Result<Vec<u8>, AccessError> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.rbuf) {
                let mut line = self.rbuf.split_to(i + 1).to_vec();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(t) = &self.trace {
                    t.server(&trace_render::pop3_server_line(&line));
                }
                return Ok(line);
            }
            if self.rbuf.len() > MAX_LINE {
                return Err(self.error(
                    format!("{doing}: a response line is longer than {MAX_LINE} bytes"),
                    false,
                ));
            }
            self.fill(doing).await?;
        }
    }

    /// Reads the lines of a multi-line listing (after its `+OK`), un-stuffed.
    pub(crate) async fn read_lines(&mut self, doing: &str) -> Result<Vec<Vec<u8>>, AccessError> {
        let mut out = Vec::new();
        loop {
            let line = self.read_line(doing).await?;
            if line == b"." {
                return Ok(out);
            }
            if out.len() >= MAX_LISTING_LINES {
                return Err(self.error(format!("{doing}: too many lines"), false));
            }
            out.push(match line.strip_prefix(b".") {
                Some(rest) => rest.to_vec(),
                None => line,
            });
        }
    }

    /// Opens a multi-line response whose `+OK` was just read.
    pub(crate) fn begin_multiline(&mut self) {
        self.multiline = Some(Unstuffer::default());
    }

    /// Reads the open multi-line response to its end, keeping at most `cap` bytes; returns
    /// them and the whole length.
    pub(crate) async fn read_multiline_capped(
        &mut self,
        doing: &str,
        cap: usize,
    ) -> Result<(Vec<u8>, u64), AccessError> {
        let mut kept = Vec::new();
        let mut total = 0u64;
        let mut chunk = BytesMut::new();
        loop {
            chunk.clear();
            let n = self.feed_multiline(&mut chunk);
            total += n as u64;
            if kept.len() < cap {
                let take = (cap - kept.len()).min(chunk.len());
                kept.extend_from_slice(&chunk[..take]);
            }
            if self.multiline_done() {
                self.multiline = None;
                return Ok((kept, total));
            }
            if self.rbuf.is_empty() {
                self.fill(doing).await?;
            }
        }
    }

    /// Skips what is left of an unfinished multi-line response.
    pub(crate) async fn finish_multiline(&mut self) -> Result<(), AccessError> {
        if self.multiline.is_some() {
            self.read_multiline_capped("skipping the rest of a message", 0)
                .await?;
        }
        Ok(())
    }

    /// Ends the session politely. QUIT makes a POP3 server commit deletions; we never delete,
    /// so it commits nothing but what the server itself tracks (some mark retrieved mail read).
    pub(crate) async fn quit(mut self) {
        if self.finish_multiline().await.is_ok() && self.send_raw(b"QUIT").await.is_ok() {
            let _ = self.read_line("QUIT").await;
        }
        let _ = self.io.shutdown().await;
    }
}

/// A body streamed straight off a RETR response, un-stuffed on the fly.
///
/// It knows the size LIST announced and never lets a wrong size through: the last byte is
/// held back until the terminator confirms that the message really ends there (a server that
/// adds CRLF to a message without one is recognised and the CRLF dropped). When the size was
/// wrong, reading fails instead of delivering a truncated or padded message, and `on_mismatch`
/// is called once so that the source can spool this server's bodies from then on.
pub(crate) struct RetrReader<'a> {
    conn: &'a mut Pop3Conn,
    expected: u64,
    produced: u64,
    released: u64,
    pending: BytesMut,
    /// The bytes at positions `expected - 2` and `expected - 1`, once seen.
    tail: [u8; 2],
    confirmed: bool,
    what: String,
    on_mismatch: Option<Box<dyn FnOnce() + Send + 'a>>,
}

impl<'a> RetrReader<'a> {
    /// A reader for the RETR response just opened on `conn` (its `+OK` read).
    pub(crate) fn new(
        conn: &'a mut Pop3Conn,
        expected: u64,
        what: String,
        on_mismatch: Box<dyn FnOnce() + Send + 'a>,
    ) -> RetrReader<'a> {
        RetrReader {
            conn,
            expected,
            produced: 0,
            released: 0,
            pending: BytesMut::new(),
            tail: [0; 2],
            confirmed: false,
            what,
            on_mismatch: Some(on_mismatch),
        }
    }

    fn mismatch(&mut self, detail: String) -> std::io::Error {
        if let Some(f) = self.on_mismatch.take() {
            f();
        }
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} {}: the server's LIST size was wrong ({detail}); nothing wrong was stored, and from now on this server's messages are spooled to a temporary file first: run again",
                self.conn.server, self.what
            ),
        )
    }
}

impl AsyncRead for RetrReader<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            let limit = if this.confirmed {
                this.expected
            } else {
                this.expected.saturating_sub(1)
            };
            if this.released < limit && !this.pending.is_empty() {
                let n = (this.pending.len() as u64)
                    .min(limit - this.released)
                    .min(buf.remaining() as u64) as usize;
                buf.put_slice(&this.pending.split_to(n));
                this.released += n as u64;
                return Poll::Ready(Ok(()));
            }
            if this.confirmed {
                return Poll::Ready(Ok(()));
            }
            if this.conn.multiline_done() {
                let n = this.expected;
                let exact = this.produced == n;
                // The server added CRLF to a message that did not end with one.
                let padded = this.produced == n + 2
                    && this.pending.ends_with(b"\r\n")
                    && (n < 2 || this.tail != *b"\r\n");
                if !exact && !padded {
                    let detail = format!("LIST said {n} octets, RETR sent {}", this.produced);
                    return Poll::Ready(Err(this.mismatch(detail)));
                }
                this.pending.truncate((n - this.released) as usize);
                this.conn.multiline = None;
                this.confirmed = true;
                continue;
            }
            if !this.conn.has_buffered() {
                match this.conn.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{} closed the connection in a message", this.conn.server),
                        )))
                    }
                    Poll::Ready(Ok(_)) => {}
                }
            }
            let before = this.pending.len();
            let added = this.conn.feed_multiline(&mut this.pending) as u64;
            for k in 0..2u64 {
                if let Some(pos) = (this.expected + k).checked_sub(2) {
                    if pos >= this.produced && pos < this.produced + added {
                        this.tail[k as usize] =
                            this.pending[before + (pos - this.produced) as usize];
                    }
                }
            }
            this.produced += added;
            if this.produced > this.expected + 2 {
                let detail = format!(
                    "LIST said {} octets, RETR sent more than {}",
                    this.expected, this.produced
                );
                return Poll::Ready(Err(this.mismatch(detail)));
            }
        }
    }
}
