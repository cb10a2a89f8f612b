//! Finding the messages of an mbox file in one pass, without holding more than a line's first
//! bytes and one header block in memory.
//!
//! # Where a message starts and ends
//!
//! A message starts after a `From ` line that is at the start of the file, or right after an
//! empty line; after the first message, the `From ` line must also carry a date (as mutt
//! requires) or be followed by a header field line (some writers put no date: `From - `), so
//! that an unescaped "From the desk of..." paragraph in an mboxo file is not taken for a new
//! message. The message ends before the empty line that precedes the next
//! `From ` line: that empty line is the separator an mbox writer adds after every message
//! (mbox(5), Python's `mailbox`, mutt), not part of the message. The last message of the file
//! loses a final empty line the same way.
//!
//! When a message's header has a `Content-Length:` and the file agrees with it (right after
//! that many body bytes comes the end of the file, a `From ` line, or an empty line and then a
//! `From ` line or the end), the body is exactly that long and `From ` lines inside it do not
//! split it. A `Content-Length:` the file does not agree with is ignored.
//!
//! # What is taken from the envelope and the header
//!
//! INTERNALDATE is the date of the `From ` line (`asctime`, UTC unless it names a zone),
//! else the `Date:` header. Flags come from `Status:` (`R` \Seen) and `X-Status:` (`A`
//! \Answered, `F` \Flagged, `D` \Deleted, `T` \Draft), keywords from `X-Keywords:`, as mutt and
//! Dovecot write them. The message bytes are not changed: those headers stay in the message.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::unescape::{is_escaped, MAX_QUOTES};
use super::MboxFlavor;
use crate::imap::is_sendable_keyword;
use crate::model::{Flags, InternalDate};
use crate::source::headers::{self, MAX_HEADER_BYTES};
use crate::source::AccessError;

/// How many bytes of each line the scanner looks at.
const LINE_PREFIX: usize = MAX_QUOTES + 64;
/// Header lines longer than this are cut before they are parsed.
const HEADER_LINE: usize = 4096;

/// One message of an mbox file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The 1-based line number of its `From ` line (for error messages).
    pub line: u64,
    /// The offset of its first byte (after the `From ` line).
    pub start: u64,
    /// The offset just past its last byte.
    pub end: u64,
    /// Its length once un-escaped.
    pub len: u64,
    /// Its INTERNALDATE.
    pub internal_date: Option<InternalDate>,
    /// Its `Date:` header.
    pub header_date: Option<InternalDate>,
    /// Its flags.
    pub flags: Flags,
}

struct Current {
    entry: Entry,
    in_header: bool,
    header: Vec<u8>,
    /// Where the body ends, when Content-Length says so and the file agrees.
    cl_end: Option<u64>,
    /// Lines un-escaped so far.
    escaped: u64,
}

struct Scanner<'a> {
    path: &'a Path,
    file: &'a File,
    size: u64,
    flavor: MboxFlavor,
    out: Vec<Entry>,
    cur: Option<Current>,
    /// The previous line was empty; with its start offset.
    prev_blank: Option<u64>,
    line_no: u64,
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// The date of a `From ` line: the text after the sender.
pub(crate) fn from_line_date(line: &[u8]) -> Option<InternalDate> {
    let rest = line.strip_prefix(b"From ")?;
    let text = String::from_utf8_lossy(rest);
    let text = text.trim_start();
    let (_, date) = text.split_once(|c: char| c.is_ascii_whitespace())?;
    headers::parse_date(date)
}

fn flags_of(fields: &[(&[u8], Vec<u8>)]) -> Flags {
    let mut flags = Flags::new();
    let letters = |name| headers::field(fields, name).unwrap_or_default();
    if letters("Status").contains(&b'R') {
        flags.insert("\\Seen");
    }
    for &b in letters("X-Status") {
        match b {
            b'A' => flags.insert("\\Answered"),
            b'F' => flags.insert("\\Flagged"),
            b'D' => flags.insert("\\Deleted"),
            b'T' => flags.insert("\\Draft"),
            _ => {}
        }
    }
    let keywords = String::from_utf8_lossy(letters("X-Keywords")).into_owned();
    for k in keywords.split([',', ' ', '\t']) {
        if !k.is_empty() && is_sendable_keyword(k) {
            flags.insert(k);
        }
    }
    flags
}

