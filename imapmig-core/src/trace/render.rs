//! What a protocol line looks like in the trace: literals elided to their size, control and
//! 8-bit bytes escaped, very long lines cut, and credentials never shown.
//!
//! Pure functions and one small state machine ([`Outbound`]); no I/O, no clock. Secrets are
//! kept out where the client knows it sends one (the session hands over the redacted form, see
//! [`super::ConnTrace::client`]); [`Outbound`] adds a second guard for command lines that name
//! a login verb, so that a future code path that forgets still leaks nothing.

/// What stands in place of a password, token or SASL response.
pub(crate) const REDACTED: &str = "<redacted>";

/// The most characters of one line the trace shows; a longer line (a SEARCH result of a big
/// folder) is cut, and the cut says how long it was.
pub(crate) const MAX_SHOWN: usize = 2048;

/// The most bytes of a client line kept while it is being written (beyond them only the count
/// is kept): a long UID set must not grow the buffer without end.
const MAX_KEPT: usize = MAX_SHOWN * 2;

/// IMAP verbs whose arguments are credentials.
const LOGIN_VERBS: [&str; 2] = ["LOGIN", "AUTHENTICATE"];

/// POP3 verbs whose arguments are credentials.
const POP3_LOGIN_VERBS: [&str; 3] = ["PASS", "APOP", "AUTH"];

/// The placeholder the framer leaves where a streamed literal stood (see
/// [`crate::wire::Frame::LiteralStart`]).
const PLACEHOLDER: &[u8] = b"{0}\r\n";

/// `{N bytes elided}`.
pub(crate) fn elided(len: u64) -> String {
    format!("{{{len} bytes elided}}")
}

