//! The pure encoding and decoding of IMAP protocol values: quoted strings, keywords as
//! atoms, SEARCH criteria, and the values read out of CAPABILITY, LIST, STATUS, NAMESPACE and
//! FETCH responses.
//!
//! Every function here is bytes or values in, text or values out. It must never do I/O and
//! never decide what to do about odd data: it says what it read (an unreadable UID, a date
//! that is not one) and leaves the decision to the command that asked.

use imap_proto::{AttributeValue, NameAttribute, StatusAttribute};

use super::{FolderStatus, Namespace, SearchKey};
use crate::imap::error::{ImapError, Result};
use crate::model::{Flags, InternalDate, MessageMeta, Uid, UidValidity};

pub(super) fn quote(s: &str, what: &'static str) -> Result<String> {
    if s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ImapError::Unsendable {
            what,
            value: s.escape_debug().to_string(),
            why: "CR, LF and NUL cannot be sent in a quoted string",
        });
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(out)
}

/// Whether a keyword can go on the wire as an IMAP atom.
pub fn is_sendable_keyword(k: &str) -> bool {
    !k.is_empty()
        && k.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

pub(super) fn capability_atoms(c: &[imap_proto::Capability<'_>]) -> Vec<String> {
    c.iter()
        .map(|c| match c {
            imap_proto::Capability::Imap4rev1 => "IMAP4REV1".to_string(),
            imap_proto::Capability::Auth(m) => format!("AUTH={m}"),
            imap_proto::Capability::Atom(a) => a.to_string(),
        })
        .collect()
}

impl SearchKey {
    pub(super) fn render(&self) -> String {
        let day = |d: &time::Date| {
            format!(
                "{}-{}-{:04}",
                d.day(),
                &MONTH_NAMES[usize::from(u8::from(d.month())) - 1],
                d.year()
            )
        };
        match self {
            SearchKey::All => "ALL".into(),
            SearchKey::Since(d) => format!("SINCE {}", day(d)),
            SearchKey::Before(d) => format!("BEFORE {}", day(d)),
            SearchKey::SentSince(d) => format!("SENTSINCE {}", day(d)),
            SearchKey::SentBefore(d) => format!("SENTBEFORE {}", day(d)),
            SearchKey::Larger(n) => format!("LARGER {n}"),
            SearchKey::Smaller(n) => format!("SMALLER {n}"),
            SearchKey::UidRange(a, b) => format!("UID {a}:{b}"),
            SearchKey::Uids(uids) => format!("UID {}", crate::imap::uid_set(uids)),
            SearchKey::Flag(f) => match f.to_ascii_uppercase().as_str() {
                "\\SEEN" => "SEEN".into(),
                "\\ANSWERED" => "ANSWERED".into(),
                "\\FLAGGED" => "FLAGGED".into(),
                "\\DELETED" => "DELETED".into(),
                "\\DRAFT" => "DRAFT".into(),
                _ => format!("KEYWORD {f}"),
            },
        }
    }
}

const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

pub(super) fn attribute_name(a: &NameAttribute<'_>) -> String {
    match a {
        NameAttribute::NoInferiors => "\\Noinferiors".into(),
        NameAttribute::NoSelect => "\\Noselect".into(),
        NameAttribute::Marked => "\\Marked".into(),
        NameAttribute::Unmarked => "\\Unmarked".into(),
        NameAttribute::All => "\\All".into(),
        NameAttribute::Archive => "\\Archive".into(),
        NameAttribute::Drafts => "\\Drafts".into(),
        NameAttribute::Flagged => "\\Flagged".into(),
        NameAttribute::Junk => "\\Junk".into(),
        NameAttribute::Sent => "\\Sent".into(),
        NameAttribute::Trash => "\\Trash".into(),
        NameAttribute::Extension(e) => e.to_string(),
        _ => "\\Unknown".into(),
    }
}

pub(super) fn status_from_attrs(attrs: &[StatusAttribute]) -> FolderStatus {
    let mut st = FolderStatus::default();
    for a in attrs {
        match a {
            StatusAttribute::Messages(n) => st.messages = Some(*n),
            StatusAttribute::UidNext(n) => st.uid_next = Some(*n),
            StatusAttribute::UidValidity(n) => st.uid_validity = Some(UidValidity(*n)),
            StatusAttribute::Unseen(n) => st.unseen = Some(*n),
            StatusAttribute::HighestModSeq(n) => st.highest_modseq = Some(*n),
            _ => {}
        }
    }
    st
}

/// The text of a mailbox name as imap-proto hands it on, with quoted-string escapes undone.
///
/// imap-proto returns a quoted string's content as it stood on the wire (`"a\"b"` gives
/// `a\"b`, not `a"b`), while an atom or a literal is verbatim; the byte before the string in
/// `line` tells which it was. Without this, a folder named `a"b` or `a\b` would be listed with
/// backslashes added, and the name would then address a different folder.
pub(super) fn astring_text(line: &[u8], s: &str) -> String {
    let base = line.as_ptr() as usize;
    let at = s.as_ptr() as usize;
    let quoted = at > base && at + s.len() <= base + line.len() && line[at - base - 1] == b'"';
    if !quoted || !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// The `UID` item of a FETCH response, as far as it can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UidItem {
    /// No `UID` item.
    Absent,
    /// A UID IMAP allows (1 to 2^32-1).
    Valid(Uid),
    /// A `UID` item whose value is no UID: 0, negative, too large, not a number.
    Unreadable,
}

/// Finds the `UID` item in the head of a FETCH response whose body is being streamed.
pub(super) fn uid_item(head: &[u8]) -> UidItem {
    let Some(open) = memchr::memchr(b'(', head) else {
        return UidItem::Absent;
    };
    let mut rest = &head[open + 1..];
    loop {
        let Some(pos) = rest
            .windows(4)
            .position(|w| w.eq_ignore_ascii_case(b"UID "))
        else {
            return UidItem::Absent;
        };
        let before_ok = pos == 0 || matches!(rest[pos - 1], b' ' | b'(');
        let after = &rest[pos + 4..];
        if before_ok {
            let value: Vec<u8> = after
                .iter()
                .copied()
                .take_while(|b| !matches!(b, b' ' | b')'))
                .collect();
            return match std::str::from_utf8(&value)
                .ok()
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse::<u32>().ok())
            {
                Some(n) if n > 0 => UidItem::Valid(Uid(n)),
                _ => UidItem::Unreadable,
            };
        }
        rest = after;
    }
}

/// The `UID` item of a parsed FETCH response. imap-proto reads a value that is not a
/// number IMAP allows (`UID -3`, `UID 4294967296`) as an unknown item; `line` tells.
pub(super) fn uid_of_attrs(attrs: &[AttributeValue<'_>], line: &[u8]) -> UidItem {
    for a in attrs {
        if let AttributeValue::Uid(u) = a {
            return if *u > 0 {
                UidItem::Valid(Uid(*u))
            } else {
                UidItem::Unreadable
            };
        }
    }
    if attrs.iter().any(|a| matches!(a, AttributeValue::Unknown)) {
        // Only the text before any literal can hold the item: a body may say anything.
        let head = match memchr::memchr(b'{', line) {
            Some(i) => &line[..i],
            None => line,
        };
        if uid_item(head) == UidItem::Unreadable {
            return UidItem::Unreadable;
        }
    }
    UidItem::Absent
}

/// Whether imap-proto had to replace bytes of a name that is not UTF-8 (it then hands on a
/// lossy copy, not a view of the line): such a name cannot be sent back to the server.
pub(super) fn name_was_mangled(line: &[u8], name: &str) -> bool {
    let base = line.as_ptr() as usize;
    let at = name.as_ptr() as usize;
    let inside = at >= base && at + name.len() <= base + line.len();
    !inside && name.contains('\u{FFFD}')
}

/// The personal namespace from a NAMESPACE response: its first `("prefix" "sep")` pair.
pub(super) fn parse_namespace(line: &[u8]) -> Option<Namespace> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.trim_start_matches('*').trim_start();
    let rest = rest.get("NAMESPACE".len()..)?.trim_start();
    if rest.starts_with("NIL") {
        return Some(Namespace::default());
    }
    let rest = rest.strip_prefix("((")?;
    let (prefix, rest) = take_quoted(rest)?;
    let rest = rest.trim_start();
    let delimiter = if rest.starts_with("NIL") {
        None
    } else {
        let (d, _) = take_quoted(rest)?;
        d.chars().next()
    };
    Some(Namespace { prefix, delimiter })
}

fn take_quoted(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

/// What one metadata FETCH response says.
#[derive(Debug)]
pub(super) enum MetaLine {
    /// A message, with its INTERNALDATE as sent when that is not a date.
    Listed {
        meta: MessageMeta,
        /// Whether INTERNALDATE was there at all (an unsolicited flag change has none).
        dated: bool,
        bad_date: Option<String>,
    },
    /// An answer about a message whose UID cannot be read.
    UnreadableUid,
    /// Nothing that concerns the listing (an unsolicited FETCH of flags without a UID).
    Other,
}

pub(super) fn meta_from_attrs(attrs: &[AttributeValue<'_>], line: &[u8]) -> MetaLine {
    let mut flags = Flags::new();
    let mut date = None;
    let mut dated = false;
    let mut bad_date = None;
    let mut size = 0u64;
    let mut sized = false;
    let mut modseq = None;
    for a in attrs {
        match a {
            AttributeValue::Flags(f) => flags = f.iter().map(|x| x.as_ref()).collect(),
            AttributeValue::InternalDate(d) => {
                dated = true;
                date = InternalDate::parse_imap(d);
                if date.is_none() {
                    bad_date = Some(d.to_string());
                }
            }
            AttributeValue::Rfc822Size(n) => {
                sized = true;
                size = u64::from(*n);
            }
            AttributeValue::ModSeq(m) => modseq = Some(*m),
            _ => {}
        }
    }
    match uid_of_attrs(attrs, line) {
        UidItem::Valid(uid) => MetaLine::Listed {
            meta: MessageMeta {
                uid,
                flags,
                internal_date: date,
                size,
                modseq,
            },
            dated,
            bad_date,
        },
        UidItem::Unreadable => MetaLine::UnreadableUid,
        // A FETCH that answers our metadata request (it has a date or a size) but names no
        // message cannot be listed either.
        UidItem::Absent if dated || sized => MetaLine::UnreadableUid,
        UidItem::Absent => MetaLine::Other,
    }
}

#[cfg(test)]
mod tests {
    use imap_proto::{MailboxDatum, Response};

    use super::*;
    use crate::wire::response::Parsed;

    #[test]
    fn uid_is_found_in_fetch_heads() {
        use UidItem::*;
        assert_eq!(uid_item(b"* 3 FETCH (UID 17 BODY[] "), Valid(Uid(17)));
        assert_eq!(
            uid_item(b"* 3 FETCH (FLAGS (\\Seen) UID 9 BODY[] "),
            Valid(Uid(9))
        );
        assert_eq!(uid_item(b"* 3 FETCH (BODY[] "), Absent);
        assert_eq!(uid_item(b"* 3 FETCH (XUID 4 BODY[] "), Absent);
        assert_eq!(uid_item(b"* 3 FETCH (UID 0 BODY[] "), Unreadable);
        assert_eq!(uid_item(b"* 3 FETCH (UID -3 BODY[] "), Unreadable);
        assert_eq!(uid_item(b"* 3 FETCH (UID 4294967296 BODY[] "), Unreadable);
        assert_eq!(
            uid_item(b"* 3 FETCH (UID 4294967295)"),
            Valid(Uid(u32::MAX))
        );
        assert_eq!(uid_item(b"garbage"), Absent);
    }

    #[test]
    fn unreadable_metadata_is_told_apart() {
        for line in [
            &b"* 1 FETCH (UID 0 FLAGS () INTERNALDATE \"01-Jan-2024 12:00:00 +0000\")\r\n"[..],
            b"* 1 FETCH (UID -3 FLAGS () RFC822.SIZE 4)\r\n",
            b"* 1 FETCH (UID 4294967296 FLAGS ())\r\n",
            b"* 1 FETCH (FLAGS () RFC822.SIZE 4)\r\n",
        ] {
            let Parsed::Data(Response::Fetch(_, attrs)) = crate::wire::response::parse_line(line)
            else {
                panic!("not parsed: {line:?}");
            };
            assert!(
                matches!(meta_from_attrs(&attrs, line), MetaLine::UnreadableUid),
                "{line:?}"
            );
        }
        let line = b"* 1 FETCH (FLAGS (\\Seen))\r\n";
        let Parsed::Data(Response::Fetch(_, attrs)) = crate::wire::response::parse_line(line)
        else {
            panic!()
        };
        assert!(matches!(meta_from_attrs(&attrs, line), MetaLine::Other));
        let line = b"* 1 FETCH (UID 4 INTERNALDATE \"not a date\")\r\n";
        let Parsed::Data(Response::Fetch(_, attrs)) = crate::wire::response::parse_line(line)
        else {
            panic!()
        };
        match meta_from_attrs(&attrs, line) {
            MetaLine::Listed { meta, bad_date, .. } => {
                assert_eq!(meta.uid, Uid(4));
                assert_eq!(bad_date.as_deref(), Some("not a date"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mangled_list_names_are_noticed() {
        for (line, mangled) in [
            (&b"* LIST () \"/\" {6}\r\nCaf\xc3\xa9s\r\n"[..], false),
            (b"* LIST () \"/\" {5}\r\nCaf\xe9s\r\n", true),
            (b"* LIST () \"/\" \"A\xef\xbf\xbd\"\r\n", false),
        ] {
            let Parsed::Data(Response::MailboxData(MailboxDatum::List(l))) =
                crate::wire::response::parse_line(line)
            else {
                panic!("not parsed: {line:?}");
            };
            assert_eq!(name_was_mangled(line, &l.name), mangled, "{line:?}");
        }
    }

    #[test]
    fn namespace_personal_prefix() {
        let ns = parse_namespace(b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n").unwrap();
        assert_eq!(ns.prefix, "INBOX.");
        assert_eq!(ns.delimiter, Some('.'));
        let ns =
            parse_namespace(b"* NAMESPACE ((\"\" \"/\")) NIL ((\"shared/\" \"/\"))\r\n").unwrap();
        assert_eq!(ns.prefix, "");
        assert_eq!(ns.delimiter, Some('/'));
        assert_eq!(
            parse_namespace(b"* NAMESPACE NIL NIL NIL\r\n"),
            Some(Namespace::default())
        );
        assert_eq!(parse_namespace(b"* NAMESPACE ((\"unterminated"), None);
    }

    #[test]
    fn quoted_mailbox_names_are_unescaped_literals_and_atoms_kept() {
        let line = b"* LIST () \"/\" \"a\\\"b\\\\c\"\r\n";
        let name = std::str::from_utf8(&line[15..22]).unwrap();
        assert_eq!(name, "a\\\"b\\\\c");
        assert_eq!(astring_text(line, name), "a\"b\\c");
        let line = b"* LIST () \"/\" {4}\r\na\\\"b\r\n";
        let name = std::str::from_utf8(&line[19..23]).unwrap();
        assert_eq!(astring_text(line, name), "a\\\"b");
        // Not inside the line at all (imap-proto's own "INBOX"): as it is.
        assert_eq!(astring_text(line, "INBOX"), "INBOX");
    }

    #[test]
    fn quoting_escapes_and_refuses_line_breaks() {
        assert_eq!(quote("a\"b\\c", "x").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("a\r\nb", "x").is_err());
    }

    #[test]
    fn search_keys_render_as_imap() {
        let d = time::Date::from_calendar_date(2021, time::Month::March, 5).unwrap();
        assert_eq!(SearchKey::Since(d).render(), "SINCE 5-Mar-2021");
        assert_eq!(SearchKey::Flag("\\Seen".into()).render(), "SEEN");
        assert_eq!(SearchKey::Flag("$Work".into()).render(), "KEYWORD $Work");
    }

    #[test]
    fn keywords_must_be_atoms() {
        assert!(is_sendable_keyword("$Forwarded"));
        assert!(!is_sendable_keyword("two words"));
        assert!(!is_sendable_keyword("br]acket"));
        assert!(!is_sendable_keyword(""));
    }

    // Known answers: each case is input → the exact text or value, so a change of behaviour
    // shows as a changed byte, not as a changed test.

    /// Parses one response line the way the session does.
    fn data(line: &[u8]) -> Parsed<'_> {
        crate::wire::response::parse_line(line)
    }

    #[test]
    fn quote_known_answers() {
        for (raw, wire) in [
            ("INBOX", r#""INBOX""#),
            ("", r#""""#),
            ("Sent Items", r#""Sent Items""#),
            (r#"a"b"#, r#""a\"b""#),
            (r"a\b", r#""a\\b""#),
            (r#"\""#, r#""\\\"""#),
            // Modified UTF-7 is plain ASCII to the quoting.
            ("Entw&APw-rfe", r#""Entw&APw-rfe""#),
            // 8-bit text goes out as it is (the caller decides when it needs a literal).
            ("Gesendete Elemente/Café", "\"Gesendete Elemente/Café\""),
            ("已发送", "\"已发送\""),
        ] {
            assert_eq!(quote(raw, "folder name").unwrap(), wire, "{raw:?}");
        }
    }

    #[test]
    fn quote_refuses_what_a_quoted_string_cannot_carry() {
        for raw in ["a\rb", "a\nb", "a\0b", "\r\n"] {
            match quote(raw, "folder name") {
                Err(ImapError::Unsendable { what, value, .. }) => {
                    assert_eq!(what, "folder name");
                    assert_eq!(value, raw.escape_debug().to_string());
                }
                other => panic!("{raw:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn keyword_atom_known_answers() {
        for k in [
            "$Forwarded",
            "$Label1",
            "NonJunk",
            "$MDNSent",
            "a.b-c_d",
            "~x!",
        ] {
            assert!(is_sendable_keyword(k), "{k:?}");
        }
        for k in [
            "", "a b", "a(b", "a)b", "a{b", "a%b", "a*b", "a\"b", "a\\b", "a]b", "\\Seen", "a\tb",
            "a\x7fb", "café", "a\r\n",
        ] {
            assert!(!is_sendable_keyword(k), "{k:?}");
        }
    }

    #[test]
    fn search_key_known_answers() {
        let day = |y, m, d| time::Date::from_calendar_date(y, m, d).unwrap();
        use time::Month::*;
        for (key, wire) in [
            (SearchKey::All, "ALL"),
            (SearchKey::Since(day(2024, January, 1)), "SINCE 1-Jan-2024"),
            (
                SearchKey::Before(day(1999, December, 31)),
                "BEFORE 31-Dec-1999",
            ),
            (
                SearchKey::SentSince(day(2021, March, 5)),
                "SENTSINCE 5-Mar-2021",
            ),
            (
                SearchKey::SentBefore(day(987, June, 9)),
                "SENTBEFORE 9-Jun-0987",
            ),
            (SearchKey::Larger(0), "LARGER 0"),
            (SearchKey::Smaller(10_485_760), "SMALLER 10485760"),
            (SearchKey::UidRange(1, u32::MAX), "UID 1:4294967295"),
            (
                SearchKey::Uids(vec![Uid(7), Uid(3), Uid(4), Uid(5), Uid(9), Uid(4)]),
                "UID 3:5,7,9",
            ),
            (SearchKey::Flag("\\Seen".into()), "SEEN"),
            (SearchKey::Flag("\\answered".into()), "ANSWERED"),
            (SearchKey::Flag("\\FLAGGED".into()), "FLAGGED"),
            (SearchKey::Flag("\\Deleted".into()), "DELETED"),
            (SearchKey::Flag("\\Draft".into()), "DRAFT"),
            // \Recent is no searchable flag of its own here: it goes as a keyword.
            (SearchKey::Flag("\\Recent".into()), "KEYWORD \\Recent"),
            (SearchKey::Flag("$Junk".into()), "KEYWORD $Junk"),
        ] {
            assert_eq!(key.render(), wire, "{key:?}");
        }
    }

    #[test]
    fn capability_known_answers() {
        let line = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 LITERAL+ APPENDLIMIT=35651584 X-GM-EXT-1\r\n";
        let Parsed::Data(Response::Capabilities(c)) = data(line) else {
            panic!("not parsed");
        };
        assert_eq!(
            capability_atoms(&c),
            [
                "IMAP4REV1",
                "AUTH=PLAIN",
                "AUTH=XOAUTH2",
                "LITERAL+",
                "APPENDLIMIT=35651584",
                "X-GM-EXT-1"
            ]
        );
    }

    #[test]
    fn list_attribute_known_answers() {
        let line = b"* LIST (\\HasNoChildren \\Noselect \\NoInferiors \\Marked \\Unmarked \\All \\Archive \\Drafts \\Flagged \\Junk \\Sent \\Trash \\Important) \"/\" \"x\"\r\n";
        let Parsed::Data(Response::MailboxData(MailboxDatum::List(l))) = data(line) else {
            panic!("not parsed");
        };
        let names: Vec<String> = l.name_attributes.iter().map(attribute_name).collect();
        assert_eq!(
            names,
            [
                "\\HasNoChildren",
                "\\Noselect",
                "\\Noinferiors",
                "\\Marked",
                "\\Unmarked",
                "\\All",
                "\\Archive",
                "\\Drafts",
                "\\Flagged",
                "\\Junk",
                "\\Sent",
                "\\Trash",
                "\\Important"
            ]
        );
    }

    #[test]
    fn status_known_answers() {
        let line =
            b"* STATUS \"INBOX\" (MESSAGES 3 UIDNEXT 10 UIDVALIDITY 1234 UNSEEN 1 HIGHESTMODSEQ 99)\r\n";
        let Parsed::Data(Response::MailboxData(MailboxDatum::Status { status, .. })) = data(line)
        else {
            panic!("not parsed");
        };
        assert_eq!(
            status_from_attrs(&status),
            FolderStatus {
                messages: Some(3),
                uid_next: Some(10),
                uid_validity: Some(UidValidity(1234)),
                unseen: Some(1),
                highest_modseq: Some(99),
            }
        );
        let line = b"* STATUS \"INBOX\" (MESSAGES 0)\r\n";
        let Parsed::Data(Response::MailboxData(MailboxDatum::Status { status, .. })) = data(line)
        else {
            panic!("not parsed");
        };
        assert_eq!(
            status_from_attrs(&status),
            FolderStatus {
                messages: Some(0),
                ..FolderStatus::default()
            }
        );
    }

    #[test]
    fn list_name_known_answers() {
        // Each LIST line, and the folder's wire name as it must be sent back.
        for (line, raw) in [
            (&b"* LIST () \"/\" INBOX\r\n"[..], "INBOX"),
            (b"* LIST () \"/\" \"Sent Items\"\r\n", "Sent Items"),
            (b"* LIST () \"/\" \"a\\\\b\"\r\n", "a\\b"),
            (b"* LIST () \"/\" \"say \\\"hi\\\"\"\r\n", "say \"hi\""),
            (
                b"* LIST () \".\" \"INBOX.Entw&APw-rfe\"\r\n",
                "INBOX.Entw&APw-rfe",
            ),
            (b"* LIST () \"/\" \"Caf\xc3\xa9\"\r\n", "Café"),
            (b"* LIST () \"/\" {4}\r\na\\\"b\r\n", "a\\\"b"),
            (b"* LIST () \"/\" {6}\r\nCaf\xc3\xa9s\r\n", "Cafés"),
        ] {
            let Parsed::Data(Response::MailboxData(MailboxDatum::List(l))) = data(line) else {
                panic!("not parsed: {line:?}");
            };
            assert!(!name_was_mangled(line, &l.name), "{line:?}");
            assert_eq!(astring_text(line, &l.name), raw, "{line:?}");
        }
    }

    #[test]
    fn namespace_known_answers() {
        for (line, want) in [
            (
                &b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n"[..],
                Some(("INBOX.", Some('.'))),
            ),
            (b"* NAMESPACE ((\"\" NIL)) NIL NIL\r\n", Some(("", None))),
            (
                b"* NAMESPACE ((\"a\\\"b/\" \"/\")) NIL NIL\r\n",
                Some(("a\"b/", Some('/'))),
            ),
            (
                b"* NAMESPACE ((\"\" \"\\\\\")) NIL NIL\r\n",
                Some(("", Some('\\'))),
            ),
            (
                b"* namespace ((\"Mail/\" \"/\")) NIL NIL\r\n",
                Some(("Mail/", Some('/'))),
            ),
            (b"* NAMESPACE NIL NIL NIL\r\n", Some(("", None))),
            (b"* NAMESPACE (\"\" \"/\")\r\n", None),
            (b"* NAMESPACE\r\n", None),
            (b"\xff\xfe", None),
        ] {
            let want = want.map(|(prefix, delimiter)| Namespace {
                prefix: prefix.into(),
                delimiter,
            });
            assert_eq!(parse_namespace(line), want, "{line:?}");
        }
    }

    #[test]
    fn metadata_known_answers() {
        let line = b"* 12 FETCH (UID 4711 FLAGS (\\Seen \\Answered $Forwarded) INTERNALDATE \"07-Feb-1994 21:52:25 -0800\" RFC822.SIZE 4286 MODSEQ (12121231000))\r\n";
        let Parsed::Data(Response::Fetch(_, attrs)) = data(line) else {
            panic!("not parsed");
        };
        match meta_from_attrs(&attrs, line) {
            MetaLine::Listed {
                meta,
                dated,
                bad_date,
            } => {
                assert_eq!(meta.uid, Uid(4711));
                assert_eq!(
                    meta.flags,
                    ["\\Seen", "\\Answered", "$Forwarded"]
                        .into_iter()
                        .collect::<Flags>()
                );
                // The date keeps its zone: formatted back, it is the server's text.
                assert_eq!(
                    meta.internal_date.map(|d| d.to_imap()).as_deref(),
                    Some("07-Feb-1994 21:52:25 -0800")
                );
                assert_eq!(meta.size, 4286);
                assert_eq!(meta.modseq, Some(12121231000));
                assert!(dated);
                assert_eq!(bad_date, None);
            }
            other => panic!("{other:?}"),
        }
        // A space-padded day (RFC 3501's date-day-fixed) with a positive zone.
        let line =
            b"* 1 FETCH (UID 1 INTERNALDATE \" 5-Mar-2021 09:00:00 +0530\" RFC822.SIZE 0)\r\n";
        let Parsed::Data(Response::Fetch(_, attrs)) = data(line) else {
            panic!("not parsed");
        };
        match meta_from_attrs(&attrs, line) {
            MetaLine::Listed { meta, .. } => {
                assert_eq!(
                    meta.internal_date.map(|d| d.to_imap()).as_deref(),
                    Some("05-Mar-2021 09:00:00 +0530")
                );
                assert_eq!(meta.size, 0);
                assert_eq!(meta.modseq, None);
                assert!(meta.flags.iter().next().is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parsed_uid_known_answers() {
        for (line, want) in [
            (
                &b"* 1 FETCH (UID 42 FLAGS ())\r\n"[..],
                UidItem::Valid(Uid(42)),
            ),
            (
                b"* 1 FETCH (FLAGS () UID 4294967295)\r\n",
                UidItem::Valid(Uid(u32::MAX)),
            ),
            (b"* 1 FETCH (FLAGS (\\Seen))\r\n", UidItem::Absent),
            (b"* 1 FETCH (UID 0 FLAGS ())\r\n", UidItem::Unreadable),
        ] {
            let Parsed::Data(Response::Fetch(_, attrs)) = data(line) else {
                panic!("not parsed: {line:?}");
            };
            assert_eq!(uid_of_attrs(&attrs, line), want, "{line:?}");
        }
    }
}