impl Scanner<'_> {
    fn at(&self, offset: u64, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        let mut got = 0;
        while got < n {
            match self.file.read_at(&mut buf[got..], offset + got as u64) {
                Ok(0) | Err(_) => break,
                Ok(k) => got += k,
            }
        }
        buf.truncate(got);
        buf
    }

    /// Whether the line at `offset` is a header field (`Name: value`).
    fn header_follows(&self, offset: u64) -> bool {
        let next = self.at(offset, 80);
        match next.iter().position(|&b| b == b':') {
            Some(colon) if colon > 0 => next[..colon].iter().all(|&b| (33..=126).contains(&b)),
            _ => false,
        }
    }

    /// Whether the file agrees that the body ends at `end` (see the module documentation).
    fn content_length_fits(&self, body_start: u64, end: u64) -> bool {
        if end > self.size {
            return false;
        }
        if end == self.size {
            return true;
        }
        if end > body_start && self.at(end - 1, 1) != b"\n" {
            return false;
        }
        let next = self.at(end, 7);
        next.starts_with(b"From ")
            || next.starts_with(b"\nFrom ")
            || next.starts_with(b"\r\nFrom ")
            || (next == b"\n" && end + 1 == self.size)
            || (next == b"\r\n" && end + 2 == self.size)
    }

    fn finish(&mut self, end: u64) {
        if let Some(c) = self.cur.take() {
            let mut e = c.entry;
            e.end = end.max(e.start);
            e.len = (e.end - e.start).saturating_sub(c.escaped);
            if c.in_header {
                // A message that is all header.
                let fields = headers::fields(&c.header);
                e.flags = flags_of(&fields);
                e.header_date = headers::date_field(&fields);
            }
            if e.internal_date.is_none() {
                e.internal_date = e.header_date;
            }
            self.out.push(e);
        }
    }

    fn line(&mut self, start: u64, len: u64, prefix: &[u8]) -> Result<(), AccessError> {
        self.line_no += 1;
        let blank = is_blank(prefix);
        // The end of a body Content-Length vouched for.
        if let Some(end) = self.cur.as_ref().and_then(|c| c.cl_end) {
            if start >= end {
                self.finish(end);
            }
        }
        let inside_cl = self.cur.as_ref().is_some_and(|c| c.cl_end.is_some());
        if !inside_cl && prefix.starts_with(b"From ") {
            let first = self.out.is_empty() && self.cur.is_none();
            let after_blank = self.prev_blank.is_some() || self.cur.is_none();
            let date = from_line_date(prefix);
            if first || (after_blank && (date.is_some() || self.header_follows(start + len))) {
                let end = self.prev_blank.unwrap_or(start);
                self.finish(end);
                self.cur = Some(Current {
                    entry: Entry {
                        line: self.line_no,
                        start: start + len,
                        end: start + len,
                        len: 0,
                        internal_date: date,
                        header_date: None,
                        flags: Flags::new(),
                    },
                    in_header: true,
                    header: Vec::new(),
                    cl_end: None,
                    escaped: 0,
                });
                self.prev_blank = None;
                return Ok(());
            }
        }
        let Some(cur) = self.cur.as_mut() else {
            if blank && !self.out.is_empty() {
                // The separator after a message whose Content-Length ended it.
                self.prev_blank = Some(start);
                return Ok(());
            }
            return Err(AccessError::Format {
                path: format!("{}:{}", self.path.display(), self.line_no),
                detail: if self.out.is_empty() {
                    "not an mbox file: it does not start with a `From ` line".into()
                } else {
                    "text between messages that is not a `From ` line".into()
                },
            });
        };
        if is_escaped(prefix, self.flavor) {
            cur.escaped += 1;
        }
        if cur.in_header {
            if blank {
                cur.in_header = false;
                let fields = headers::fields(&cur.header);
                cur.entry.flags = flags_of(&fields);
                cur.entry.header_date = headers::date_field(&fields);
                let cl = headers::field(&fields, "Content-Length")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                let body_start = start + len;
                cur.header = Vec::new();
                if let Some(cl) = cl {
                    let end = body_start.saturating_add(cl);
                    if self.content_length_fits(body_start, end) {
                        if let Some(c) = self.cur.as_mut() {
                            c.cl_end = Some(end);
                        }
                        if end == body_start {
                            self.prev_blank = None;
                            self.finish(end);
                            return Ok(());
                        }
                    }
                }
            } else if cur.header.len() < MAX_HEADER_BYTES {
                let keep = prefix.len().min(HEADER_LINE);
                cur.header.extend_from_slice(&prefix[..keep]);
                if keep < prefix.len() || (len as usize) > prefix.len() {
                    // A cut line still ends a line for the header parser.
                    cur.header.push(b'\n');
                }
            }
        }
        self.prev_blank = blank.then_some(start);
        Ok(())
    }
}

