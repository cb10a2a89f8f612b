//! Bare newlines: counting them as a body streams past, and sending a body again with CRLF
//! line endings for a destination that refuses bare LF (Cyrus: `NO Message contains bare
//! newlines`).
//!
//! The rewrite only turns an LF without a CR before it into CRLF; every other byte is kept.
//! Its length is known before the first byte is sent (the original length plus one per bare
//! LF, counted while the refused copy was sent), so it streams as any body does, and its
//! content fingerprint is the original's (fingerprints reduce every line ending to LF).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Counts LFs not preceded by CR, across chunk boundaries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BareLfCounter {
    count: u64,
    last_was_cr: bool,
}

impl BareLfCounter {
    /// Feeds the next chunk.
    pub(crate) fn update(&mut self, chunk: &[u8]) {
        for i in memchr::memchr_iter(b'\n', chunk) {
            let cr_before = match i {
                0 => self.last_was_cr,
                _ => chunk[i - 1] == b'\r',
            };
            if !cr_before {
                self.count += 1;
            }
        }
        if let Some(&last) = chunk.last() {
            self.last_was_cr = last == b'\r';
        }
    }

    /// Bare LFs seen so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }
}

/// Reads `inner` with every bare LF turned into CRLF.
pub(crate) struct CrlfReader<R> {
    inner: R,
    last_was_cr: bool,
    /// Bytes rewritten but not yet handed out.
    pending: Vec<u8>,
    at: usize,
}

impl<R> CrlfReader<R> {
    pub(crate) fn new(inner: R) -> CrlfReader<R> {
        CrlfReader {
            inner,
            last_was_cr: false,
            pending: Vec::new(),
            at: 0,
        }
    }
}

/// Appends `chunk` to `out` with bare LFs made CRLF; `last_was_cr` carries across chunks.
pub(crate) fn to_crlf(chunk: &[u8], last_was_cr: &mut bool, out: &mut Vec<u8>) {
    for &b in chunk {
        if b == b'\n' && !*last_was_cr {
            out.push(b'\r');
        }
        out.push(b);
        *last_was_cr = b == b'\r';
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CrlfReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at >= this.pending.len() {
            let mut raw = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut raw);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            this.pending.clear();
            this.at = 0;
            to_crlf(rb.filled(), &mut this.last_was_cr, &mut this.pending);
            if this.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
        }
        let n = (this.pending.len() - this.at).min(buf.remaining());
        buf.put_slice(&this.pending[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn count(chunks: &[&[u8]]) -> u64 {
        let mut c = BareLfCounter::default();
        for ch in chunks {
            c.update(ch);
        }
        c.count()
    }

    #[test]
    fn bare_lfs_are_counted_across_chunks() {
        assert_eq!(count(&[b"a\r\nb\nc\n"]), 2);
        assert_eq!(count(&[b"a\r", b"\nb"]), 0);
        assert_eq!(count(&[b"a", b"\nb\n", b"\n"]), 3);
        assert_eq!(count(&[b"\n"]), 1);
        assert_eq!(count(&[b"a\r", b"", b"\n"]), 0);
    }

    #[tokio::test]
    async fn the_rewrite_has_the_announced_length_and_fingerprint() {
        let raw: &[u8] = b"Subject: x\n\nline\r\nbare\n\rodd\n";
        let mut c = BareLfCounter::default();
        c.update(raw);
        let mut out = Vec::new();
        CrlfReader::new(raw).read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"Subject: x\r\n\r\nline\r\nbare\r\n\rodd\r\n");
        assert_eq!(out.len() as u64, raw.len() as u64 + c.count());
        let fp = |b: &[u8]| {
            let mut f = crate::fingerprint::Fingerprinter::new();
            f.update(b);
            f.finish().0
        };
        assert_eq!(fp(&out), fp(raw));
    }
}
