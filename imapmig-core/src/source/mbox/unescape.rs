//! `>From ` un-escaping, as one rule shared by the scanner (which counts the bytes it removes,
//! so a message's length is known before it is read) and the streaming reader (which removes
//! them).
//!
//! * mboxrd: a line that starts with one or more `>` followed by `From ` loses one `>`.
//! * mboxo: only a line that starts with exactly `>From ` loses its `>` (mboxo writers escape
//!   `From ` but not `>From `, so `>>From ` is left as it is).
//! * mboxcl2: nothing is escaped.
//!
//! A run of more than [`MAX_QUOTES`] `>` is left alone by both, so the scanner never needs more
//! than the first bytes of a line.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

use super::MboxFlavor;

/// The longest `>` run that is un-escaped.
pub(crate) const MAX_QUOTES: usize = 512;

const FROM: &[u8] = b"From ";

/// Whether a line (or at least its first `MAX_QUOTES + 5` bytes) is an escaped `From ` line.
pub(crate) fn is_escaped(line: &[u8], flavor: MboxFlavor) -> bool {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    let ok = match flavor {
        MboxFlavor::Mboxrd => (1..=MAX_QUOTES).contains(&quotes),
        MboxFlavor::Mboxo => quotes == 1,
        MboxFlavor::Mboxcl2 => false,
    };
    ok && line[quotes..].starts_with(FROM)
}

/// Un-escapes a byte stream line by line, whatever its chunking.
#[derive(Debug)]
pub(crate) struct Unescaper {
    flavor: MboxFlavor,
    /// At a line start, the bytes held while they may still be an escaped `From `.
    hold: Vec<u8>,
    /// Whether the next byte starts a line.
    line_start: bool,
}

impl Unescaper {
    pub(crate) fn new(flavor: MboxFlavor) -> Unescaper {
        Unescaper {
            flavor,
            hold: Vec::new(),
            line_start: true,
        }
    }

    /// Whether the held bytes can still become an escaped `From `.
    fn may_match(&self) -> bool {
        let quotes = self.hold.iter().take_while(|&&b| b == b'>').count();
        let rest = &self.hold[quotes..];
        let quotes_ok = match self.flavor {
            MboxFlavor::Mboxrd => quotes <= MAX_QUOTES,
            MboxFlavor::Mboxo => quotes <= 1,
            MboxFlavor::Mboxcl2 => false,
        };
        quotes_ok && (rest.is_empty() || (quotes >= 1 && FROM.starts_with(rest)))
    }

    /// Processes a chunk, appending the un-escaped bytes to `out`.
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut BytesMut) {
        if self.flavor == MboxFlavor::Mboxcl2 {
            out.extend_from_slice(input);
            return;
        }
        while !input.is_empty() {
            if self.line_start {
                let b = input[0];
                input = &input[1..];
                self.hold.push(b);
                if !self.may_match() {
                    out.extend_from_slice(&self.hold);
                    self.hold.clear();
                    self.line_start = b == b'\n';
                } else if self.hold.ends_with(FROM) {
                    out.extend_from_slice(&self.hold[1..]);
                    self.hold.clear();
                    self.line_start = false;
                }
                continue;
            }
            match memchr::memchr(b'\n', input) {
                Some(i) => {
                    out.extend_from_slice(&input[..=i]);
                    input = &input[i + 1..];
                    self.line_start = true;
                }
                None => {
                    out.extend_from_slice(input);
                    input = &[];
                }
            }
        }
    }

    /// Hands out what is still held at the end of the input.
    pub(crate) fn finish(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.hold);
        self.hold.clear();
    }
}

/// An async reader that un-escapes another.
pub(crate) struct UnescapeReader<R> {
    inner: R,
    unescaper: Unescaper,
    out: BytesMut,
    scratch: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> UnescapeReader<R> {
    pub(crate) fn new(inner: R, flavor: MboxFlavor) -> UnescapeReader<R> {
        UnescapeReader {
            inner,
            unescaper: Unescaper::new(flavor),
            out: BytesMut::new(),
            scratch: vec![0; 64 * 1024],
            eof: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for UnescapeReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(&mut this.scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let n = rb.filled().len();
            if n == 0 {
                this.eof = true;
                this.unescaper.finish(&mut this.out);
            } else {
                this.unescaper.feed(&this.scratch[..n], &mut this.out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unescape(input: &[u8], flavor: MboxFlavor, cut: usize) -> Vec<u8> {
        let mut u = Unescaper::new(flavor);
        let mut out = BytesMut::new();
        let cut = cut.min(input.len());
        u.feed(&input[..cut], &mut out);
        u.feed(&input[cut..], &mut out);
        u.finish(&mut out);
        out.to_vec()
    }

    #[test]
    fn the_flavours_differ_on_deeper_quotes() {
        let text = b">From a\n>>From b\nx>From c\n>Fromage\n>\n";
        assert_eq!(
            unescape(text, MboxFlavor::Mboxrd, 3),
            b"From a\n>From b\nx>From c\n>Fromage\n>\n"
        );
        assert_eq!(
            unescape(text, MboxFlavor::Mboxo, 9),
            b"From a\n>>From b\nx>From c\n>Fromage\n>\n"
        );
        assert_eq!(unescape(text, MboxFlavor::Mboxcl2, 1), text);
    }

    proptest! {
        #[test]
        fn streaming_agrees_with_the_line_rule(
            lines in proptest::collection::vec(
                (0usize..4, prop_oneof![Just("From x".to_string()), Just("Fro".to_string()), "[a-zA-Z >]{0,8}"]),
                0..12),
            cut in 0usize..200,
            rd in any::<bool>(),
        ) {
            let flavor = if rd { MboxFlavor::Mboxrd } else { MboxFlavor::Mboxo };
            let mut input = Vec::new();
            let mut expected = Vec::new();
            for (q, text) in &lines {
                let mut line = ">".repeat(*q).into_bytes();
                line.extend_from_slice(text.as_bytes());
                line.push(b'\n');
                if is_escaped(&line, flavor) {
                    expected.extend_from_slice(&line[1..]);
                } else {
                    expected.extend_from_slice(&line);
                }
                input.extend_from_slice(&line);
            }
            prop_assert_eq!(unescape(&input, flavor, cut), expected);
        }
    }
}
