//! The scripted server's reading of client commands: framing (lines and the
//! literals they announce, with the `+` a synchronising literal needs) and
//! the small grammar pieces its commands use (tokens, sequence sets, dates,
//! base64). Every function here returns an error value for odd input; none
//! panics, and every buffer is bounded by [`Limits`].

use std::io::{BufRead, ErrorKind, Write};

/// Bounds on what one command may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Longest line (without literals).
    pub(crate) line: usize,
    /// Largest literal.
    pub(crate) literal: u64,
    /// Most literals in one command.
    pub(crate) literals: usize,
}

pub(crate) const LIMITS: Limits = Limits {
    line: 64 * 1024,
    literal: 1024 * 1024,
    literals: 16,
};

/// A piece of a command as it came: text (one line, CRLF removed, literal
/// marker kept) or a literal's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(Vec<u8>),
    Literal(Vec<u8>),
}

/// The outcome of reading one command.
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole command.
    Command(Vec<Part>),
    /// A command refused while reading (a synchronising literal too large):
    /// its line has been read, nothing more comes for it; answer
    /// `<tag> BAD <why>`.
    Refused { tag: String, why: &'static str },
    /// The client closed the connection.
    Eof,
    /// The stream cannot be followed any more (line too long, a
    /// non-synchronising literal too large): say BYE and close.
    Broken(&'static str),
}

/// Reads one command, sending `+ Ready for literal data` before each
/// synchronising literal.
pub(crate) fn read_command(
    r: &mut impl BufRead,
    w: &mut impl Write,
    limits: Limits,
) -> std::io::Result<Read> {
    let mut parts = Vec::new();
    loop {
        let line = match read_line(r, limits.line)? {
            Line::Eof => return Ok(Read::Eof),
            Line::TooLong => return Ok(Read::Broken("command line too long")),
            Line::Text(l) => l,
        };
        let literal = literal_marker(&line);
        parts.push(Part::Text(line));
        let Some((n, sync)) = literal else {
            return Ok(Read::Command(parts));
        };
        let too_many = parts.len() / 2 >= limits.literals;
        if n > limits.literal || too_many {
            if sync {
                let Some(Part::Text(first)) = parts.first() else {
                    return Ok(Read::Broken("no command"));
                };
                let tag = first.split(|&b| b == b' ').next().unwrap_or_default();
                return Ok(Read::Refused {
                    tag: String::from_utf8_lossy(tag).into_owned(),
                    why: if too_many {
                        "Too many literals"
                    } else {
                        "Literal too large"
                    },
                });
            }
            return Ok(Read::Broken("literal too large"));
        }
        if sync {
            w.write_all(b"+ Ready for literal data\r\n")?;
            w.flush()?;
        }
        let mut data = vec![0u8; n as usize];
        match r.read_exact(&mut data) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(Read::Eof),
            Err(e) => return Err(e),
        }
        parts.push(Part::Literal(data));
    }
}

/// One line of a SASL exchange (CRLF removed); `None` at EOF or when it
/// is longer than `max`.
pub(crate) fn read_sasl_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    Ok(match read_line(r, max)? {
        Line::Text(l) => Some(l),
        Line::TooLong | Line::Eof => None,
    })
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// One line without its CRLF (a bare LF is accepted too).
fn read_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(Line::Eof);
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(p) => {
                line.extend_from_slice(&buf[..p]);
                r.consume(p + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(if line.len() > max {
                    Line::TooLong
                } else {
                    Line::Text(line)
                });
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                r.consume(n);
                if line.len() > max + 1 {
                    return Ok(Line::TooLong);
                }
            }
        }
    }
}

/// The literal announced at the end of a line (CRLF already removed):
/// `{N}` → `(N, true)`, `{N+}` → `(N, false)`.
pub(crate) fn literal_marker(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let (inner, sync) = match inner.strip_suffix(b"+") {
        Some(i) => (i, false),
        None => (inner, true),
    };
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let n = number(&inner[open + 1..])?;
    Some((n, sync))
}

/// A decimal number of at most 19 digits.
pub(crate) fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A token of command arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// An atom, including sections such as `BODY.PEEK[HEADER.FIELDS (A B)]`.
    Atom(Vec<u8>),
    /// A quoted string, unescaped.
    Quoted(Vec<u8>),
    /// A literal's content.
    Literal(Vec<u8>),
    Open,
    Close,
}

