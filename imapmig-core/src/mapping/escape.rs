//! The reversible escape for folder-name segments the destination cannot hold.
//!
//! The scheme is described in the [module documentation](super#names-the-destination-cannot-hold);
//! this file owns its only implementation, so the planner and any tool that wants to undo it
//! (a restore, a report) agree byte for byte.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What an empty segment is written as. The byte 0xFF never occurs in UTF-8, so no escaped
/// character can produce `%FF`, and the decoder can tell it apart from everything else.
const EMPTY_SEGMENT: &str = "%FF";

/// Why a segment had to be escaped, one bit per cause, so a note can name every cause once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Causes(u8);

impl Causes {
    const DELIMITER: u8 = 1;
    const WILDCARD: u8 = 1 << 1;
    const CONTROL: u8 = 1 << 2;
    const EDGE_SPACE: u8 = 1 << 3;
    const EMPTY: u8 = 1 << 4;

    /// Whether nothing needed escaping.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The causes in words, for a plan note, e.g. "`.` is the destination's separator".
    pub(crate) fn describe(self, delimiter: char) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.0 & Self::DELIMITER != 0 {
            parts.push(format!(
                "`{delimiter}` is the destination's hierarchy separator"
            ));
        }
        if self.0 & Self::WILDCARD != 0 {
            parts.push("`*` and `%` are LIST wildcards".to_string());
        }
        if self.0 & Self::CONTROL != 0 {
            parts.push("it holds control characters".to_string());
        }
        if self.0 & Self::EDGE_SPACE != 0 {
            parts.push("servers trim a leading or trailing space".to_string());
        }
        if self.0 & Self::EMPTY != 0 {
            parts.push("a name part is empty".to_string());
        }
        parts.join("; ")
    }
}

/// One segment after escaping, with the reasons escaping was needed.
pub(crate) struct EscapedSegment<'a> {
    /// The segment as the destination will hold it.
    pub(crate) text: Cow<'a, str>,
    /// Why it differs from the source segment (empty when it does not).
    pub(crate) causes: Causes,
}

fn is_control(c: char) -> bool {
    // C0, DEL and C1: servers reject them or store them in ways clients cannot show.
    c.is_control()
}

/// Escapes one segment (a part of a folder name between hierarchy separators) for a
/// destination whose separator is `delimiter`, reporting the causes.
pub(crate) fn escape_with_causes(segment: &str, delimiter: char) -> EscapedSegment<'_> {
    if segment.is_empty() {
        return EscapedSegment {
            text: Cow::Borrowed(EMPTY_SEGMENT),
            causes: Causes(Causes::EMPTY),
        };
    }
    let first = segment.chars().next();
    let last = segment.chars().next_back();
    let mut causes = 0u8;
    for c in segment.chars() {
        if c == delimiter {
            causes |= Causes::DELIMITER;
        } else if c == '*' || c == '%' {
            causes |= Causes::WILDCARD;
        } else if is_control(c) {
            causes |= Causes::CONTROL;
        }
    }
    if first == Some(' ') || last == Some(' ') {
        causes |= Causes::EDGE_SPACE;
    }
    if causes == 0 {
        return EscapedSegment {
            text: Cow::Borrowed(segment),
            causes: Causes(0),
        };
    }
    let count = segment.chars().count();
    let mut out = String::with_capacity(segment.len() + 8);
    for (i, c) in segment.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i + 1 == count);
        if c == delimiter || c == '*' || c == '%' || is_control(c) || edge_space {
            push_percent(&mut out, c);
        } else {
            out.push(c);
        }
    }
    EscapedSegment {
        text: Cow::Owned(out),
        causes: Causes(causes),
    }
}

fn push_percent(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        // Writing to a String cannot fail.
        let _ = write!(out, "%{b:02X}");
    }
}

