//! Splitting the server's byte stream into response lines and literals.
//!
//! IMAP responses are lines ending in CRLF, except that a line ending in `{N}` announces a
//! literal: exactly N bytes of anything follow, and then the line goes on. A message body is
//! such a literal, and it can be tens of megabytes, so the framer never holds a large literal:
//! above [`Limits::max_inline_literal`] it hands the literal on as a run of chunks
//! ([`Frame::LiteralStart`], [`Frame::LiteralData`]..., [`Frame::LiteralEnd`]) and the line that
//! carries it is completed with a `{0}` placeholder where the literal stood, so that the grammar
//! parser still sees a well-formed response. Small literals (mailbox names, header fields) stay
//! inside the line, verbatim, so the parser sees them as usual.
//!
//! The framer is sans-IO: it takes bytes from a buffer the caller fills and never reads a socket.
//! A hostile announcement such as `{99999999999}` costs nothing: the bytes are streamed as they
//! come. A line that never ends fails with [`WireError::LineTooLong`] once it passes
//! [`Limits::max_line`], so memory stays bounded whatever the server sends.

use bytes::{Bytes, BytesMut};

use super::WireError;

/// The memory limits of the framer, as values rather than constants so that callers and tests
/// can tighten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A literal of at most this many bytes stays inside its response line; a larger one is
    /// streamed out of band.
    pub max_inline_literal: usize,
    /// The most bytes one response line may take, inline literals included. Long SEARCH results
    /// are the largest legitimate lines (about 7 bytes per message).
    pub max_line: usize,
    /// The largest chunk a streamed literal is handed on in.
    pub max_chunk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_inline_literal: 256 * 1024,
            max_line: 64 * 1024 * 1024,
            max_chunk: 256 * 1024,
        }
    }
}

/// One unit of the server's byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete response line, CRLF included. Small literals are inside it verbatim; a literal
    /// that was streamed stands as `{0}` in its place.
    Line(Bytes),
    /// A large literal begins. `head` is its line so far, up to but not including the `{N}`
    /// announcement (e.g. `* 3 FETCH (UID 17 BODY[] `); `len` is N.
    LiteralStart {
        /// The response line up to the literal.
        head: Bytes,
        /// The literal's announced length in bytes.
        len: u64,
    },
    /// The next bytes of the literal being streamed; never empty.
    LiteralData(Bytes),
    /// The streamed literal is complete. The rest of its line follows as a [`Frame::Line`].
    LiteralEnd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Scanning a line in the input buffer; bytes before `scan` hold no line end. `skip` is the
    /// number of bytes at the start of the buffer that are inline literal data ending before
    /// `scan`; they are part of the line.
    Line,
    /// Inside an inline literal that ends at input offset `end`.
    InlineLiteral { end: usize },
    /// Streaming a large literal with this many bytes still to come.
    Streaming { remaining: u64 },
}

/// The framing state machine. Feed it the receive buffer with [`Framer::next_frame`].
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    state: State,
    /// How far into the input buffer the current line has been scanned.
    scan: usize,
    /// Where, in the input buffer, the last literal of the current line ended: a line end is
    /// only looked for after it.
    line_from: usize,
    /// The part of the current line that came before a streamed literal (placeholder
    /// included); empty when the line had none.
    carried: BytesMut,
    /// Whether the line being scanned is a status response or a continuation request, whose
    /// free text may end in something that looks like `{5}` but is not a literal.
    text_line: Option<bool>,
}

