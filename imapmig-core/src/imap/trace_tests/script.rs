//! A scripted server in memory that plays one real server's misbehaviour to the real client.
//!
//! A fixture (`imapmig-core/src/imap/traces/<server>-<quirk>.trace`) is a conversation written
//! the way the RFCs write them. The client under test is the real [`Session`], built by the same
//! code path as [`Session::connect`] once the socket is made; only the socket is replaced, by a
//! pipe to this scripted server. The server reads what the client sends, checks it against the
//! fixture's `C:` lines, and answers with its `S:` lines. It is not an IMAP server: it knows
//! nothing but its script, so a client that sends anything else fails the test at the first
//! byte that differs, with the fixture's name and line.
//!
//! # The fixture format
//!
//! One directive a line; blank lines are ignored.
//!
//! ```text
//! # comment      The header's comments name the server and the quirk, and say where it was seen.
//! C: <line>      The client must send exactly <line> and CRLF.
//! S: <line>      The server sends <line> and CRLF.
//! S| <bytes>     The server sends <bytes> without CRLF (to cut a line or a literal anywhere).
//! -- split       What the server has sent so far reaches the client in a read of its own;
//!                what follows comes in a later read.
//! -- close       The server closes the connection: once the client has read everything sent
//!                before, its next read finds the end of the stream.
//! ```
//!
//! **Tags.** The client picks its own tags. A `C:` line that begins with a fixture tag (`a`
//! and digits, as in the RFCs' examples: `a1`, `a2`) binds that tag to whatever tag the client
//! sent in its place, and from then on a `S:` line that begins with it is sent with the
//! client's tag. A fixture tag that the client sends twice under two different tags fails.
//!
//! **Literals** are written as they lie on the wire: the line that announces `{N}` ends there,
//! the literal's bytes follow on the next lines (each `S:`/`C:` line adds its CRLF, which counts
//! in N), and the rest of the announcing line follows the literal. `S|` writes a literal that
//! does not end in CRLF. A line of the client's literal that starts like a fixture tag (`a1 `)
//! would be taken for one: fixtures avoid it.
//!
//! Every consecutive run of server lines goes out in one write, and every write reaches the
//! client in reads of its own (never merged with the next write), so `-- split` is exact.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};

use super::super::error::Result;
use super::super::session::{Endpoint, Security, Session};
use crate::net::Stream;
use crate::wire::Limits;

/// How long either side waits for the other before the test gives up. Long enough for a
/// loaded machine, short enough that a client stuck on a misread script fails quickly.
const PATIENCE: Duration = Duration::from_secs(5);

/// One directive of a fixture, with its line number.
#[derive(Debug)]
enum Step {
    Client(String),
    Server(Vec<u8>),
    Split,
    Close,
}

/// A parsed fixture.
struct Script {
    name: String,
    steps: Vec<(usize, Step)>,
}

impl Script {
    fn parse(name: &str, text: &str) -> Script {
        let mut steps = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let step = if line.is_empty() || line.starts_with('#') {
                continue;
            } else if let Some(l) = line.strip_prefix("C: ") {
                Step::Client(l.to_string())
            } else if let Some(l) = line.strip_prefix("S: ") {
                Step::Server(format!("{l}\r\n").into_bytes())
            } else if let Some(l) = line.strip_prefix("S| ") {
                Step::Server(l.as_bytes().to_vec())
            } else if line == "C:" {
                Step::Client(String::new())
            } else if line == "S:" {
                Step::Server(b"\r\n".to_vec())
            } else if line == "-- split" {
                Step::Split
            } else if line == "-- close" {
                Step::Close
            } else {
                panic!("{name}.trace, line {no}: not a fixture directive: {line:?}");
            };
            steps.push((no, step));
        }
        Script {
            name: name.to_string(),
            steps,
        }
    }
}

/// The fixture tag a line starts with (`a1`), if it does.
fn fixture_tag(line: &str) -> Option<&str> {
    let word = line.split(' ').next()?;
    let digits = word.strip_prefix('a')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(word)
}

/// The client's end of the pipe: what stands in for its socket.
struct ClientEnd {
    from_server: mpsc::UnboundedReceiver<Bytes>,
    /// The rest of the server's current write, not yet read.
    pending: Bytes,
    to_server: mpsc::UnboundedSender<Bytes>,
    /// Bytes the client has read, for the check that it read every line the script sent.
    read: Arc<AtomicUsize>,
}

impl AsyncRead for ClientEnd {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pending.is_empty() {
            match this.from_server.poll_recv(cx) {
                Poll::Ready(Some(write)) => this.pending = write,
                // The server closed: the end of the stream.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        // Never more than the rest of one server write: that is what makes `-- split` exact.
        let n = this.pending.len().min(buf.remaining());
        buf.put_slice(&this.pending.split_to(n));
        this.read.fetch_add(n, Ordering::SeqCst);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ClientEnd {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.to_server.send(Bytes::copy_from_slice(buf)) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the scripted server has gone",
            ))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The server's end of the pipe, and its progress through the script.
struct ServerEnd {
    script: Script,
    to_client: Option<mpsc::UnboundedSender<Bytes>>,
    from_client: mpsc::UnboundedReceiver<Bytes>,
    /// What the client sent that no `C:` line has consumed yet.
    received: BytesMut,
    /// Fixture tag → the client's tag.
    tags: HashMap<String, String>,
    /// Server bytes waiting to go out as one write.
    outgoing: Vec<u8>,
    /// Every byte sent, and how many of them the client has read.
    sent: Vec<u8>,
    read: Arc<AtomicUsize>,
}

impl ServerEnd {
    fn fail(&self, line: usize, what: impl std::fmt::Display) -> String {
        format!("{}.trace, line {line}: {what}", self.script.name)
    }

