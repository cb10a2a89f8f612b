//! The vocabulary every layer shares: folders, UIDs, flags, dates, message metadata.
//!
//! These types carry no I/O and no protocol state. They are what the IMAP client returns, what
//! folder planning consumes and what the state store records.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Month, OffsetDateTime, UtcOffset};

/// A message's unique identifier inside one folder (RFC 3501 §2.3.1.1); never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uid(pub u32);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A folder's UIDVALIDITY: when it changes, every UID previously seen in the folder is void.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UidValidity(pub u32);

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The RFC 6154 special use of a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    /// `\All`: a virtual folder holding every message (Gmail's "All Mail").
    All,
    /// `\Archive`.
    Archive,
    /// `\Drafts`.
    Drafts,
    /// `\Flagged`: a virtual folder of flagged messages.
    Flagged,
    /// `\Junk`.
    Junk,
    /// `\Sent`.
    Sent,
    /// `\Trash`.
    Trash,
    /// `\Important` (RFC 8457).
    Important,
}

impl SpecialUse {
    /// Every special use, in a stable order.
    pub const ALL: [SpecialUse; 8] = [
        SpecialUse::All,
        SpecialUse::Archive,
        SpecialUse::Drafts,
        SpecialUse::Flagged,
        SpecialUse::Junk,
        SpecialUse::Sent,
        SpecialUse::Trash,
        SpecialUse::Important,
    ];

    /// The LIST attribute for this use, e.g. `\Sent`.
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Important => "\\Important",
        }
    }

    /// The special use a LIST attribute names, case-insensitively (`\Sent`, `\sent`, ...).
    pub fn from_attribute(attr: &str) -> Option<SpecialUse> {
        SpecialUse::ALL
            .into_iter()
            .find(|u| u.attribute().eq_ignore_ascii_case(attr))
    }

    /// A lower-case name for reports and option values: `sent`, `trash`, ...
    pub fn name(self) -> &'static str {
        match self {
            SpecialUse::All => "all",
            SpecialUse::Archive => "archive",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Flagged => "flagged",
            SpecialUse::Junk => "junk",
            SpecialUse::Sent => "sent",
            SpecialUse::Trash => "trash",
            SpecialUse::Important => "important",
        }
    }

    /// The special use a lower-case name (as from [`SpecialUse::name`]) stands for.
    pub fn from_name(name: &str) -> Option<SpecialUse> {
        SpecialUse::ALL
            .into_iter()
            .find(|u| u.name().eq_ignore_ascii_case(name))
    }
}

/// One folder as a server lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// The full name decoded to Unicode (modified UTF-7 undone), hierarchy separators as the
    /// server has them, e.g. `INBOX.Gesendete Elemente` or `Archive/2019/已发送`.
    pub name: String,
    /// The name exactly as it goes on the wire (modified UTF-7, or UTF-8 under UTF8=ACCEPT).
    pub raw: String,
    /// The hierarchy separator; `None` for a flat namespace (LIST answered NIL).
    pub delimiter: Option<char>,
    /// The LIST attributes as the server sent them (`\HasChildren`, `\Sent`, ...).
    pub attributes: Vec<String>,
    /// The special use, from the attributes.
    pub special_use: Option<SpecialUse>,
}

impl Folder {
    /// Whether messages can live here (no `\Noselect` / `\NonExistent`).
    pub fn selectable(&self) -> bool {
        !self.attributes.iter().any(|a| {
            a.eq_ignore_ascii_case("\\Noselect") || a.eq_ignore_ascii_case("\\NonExistent")
        })
    }

    /// Whether this is the INBOX (matched case-insensitively, as RFC 3501 requires).
    pub fn is_inbox(&self) -> bool {
        self.name.eq_ignore_ascii_case("INBOX")
    }

    /// The name split at the hierarchy separator: `["Archive", "2019"]`.
    pub fn segments(&self) -> Vec<&str> {
        match self.delimiter {
            Some(d) => self.name.split(d).collect(),
            None => vec![self.name.as_str()],
        }
    }
}