impl Token {
    /// The string value of an astring (atom, quoted or literal).
    pub(crate) fn astring(&self) -> Option<&[u8]> {
        match self {
            Token::Atom(v) | Token::Quoted(v) | Token::Literal(v) => Some(v),
            Token::Open | Token::Close => None,
        }
    }

    /// The atom, upper-cased.
    pub(crate) fn atom_upper(&self) -> Option<String> {
        match self {
            Token::Atom(v) => Some(String::from_utf8_lossy(v).to_ascii_uppercase()),
            _ => None,
        }
    }
}

/// Splits the arguments (the parts after the command name) into tokens.
pub(crate) fn tokenize(parts: &[Part]) -> Result<Vec<Token>, &'static str> {
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Literal(v) => out.push(Token::Literal(v.clone())),
            Part::Text(t) => {
                let mut text = t.as_slice();
                // The marker of the literal that follows is not a token.
                if matches!(parts.get(i + 1), Some(Part::Literal(_))) {
                    if let Some(open) = text.iter().rposition(|&b| b == b'{') {
                        text = &text[..open];
                    }
                }
                tokenize_text(text, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn tokenize_text(text: &[u8], out: &mut Vec<Token>) -> Result<(), &'static str> {
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b' ' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'"' => {
                let mut v = Vec::new();
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err("Unterminated quoted string"),
                        Some(b'"') => break,
                        Some(b'\\') => {
                            v.push(*text.get(i + 1).ok_or("Unterminated quoted string")?);
                            i += 2;
                        }
                        Some(&b) => {
                            v.push(b);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token::Quoted(v));
            }
            b'{' => return Err("Misplaced literal"),
            _ => {
                let start = i;
                let mut depth = 0u32;
                while i < text.len() {
                    match text[i] {
                        b'[' => depth += 1,
                        b']' => depth = depth.saturating_sub(1),
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    i += 1;
                }
                if depth > 0 {
                    return Err("Unterminated section");
                }
                out.push(Token::Atom(text[start..i].to_vec()));
            }
        }
    }
    Ok(())
}

/// A sequence set (`1:*`, `3,5:7`), as inclusive ranges; `u32::MAX`
/// stands for `*` until [`SeqSet::contains`] is given its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeqSet(Vec<(Bound, Bound)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Num(u32),
    Star,
}

impl SeqSet {
    pub(crate) fn parse(s: &[u8]) -> Option<SeqSet> {
        let bound = |b: &[u8]| -> Option<Bound> {
            if b == b"*" {
                return Some(Bound::Star);
            }
            let n = u32::try_from(number(b)?).ok()?;
            (n > 0).then_some(Bound::Num(n))
        };
        let mut ranges = Vec::new();
        for item in s.split(|&b| b == b',') {
            let mut ends = item.splitn(2, |&b| b == b':');
            let a = bound(ends.next()?)?;
            let b = match ends.next() {
                Some(e) => bound(e)?,
                None => a,
            };
            ranges.push((a, b));
        }
        Some(SeqSet(ranges))
    }

    /// Whether `n` is in the set, `*` being `star` (the largest number in
    /// use; `None` for an empty folder, where `*` matches nothing).
    pub(crate) fn contains(&self, n: u32, star: Option<u32>) -> bool {
        self.0.iter().any(|&(a, b)| {
            let value = |x| match x {
                Bound::Num(v) => Some(v),
                Bound::Star => star,
            };
            match (value(a), value(b)) {
                (Some(a), Some(b)) => (a.min(b)..=a.max(b)).contains(&n),
                _ => false,
            }
        })
    }

