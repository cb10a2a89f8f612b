//! Just enough RFC 5322 for sources that have no INTERNALDATE of their own (POP3, mbox) or must
//! select by the `Date:` header without a server (Maildir, mbox): header fields, unfolded, and
//! a tolerant date parser.
//!
//! mail-parser splits the header into fields. Dates are read here, by hand, because
//! mail-parser 0.11's date readers guess where a wrong day is worse than none (a date decides
//! the INTERNALDATE a message lands with and whether a date filter copies it). Its `Date:`
//! reader takes an unknown month by a hash of its letters (`Foo` is November), wraps a zone
//! out of range (`+9999` is `+0339`, `-600` is `-1200`), knows zone names only in capitals
//! and at the very end (`cst`, `CST ` are `+0000`), reads nothing when the seconds are missing
//! before a zone name or the zone is missing, and reads an `asctime` date as another day. Its
//! `Received:` reader gives missing seconds as `:59` and drops zone names. On the shared corpus
//! (1,683 messages) its `Date:` result differs from this parser's on 18 messages: 12 dates
//! lost, 5 wrong or guessed, 1 read that this parser leaves out (`22:23:35.882 0000`); its
//! `Received:` result differs on 51, every one lost or wrong.
//!
//! The parser accepts what real mail carries, not only what RFC 5322 allows: an optional day of
//! the week, two- and three-digit years (RFC 5322 §4.3), missing seconds, zone names (`GMT`,
//! `UT`, `EST`..`PDT`; military letters and unknown names count as `+0000`), comments such as
//! `(CEST)`, and the C `asctime` form of mbox `From ` lines (`Mon Jan  1 00:00:00 2001`,
//! optionally with a zone before or after the year). Anything it cannot read gives `None`,
//! never a panic and never a guess of a wrong day.

use std::sync::LazyLock;

use mail_parser::{parsers::MessageStream, HeaderName, MessageParser};
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

use crate::model::InternalDate;