/// Whether a folder whose PERMANENTFLAGS are `permanent` (`None`: the server did not say, so
/// everything is taken) stores `flag`: listed (case-blind), or a keyword where `\*` allows
/// new ones.
pub fn permanently_stored(permanent: Option<&[String]>, flag: &str) -> bool {
    match permanent {
        None => true,
        Some(f) => {
            f.iter().any(|x| x.eq_ignore_ascii_case(flag))
                || (!flag.starts_with('\\') && f.iter().any(|x| x == "\\*"))
        }
    }
}

/// A set of message flags and keywords.
///
/// System flags are kept with their canonical capitalisation (`\Seen`, never `\SEEN`);
/// keywords are kept as the server spelled them. `\Recent` is never kept: no client can set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flags(BTreeSet<String>);

const SYSTEM_FLAGS: [&str; 5] = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"];

impl Flags {
    /// An empty set.
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Adds one flag, canonicalising system flags and dropping `\Recent`.
    pub fn insert(&mut self, flag: &str) {
        if flag.eq_ignore_ascii_case("\\Recent") {
            return;
        }
        match SYSTEM_FLAGS.iter().find(|s| s.eq_ignore_ascii_case(flag)) {
            Some(s) => self.0.insert((*s).to_string()),
            None => self.0.insert(flag.to_string()),
        };
    }

    /// Whether the set holds this flag (system flags compared case-insensitively).
    pub fn contains(&self, flag: &str) -> bool {
        self.0.iter().any(|f| {
            if f.starts_with('\\') {
                f.eq_ignore_ascii_case(flag)
            } else {
                f == flag
            }
        })
    }

    /// Removes one flag; returns whether it was there.
    pub fn remove(&mut self, flag: &str) -> bool {
        let found = self
            .0
            .iter()
            .find(|f| {
                if f.starts_with('\\') {
                    f.eq_ignore_ascii_case(flag)
                } else {
                    *f == flag
                }
            })
            .cloned();
        match found {
            Some(f) => self.0.remove(&f),
            None => false,
        }
    }

    /// The flags in a stable (sorted) order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The number of flags.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keywords are the flags that are not system flags (`$Forwarded`, `Work`, ...).
    pub fn keywords(&self) -> impl Iterator<Item = &str> {
        self.iter().filter(|f| !f.starts_with('\\'))
    }

    /// The flags as an IMAP parenthesised list: `(\Seen $Forwarded)`.
    pub fn to_imap_list(&self) -> String {
        let mut s = String::from("(");
        for (i, f) in self.iter().enumerate() {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(f);
        }
        s.push(')');
        s
    }

    /// One line of flags separated by spaces, as kept in the state store.
    pub fn to_line(&self) -> String {
        self.iter().collect::<Vec<_>>().join(" ")
    }

    /// Parses what [`Flags::to_line`] wrote.
    pub fn from_line(line: &str) -> Flags {
        line.split_ascii_whitespace().collect()
    }
}

impl<'a> FromIterator<&'a str> for Flags {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut f = Flags::new();
        for x in iter {
            f.insert(x);
        }
        f
    }
}

