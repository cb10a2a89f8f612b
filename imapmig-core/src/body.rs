//! A message body as an async byte stream of known length.
//!
//! Whatever a source reads from (an IMAP literal streamed off the socket, a file, a POP3
//! RETR), the engine sees the same [`FetchedBody`]: its length first, then its bytes in chunks,
//! never necessarily the whole message in memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::failure::ErrorKind;
use crate::imap::error::{ImapError, Result};
use crate::model::Uid;
use crate::wire::{Frame, StatusResponse};

/// Where the frames of a literal being streamed come from. The IMAP connection implements
/// it; the body reads through it, so that this module, which every source shares, sits below
/// the IMAP client rather than beside it.
pub(crate) trait FrameSource: Send {
    /// Polls for the next frame off the wire.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Result<Frame>>;
    /// The server's name, for errors.
    fn host(&self) -> &str;
}

/// Where a reader-backed body comes from, for its errors: a file's path or `pop3://host:port`,
/// and what kind of failure a read error there is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyOrigin {
    /// The place, as the admin can find it.
    pub name: String,
    /// A broken connection ([`ErrorKind::Connection`]) or a local file ([`ErrorKind::Storage`]).
    pub kind: ErrorKind,
}

impl BodyOrigin {
    fn error(&self, uid: Uid, detail: String) -> ImapError {
        ImapError::BodySource {
            origin: self.name.clone(),
            uid: uid.0,
            detail,
            kind: self.kind,
        }
    }
}

/// What one pipelined body fetch produced.
pub enum BodyEvent<'a> {
    /// The body of a message.
    Body(FetchedBody<'a>),
    /// The message is gone (expunged since it was listed); nothing to copy.
    Missing(Uid),
    /// The server refused to give this message.
    Failed(Uid, StatusResponse),
    /// The server answered for a requested message without giving its body (`BODY[] NIL`,
    /// an empty FETCH): the message is not copied, and `detail` says what the server sent.
    Withheld {
        /// The requested message.
        uid: Uid,
        /// What the server sent, with an excerpt of its words.
        detail: String,
    },
    /// A body arrived for a UID that was not asked for in this round, or was already
    /// delivered: it is skipped (never copied), and `detail` says what the server sent.
    Unasked {
        /// The UID the server named.
        uid: Uid,
        /// What the server sent, with an excerpt of its words.
        detail: String,
    },
}

/// A message body being received: read it with [`tokio::io::AsyncRead`]. Exactly `len` bytes.
/// Dropping it early is allowed: the rest is skipped before the connection is used again.
pub struct FetchedBody<'a> {
    /// The message's UID.
    pub uid: Uid,
    /// The body's length, from the literal's own announcement (never RFC822.SIZE).
    pub len: u64,
    inner: BodyInner<'a>,
    /// Reading it from the source failed (a cut connection, a short file): whatever fails
    /// while it is being sent on is the source's doing, not the destination's.
    failed: bool,
}

pub(crate) enum BodyInner<'a> {
    Inline(Bytes),
    Streaming {
        conn: &'a mut (dyn FrameSource + 'static),
        pending: Bytes,
        done: bool,
    },
    Reader {
        reader: Pin<Box<dyn AsyncRead + Send + 'a>>,
        remaining: u64,
        origin: BodyOrigin,
    },
}

/// The largest chunk [`FetchedBody::chunk`] reads from a reader-backed body.
const READER_CHUNK: usize = 256 * 1024;

impl<'a> FetchedBody<'a> {
    /// A body held in memory (a small message, or one a source read whole).
    pub fn from_bytes(uid: Uid, data: Bytes) -> FetchedBody<'static> {
        FetchedBody {
            uid,
            len: data.len() as u64,
            inner: BodyInner::Inline(data),
            failed: false,
        }
    }

    /// A body read from any async reader that yields exactly `len` bytes (a file, a POP3
    /// RETR stream...), which is `origin`. A reader that fails or ends early is an error
    /// naming `origin` when the body is read.
    pub fn from_reader(
        uid: Uid,
        len: u64,
        reader: impl AsyncRead + Send + 'a,
        origin: BodyOrigin,
    ) -> FetchedBody<'a> {
        FetchedBody {
            uid,
            len,
            inner: BodyInner::Reader {
                reader: Box::pin(reader),
                remaining: len,
                origin,
            },
            failed: false,
        }
    }

    pub(crate) fn streaming(
        uid: Uid,
        len: u64,
        conn: &'a mut (dyn FrameSource + 'static),
    ) -> FetchedBody<'a> {
        FetchedBody {
            uid,
            len,
            inner: BodyInner::Streaming {
                conn,
                pending: Bytes::new(),
                done: false,
            },
            failed: false,
        }
    }
}