impl Framer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> Framer {
        Framer {
            limits,
            state: State::Line,
            scan: 0,
            line_from: 0,
            carried: BytesMut::new(),
            text_line: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Whether the framer is in the middle of a streamed literal.
    pub fn in_literal(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// Whether the framer holds no partial line (safe point to switch the transport, e.g. for
    /// STARTTLS, provided `input` is empty too).
    pub fn is_idle(&self) -> bool {
        self.state == State::Line && self.scan == 0 && self.carried.is_empty()
    }

    /// Takes the next frame from the front of `input`, or returns `Ok(None)` when more bytes are
    /// needed. Bytes that belong to a returned frame are removed from `input`; a partial line is
    /// left in place (and remembered) until its end arrives.
    pub fn next_frame(&mut self, input: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        loop {
            match self.state {
                State::Streaming { remaining } => {
                    if remaining == 0 {
                        self.state = State::Line;
                        return Ok(Some(Frame::LiteralEnd));
                    }
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let take = (input.len() as u64)
                        .min(remaining)
                        .min(self.limits.max_chunk as u64) as usize;
                    self.state = State::Streaming {
                        remaining: remaining - take as u64,
                    };
                    return Ok(Some(Frame::LiteralData(input.split_to(take).freeze())));
                }
                State::InlineLiteral { end } => {
                    if input.len() < end {
                        return Ok(None);
                    }
                    self.scan = end;
                    self.line_from = end;
                    self.state = State::Line;
                }
                State::Line => {
                    if let Some(frame) = self.scan_line(input)? {
                        return Ok(Some(frame));
                    }
                    if matches!(self.state, State::Line) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Looks for the end of the current line. Returns a frame when a line or a streamed literal
    /// starts; switches to an inline literal state (returning `None`) when one is announced.
    fn scan_line(&mut self, input: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        if self.text_line.is_none() {
            self.text_line = classify_line(&self.carried, input);
        }
        let Some(rel) = memchr::memchr(b'\n', &input[self.scan..]) else {
            self.scan = input.len();
            self.check_line_length(input.len())?;
            return Ok(None);
        };
        let lf = self.scan + rel;
        self.check_line_length(lf + 1)?;
        let before_lf = if lf > self.line_from && input[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let announced = if self.text_line == Some(true) {
            None
        } else {
            literal_announcement(&input[self.line_from..before_lf])?
        };
        let Some((len, brace_at)) = announced else {
            // A plain line end: the line is complete.
            let line = input.split_to(lf + 1);
            let frame = if self.carried.is_empty() {
                line.freeze()
            } else {
                let mut whole = std::mem::take(&mut self.carried);
                whole.extend_from_slice(&line);
                whole.freeze()
            };
            self.reset_line();
            return Ok(Some(Frame::Line(frame)));
        };
        let literal_start = lf + 1;
        if len <= self.limits.max_inline_literal as u64 {
            let end = literal_start + len as usize;
            self.check_line_length(end)?;
            self.state = State::InlineLiteral { end };
            self.scan = literal_start;
            return Ok(None);
        }
        // A large literal: hand on the head, keep it with a `{0}` placeholder for the line.
        let brace_at = self.line_from + brace_at;
        let head_part = input.split_to(literal_start);
        let mut head = std::mem::take(&mut self.carried);
        head.extend_from_slice(&head_part[..brace_at]);
        let head = head.freeze();
        self.carried.extend_from_slice(&head);
        self.carried.extend_from_slice(b"{0}\r\n");
        self.scan = 0;
        self.line_from = 0;
        self.state = State::Streaming { remaining: len };
        Ok(Some(Frame::LiteralStart { head, len }))
    }

    fn check_line_length(&self, in_input: usize) -> Result<(), WireError> {
        let total = self.carried.len().saturating_add(in_input);
        if total > self.limits.max_line {
            return Err(WireError::LineTooLong {
                limit: self.limits.max_line,
            });
        }
        Ok(())
    }

    fn reset_line(&mut self) {
        self.scan = 0;
        self.line_from = 0;
        self.text_line = None;
        self.carried.clear();
    }
}

impl Default for Framer {
    fn default() -> Self {
        Framer::new(Limits::default())
    }
}

/// Whether a line is a status response (`* OK`, `a1 NO`, `* BYE`...) or a continuation request
/// (`+ ...`): their text is free-form and never carries a literal. `None` until the line's first
/// words are in.
fn classify_line(carried: &[u8], input: &[u8]) -> Option<bool> {
    let start: &[u8] = if carried.is_empty() { input } else { carried };
    if start.first() == Some(&b'+') {
        return Some(true);
    }
    // Only this line counts: looking past its end would read the next response's words, and
    // how much of those is in the buffer depends on how the bytes arrived.
    let (start, complete) = match memchr::memchr(b'\n', start) {
        Some(lf) => (&start[..lf], true),
        None => (start, false),
    };
    let Some(first_sp) = memchr::memchr(b' ', start) else {
        return complete.then_some(false);
    };
    let rest = &start[first_sp + 1..];
    let word_end = rest.iter().position(|b| matches!(b, b' ' | b'\r'));
    let word_end = match word_end {
        Some(e) => e,
        None if complete || rest.len() >= 8 => rest.len(),
        None => return None,
    };
    let word = &rest[..word_end];
    Some(
        ["OK", "NO", "BAD", "BYE", "PREAUTH"]
            .iter()
            .any(|s| word.eq_ignore_ascii_case(s.as_bytes())),
    )
}

/// If `line` (without its CRLF) ends in a literal announcement `{N}` (or `~{N}` for a BINARY
/// literal8, or `{N+}`), returns N and the offset where the announcement starts.
fn literal_announcement(line: &[u8]) -> Result<Option<(u64, usize)>, WireError> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = memchr::memrchr(b'{', body) else {
        return Ok(None);
    };
    let mut digits = &body[open + 1..];
    if let Some(d) = digits.strip_suffix(b"+") {
        digits = d;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    // 19 digits always fit in a u64; more than that is no real literal.
    if digits.len() > 19 {
        return Err(WireError::BadLiteral {
            announced: String::from_utf8_lossy(&body[open..])
                .chars()
                .take(40)
                .collect(),
        });
    }
    let len = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let start = if open > 0 && body[open - 1] == b'~' {
        open - 1
    } else {
        open
    };
    Ok(Some((len, start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(limits: Limits, chunks: &[&[u8]]) -> Result<Vec<Frame>, WireError> {
        let mut f = Framer::new(limits);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(fr) = f.next_frame(&mut buf)? {
                out.push(fr);
            }
        }
        Ok(out)
    }

    fn small() -> Limits {
        Limits {
            max_inline_literal: 8,
            max_line: 1024,
            max_chunk: 4,
        }
    }

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn plain_lines_split_at_crlf() {
        let got = frames(small(), &[b"* OK hi\r\na1 OK done\r\n* partial"]).unwrap();
        assert_eq!(got, vec![line("* OK hi\r\n"), line("a1 OK done\r\n")]);
    }

    #[test]
    fn small_literal_stays_inline_even_when_split_across_reads() {
        let got = frames(
            small(),
            &[b"* LIST () \"/\" {5}\r", b"\nab", b"\ncd\r\n", b"* OK\r\n"],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![line("* LIST () \"/\" {5}\r\nab\ncd\r\n"), line("* OK\r\n")]
        );
    }

    #[test]
    fn literal_may_contain_what_looks_like_line_ends_and_announcements() {
        let got = frames(small(), &[b"* 1 FETCH (X {7}\r\n{3}\r\n\r\n)\r\n"]).unwrap();
        assert_eq!(got, vec![line("* 1 FETCH (X {7}\r\n{3}\r\n\r\n)\r\n")]);
    }

    #[test]
    fn large_literal_is_streamed_with_placeholder() {
        let got = frames(
            small(),
            &[
                b"* 3 FETCH (UID 7 BODY[] {10}\r\n0123456",
                b"789 FLAGS ())\r\n",
            ],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                Frame::LiteralStart {
                    head: Bytes::from_static(b"* 3 FETCH (UID 7 BODY[] "),
                    len: 10
                },
                Frame::LiteralData(Bytes::from_static(b"0123")),
                Frame::LiteralData(Bytes::from_static(b"456")),
                Frame::LiteralData(Bytes::from_static(b"789")),
                Frame::LiteralEnd,
                line("* 3 FETCH (UID 7 BODY[] {0}\r\n FLAGS ())\r\n"),
            ]
        );
    }

    #[test]
    fn two_streamed_literals_in_one_line() {
        let got = frames(
            small(),
            &[b"* 1 FETCH (A {9}\r\n123456789 B {9}\r\nabcdefghi)\r\n"],
        )
        .unwrap();
        let lines: Vec<_> = got
            .iter()
            .filter_map(|f| match f {
                Frame::Line(l) => Some(l.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            lines,
            vec![Bytes::from_static(b"* 1 FETCH (A {0}\r\n B {0}\r\n)\r\n")]
        );
        let data: Vec<u8> = got
            .iter()
            .filter_map(|f| match f {
                Frame::LiteralData(d) => Some(d.to_vec()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(data, b"123456789abcdefghi");
        match &got[got.len() - 2] {
            Frame::LiteralEnd => {}
            other => panic!("expected the second literal's end, got {other:?}"),
        }
    }

    #[test]
    fn hostile_announcement_costs_no_memory() {
        let mut f = Framer::new(Limits::default());
        let mut buf = BytesMut::from(&b"* 1 FETCH (BODY[] {99999999999}\r\nabc"[..]);
        match f.next_frame(&mut buf).unwrap() {
            Some(Frame::LiteralStart { len, .. }) => assert_eq!(len, 99_999_999_999),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            f.next_frame(&mut buf).unwrap(),
            Some(Frame::LiteralData(Bytes::from_static(b"abc")))
        );
        assert_eq!(f.next_frame(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn absurd_announcement_is_a_named_error() {
        let err = frames(
            small(),
            &[b"* 1 FETCH (BODY[] {999999999999999999999999}\r\n"],
        )
        .unwrap_err();
        assert!(matches!(err, WireError::BadLiteral { .. }), "{err:?}");
    }

    #[test]
    fn endless_line_is_a_named_error() {
        let mut f = Framer::new(small());
        let mut buf = BytesMut::new();
        let mut result = Ok(None);
        for _ in 0..100 {
            buf.extend_from_slice(b"garbage garbage ");
            result = f.next_frame(&mut buf);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(
            result,
            Err(WireError::LineTooLong { limit: 1024 })
        ));
    }

    #[test]
    fn inline_literal_counts_towards_the_line_limit() {
        let limits = Limits {
            max_inline_literal: 4096,
            max_line: 64,
            max_chunk: 16,
        };
        let err = frames(limits, &[b"* 1 FETCH (BODY[] {1000}\r\n"]).unwrap_err();
        assert!(matches!(err, WireError::LineTooLong { .. }));
    }

    #[test]
    fn status_text_ending_in_braces_is_not_a_literal() {
        let got = frames(
            small(),
            &[b"* OK [ALERT] see {5}\r\na1 NO odd {3}\r\n+ {2}\r\n"],
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                line("* OK [ALERT] see {5}\r\n"),
                line("a1 NO odd {3}\r\n"),
                line("+ {2}\r\n")
            ]
        );
    }

    #[test]
    fn bare_lf_ends_a_line_and_literal8_is_framed() {
        let got = frames(small(), &[b"* OK x\n* 1 FETCH (BINARY[] ~{2}\r\nab)\r\n"]).unwrap();
        assert_eq!(
            got,
            vec![
                line("* OK x\n"),
                line("* 1 FETCH (BINARY[] ~{2}\r\nab)\r\n")
            ]
        );
    }

    #[test]
    fn a_line_is_classified_by_its_own_words_only() {
        // The first line has no space: whether it is a status line must not be decided by the
        // `OK` of the next line, which may or may not have arrived yet (found by fuzzing).
        let input: &[u8] = b"a{3}\r\nbcd\r\n* OK [ALERT] x\r\n";
        let whole = frames(small(), &[input]).unwrap();
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(frames(small(), &pieces).unwrap(), whole);
        assert_eq!(whole[0], line("a{3}\r\nbcd\r\n"));
    }

    #[test]
    fn byte_at_a_time_gives_the_same_frames() {
        let input: &[u8] =
            b"* 1 FETCH (UID 1 BODY[] {12}\r\nhello\r\nworld FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 BODY[] {3}\r\nabc)\r\na1 OK\r\n";
        let whole = frames(small(), &[input]).unwrap();
        let pieces: Vec<&[u8]> = input.chunks(1).collect();
        let split = frames(small(), &pieces).unwrap();
        let flatten = |v: &[Frame]| -> Vec<u8> {
            v.iter()
                .flat_map(|f| match f {
                    Frame::Line(b) | Frame::LiteralData(b) => b.to_vec(),
                    Frame::LiteralStart { head, .. } => head.to_vec(),
                    Frame::LiteralEnd => b"|".to_vec(),
                })
                .collect()
        };
        assert_eq!(flatten(&whole), flatten(&split));
    }
}