    fn send_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let write = Bytes::from(std::mem::take(&mut self.outgoing));
        if let Some(tx) = &self.to_client {
            self.sent.extend_from_slice(&write);
            // The client may have dropped its session already; the script then fails at its
            // next `C:` line, which says more than a failed send would.
            let _ = tx.send(write);
        }
    }

    /// The next line the client sent, without its CRLF; `None` when it closed the connection.
    async fn client_line(&mut self, no: usize) -> std::result::Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(at) = memchr::memmem::find(&self.received, b"\r\n") {
                let line = self.received.split_to(at + 2);
                return Ok(Some(line[..at].to_vec()));
            }
            match tokio::time::timeout(PATIENCE, self.from_client.recv()).await {
                Ok(Some(bytes)) => self.received.extend_from_slice(&bytes),
                Ok(None) if self.received.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(self.fail(
                        no,
                        format!(
                            "the client closed after sending {:?} without CRLF",
                            self.received.escape_ascii().to_string()
                        ),
                    ))
                }
                Err(_) => {
                    return Err(self.fail(
                        no,
                        format!(
                            "the client sent no line for {} s (it has sent {:?} without CRLF)",
                            PATIENCE.as_secs(),
                            self.received.escape_ascii().to_string()
                        ),
                    ))
                }
            }
        }
    }

    /// Checks one client line against a `C:` line, binding a fixture tag on the way.
    async fn expect(&mut self, no: usize, want: &str) -> std::result::Result<(), String> {
        let Some(got) = self.client_line(no).await? else {
            return Err(self.fail(
                no,
                format!("the client closed the connection; expected\n  C: {want}"),
            ));
        };
        let got = String::from_utf8_lossy(&got).into_owned();
        let mismatch = |why: &str| {
            format!(
                "{}.trace, line {no}: the client sent something else{why}\n  expected: C: {want}\n  actual:   C: {got}",
                self.script.name
            )
        };
        let Some(tag) = fixture_tag(want) else {
            return if got == want {
                Ok(())
            } else {
                Err(mismatch(""))
            };
        };
        let (got_tag, got_rest) = got.split_once(' ').unwrap_or((got.as_str(), ""));
        if Some(got_rest) != want[tag.len()..].strip_prefix(' ') {
            return Err(mismatch(""));
        }
        match self.tags.get(tag) {
            Some(bound) if bound != got_tag => Err(mismatch(&format!(
                " (the fixture's {tag} is the client's {bound})"
            ))),
            Some(_) => Ok(()),
            None if self.tags.values().any(|t| t == got_tag) => Err(mismatch(&format!(
                " (the client used its tag {got_tag} twice)"
            ))),
            None => {
                self.tags.insert(tag.to_string(), got_tag.to_string());
                Ok(())
            }
        }
    }

    /// A server line with its fixture tag replaced by the client's.
    fn with_client_tag(&self, no: usize, bytes: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let text = String::from_utf8_lossy(&bytes);
        let Some(tag) = fixture_tag(&text) else {
            return Ok(bytes);
        };
        let Some(bound) = self.tags.get(tag) else {
            return Err(self.fail(
                no,
                format!("the server answers {tag}, which the client has not sent yet"),
            ));
        };
        let mut out = bound.as_bytes().to_vec();
        out.extend_from_slice(&bytes[tag.len()..]);
        Ok(out)
    }

    async fn play(&mut self) -> std::result::Result<(), String> {
        let steps = std::mem::take(&mut self.script.steps);
        for (no, step) in steps {
            match step {
                Step::Server(bytes) => {
                    let bytes = self.with_client_tag(no, bytes)?;
                    self.outgoing.extend_from_slice(&bytes);
                }
                Step::Client(want) => {
                    self.send_outgoing();
                    self.expect(no, &want).await?;
                }
                Step::Split => self.send_outgoing(),
                Step::Close => {
                    self.send_outgoing();
                    self.to_client = None;
                }
            }
        }
        self.send_outgoing();
        Ok(())
    }

    /// After the script and the test's own calls: the client must have read all the server
    /// sent (a line it never read is a line the test does not exercise), and sent nothing more.
    fn check_nothing_more(&mut self) -> std::result::Result<(), String> {
        let read = self.read.load(Ordering::SeqCst);
        if read < self.sent.len() {
            return Err(format!(
                "{}.trace: the client never read the server's last {} bytes: {:?}",
                self.script.name,
                self.sent.len() - read,
                self.sent[read..].escape_ascii().to_string()
            ));
        }
        while let Ok(bytes) = self.from_client.try_recv() {
            self.received.extend_from_slice(&bytes);
        }
        if self.received.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{}.trace: the client sent more than the script expects: {:?}",
            self.script.name,
            self.received.escape_ascii().to_string()
        ))
    }
}