/// Appends `bytes` readable: UTF-8 text as it is, control characters and bytes that are not
/// UTF-8 escaped (`\r`, `\x00`, `\xff`), so one protocol line stays one trace line.
pub(crate) fn push_printable(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => out.push_str("\\r"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    out.push_str(&format!("\\x{:02x}", u32::from(c)));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
}

/// Cuts `out` to [`MAX_SHOWN`] characters, saying so; `whole` is the line's length in bytes.
fn cap(mut out: String, whole: usize) -> String {
    if out.chars().count() <= MAX_SHOWN {
        return out;
    }
    let end = out
        .char_indices()
        .nth(MAX_SHOWN)
        .map_or(out.len(), |(i, _)| i);
    out.truncate(end);
    out.push_str(&format!(" ... [line of {whole} bytes cut]"));
    out
}

/// If `line` (without its line end) ends in a literal announcement (`{N}`, `{N+}`, `~{N}`),
/// returns N and where the announcement's `{` is.
fn announcement(line: &[u8]) -> Option<(u64, usize)> {
    let body = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', body)?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((n, open))
}

/// A server line as the framer delivered it ([`crate::wire::Frame::Line`]), each literal
/// inside it replaced by its size. `streamed` holds, for each literal of this line that was
/// streamed instead of kept inline, where its `{0}` placeholder stands and its real length.
pub(crate) fn server_line(line: &[u8], streamed: &[(usize, u64)]) -> String {
    let body = line
        .strip_suffix(b"\r\n")
        .or_else(|| line.strip_suffix(b"\n"))
        .unwrap_or(line);
    let mut out = String::new();
    let mut pos = 0;
    // Inside one framed line, a line feed before its end only ever follows a literal
    // announcement: the framer went on past it for that reason alone.
    while let Some(rel) = memchr::memchr(b'\n', &body[pos..]) {
        let lf = pos + rel;
        if let Some(&(_, len)) = streamed
            .iter()
            .find(|(at, _)| *at >= pos && at + PLACEHOLDER.len() - 1 == lf)
        {
            let at = lf + 1 - PLACEHOLDER.len();
            push_printable(&mut out, &body[pos..at]);
            out.push_str(&elided(len));
            pos = lf + 1;
            continue;
        }
        let segment = &body[pos..lf];
        let segment = segment.strip_suffix(b"\r").unwrap_or(segment);
        match announcement(segment) {
            Some((len, open)) => {
                push_printable(&mut out, &segment[..open]);
                out.push_str(&elided(len));
                pos = (lf as u64 + 1).saturating_add(len).min(body.len() as u64) as usize;
            }
            None => {
                push_printable(&mut out, &body[pos..=lf]);
                pos = lf + 1;
            }
        }
    }
    push_printable(&mut out, &body[pos..]);
    cap(out, line.len())
}

/// A POP3 server line.
pub(crate) fn pop3_server_line(line: &[u8]) -> String {
    let mut out = String::new();
    push_printable(&mut out, line);
    cap(out, line.len())
}

/// A POP3 command line, with the second guard: the argument of PASS, APOP or AUTH (past the
/// mechanism name) is never shown.
pub(crate) fn pop3_client_line(line: &[u8]) -> String {
    let mut words = line.splitn(3, |&b| b == b' ');
    let verb = words.next().unwrap_or_default();
    let verb_str = String::from_utf8_lossy(verb).to_ascii_uppercase();
    let mut out = String::new();
    if POP3_LOGIN_VERBS.contains(&verb_str.as_str()) {
        push_printable(&mut out, verb);
        match (verb_str.as_str(), words.next(), words.next()) {
            (_, None, _) => {}
            ("AUTH", Some(mech), None) => {
                out.push(' ');
                push_printable(&mut out, mech);
            }
            ("AUTH", Some(mech), Some(_)) => {
                out.push(' ');
                push_printable(&mut out, mech);
                out.push(' ');
                out.push_str(REDACTED);
            }
            _ => {
                out.push(' ');
                out.push_str(REDACTED);
            }
        }
        return out;
    }
    push_printable(&mut out, line);
    cap(out, line.len())
}

/// An IMAP command line the client did not mark as holding a secret: shown, unless its verb
/// is a login verb, whose arguments are then redacted all the same (`m1 LOGIN <redacted>`,
/// `m1 AUTHENTICATE PLAIN <redacted>`).
fn imap_client_line(line: &[u8]) -> String {
    let mut words = line.splitn(4, |&b| b == b' ');
    let tag = words.next().unwrap_or_default();
    if let Some(verb) = words.next() {
        let upper = String::from_utf8_lossy(verb).to_ascii_uppercase();
        if LOGIN_VERBS.contains(&upper.as_str()) {
            let mut out = String::new();
            push_printable(&mut out, tag);
            out.push(' ');
            out.push_str(&upper);
            match (upper.as_str(), words.next(), words.next()) {
                ("AUTHENTICATE", Some(mech), rest) => {
                    out.push(' ');
                    push_printable(&mut out, mech);
                    if rest.is_some() {
                        out.push(' ');
                        out.push_str(REDACTED);
                    }
                }
                (_, Some(_), _) => {
                    out.push(' ');
                    out.push_str(REDACTED);
                }
                (_, None, _) => {}
            }
            return out;
        }
    }
    let mut out = String::new();
    push_printable(&mut out, line);
    cap(out, line.len())
}

/// The client's byte stream cut back into command lines, literals elided: an APPEND is shown
/// as its command line and then `{N bytes elided}`, whatever the size and however the body
/// was written (one buffer or many chunks).
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    /// The line being written, at most [`MAX_KEPT`] bytes of it.
    line: Vec<u8>,
    /// Bytes of the line beyond what was kept.
    dropped: usize,
    /// Bytes of a literal still to pass.
    literal: u64,
    /// The literal that just passed, shown at the start of the rest of its line.
    after_literal: Option<u64>,
}