/// The most header bytes kept for parsing; a longer header block is cut here (the fields that
/// matter, `Received:` at the top and `Date:`, come early in real mail).
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The header block of a message: everything before the first empty line (or the whole input
/// when there is none). Not mail-parser's end of header: it also ends a header at a line of
/// white space, which real mail has inside its header (several corpus messages begin with one).
pub(crate) fn header_block(message: &[u8]) -> &[u8] {
    let mut at = 0;
    while at < message.len() {
        let end = memchr::memchr(b'\n', &message[at..]).map_or(message.len(), |i| at + i + 1);
        let line = &message[at..end];
        if line == b"\n" || line == b"\r\n" {
            return &message[..at];
        }
        at = end;
    }
    message
}

/// mail-parser, told to skip over every field's value: only where each field starts, where
/// its value starts and where it ends are wanted (its structured readers would decode encoded
/// words, or read a date in their own way). It reads each field by its name's own reader
/// unless one name is set; setting `Date` makes the default, skipping, apply to all.
static SPLITTER: LazyLock<MessageParser> = LazyLock::new(|| {
    MessageParser::new()
        .default_header_ignore()
        .ignore_header(HeaderName::Date)
});

/// The header fields of a header block, in order, with folded lines joined (the CRLF before a
/// continuation removed, its leading white space kept) and the trailing line end removed.
///
/// mail-parser splits the block into fields; the values are taken from the block's own bytes,
/// because mail-parser gives a raw value only with its line breaks kept (`parse_raw`) or
/// decoded (`parse_unstructured`), and an 8-bit byte must reach the caller as it is.
pub(crate) fn fields(block: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut found = Vec::new();
    let mut stream = MessageStream::new(block);
    // mail-parser ends a header at a line of white space; real mail has such lines inside
    // the header, even before its first field, and an empty line (the real end) has already
    // been cut off by `header_block`. So go on to the end of the block.
    while stream.parse_headers(&SPLITTER, &mut found) {}
    found
        .iter()
        .filter_map(|h| {
            let (field, start, end) = (
                h.offset_field as usize,
                h.offset_start as usize,
                h.offset_end as usize,
            );
            // A last line without a colon is taken as a field name by mail-parser; it is no
            // field (garbage, or an mbox `From ` line without a time).
            let name = block.get(field..start.checked_sub(1)?)?;
            if block.get(start - 1) != Some(&b':') {
                return None;
            }
            Some((name.trim_ascii(), unfold(block.get(start..end)?)))
        })
        .collect()
}

/// A field value with the line breaks of its folding removed, trimmed.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(raw.len());
    for line in raw.split(|&b| b == b'\n') {
        value.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    value.trim_ascii().to_vec()
}

/// The first field with this name (case-insensitive), unfolded.
pub(crate) fn field<'a>(fields: &'a [(&[u8], Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
}

/// When the message reached its mailbox: the date of the topmost `Received:` field (the hop
/// added last, by the server that delivered it), else the `Date:` field.
pub(crate) fn arrival_date(fields: &[(&[u8], Vec<u8>)]) -> Option<InternalDate> {
    received_date(fields).or_else(|| date_field(fields))
}

/// The date of the topmost `Received:` field: the text after its last `;`.
pub(crate) fn received_date(fields: &[(&[u8], Vec<u8>)]) -> Option<InternalDate> {
    let value = field(fields, "Received")?;
    let at = memchr::memrchr(b';', value)?;
    parse_date(&String::from_utf8_lossy(&value[at + 1..]))
}

/// The `Date:` field.
pub(crate) fn date_field(fields: &[(&[u8], Vec<u8>)]) -> Option<InternalDate> {
    parse_date(&String::from_utf8_lossy(field(fields, "Date")?))
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

fn month_of(token: &str) -> Option<Month> {
    if token.len() < 3 || !token.is_ascii() || !token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let lower = token.to_ascii_lowercase();
    let idx = MONTHS.iter().position(|m| lower.starts_with(m))?;
    Month::try_from(idx as u8 + 1).ok()
}

fn zone_of(token: &str) -> Option<UtcOffset> {
    let t = token.trim_matches(|c: char| c == '(' || c == ')');
    let b = t.as_bytes();
    if b.len() == 5 && (b[0] == b'+' || b[0] == b'-') && b[1..].iter().all(u8::is_ascii_digit) {
        let sign = if b[0] == b'-' { -1 } else { 1 };
        let h = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
        let m = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
        if h > 23 || m > 59 {
            return None;
        }
        return UtcOffset::from_whole_seconds(sign * (h * 3600 + m * 60)).ok();
    }
    let hours = match t.to_ascii_uppercase().as_str() {
        "UT" | "UTC" | "GMT" | "Z" => 0,
        "EDT" => -4,
        "EST" | "CDT" => -5,
        "CST" | "MDT" => -6,
        "MST" | "PDT" => -7,
        "PST" => -8,
        _ => return None,
    };
    UtcOffset::from_whole_seconds(hours * 3600).ok()
}

fn clock_of(token: &str) -> Option<Time> {
    let mut parts = token.split(':');
    let h: u8 = parts.next()?.parse().ok()?;
    let m: u8 = parts.next()?.parse().ok()?;
    let s: u8 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    // A leap second (`:60`) is read as :59 rather than refused.
    Time::from_hms(h, m, s.min(59)).ok()
}

fn year_of(token: &str) -> Option<i32> {
    if token.is_empty() || token.len() > 4 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i32 = token.parse().ok()?;
    Some(match token.len() {
        // RFC 5322 §4.3: two digits are 1950..2049, three digits are added to 1900.
        1 | 2 if y < 50 => 2000 + y,
        1 | 2 => 1900 + y,
        3 => 1900 + y,
        _ => y,
    })
}

fn day_of(token: &str) -> Option<u8> {
    if token.is_empty() || token.len() > 2 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// Parses an RFC 5322 date (tolerantly, see the module documentation) or an `asctime` date.
pub(crate) fn parse_date(text: &str) -> Option<InternalDate> {
    // Comments go first: "(CEST)", "(Newfoundland Time)". Nesting is rare; one level is
    // enough, and an unbalanced "(" drops the rest, which holds no date anyway.
    let mut clean = String::with_capacity(text.len());
    let mut depth = 0u32;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ',' => clean.push(' '),
            c => clean.push(c),
        }
    }
    let tokens: Vec<&str> = clean.split_whitespace().collect();
    let m = tokens.iter().position(|t| month_of(t).is_some())?;
    let month = month_of(tokens[m])?;
    let t = tokens.iter().position(|t| t.contains(':'))?;
    let clock = clock_of(tokens[t])?;
    let (day, year, zone_at) = if m > 0 && day_of(tokens[m - 1]).is_some() && t > m + 1 {
        // RFC 5322: [dow,] day month year time zone
        (day_of(tokens[m - 1])?, year_of(tokens[m + 1])?, Some(t + 1))
    } else {
        // asctime: dow month day time [zone] year [zone]
        let day = day_of(tokens.get(m + 1)?)?;
        let rest = &tokens[t + 1..];
        let y = rest
            .iter()
            .position(|x| year_of(x).is_some_and(|_| x.len() == 4))?;
        let zone = if y > 0 { Some(t + 1) } else { Some(t + 2) };
        (day, year_of(rest[y])?, zone)
    };
    let offset = zone_at
        .and_then(|i| tokens.get(i))
        .and_then(|z| zone_of(z))
        .unwrap_or(UtcOffset::UTC);
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(InternalDate(
        PrimitiveDateTime::new(date, clock).assume_offset(offset),
    ))
}

#[cfg(test)]
mod corpus;

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> String {
        parse_date(s).map(|d| d.to_imap()).unwrap_or_default()
    }

    #[test]
    fn rfc5322_dates_and_their_obsolete_forms() {
        assert_eq!(
            d("Tue, 1 Jul 2003 10:52:37 +0200"),
            "01-Jul-2003 10:52:37 +0200"
        );
        assert_eq!(d("1 Jul 2003 10:52 GMT"), "01-Jul-2003 10:52:00 +0000");
        assert_eq!(
            d("Thu, 13 Feb 1969 23:32 -0330 (Newfoundland Time)"),
            "13-Feb-1969 23:32:00 -0330"
        );
        assert_eq!(
            d("Fri, 21 Nov 97 09:55:06 GMT"),
            "21-Nov-1997 09:55:06 +0000"
        );
        assert_eq!(
            d("Fri, 21 Nov 03 09:55:06 PST"),
            "21-Nov-2003 09:55:06 -0800"
        );
        assert_eq!(d("21 Nov 103 09:55:06 EDT"), "21-Nov-2003 09:55:06 -0400");
        assert_eq!(
            d("Tue,  1 Jul 2003 10:52:37 +0200 (CEST)"),
            "01-Jul-2003 10:52:37 +0200"
        );
        assert_eq!(
            d("Mon, 2 Jan 2006 15:04:05 X"),
            "02-Jan-2006 15:04:05 +0000"
        );
        assert_eq!(
            d("Mon, 2 January 2006 15:04:05 +0100"),
            "02-Jan-2006 15:04:05 +0100"
        );
        assert_eq!(
            d("31 Dec 1998 23:59:60 +0000"),
            "31-Dec-1998 23:59:59 +0000"
        );
    }

    #[test]
    fn asctime_as_in_mbox_from_lines() {
        assert_eq!(d("Mon Jan  1 00:00:00 2001"), "01-Jan-2001 00:00:00 +0000");
        assert_eq!(
            d("Fri Jul 8 12:08:34 2011 -0700"),
            "08-Jul-2011 12:08:34 -0700"
        );
        assert_eq!(
            d("Fri Jul 8 12:08:34 PDT 2011"),
            "08-Jul-2011 12:08:34 -0700"
        );
    }

    #[test]
    fn garbage_is_none() {
        for bad in [
            "",
            "yesterday",
            "32 Jan 2001 00:00:00 +0000",
            "1 Foo 2001 00:00:00 +0000",
            "1 Jan 2001 25:00:00 +0000",
            "1 Jan 2001",
            "30 Feb 2001 10:00:00 +0000",
            "((((",
            "Mon Jan 1 00:00:00",
        ] {
            assert!(parse_date(bad).is_none(), "{bad:?}");
        }
        // A bad zone keeps the date, in UTC.
        assert_eq!(d("1 Jan 2001 10:00:00 +9999"), "01-Jan-2001 10:00:00 +0000");
    }

    #[test]
    fn fields_unfold_and_received_is_the_topmost() {
        let msg = b"Received: from b by c;\r\n\tTue, 1 Jul 2003 10:52:37 +0200\r\n\
Received: from a by b; Mon, 30 Jun 2003 10:00:00 +0000\r\n\
Date: Sun, 29 Jun 2003 09:00:00 -0500\r\nSubject: x\r\n\r\nReceived: body\r\n";
        let f = fields(header_block(msg));
        assert_eq!(f.len(), 4);
        assert_eq!(
            arrival_date(&f).map(|d| d.to_imap()).as_deref(),
            Some("01-Jul-2003 10:52:37 +0200")
        );
        assert_eq!(
            date_field(&f).map(|d| d.to_imap()).as_deref(),
            Some("29-Jun-2003 09:00:00 -0500")
        );
        let no_received = fields(b"Date: 1 Jan 2001 00:00:00 +0000\n\nbody");
        assert_eq!(
            arrival_date(&no_received).map(|d| d.unix()),
            Some(978307200)
        );
        assert!(arrival_date(&fields(b"Subject: none\n")).is_none());
    }

    #[test]
    fn never_panics_on_any_text() {
        use proptest::prelude::*;
        proptest!(|(s in "\\PC{0,60}")| {
            let _ = parse_date(&s);
        });
        proptest!(|(b in proptest::collection::vec(any::<u8>(), 0..200))| {
            let f = fields(header_block(&b));
            let _ = arrival_date(&f);
        });
    }
}
