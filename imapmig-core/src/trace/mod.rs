//! The protocol trace: every line the client and the servers exchange, one trace line each,
//! for diagnosing a server without a logging proxy.
//!
//! A [`ProtocolTrace`] is where the lines go (a file created readable by its owner only, or
//! any writer); put one on an [`Endpoint`](crate::imap::Endpoint) (or in
//! [`MigrationOptions::trace`](crate::engine::MigrationOptions::trace)) and every IMAP or POP3
//! connection made to that server writes to it:
//!
//! ```text
//! 2026-12-05T17:12:03.123456Z c1 source imap://mail.example.org:993 -- TLS established (TLSv1_3, TLS13_AES_256_GCM_SHA384)
//! 2026-12-05T17:12:03.125012Z c1 source imap://mail.example.org:993 S: * OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready
//! 2026-12-05T17:12:03.125530Z c1 source imap://mail.example.org:993 C: m1 AUTHENTICATE PLAIN <redacted>
//! 2026-12-05T17:12:03.131877Z c1 source imap://mail.example.org:993 S: m1 NO [AUTHENTICATIONFAILED] Authentication failed.
//! 2026-12-05T17:12:04.002311Z c2 destination imap://127.0.0.1:143 C: m9 APPEND "INBOX" (\Seen) "05-Dec-2026 17:12:03 +0000" {2817+}
//! 2026-12-05T17:12:04.002390Z c2 destination imap://127.0.0.1:143 C: {2817 bytes elided}
//! ```
//!
//! Each line: the time (UTC), the connection (`c<n>`, numbered per trace), the side it serves,
//! the server, then `C:` for what the client sent, `S:` for what the server sent, `--` for a
//! note (connected, TLS established). What the trace never holds:
//!
//! * **Secrets.** Passwords, tokens and SASL responses are replaced by `<redacted>` where the
//!   client writes them, from the redacted form the login code gives alongside the real bytes;
//!   a command line naming a login verb is redacted again when written, as a second guard.
//!   Server lines are shown as they come: they hold no client secret.
//! * **Message bodies and other literals.** Every literal, either way, is shown as
//!   `{N bytes elided}`; POP3 multi-line message data (RETR, TOP) likewise.
//!
//! Each trace line is written to the file with one `write` as soon as it is made, so a killed
//! process leaves everything up to its last line. With no trace set, a connection pays one
//! `Option` check per write and per frame.

pub(crate) mod render;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use render::Outbound;

/// Where the protocol trace of one or more connections goes. Cheap to clone: clones write to
/// the same place; [`ProtocolTrace::for_side`] names the side a server plays.
#[derive(Clone)]
pub struct ProtocolTrace {
    out: Arc<Output>,
    side: Arc<str>,
}

struct Output {
    writer: Mutex<Box<dyn Write + Send>>,
    path: Option<PathBuf>,
    next_connection: AtomicU64,
    failed: AtomicBool,
}

impl ProtocolTrace {
    /// Appends to the file at `path`, creating it readable and writable by its owner only
    /// (0600). An existing file keeps its mode.
    pub fn create(path: impl AsRef<Path>) -> io::Result<ProtocolTrace> {
        let path = path.as_ref();
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        Ok(ProtocolTrace::new(Box::new(file), Some(path.to_path_buf())))
    }

    /// Writes to any writer (a buffer in a test, a pipe). Each trace line is written with one
    /// `write_all` and flushed.
    pub fn to_writer(writer: impl Write + Send + 'static) -> ProtocolTrace {
        ProtocolTrace::new(Box::new(writer), None)
    }

    fn new(writer: Box<dyn Write + Send>, path: Option<PathBuf>) -> ProtocolTrace {
        ProtocolTrace {
            out: Arc::new(Output {
                writer: Mutex::new(writer),
                path,
                next_connection: AtomicU64::new(1),
                failed: AtomicBool::new(false),
            }),
            side: Arc::from("server"),
        }
    }

    /// The same trace, its lines naming the side this server plays (`source`, `destination`).
    pub fn for_side(&self, side: &str) -> ProtocolTrace {
        ProtocolTrace {
            out: self.out.clone(),
            side: Arc::from(side),
        }
    }

    /// The side named in the lines (`server` until [`ProtocolTrace::for_side`] says).
    pub fn side(&self) -> &str {
        &self.side
    }

    /// The file written to, when it is one.
    pub fn path(&self) -> Option<&Path> {
        self.out.path.as_deref()
    }

    /// A new connection's handle: numbered, named after its protocol and server.
    pub(crate) fn connection(&self, protocol: &str, host: &str, port: u16) -> ConnTrace {
        let n = self.out.next_connection.fetch_add(1, Ordering::Relaxed);
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        ConnTrace {
            out: self.out.clone(),
            label: Arc::from(format!("c{n} {} {protocol}://{host}:{port}", self.side)),
        }
    }
}

impl PartialEq for ProtocolTrace {
    /// The same destination and side.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.out, &other.out) && self.side == other.side
    }
}

impl Eq for ProtocolTrace {}

impl fmt::Debug for ProtocolTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtocolTrace")
            .field("path", &self.out.path)
            .field("side", &self.side)
            .finish()
    }
}

/// One connection's way into the trace.
#[derive(Clone)]
pub(crate) struct ConnTrace {
    out: Arc<Output>,
    /// `c3 source imap://host:port`.
    label: Arc<str>,
}