impl Outbound {
    /// Takes the next bytes written; calls `emit` with each line they complete.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) {
        while !bytes.is_empty() {
            if self.literal > 0 {
                let take = self.literal.min(bytes.len() as u64);
                self.literal -= take;
                bytes = &bytes[take as usize..];
                continue;
            }
            let Some(lf) = memchr::memchr(b'\n', bytes) else {
                self.keep(bytes);
                return;
            };
            self.keep(&bytes[..lf]);
            bytes = &bytes[lf + 1..];
            emit(self.finish_line());
        }
    }

    /// Whether no line is half written (a redacted line may be written now).
    pub(crate) fn at_line_start(&self) -> bool {
        self.line.is_empty() && self.dropped == 0 && self.literal == 0
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_KEPT.saturating_sub(self.line.len());
        let take = room.min(bytes.len());
        self.line.extend_from_slice(&bytes[..take]);
        self.dropped += bytes.len() - take;
    }

    fn finish_line(&mut self) -> String {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let whole = self.line.len() + self.dropped;
        let shown = match self.after_literal.take() {
            Some(len) => {
                let mut out = elided(len);
                push_printable(&mut out, &self.line);
                cap(out, whole)
            }
            None => cap(imap_client_line(&self.line), whole),
        };
        if self.dropped == 0 {
            if let Some((len, _)) = announcement(&self.line) {
                self.literal = len;
                self.after_literal = Some(len);
            }
        }
        let shown = if self.dropped > 0 && !shown.ends_with("cut]") {
            format!("{shown} ... [line of {whole} bytes cut]")
        } else {
            shown
        };
        self.line.clear();
        self.dropped = 0;
        shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbound(chunks: &[&[u8]]) -> Vec<String> {
        let mut o = Outbound::default();
        let mut lines = Vec::new();
        for c in chunks {
            o.feed(c, |l| lines.push(l));
        }
        assert!(o.at_line_start(), "{o:?}");
        lines
    }

    #[test]
    fn append_bodies_are_elided_to_their_size_however_they_are_written() {
        let body = b"Subject: hi\r\n\r\nthe secret body line\r\n";
        let head = format!("m7 APPEND \"INBOX\" (\\Seen) {{{}+}}\r\n", body.len());
        let expected = vec![
            format!("m7 APPEND \"INBOX\" (\\Seen) {{{}+}}", body.len()),
            format!("{{{} bytes elided}}", body.len()),
        ];
        let mut whole = head.clone().into_bytes();
        whole.extend_from_slice(body);
        whole.extend_from_slice(b"\r\n");
        assert_eq!(outbound(&[&whole]), expected);
        // Byte by byte: the same lines.
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(outbound(&bytes), expected);
        // Head, body chunks, CRLF, as the session writes them.
        let mut chunks: Vec<&[u8]> = vec![head.as_bytes()];
        chunks.extend(body.chunks(5));
        chunks.push(b"\r\n");
        let lines = outbound(&chunks);
        assert_eq!(lines, expected);
        assert!(lines.iter().all(|l| !l.contains("secret body")));
    }

    #[test]
    fn multiappend_and_literal_names_keep_the_rest_of_their_line() {
        let lines = outbound(&[
            b"m3 APPEND x () {3+}\r\nabc () {2+}\r\nde\r\nm4 SELECT {4+}\r\nname (CONDSTORE)\r\n",
        ]);
        assert_eq!(
            lines,
            [
                "m3 APPEND x () {3+}",
                "{3 bytes elided} () {2+}",
                "{2 bytes elided}",
                "m4 SELECT {4+}",
                "{4 bytes elided} (CONDSTORE)",
            ]
        );
    }

    #[test]
    fn login_verbs_are_redacted_even_when_not_marked() {
        let lines = outbound(&[
            b"m1 LOGIN \"alice\" \"pw\"\r\n",
            b"m2 login alice pw\r\n",
            b"m3 AUTHENTICATE PLAIN AGFsaWNlAHB3\r\n",
            b"m4 AUTHENTICATE PLAIN\r\n",
            b"m5 NOOP\r\n",
        ]);
        assert_eq!(
            lines,
            [
                "m1 LOGIN <redacted>",
                "m2 LOGIN <redacted>",
                "m3 AUTHENTICATE PLAIN <redacted>",
                "m4 AUTHENTICATE PLAIN",
                "m5 NOOP",
            ]
        );
    }

    #[test]
    fn pop3_credentials_are_redacted() {
        assert_eq!(pop3_client_line(b"PASS hunter2"), "PASS <redacted>");
        assert_eq!(pop3_client_line(b"pass hunter2 x"), "pass <redacted>");
        assert_eq!(pop3_client_line(b"APOP kim 0123abcd"), "APOP <redacted>");
        assert_eq!(
            pop3_client_line(b"AUTH PLAIN AGtpbQBodW50ZXIy"),
            "AUTH PLAIN <redacted>"
        );
        assert_eq!(pop3_client_line(b"AUTH PLAIN"), "AUTH PLAIN");
        assert_eq!(pop3_client_line(b"USER kim"), "USER kim");
        assert_eq!(pop3_client_line(b"RETR 3"), "RETR 3");
    }

    #[test]
    fn server_literals_are_elided_inline_or_streamed() {
        let line = b"* 1 FETCH (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {21}\r\nMessage-ID: <a@b>\r\n\r\n FLAGS (\\Seen))\r\n";
        assert_eq!(
            server_line(line, &[]),
            "* 1 FETCH (UID 5 BODY[HEADER.FIELDS (MESSAGE-ID)] {21 bytes elided} FLAGS (\\Seen))"
        );
        // A streamed body: the framer's `{0}` placeholder stands at the head's length.
        let head = b"* 2 FETCH (UID 6 BODY[] ";
        let mut line = head.to_vec();
        line.extend_from_slice(b"{0}\r\n)\r\n");
        assert_eq!(
            server_line(&line, &[(head.len(), 123_456)]),
            "* 2 FETCH (UID 6 BODY[] {123456 bytes elided})"
        );
        // A literal8 and a literal naming a folder.
        assert_eq!(
            server_line(b"* LIST () \"/\" {5}\r\nSe\xffnt\r\n", &[]),
            "* LIST () \"/\" {5 bytes elided}"
        );
        assert_eq!(
            server_line(b"* 3 FETCH (BINARY[] ~{3}\r\nabc)\r\n", &[]),
            "* 3 FETCH (BINARY[] ~{3 bytes elided})"
        );
    }

    #[test]
    fn status_lines_are_shown_whole_and_escaped() {
        assert_eq!(
            server_line(
                b"m1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                &[]
            ),
            "m1 NO [AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(
            server_line(b"* OK caf\xc3\xa9 \x01\xff\r\n", &[]),
            "* OK caf\u{e9} \\x01\\xff"
        );
        // A literal announcement that runs past the line (a lying server) costs nothing.
        assert_eq!(
            server_line(b"* 1 FETCH (BODY[] {99999999999}\r\nab\r\n", &[]),
            "* 1 FETCH (BODY[] {99999999999 bytes elided}"
        );
    }

    #[test]
    fn long_lines_are_cut_and_say_so() {
        let mut line = b"* SEARCH".to_vec();
        for i in 0..2000 {
            line.extend_from_slice(format!(" {i}").as_bytes());
        }
        line.extend_from_slice(b"\r\n");
        let shown = server_line(&line, &[]);
        assert!(shown.starts_with("* SEARCH 0 1 2"));
        assert!(shown.ends_with(&format!("[line of {} bytes cut]", line.len())));
        assert!(shown.chars().count() < MAX_SHOWN + 50);

        let mut cmd = b"m9 UID STORE ".to_vec();
        cmd.extend(std::iter::repeat_n(b'1', MAX_KEPT * 3));
        cmd.extend_from_slice(b" +FLAGS (\\Seen)\r\nm10 NOOP\r\n");
        let lines = outbound(&[&cmd]);
        assert_eq!(lines.len(), 2);
        assert!(
            lines[0].ends_with("bytes cut]"),
            "{}",
            &lines[0][lines[0].len() - 40..]
        );
        assert_eq!(lines[1], "m10 NOOP");
    }
}