/// Scans an mbox file: its messages in order, and the file's size.
pub(crate) fn scan(path: &Path, flavor: MboxFlavor) -> Result<(Vec<Entry>, u64), AccessError> {
    let io = |e| AccessError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file.try_clone().map_err(io)?);
    let mut s = Scanner {
        path,
        file: &file,
        size,
        flavor,
        out: Vec::new(),
        cur: None,
        prev_blank: None,
        line_no: 0,
    };
    let mut line_start = 0u64;
    let mut line_len = 0u64;
    let mut prefix: Vec<u8> = Vec::with_capacity(LINE_PREFIX);
    loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() {
            if line_len > 0 {
                s.line(line_start, line_len, &prefix)?;
            }
            break;
        }
        let (take, complete) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if prefix.len() < LINE_PREFIX {
            let room = LINE_PREFIX - prefix.len();
            prefix.extend_from_slice(&buf[..take.min(room)]);
        }
        line_len += take as u64;
        reader.consume(take);
        if complete {
            s.line(line_start, line_len, &prefix)?;
            line_start += line_len;
            line_len = 0;
            prefix.clear();
        }
    }
    // The last message loses a final empty line, like every other one.
    let end = match (&s.cur, s.prev_blank) {
        (Some(c), Some(blank)) if c.cl_end.is_none() => blank,
        (Some(c), _) => c.cl_end.unwrap_or(size).min(size),
        (None, _) => size,
    };
    s.finish(end);
    Ok((s.out, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_bytes(bytes: &[u8], flavor: MboxFlavor) -> Vec<(Vec<u8>, u64)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box");
        std::fs::write(&p, bytes).unwrap();
        let (entries, size) = scan(&p, flavor).unwrap();
        assert_eq!(size, bytes.len() as u64);
        entries
            .iter()
            .map(|e| (bytes[e.start as usize..e.end as usize].to_vec(), e.len))
            .collect()
    }

    #[test]
    fn messages_end_before_the_separating_empty_line() {
        let mbox = b"From a@b Mon Jan  1 00:00:00 2001\nSubject: 1\n\nbody\n>From here\n\n\
From c@d Tue Jan  2 00:00:00 2001\nSubject: 2\n\nFrom the desk of\n\nlast\n\n";
        let m = scan_bytes(mbox, MboxFlavor::Mboxrd);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, b"Subject: 1\n\nbody\n>From here\n");
        assert_eq!(m[0].1, m[0].0.len() as u64 - 1);
        // "From the desk of" has no date and no header after it: not a separator.
        assert_eq!(m[1].0, b"Subject: 2\n\nFrom the desk of\n\nlast\n");
        // "From - " has no date but a header after it: a separator.
        let dateless = b"From - \nA: 1\n\nx\n\nFrom - \nB: 2\n\ny\n";
        let m = scan_bytes(dateless, MboxFlavor::Mboxrd);
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].0, b"B: 2\n\ny\n");
    }

    #[test]
    fn content_length_decides_when_the_file_agrees() {
        let body = "line\n\nFrom x Mon Jan  1 00:00:00 2001\n";
        let mbox = format!(
            "From a Mon Jan  1 00:00:00 2001\nContent-Length: {}\n\n{body}\n\
             From b Mon Jan  1 00:00:00 2001\nX: y\n\nz\n",
            body.len()
        );
        let m = scan_bytes(mbox.as_bytes(), MboxFlavor::Mboxrd);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[0].0,
            format!("Content-Length: {}\n\n{body}", body.len()).as_bytes()
        );
        assert_eq!(m[1].0, b"X: y\n\nz\n");
        // A wrong Content-Length is ignored.
        let bad = b"From a Mon Jan  1 00:00:00 2001\nContent-Length: 3\n\nline\n\n\
From b Mon Jan  1 00:00:00 2001\nX: y\n\nz\n";
        let m = scan_bytes(bad, MboxFlavor::Mboxrd);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].0, b"Content-Length: 3\n\nline\n");
    }

    #[test]
    fn flags_dates_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box");
        std::fs::write(
            &p,
            "From a Fri Jul  8 12:08:34 2011 -0700\r\nStatus: RO\r\nX-Status: AF\r\nX-Keywords: $Label1, Work\r\nDate: 1 Jan 2000 00:00:00 +0000\r\n\r\nx\r\n",
        )
        .unwrap();
        let (e, _) = scan(&p, MboxFlavor::Mboxrd).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].flags.to_imap_list(),
            "($Label1 Work \\Answered \\Flagged \\Seen)"
        );
        assert_eq!(
            e[0].internal_date.unwrap().to_imap(),
            "08-Jul-2011 12:08:34 -0700"
        );
        assert_eq!(e[0].header_date.unwrap().unix(), 946684800);
        // The CRLF message keeps its CRLF, and no final empty line was there to remove.
        assert_eq!(e[0].end, std::fs::metadata(&p).unwrap().len());
        std::fs::write(&p, "Subject: not an mbox\n").unwrap();
        let err = scan(&p, MboxFlavor::Mboxrd).unwrap_err().to_string();
        assert!(err.contains("box:1"), "{err}");
        std::fs::write(&p, "").unwrap();
        assert!(scan(&p, MboxFlavor::Mboxrd).unwrap().0.is_empty());
    }
}
