//! The client→server byte stream of one proxied connection, followed closely
//! enough to find where each IMAP command starts — and, while logins are
//! refused, to take LOGIN and AUTHENTICATE commands out of the stream and
//! answer them in the server's place.
//!
//! Sans-IO: bytes in, [`Action`]s out. It never buffers more than one
//! command line ([`MAX_HELD_LINE`]), and only while logins are refused; the
//! rest of the time it passes bytes through as they come and only remembers
//! the end of the current line (to see a literal announced there).

/// The longest command line held back while deciding whether it is a login.
/// A longer line is passed on unexamined (no LOGIN is that long).
pub(crate) const MAX_HELD_LINE: usize = 16 * 1024;

/// How much of the end of a line is remembered to spot `{N}` / `{N+}`.
const TAIL: usize = 32;

/// What to do with the bytes fed to [`ClientStream::feed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send these bytes on to the server.
    Forward(Vec<u8>),
    /// Send these bytes back to the client, in the server's place.
    Reply(Vec<u8>),
}

/// Whether (and how) logins are refused right now; asked by the stream.
pub(crate) trait Refusals {
    /// Whether logins are refused at the moment (does not use one up).
    fn active(&mut self) -> bool;
    /// Uses up one refusal and gives its answer (`NO [UNAVAILABLE] ...`), or
    /// `None` when refusals ended meanwhile.
    fn take(&mut self) -> Option<String>;
}

#[derive(Debug)]
enum Mode {
    /// Bytes go through; only the line's tail is kept.
    Pass,
    /// A command line is held back until its end, to see what it is.
    Hold,
    /// A refused LOGIN is being swallowed (its literals and continuation
    /// lines); at its end the client gets `<tag> <answer>`.
    Swallow { tag: Vec<u8>, answer: String },
}

/// The client→server stream of one connection.
#[derive(Debug)]
pub(crate) struct ClientStream {
    mode: Mode,
    /// Bytes of a literal still to come.
    literal: u64,
    /// The current line: all of it in [`Mode::Hold`], else its last bytes.
    line: Vec<u8>,
    /// Whether the next byte starts a command (not a line continued after a
    /// literal, not the middle of a line).
    at_command_start: bool,
}

impl Default for ClientStream {
    fn default() -> Self {
        ClientStream {
            mode: Mode::Pass,
            literal: 0,
            line: Vec::new(),
            at_command_start: true,
        }
    }
}