impl FetchedBody<'_> {
    /// Where a reader-backed body comes from (`None` for a body from an IMAP server).
    pub fn origin(&self) -> Option<&BodyOrigin> {
        match &self.inner {
            BodyInner::Reader { origin, .. } => Some(origin),
            BodyInner::Inline(_) | BodyInner::Streaming { .. } => None,
        }
    }

    /// The whole body if it arrived in one piece (small messages), without copying.
    pub fn as_inline(&self) -> Option<&Bytes> {
        match &self.inner {
            BodyInner::Inline(b) => Some(b),
            BodyInner::Streaming { .. } | BodyInner::Reader { .. } => None,
        }
    }

    /// Whether reading the body from its source failed: an error while sending it on is
    /// then the source's, not the destination's.
    pub fn source_failed(&self) -> bool {
        self.failed
    }

    /// The next chunk of the body, or `None` at its end. Chunks are handed on without copying.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        let got = self.next_chunk().await;
        self.failed |= got.is_err();
        got
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match &mut self.inner {
            BodyInner::Inline(b) => {
                if b.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(std::mem::take(b)))
                }
            }
            BodyInner::Reader {
                reader,
                remaining,
                origin,
            } => {
                if *remaining == 0 {
                    return Ok(None);
                }
                let want = (*remaining).min(READER_CHUNK as u64) as usize;
                let mut buf = bytes::BytesMut::with_capacity(want);
                let n = reader
                    .read_buf(&mut buf)
                    .await
                    .map_err(|e| origin.error(self.uid, e.to_string()))?;
                if n == 0 {
                    return Err(origin.error(self.uid, format!("it ended {remaining} bytes early")));
                }
                buf.truncate(want.min(n));
                *remaining -= buf.len() as u64;
                Ok(Some(buf.freeze()))
            }
            BodyInner::Streaming {
                conn,
                pending,
                done,
            } => {
                if !pending.is_empty() {
                    return Ok(Some(std::mem::take(pending)));
                }
                if *done {
                    return Ok(None);
                }
                match std::future::poll_fn(|cx| conn.poll_frame(cx)).await? {
                    Frame::LiteralData(d) => Ok(Some(d)),
                    Frame::LiteralEnd => {
                        *done = true;
                        Ok(None)
                    }
                    other => Err(ImapError::Protocol {
                        host: conn.host().to_string(),
                        command: "FETCH",
                        detail: format!("expected message data, got {other:?}"),
                    }),
                }
            }
        }
    }
}

impl AsyncRead for FetchedBody<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = this.poll_next(cx, buf);
        if let Poll::Ready(Err(_)) = polled {
            this.failed = true;
        }
        polled
    }
}

impl FetchedBody<'_> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self;
        loop {
            let pending = match &mut this.inner {
                BodyInner::Inline(b) => b,
                BodyInner::Reader {
                    reader, remaining, ..
                } => {
                    if *remaining == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let before = buf.filled().len();
                    let limit = (*remaining).min(buf.remaining() as u64) as usize;
                    let mut sub = buf.take(limit);
                    match reader.as_mut().poll_read(cx, &mut sub) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                    let n = sub.filled().len();
                    if n == 0 && limit > 0 {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "message body ended early",
                        )));
                    }
                    // `take` gave the reader a view of the unfilled part: account for it.
                    buf.advance(n);
                    let _ = before;
                    *remaining -= n as u64;
                    return Poll::Ready(Ok(()));
                }
                BodyInner::Streaming {
                    conn,
                    pending,
                    done,
                } => {
                    if pending.is_empty() && !*done {
                        match conn.poll_frame(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(Frame::LiteralData(d))) => *pending = d,
                            Poll::Ready(Ok(Frame::LiteralEnd)) => *done = true,
                            Poll::Ready(Ok(_)) => {
                                return Poll::Ready(Err(std::io::Error::other(
                                    "unexpected frame inside a message body",
                                )))
                            }
                            Poll::Ready(Err(e)) => {
                                return Poll::Ready(Err(std::io::Error::other(e.to_string())))
                            }
                        }
                        continue;
                    }
                    pending
                }
            };
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending.split_to(n));
            return Poll::Ready(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives `good` bytes, then fails as a vanished file or a cut connection.
    struct Failing {
        good: &'static [u8],
    }

    impl AsyncRead for Failing {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.good.is_empty() {
                return Poll::Ready(Err(std::io::Error::other("input/output error")));
            }
            let n = self.good.len().min(buf.remaining());
            buf.put_slice(&self.good[..n]);
            self.good = &self.good[n..];
            Poll::Ready(Ok(()))
        }
    }

    fn origin(kind: ErrorKind) -> BodyOrigin {
        BodyOrigin {
            name: "/mail/cur/1.eml".into(),
            kind,
        }
    }

    async fn read_all(mut body: FetchedBody<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = body.chunk().await? {
            out.extend_from_slice(&c);
        }
        Ok(out)
    }

    /// A Maildir or POP3 body that could not be read was reported as an IMAP server's protocol
    /// error with an empty host (" answered FETCH unexpectedly"): it names its place and its
    /// kind now, and the body counts as the source's failure.
    #[tokio::test]
    async fn a_local_read_failure_names_the_file_not_a_server() {
        let mut body = FetchedBody::from_reader(
            Uid(7),
            10,
            Failing { good: b"From:" },
            origin(ErrorKind::Storage),
        );
        let mut got = Vec::new();
        let err = loop {
            match body.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => panic!("a failing reader ended cleanly"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, b"From:");
        assert!(body.source_failed());
        assert_eq!(
            err.to_string(),
            "/mail/cur/1.eml: cannot read message UID 7: input/output error"
        );
        assert_eq!(ErrorKind::of_imap(&err), ErrorKind::Storage);
        assert!(!err.is_transient());
    }

    #[tokio::test]
    async fn a_short_body_and_a_cut_pop3_connection_are_named_too() {
        let short = FetchedBody::from_reader(Uid(3), 10, &b"abc"[..], origin(ErrorKind::Storage));
        let err = read_all(short).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "/mail/cur/1.eml: cannot read message UID 3: it ended 7 bytes early"
        );
        let pop3 = BodyOrigin {
            name: "pop3://mail.example:995".into(),
            kind: ErrorKind::Connection,
        };
        let cut = FetchedBody::from_reader(Uid(4), 10, Failing { good: b"" }, pop3);
        let err = read_all(cut).await.unwrap_err();
        assert_eq!(ErrorKind::of_imap(&err), ErrorKind::Connection);
        assert!(err.is_transient());
        let c = err.classify(Some(crate::failure::Side::Source));
        assert_eq!(
            (c.category, c.transient),
            (crate::failure::FailureCategory::Connection, true)
        );
    }
}