impl ConnTrace {
    /// A line the client sent, already rendered (redacted, literals elided).
    pub(crate) fn client(&self, text: &str) {
        self.record("C:", text);
    }

    /// A line the server sent, already rendered.
    pub(crate) fn server(&self, text: &str) {
        self.record("S:", text);
    }

    /// Something that is no protocol line: connected, TLS established.
    pub(crate) fn note(&self, text: &str) {
        self.record("--", text);
    }

    fn record(&self, dir: &str, text: &str) {
        if self.out.failed.load(Ordering::Relaxed) {
            return;
        }
        let mut writer = self
            .out
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Stamped under the lock, so the file's lines are in time order across connections.
        let line = format!("{} {} {dir} {text}\n", timestamp(), self.label);
        let written = writer
            .write_all(line.as_bytes())
            .and_then(|()| writer.flush());
        if let Err(e) = written {
            // One warning, then silence: a full disk must not fail the migration.
            if !self.out.failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(path = ?self.out.path, error = %e, "cannot write the protocol trace; it stops here");
            }
        }
    }
}

fn timestamp() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// The trace of one IMAP connection: cuts what the client writes back into lines, renders
/// what the server sends, and remembers the sizes of literals the framer streamed.
pub(crate) struct ImapTracer {
    conn: ConnTrace,
    outbound: Outbound,
    /// Where the `{0}` placeholders of the line being received stand, and the literals' sizes.
    streamed: Vec<(usize, u64)>,
}

impl ImapTracer {
    pub(crate) fn new(conn: ConnTrace) -> ImapTracer {
        ImapTracer {
            conn,
            outbound: Outbound::default(),
            streamed: Vec::new(),
        }
    }

    /// Bytes the client writes (command lines, literals).
    pub(crate) fn sent(&mut self, bytes: &[u8]) {
        let conn = &self.conn;
        self.outbound.feed(bytes, |line| conn.client(&line));
    }

    /// A line that holds a secret, written whole: `shown` is what the trace says instead.
    pub(crate) fn sent_redacted(&mut self, shown: &str) {
        debug_assert!(self.outbound.at_line_start());
        self.conn.client(shown);
    }

    /// A frame from the server.
    pub(crate) fn received(&mut self, frame: &crate::wire::Frame) {
        use crate::wire::Frame;
        match frame {
            Frame::Line(line) => {
                self.conn.server(&render::server_line(line, &self.streamed));
                self.streamed.clear();
            }
            Frame::LiteralStart { head, len } => self.streamed.push((head.len(), *len)),
            Frame::LiteralData(_) | Frame::LiteralEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_name_time_connection_side_server_and_direction() {
        let buf = Shared::default();
        let trace = ProtocolTrace::to_writer(buf.clone()).for_side("source");
        let a = trace.connection("imap", "mail.example.org", 993);
        let b = trace.for_side("destination").connection("pop3", "::1", 110);
        a.note("connected");
        b.client("USER kim");
        a.server("* OK ready");
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" c1 source imap://mail.example.org:993 -- connected"));
        assert!(lines[1].ends_with(" c2 destination pop3://[::1]:110 C: USER kim"));
        assert!(lines[2].ends_with(" c1 source imap://mail.example.org:993 S: * OK ready"));
        let stamp = lines[0].split(' ').next().unwrap();
        assert_eq!(stamp.len(), "2026-12-05T17:12:03.123456Z".len(), "{stamp}");
        assert!(stamp.ends_with('Z'));
    }

    #[test]
    fn an_imap_conversation_shows_no_secret_and_no_body() {
        let buf = Shared::default();
        let trace = ProtocolTrace::to_writer(buf.clone());
        let mut t = ImapTracer::new(trace.connection("imap", "h", 143));
        t.sent_redacted("m1 AUTHENTICATE PLAIN <redacted>");
        t.received(&crate::wire::Frame::Line("m1 OK done\r\n".into()));
        t.sent(b"m2 APPEND INBOX {11}\r\n");
        t.received(&crate::wire::Frame::Line("+ go\r\n".into()));
        t.sent(b"body secret");
        t.sent(b"\r\n");
        t.sent(b"m3 UID FETCH 1 (UID BODY.PEEK[])\r\n");
        let head = bytes::Bytes::from_static(b"* 1 FETCH (UID 1 BODY[] ");
        t.received(&crate::wire::Frame::LiteralStart {
            head: head.clone(),
            len: 500_000,
        });
        t.received(&crate::wire::Frame::LiteralData("more body secret".into()));
        t.received(&crate::wire::Frame::LiteralEnd);
        let mut line = head.to_vec();
        line.extend_from_slice(b"{0}\r\n)\r\n");
        t.received(&crate::wire::Frame::Line(line.into()));
        let text = buf.text();
        assert!(!text.contains("secret"), "{text}");
        for expected in [
            "C: m1 AUTHENTICATE PLAIN <redacted>",
            "S: m1 OK done",
            "C: m2 APPEND INBOX {11}",
            "S: + go",
            "C: {11 bytes elided}",
            "C: m3 UID FETCH 1 (UID BODY.PEEK[])",
            "S: * 1 FETCH (UID 1 BODY[] {500000 bytes elided})",
        ] {
            assert!(text.contains(expected), "{expected:?} missing:\n{text}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private_and_appended_to() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.trace");
        for _ in 0..2 {
            let trace = ProtocolTrace::create(&path).unwrap();
            trace.connection("imap", "h", 1).note("hello");
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