impl ClientStream {
    /// Follows `input`, appending what to do with it to `out`.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        refusals: &mut dyn Refusals,
        out: &mut Vec<Action>,
    ) {
        let mut i = 0;
        while i < input.len() {
            if self.literal > 0 {
                let n = usize::try_from(self.literal)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - i);
                if !matches!(self.mode, Mode::Swallow { .. }) {
                    forward(out, &input[i..i + n]);
                }
                self.literal -= n as u64;
                i += n;
                continue;
            }
            if self.at_command_start {
                self.at_command_start = false;
                if matches!(self.mode, Mode::Pass) && refusals.active() {
                    self.mode = Mode::Hold;
                }
            }
            match self.mode {
                Mode::Pass | Mode::Swallow { .. } => {
                    // Up to the end of this line in one step.
                    let end = input[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(input.len(), |p| i + p + 1);
                    if matches!(self.mode, Mode::Pass) {
                        forward(out, &input[i..end]);
                    }
                    self.line.extend_from_slice(&input[i..end]);
                    if self.line.len() > TAIL {
                        self.line.drain(..self.line.len() - TAIL);
                    }
                    i = end;
                }
                Mode::Hold => {
                    let end = input[i..]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(input.len(), |p| i + p + 1);
                    self.line.extend_from_slice(&input[i..end]);
                    i = end;
                    if self.line.len() > MAX_HELD_LINE {
                        // Too long to be a login: let it through as it is.
                        forward(out, &self.line);
                        self.line.drain(..self.line.len() - TAIL);
                        self.mode = Mode::Pass;
                    }
                }
            }
            if self.line.last() == Some(&b'\n') {
                self.end_of_line(refusals, out);
            }
        }
    }

    fn end_of_line(&mut self, refusals: &mut dyn Refusals, out: &mut Vec<Action>) {
        let literal = literal_announced(&self.line);
        let line = std::mem::take(&mut self.line);
        match std::mem::replace(&mut self.mode, Mode::Pass) {
            Mode::Pass => {}
            Mode::Hold => {
                let (tag, name) = tag_and_name(&line);
                let login = name.eq_ignore_ascii_case(b"LOGIN");
                let auth = name.eq_ignore_ascii_case(b"AUTHENTICATE");
                match (login || auth).then(|| refusals.take()).flatten() {
                    Some(answer) if login && literal.is_some() => {
                        self.mode = Mode::Swallow {
                            tag: tag.to_vec(),
                            answer,
                        };
                    }
                    Some(answer) => {
                        // AUTHENTICATE is answered at once, initial
                        // response or not: the client then never sends
                        // its SASL response. A literal in it (nobody
                        // sends one) is swallowed without a second answer.
                        out.push(Action::Reply(tagged(tag, &answer)));
                        if literal.is_some() {
                            self.mode = Mode::Swallow {
                                tag: Vec::new(),
                                answer: String::new(),
                            };
                        }
                    }
                    None => forward(out, &line),
                }
            }
            Mode::Swallow { tag, answer } => {
                if literal.is_none() && !tag.is_empty() {
                    out.push(Action::Reply(tagged(&tag, &answer)));
                } else if literal.is_some() {
                    self.mode = Mode::Swallow { tag, answer };
                }
            }
        }
        let answered = matches!(&self.mode, Mode::Swallow { tag, .. } if tag.is_empty());
        match literal {
            // A refused AUTHENTICATE announcing a synchronising literal: the
            // client has its answer and will not send the literal.
            Some((_, true)) if answered => {
                self.mode = Mode::Pass;
                self.at_command_start = true;
            }
            Some((n, sync)) => {
                self.literal = n;
                if sync && matches!(self.mode, Mode::Swallow { .. }) {
                    // The server never sees this command, so it cannot say
                    // "go on": we must, or the client waits for ever.
                    out.push(Action::Reply(b"+ go ahead\r\n".to_vec()));
                }
                // A zero-length literal ends at once; the line goes on.
            }
            None => self.at_command_start = true,
        }
    }
}

fn forward(out: &mut Vec<Action>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if let Some(Action::Forward(v)) = out.last_mut() {
        v.extend_from_slice(bytes);
    } else {
        out.push(Action::Forward(bytes.to_vec()));
    }
}

fn tagged(tag: &[u8], answer: &str) -> Vec<u8> {
    let mut v = tag.to_vec();
    v.push(b' ');
    v.extend_from_slice(answer.as_bytes());
    v.extend_from_slice(b"\r\n");
    v
}

/// The tag and the command name (first two words) of a command line.
fn tag_and_name(line: &[u8]) -> (&[u8], &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.splitn(3, |&b| b == b' ');
    let tag = words.next().unwrap_or_default();
    let name = words.next().unwrap_or_default();
    (tag, name)
}