/// Escapes one folder-name segment so a destination whose hierarchy separator is `delimiter`
/// can hold it; returns it unchanged (borrowed) when nothing needs escaping.
///
/// `a.b` for a `.` destination becomes `a%2Eb`; `100%` becomes `100%25`; an empty segment
/// becomes `%FF`. See the [module documentation](super#names-the-destination-cannot-hold) for the
/// full scheme. [`unescape_segment`] undoes it.
pub fn escape_segment(segment: &str, delimiter: char) -> Cow<'_, str> {
    escape_with_causes(segment, delimiter).text
}

/// Undoes [`escape_segment`] on one segment of a destination folder name.
///
/// A segment without `%` was never escaped and comes back unchanged. Returns `None` when the
/// segment holds a `%` that the escape could not have written (not followed by two upper-case
/// hex digits, or decoding to invalid UTF-8): such a name was not made by this scheme.
pub fn unescape_segment(segment: &str) -> Option<Cow<'_, str>> {
    if !segment.contains('%') {
        return Some(Cow::Borrowed(segment));
    }
    if segment == EMPTY_SEGMENT {
        return Some(Cow::Owned(String::new()));
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(upper_hex)?;
            let lo = bytes.get(i + 2).copied().and_then(upper_hex)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_only_offending_characters() {
        assert_eq!(escape_segment("a.b", '.'), "a%2Eb");
        assert_eq!(escape_segment("a.b", '/'), "a.b");
        assert_eq!(escape_segment("a/b", '/'), "a%2Fb");
        assert_eq!(escape_segment("Q*", '/'), "Q%2A");
        assert_eq!(escape_segment("100%", '/'), "100%25");
        assert_eq!(escape_segment("a\tb", '/'), "a%09b");
        assert_eq!(escape_segment(" x ", '/'), "%20x%20");
        assert_eq!(escape_segment("  ", '/'), "%20%20");
        assert_eq!(escape_segment("a b", '/'), "a b");
        assert_eq!(escape_segment("", '/'), "%FF");
        assert_eq!(escape_segment("Entwürfe", '/'), "Entwürfe");
        // A literal `%2E` is escaped too, so it can never be mistaken for an escaped `.`.
        assert_eq!(escape_segment("a%2Eb", '.'), "a%252Eb");
        assert!(matches!(escape_segment("plain", '.'), Cow::Borrowed(_)));
    }

    #[test]
    fn non_ascii_delimiter_is_escaped_bytewise() {
        assert_eq!(escape_segment("a§b", '§'), "a%C2%A7b");
        assert_eq!(unescape_segment("a%C2%A7b").unwrap(), "a§b");
    }

    #[test]
    fn unescape_rejects_what_the_scheme_never_writes() {
        for bad in ["%", "%2", "%2e", "%ZZ", "a%C2", "%FFx", "%C3%28"] {
            assert_eq!(unescape_segment(bad), None, "{bad}");
        }
        assert_eq!(unescape_segment("%FF").unwrap(), "");
    }

    #[test]
    fn causes_are_described() {
        let e = escape_with_causes(" a.b*", '.');
        let d = e.causes.describe('.');
        assert!(d.contains("separator") && d.contains("wildcards") && d.contains("space"));
    }

    proptest! {
        #[test]
        fn escape_round_trips(seg in "\\PC*|[ .%*/\\\\\u{0}-\u{1f}\u{7f}aé已]{0,12}", delim in prop::sample::select(vec!['/', '.', '\\', ':', '%', '*', ' ', '§'])) {
            let escaped = escape_segment(&seg, delim);
            prop_assert!(!escaped.is_empty());
            prop_assert!(!escaped.contains(delim) || delim == '%');
            prop_assert!(!escaped.contains('*'));
            prop_assert!(!escaped.chars().any(char::is_control));
            prop_assert!(!escaped.starts_with(' ') && !escaped.ends_with(' '));
            let back = unescape_segment(&escaped);
            prop_assert_eq!(back.as_deref(), Some(seg.as_str()));
        }

        #[test]
        fn escape_is_injective(a in "[.%*a ]{0,5}", b in "[.%*a ]{0,5}") {
            if a != b {
                prop_assert_ne!(escape_segment(&a, '.'), escape_segment(&b, '.'));
            }
        }
    }
}