    /// The largest plain number named (not `*`).
    pub(crate) fn max_number(&self) -> u32 {
        self.0
            .iter()
            .flat_map(|&(a, b)| [a, b])
            .filter_map(|x| match x {
                Bound::Num(v) => Some(v),
                Bound::Star => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// A day `d-Mon-yyyy` (the date part of an internal date, or a SEARCH
/// date), as `(year, month, day)`.
pub(crate) fn day(s: &[u8]) -> Option<(u32, u32, u32)> {
    const MONTHS: [&[u8]; 12] = [
        b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV",
        b"DEC",
    ];
    let s = s.trim_ascii();
    let s = s.split(|&b| b == b' ').next()?;
    let mut it = s.split(|&b| b == b'-');
    let d = u32::try_from(number(it.next()?)?).ok()?;
    let mon = it.next()?.to_ascii_uppercase();
    let m = MONTHS.iter().position(|&x| x == mon.as_slice())? as u32 + 1;
    let y = u32::try_from(number(it.next()?)?).ok()?;
    if it.next().is_some() || !(1..=31).contains(&d) {
        return None;
    }
    Some((y, m, d))
}

/// Decodes standard base64 (padding optional); `None` if malformed.
pub(crate) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = s.trim_ascii();
    let s = s.strip_suffix(b"==").or(s.strip_suffix(b"=")).unwrap_or(s);
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(input: &[u8]) -> (Vec<Read>, Vec<u8>) {
        let mut r = std::io::BufReader::with_capacity(3, input);
        let mut w = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_command(&mut r, &mut w, LIMITS).unwrap() {
                Read::Eof => break,
                other => got.push(other),
            }
        }
        (got, w)
    }

    #[test]
    fn literals_are_read_and_sync_ones_get_a_continuation() {
        let (got, w) = read_all(b"a LOGIN {5}\r\nalice {3+}\r\npw!\r\nb NOOP\n");
        assert_eq!(w, b"+ Ready for literal data\r\n");
        let Read::Command(parts) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!(
            parts,
            &[
                Part::Text(b"a LOGIN {5}".to_vec()),
                Part::Literal(b"alice".to_vec()),
                Part::Text(b" {3+}".to_vec()),
                Part::Literal(b"pw!".to_vec()),
                Part::Text(Vec::new()),
            ]
        );
        let tokens = tokenize(&parts[..]).unwrap();
        assert_eq!(tokens[2], Token::Literal(b"alice".to_vec()));
        assert_eq!(tokens[3], Token::Literal(b"pw!".to_vec()));
        assert!(matches!(&got[1], Read::Command(p) if p == &[Part::Text(b"b NOOP".to_vec())]));
    }

    #[test]
    fn an_oversized_sync_literal_is_refused_without_continuation() {
        let (got, w) = read_all(b"t1 LOGIN {99999999}\r\nt2 NOOP\r\n");
        assert!(w.is_empty());
        assert!(matches!(&got[0], Read::Refused { tag, .. } if tag == "t1"));
        assert!(matches!(&got[1], Read::Command(_)));
    }

    #[test]
    fn an_oversized_line_breaks_the_stream() {
        let mut input = vec![b'x'; LIMITS.line + 10];
        input.extend_from_slice(b"\r\n");
        let (got, _) = read_all(&input);
        assert!(matches!(got[0], Read::Broken(_)));
    }

    #[test]
    fn tokens_keep_sections_whole() {
        let t = tokenize(&[Part::Text(
            b"1:* (UID BODY.PEEK[HEADER.FIELDS (DATE FROM)] \"a\\\"b\")".to_vec(),
        )])
        .unwrap();
        assert_eq!(
            t,
            vec![
                Token::Atom(b"1:*".to_vec()),
                Token::Open,
                Token::Atom(b"UID".to_vec()),
                Token::Atom(b"BODY.PEEK[HEADER.FIELDS (DATE FROM)]".to_vec()),
                Token::Quoted(b"a\"b".to_vec()),
                Token::Close,
            ]
        );
        assert!(tokenize(&[Part::Text(b"\"open".to_vec())]).is_err());
        assert!(tokenize(&[Part::Text(b"BODY[".to_vec())]).is_err());
    }

    #[test]
    fn sequence_sets() {
        let s = SeqSet::parse(b"3,5:7,9:*").unwrap();
        assert!(s.contains(3, Some(20)) && s.contains(6, Some(20)) && s.contains(15, Some(20)));
        assert!(!s.contains(4, Some(20)) && !s.contains(8, Some(20)));
        assert!(SeqSet::parse(b"7:5").unwrap().contains(6, None));
        assert!(!SeqSet::parse(b"1:*").unwrap().contains(1, None));
        for bad in [&b""[..], b"0", b"1:", b"a", b"1,,2", b"4294967296"] {
            assert!(SeqSet::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn days_and_base64() {
        assert_eq!(day(b" 5-Mar-2021 10:00:00 +0000"), Some((2021, 3, 5)));
        assert_eq!(day(b"17-jul-1996"), Some((1996, 7, 17)));
        assert_eq!(day(b"yesterday"), None);
        assert_eq!(day(b"32-Jan-2020"), None);
        assert_eq!(base64_decode(b"AGFsaWNlAHB3").unwrap(), b"\0alice\0pw");
        assert_eq!(base64_decode(b"YQ==").unwrap(), b"a");
        assert!(base64_decode(b"a*b").is_none());
    }
}