/// The literal a line announces at its end: `{N}` (synchronising) or
/// `{N+}` (not), as `(N, synchronising)`.
pub(crate) fn literal_announced(line: &[u8]) -> Option<(u64, bool)> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (line, true),
    };
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refusals with a fixed answer and a count.
    struct Fixed(Option<String>, u32);

    impl Refusals for Fixed {
        fn active(&mut self) -> bool {
            self.0.is_some() && self.1 > 0
        }
        fn take(&mut self) -> Option<String> {
            if self.1 == 0 {
                return None;
            }
            self.1 -= 1;
            self.0.clone()
        }
    }

    fn run(input: &[u8], refusals: &mut Fixed, step: usize) -> (Vec<u8>, Vec<u8>) {
        let mut s = ClientStream::default();
        let mut out = Vec::new();
        for chunk in input.chunks(step) {
            s.feed(chunk, refusals, &mut out);
        }
        let (mut fwd, mut reply) = (Vec::new(), Vec::new());
        for a in out {
            match a {
                Action::Forward(v) => fwd.extend(v),
                Action::Reply(v) => reply.extend(v),
            }
        }
        (fwd, reply)
    }

    const NO: &str = "NO [UNAVAILABLE] later";

    #[test]
    fn without_refusals_every_byte_passes() {
        let input = b"a LOGIN {5}\r\nalice {3+}\r\npw!\r\nb NOOP\r\n";
        for step in [1, 3, 100] {
            let (fwd, reply) = run(input, &mut Fixed(None, 0), step);
            assert_eq!(fwd, input);
            assert!(reply.is_empty());
        }
    }

    #[test]
    fn refused_login_is_answered_and_never_forwarded() {
        let input = b"a1 CAPABILITY\r\na2 LOGIN alice secret\r\na3 NOOP\r\n";
        for step in [1, 2, 7, 100] {
            let (fwd, reply) = run(input, &mut Fixed(Some(NO.into()), 9), step);
            assert_eq!(fwd, b"a1 CAPABILITY\r\na3 NOOP\r\n");
            assert_eq!(reply, b"a2 NO [UNAVAILABLE] later\r\n");
        }
    }

    #[test]
    fn sync_literals_of_a_swallowed_login_get_a_continuation() {
        let input = b"x login {5}\r\nalice {6}\r\nsecret\r\ny NOOP\r\n";
        for step in [1, 4, 100] {
            let (fwd, reply) = run(input, &mut Fixed(Some(NO.into()), 1), step);
            assert_eq!(fwd, b"y NOOP\r\n");
            assert_eq!(
                reply,
                b"+ go ahead\r\n+ go ahead\r\nx NO [UNAVAILABLE] later\r\n"
            );
        }
    }

    #[test]
    fn non_sync_literals_get_no_continuation() {
        let (fwd, reply) = run(
            b"x LOGIN {5+}\r\nalice {2+}\r\npw\r\n",
            &mut Fixed(Some(NO.into()), 1),
            3,
        );
        assert!(fwd.is_empty());
        assert_eq!(reply, b"x NO [UNAVAILABLE] later\r\n");
    }

    #[test]
    fn authenticate_is_answered_at_once() {
        let (fwd, reply) = run(
            b"a AUTHENTICATE PLAIN\r\nb AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n",
            &mut Fixed(Some(NO.into()), 5),
            1,
        );
        assert!(fwd.is_empty());
        assert_eq!(
            reply,
            b"a NO [UNAVAILABLE] later\r\nb NO [UNAVAILABLE] later\r\n"
        );
    }

    #[test]
    fn only_n_logins_are_refused() {
        let input = b"a LOGIN u p\r\nb LOGIN u p\r\n";
        let (fwd, reply) = run(input, &mut Fixed(Some(NO.into()), 1), 5);
        assert_eq!(fwd, b"b LOGIN u p\r\n");
        assert_eq!(reply, b"a NO [UNAVAILABLE] later\r\n");
    }

    #[test]
    fn login_text_inside_a_literal_is_not_a_command() {
        let input = b"a APPEND INBOX {15}\r\nb LOGIN u p\r\n\r\nc NOOP\r\n";
        let (fwd, reply) = run(input, &mut Fixed(Some(NO.into()), 5), 4);
        assert_eq!(fwd, input);
        assert!(reply.is_empty());
    }

    #[test]
    fn an_overlong_line_passes_unexamined() {
        let mut input = b"a LOGIN ".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_HELD_LINE + 10));
        input.extend_from_slice(b"\r\nb NOOP\r\n");
        let (fwd, reply) = run(&input, &mut Fixed(Some(NO.into()), 5), 4096);
        assert!(fwd == input, "the long line was changed");
        assert!(reply.is_empty());
    }

    #[test]
    fn literal_markers() {
        assert_eq!(literal_announced(b"a LOGIN {5}\r\n"), Some((5, true)));
        assert_eq!(literal_announced(b"{12+}\n"), Some((12, false)));
        assert_eq!(literal_announced(b"a {}\r\n"), None);
        assert_eq!(literal_announced(b"a {1x}\r\n"), None);
        assert_eq!(literal_announced(b"a {99999999999999999999}\r\n"), None);
        assert_eq!(literal_announced(b"a {5}"), None);
    }
}