/// A fixture being played. Call [`Scripted::finish`] before asserting on what the client
/// returned: when the client strayed from the script, its own error (a closed connection) says
/// less than the script's diff.
pub(super) struct Scripted {
    name: String,
    done: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::result::Result<(), String>>,
}

impl Scripted {
    /// Starts the server on `traces/<name>.trace` and connects the real client to it.
    pub(super) async fn connect(name: &str) -> (Result<Session>, Scripted) {
        Scripted::connect_with(name, Limits::default()).await
    }

    /// Like [`Scripted::connect`], with the client's framing limits (to make a small body
    /// stream instead of staying inline).
    pub(super) async fn connect_with(name: &str, limits: Limits) -> (Result<Session>, Scripted) {
        let path = format!(
            "{}/src/imap/traces/{name}.trace",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read the fixture {path}: {e}"));
        Scripted::connect_to_script(name, &text, limits).await
    }

    async fn connect_to_script(
        name: &str,
        text: &str,
        limits: Limits,
    ) -> (Result<Session>, Scripted) {
        let script = Script::parse(name, text);
        let (to_client, from_server) = mpsc::unbounded_channel();
        let (to_server, from_client) = mpsc::unbounded_channel();
        let (done, finished) = oneshot::channel();
        let read = Arc::new(AtomicUsize::new(0));
        let mut server = ServerEnd {
            script,
            to_client: Some(to_client),
            from_client,
            received: BytesMut::new(),
            tags: HashMap::new(),
            outgoing: Vec::new(),
            sent: Vec::new(),
            read: read.clone(),
        };
        let server = tokio::spawn(async move {
            // On a stray client, returning drops the pipe: the client sees the end of the
            // stream at once rather than time out.
            server.play().await?;
            // Keep the connection open until the test has made its calls.
            let _ = finished.await;
            server.check_nothing_more()
        });
        let client = ClientEnd {
            from_server,
            pending: Bytes::new(),
            to_server,
            read,
        };
        let mut ep = Endpoint::new(name, 143, Security::Cleartext);
        ep.timeout = PATIENCE;
        ep.limits = limits;
        let session = Session::start(&ep, Stream::Memory(Box::new(client)), None).await;
        let scripted = Scripted {
            name: name.to_string(),
            done,
            server,
        };
        (session, scripted)
    }

    /// Waits for the script to be played to its end; panics with the script's diff when the
    /// client strayed from it, or sent more than it expects.
    pub(super) async fn finish(self) {
        if let Err(diff) = self.played().await {
            panic!("{diff}");
        }
    }

    async fn played(self) -> std::result::Result<(), String> {
        let _ = self.done.send(());
        match self.server.await {
            Ok(played) => played,
            Err(e) => Err(format!(
                "{}.trace: the scripted server failed: {e}",
                self.name
            )),
        }
    }
}

mod tests {
    use super::*;

    const GREETING: &str = "S: * OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\n";

    async fn played(text: &str) -> (Result<Session>, std::result::Result<(), String>) {
        let (session, server) =
            Scripted::connect_to_script("selftest", text, Limits::default()).await;
        let session = match session {
            Ok(mut s) => s.noop().await.map(|()| s),
            Err(e) => Err(e),
        };
        (session, server.played().await)
    }

    #[tokio::test]
    async fn the_clients_own_tags_answer_for_the_fixtures() {
        let (session, played) = played(&format!("{GREETING}C: a1 NOOP\nS: a1 OK done\n")).await;
        assert_eq!(played, Ok(()));
        assert!(session.is_ok());
    }

    #[tokio::test]
    async fn a_stray_client_fails_naming_the_fixture_line_and_both_lines() {
        let (_, played) = played(&format!(
            "{GREETING}# the client will send NOOP\nC: a1 CHECK\n"
        ))
        .await;
        assert_eq!(
            played,
            Err("selftest.trace, line 3: the client sent something else\n  \
                 expected: C: a1 CHECK\n  actual:   C: m1 NOOP"
                .into())
        );
    }

    #[tokio::test]
    async fn a_client_that_sends_more_than_the_script_fails() {
        let (session, played) = played(&format!("{GREETING}-- close\n")).await;
        assert!(session.is_err(), "nobody answers the NOOP");
        let diff = played.expect_err("the NOOP is not in the script");
        assert!(
            diff.contains("more than the script expects: \"m1 NOOP"),
            "{diff}"
        );
    }

    #[tokio::test]
    async fn server_lines_the_client_never_reads_fail() {
        let text = format!("{GREETING}C: a1 NOOP\nS: a1 OK done\n-- split\nS: * 3 EXISTS\n");
        let (_, played) = played(&text).await;
        let diff = played.expect_err("the EXISTS was never read");
        assert!(
            diff.contains("never read the server's last 12 bytes"),
            "{diff}"
        );
    }
}
