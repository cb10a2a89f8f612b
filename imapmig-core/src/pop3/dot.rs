//! POP3 multi-line responses (RFC 1939 §3): byte-stuffing undone on the fly, sans-IO.
//!
//! A line of a multi-line response that starts with `.` had that `.` added by the server
//! (unless the line is exactly `.`, the terminator); [`Unstuffer`] removes it and stops right
//! after the terminator, whatever the chunking of its input. A bare-LF terminator (`.\n`) is
//! accepted from sloppy servers.

use bytes::BytesMut;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the first byte of a line.
    LineStart,
    /// Inside a line.
    Mid,
    /// A line started with `.`: terminator or stuffed.
    Dot,
    /// `.` then CR at a line start: the terminator if LF follows.
    DotCr,
    /// The terminator was seen.
    Done,
}

/// Undoes dot-stuffing of one multi-line response.
#[derive(Clone, Debug)]
pub(crate) struct Unstuffer {
    state: State,
}

impl Default for Unstuffer {
    fn default() -> Self {
        Unstuffer {
            state: State::LineStart,
        }
    }
}

impl Unstuffer {
    /// Whether the terminating `.` line has been seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Un-stuffs `input`, appending the response's bytes to `out`. Returns how many input
    /// bytes were used: all of them, or fewer when the terminator ends inside `input` (the rest
    /// belongs to the next response).
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> usize {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return i,
                State::Mid => match memchr::memchr(b'\n', &input[i..]) {
                    Some(at) => {
                        out.extend_from_slice(&input[i..i + at + 1]);
                        i += at + 1;
                        self.state = State::LineStart;
                    }
                    None => {
                        out.extend_from_slice(&input[i..]);
                        i = input.len();
                    }
                },
                State::LineStart => {
                    let b = input[i];
                    i += 1;
                    if b == b'.' {
                        self.state = State::Dot;
                    } else {
                        out.extend_from_slice(&[b]);
                        self.state = if b == b'\n' {
                            State::LineStart
                        } else {
                            State::Mid
                        };
                    }
                }
                State::Dot => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b'\r' => self.state = State::DotCr,
                        b'\n' => self.state = State::Done,
                        // A stuffed line: its first `.` is dropped (RFC 1939 §3).
                        _ => {
                            out.extend_from_slice(&[b]);
                            self.state = State::Mid;
                        }
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        i += 1;
                        self.state = State::Done;
                    } else {
                        // `.` CR x: a stuffed line whose content starts with CR.
                        out.extend_from_slice(b"\r");
                        self.state = State::Mid;
                    }
                }
            }
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unstuff_all(wire: &[u8], cut: usize) -> (Vec<u8>, usize, bool) {
        let mut u = Unstuffer::default();
        let mut out = BytesMut::new();
        let cut = cut.min(wire.len());
        let mut used = u.feed(&wire[..cut], &mut out);
        if used == cut {
            used += u.feed(&wire[cut..], &mut out);
        }
        (out.to_vec(), used, u.is_done())
    }

    /// What a server sends for a message: every line starting with `.` gets another `.`, a
    /// message not ending in CRLF gets one, then `.CRLF`.
    fn stuff(message: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut start = true;
        for &b in message {
            if start && b == b'.' {
                wire.push(b'.');
            }
            wire.push(b);
            start = b == b'\n';
        }
        if !message.is_empty() && !message.ends_with(b"\r\n") {
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b".\r\n");
        wire
    }

    #[test]
    fn stuffed_lines_and_the_terminator() {
        let wire = b"a\r\n..b\r\n.\r\nNEXT";
        let (out, used, done) = unstuff_all(wire, 5);
        assert_eq!(out, b"a\r\n.b\r\n");
        assert_eq!(used, wire.len() - 4);
        assert!(done);
        assert_eq!(unstuff_all(b".\r\n", 1).0, b"");
        assert_eq!(unstuff_all(b"x\n.\n", 3), (b"x\n".to_vec(), 4, true));
        assert_eq!(unstuff_all(b".\rx\r\n.\r\n", 2).0, b"\rx\r\n");
    }

    proptest! {
        #[test]
        fn round_trip_with_any_chunking(
            lines in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), any::<u8>()], 0..20), 0..10),
            cut in 0usize..300,
        ) {
            let mut message = Vec::new();
            for l in &lines {
                let l: Vec<u8> = l.iter().copied().filter(|&b| b != b'\n').collect();
                message.extend_from_slice(&l);
                message.extend_from_slice(b"\r\n");
            }
            let wire = stuff(&message);
            let (out, used, done) = unstuff_all(&wire, cut);
            prop_assert!(done);
            prop_assert_eq!(used, wire.len());
            prop_assert_eq!(out, message);
        }
    }
}