/// A message's INTERNALDATE: when the server received it, with the zone it was given in.
///
/// Kept to the second with its UTC offset, because that is all IMAP carries; the offset is kept
/// so that a migrated message shows the same wall-clock time in the same zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InternalDate(#[serde(with = "time::serde::rfc3339")] pub OffsetDateTime);

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl InternalDate {
    /// Parses the IMAP `date-time` form `" 7-Feb-1994 21:52:25 -0800"` (quotes optional,
    /// day with or without a leading space or zero). Returns `None` for anything else.
    pub fn parse_imap(s: &str) -> Option<InternalDate> {
        let s = s.trim().trim_matches('"').trim();
        let (date, rest) = s.split_once(' ')?;
        let (clock, zone) = rest.trim().split_once(' ')?;
        let mut d = date.split('-');
        let day: u8 = d.next()?.trim().parse().ok()?;
        let mon = d.next()?;
        let year: i32 = d.next()?.parse().ok()?;
        if d.next().is_some() {
            return None;
        }
        let month_idx = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(mon))?;
        let month = Month::try_from(month_idx as u8 + 1).ok()?;
        let mut c = clock.split(':');
        let h: u8 = c.next()?.parse().ok()?;
        let mi: u8 = c.next()?.parse().ok()?;
        let se: u8 = c.next()?.parse().ok()?;
        if c.next().is_some() {
            return None;
        }
        let zone = zone.trim();
        if zone.len() != 5 || !zone.is_ascii() {
            return None;
        }
        let sign: i32 = match &zone[..1] {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let zh: i32 = zone[1..3].parse().ok()?;
        let zm: i32 = zone[3..5].parse().ok()?;
        let offset = UtcOffset::from_whole_seconds(sign * (zh * 3600 + zm * 60)).ok()?;
        let date = time::Date::from_calendar_date(year, month, day).ok()?;
        let clock = time::Time::from_hms(h, mi, se).ok()?;
        Some(InternalDate(
            time::PrimitiveDateTime::new(date, clock).assume_offset(offset),
        ))
    }

    /// Formats as IMAP `date-time`, without quotes: `07-Feb-1994 21:52:25 -0800`.
    pub fn to_imap(&self) -> String {
        let t = self.0;
        let off = t.offset().whole_seconds();
        let sign = if off < 0 { '-' } else { '+' };
        let off = off.abs();
        format!(
            "{:02}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}",
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second(),
            sign,
            off / 3600,
            (off % 3600) / 60
        )
    }

    /// Seconds since the Unix epoch (the same instant whatever the zone).
    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

impl fmt::Display for InternalDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_imap())
    }
}

/// What a source knows of one message before its body is fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    /// The message's UID in its source folder.
    pub uid: Uid,
    /// Its flags and keywords.
    pub flags: Flags,
    /// Its INTERNALDATE, when the server gave one.
    pub internal_date: Option<InternalDate>,
    /// RFC822.SIZE as reported: informative only, some servers report it wrong. The APPEND
    /// size always comes from the body literal itself.
    pub size: u64,
    /// The MODSEQ, where CONDSTORE is enabled.
    pub modseq: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_date_round_trip_keeps_zone() {
        let d = InternalDate::parse_imap("\" 7-Feb-1994 21:52:25 -0800\"").unwrap();
        assert_eq!(d.to_imap(), "07-Feb-1994 21:52:25 -0800");
        assert_eq!(d.unix(), 760686745);
        let d = InternalDate::parse_imap("01-Jan-2000 00:00:00 +0530").unwrap();
        assert_eq!(d.to_imap(), "01-Jan-2000 00:00:00 +0530");
    }

    #[test]
    fn internal_date_rejects_garbage() {
        for bad in [
            "",
            "x",
            "32-Jan-2000 00:00:00 +0000",
            "01-Foo-2000 00:00:00 +0000",
            "01-Jan-2000 25:00:00 +0000",
            "01-Jan-2000 00:00:00 0000",
            "01-Jan-2000 00:00 +0000",
            "01-Jan-2000 00:00:00 +00x0",
            "01-Jan-2000 00:00:00 +ééé",
            "01-Jan-2000 00:00:00 é000",
            "01-Jan-2000 00:00:00 +é00",
        ] {
            assert!(InternalDate::parse_imap(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn flags_canonicalise_system_flags_and_drop_recent() {
        let f: Flags = ["\\SEEN", "\\Recent", "$Forwarded", "\\answered"]
            .into_iter()
            .collect();
        assert_eq!(f.to_imap_list(), "($Forwarded \\Answered \\Seen)");
        assert!(f.contains("\\seen"));
        assert!(!f.contains("$forwarded"));
        assert_eq!(Flags::from_line(&f.to_line()), f);
    }

    #[test]
    fn special_use_from_attribute() {
        assert_eq!(SpecialUse::from_attribute("\\sent"), Some(SpecialUse::Sent));
        assert_eq!(SpecialUse::from_attribute("\\HasChildren"), None);
    }
}
