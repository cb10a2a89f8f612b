//! Modified UTF-7, the encoding IMAP uses for mailbox names (RFC 3501 §5.1.3).
//!
//! Printable US-ASCII (0x20..=0x7e) stands for itself, except `&`, which is written `&-`.
//! Every other character, control characters included, is written as UTF-16 (big endian) in
//! modified BASE64 (`,` instead of `/`, no `=` padding) between `&` and `-`.
//!
//! This module owns both directions and nothing else: it knows nothing of hierarchy separators or
//! of `UTF8=ACCEPT` (where names travel as raw UTF-8 and this encoding does not apply).
//!
//! [`decode`] is strict, because a folder name is an identity: if two different wire names could
//! decode to the same folder, a migration could merge two folders or create one twice. The only
//! non-canonical form it accepts is a run of characters split over adjacent shift sequences
//! (`&AOQ-&APY-`), which is unambiguous and which some servers produce. Names that are not
//! valid modified UTF-7 still exist on real servers (written by clients that sent raw 8-bit or
//! by hand); [`decode_lossless_or_raw`] keeps those usable. Nothing here panics, whatever the
//! input.

/// The byte that opens a shift sequence, and (as `&-`) stands for itself.
const SHIFT: char = '&';
/// The byte that closes a shift sequence.
const UNSHIFT: char = '-';
/// Shift sequences carry UTF-16 code units.
const UNIT_BITS: u32 = 16;
/// Each modified BASE64 character carries six bits.
const SEXTET_BITS: u32 = 6;

/// Why a mailbox name is not valid modified UTF-7.
///
/// Every variant names the byte offset in the raw name where the problem is, so a log line can
/// point at it. None of them is a reason to lose the folder: [`decode_lossless_or_raw`] keeps
/// such names working under their raw form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Utf7Error {
    /// A character outside printable US-ASCII appears outside a shift sequence. Modified UTF-7 is
    /// 7-bit: the server (or the client that created the folder) sent raw 8-bit or control
    /// characters instead of encoding them.
    #[error("character {found:?} at byte {offset} is not printable US-ASCII and is not encoded")]
    NotPrintableAscii {
        /// Byte offset of the character in the raw name.
        offset: usize,
        /// The character found.
        found: char,
    },
    /// A shift sequence (`&`) is not closed by `-` before the name ends.
    #[error("the shift sequence starting at byte {offset} is not terminated by '-'")]
    Unterminated {
        /// Byte offset of the `&` that opens the sequence.
        offset: usize,
    },
    /// A shift sequence contains a character that is not in the modified BASE64 alphabet
    /// (`A-Z a-z 0-9 + ,`).
    #[error("character {found:?} at byte {offset} is not modified BASE64")]
    InvalidBase64 {
        /// Byte offset of the offending character.
        offset: usize,
        /// The character found.
        found: char,
    },
    /// A shift sequence does not hold a whole number of UTF-16 code units: it ends with six or
    /// more bits that do not make up a unit (`&AB-` or `&AGEA-`).
    #[error("the shift sequence starting at byte {offset} does not hold whole UTF-16 units")]
    IncompleteUtf16 {
        /// Byte offset of the `&` that opens the sequence.
        offset: usize,
    },
    /// The bits left over after the last UTF-16 unit of a shift sequence are not zero (`&AGF-`).
    /// A correct encoder always writes zeros; accepting other values would give one folder many
    /// wire names.
    #[error("the shift sequence starting at byte {offset} ends with non-zero padding bits")]
    NonZeroPadding {
        /// Byte offset of the `&` that opens the sequence.
        offset: usize,
    },
    /// A UTF-16 surrogate that is not part of a high-low pair inside one shift sequence.
    #[error("unpaired UTF-16 surrogate encoded at byte {offset}")]
    UnpairedSurrogate {
        /// Byte offset of the BASE64 character in which the surrogate's bits begin.
        offset: usize,
    },
    /// A shift sequence encodes a printable US-ASCII character, which RFC 3501 requires to be
    /// written as itself (`&` as `&-`).
    #[error("printable character {found:?} encoded at byte {offset} must be written directly")]
    DirectCharEncoded {
        /// Byte offset of the BASE64 character in which the character's bits begin.
        offset: usize,
        /// The character that should have been written directly.
        found: char,
    },
}

/// Encodes a mailbox name into modified UTF-7, as it must be sent to a server without
/// `UTF8=ACCEPT`.
///
/// Total: every Rust string has exactly one encoding, and [`decode`] gives it back. The result
/// is printable US-ASCII only.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut shift = ShiftEncoder::default();
    for c in name.chars() {
        if is_direct(c) {
            shift.finish(&mut out);
            if c == SHIFT {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            for &unit in c.encode_utf16(&mut units).iter() {
                shift.push_unit(unit, &mut out);
            }
        }
    }
    shift.finish(&mut out);
    out
}

/// Decodes a mailbox name received from a server into Unicode.
///
/// Strict (see the module documentation): only the canonical encoding is accepted, plus runs
/// split over adjacent shift sequences. On error the name is not lost; see
/// [`decode_lossless_or_raw`].
pub fn decode(raw: &str) -> Result<String, Utf7Error> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.char_indices();
    while let Some((offset, c)) = chars.next() {
        if c == SHIFT {
            decode_shift(&mut chars, offset, &mut out)?;
        } else if is_direct(c) {
            out.push(c);
        } else {
            return Err(Utf7Error::NotPrintableAscii { offset, found: c });
        }
    }
    Ok(out)
}

/// Decodes a mailbox name, or returns it unchanged if it is not valid modified UTF-7.
///
/// Servers do hold folders whose names were stored as raw 8-bit or with broken encodings. They
/// must still be listed, selected and migrated; the raw name is the only handle we have on them,
/// and sending it back unchanged is what the server understands. The caller that needs to know
/// which case happened uses [`decode`].
pub fn decode_lossless_or_raw(raw: &str) -> String {
    decode(raw).unwrap_or_else(|_| raw.to_owned())
}

/// Whether `c` is written as itself (`&` is, but doubled as `&-`).
fn is_direct(c: char) -> bool {
    matches!(c, ' '..='~')
}

/// Accumulates UTF-16 units and writes them as modified BASE64 as soon as whole sextets are
/// available, so a long run of non-ASCII needs no intermediate buffer.
#[derive(Default)]
struct ShiftEncoder {
    /// Whether `&` has been written and not yet closed.
    open: bool,
    /// Bits not yet written; only the low `pending` bits are meaningful.
    bits: u32,
    /// How many bits of `bits` are waiting (always < 6 between units).
    pending: u32,
}

impl ShiftEncoder {
    fn push_unit(&mut self, unit: u16, out: &mut String) {
        if !self.open {
            out.push(SHIFT);
            self.open = true;
        }
        self.bits = (self.bits << UNIT_BITS) | u32::from(unit);
        self.pending += UNIT_BITS;
        while self.pending >= SEXTET_BITS {
            self.pending -= SEXTET_BITS;
            out.push(sextet_char(self.bits >> self.pending));
        }
        self.bits &= low_mask(self.pending);
    }

    fn finish(&mut self, out: &mut String) {
        if !self.open {
            return;
        }
        if self.pending > 0 {
            // Pad the last sextet with zero bits; the decoder insists on zeros.
            out.push(sextet_char(self.bits << (SEXTET_BITS - self.pending)));
        }
        out.push(UNSHIFT);
        *self = Self::default();
    }
}

/// Decodes one shift sequence; `chars` is positioned just after the `&` at `start`.
fn decode_shift(
    chars: &mut std::str::CharIndices<'_>,
    start: usize,
    out: &mut String,
) -> Result<(), Utf7Error> {
    let mut bits: u32 = 0;
    let mut pending: u32 = 0;
    let mut sextets: usize = 0;
    // Where the bits of the unit being assembled began, for error offsets.
    let mut unit_offset = start;
    // A high surrogate waiting for its low half, with the offset it was encoded at.
    let mut high: Option<(u16, usize)> = None;

    // Report a missing terminator before anything about the contents: `&AGE` is cut off, and
    // saying it encodes 'a' would point the reader at the wrong problem. The scan stops at the
    // first `-`, where the loop below stops too, so decoding stays linear.
    if !chars.as_str().contains(UNSHIFT) {
        return Err(Utf7Error::Unterminated { offset: start });
    }
    loop {
        let Some((offset, c)) = chars.next() else {
            return Err(Utf7Error::Unterminated { offset: start });
        };
        if c == UNSHIFT {
            break;
        }
        let Some(value) = sextet_value(c) else {
            return Err(Utf7Error::InvalidBase64 { offset, found: c });
        };
        if pending == 0 {
            unit_offset = offset;
        }
        sextets += 1;
        bits = (bits << SEXTET_BITS) | u32::from(value);
        pending += SEXTET_BITS;
        if pending >= UNIT_BITS {
            pending -= UNIT_BITS;
            // Truncation keeps exactly the 16 bits of this unit; the older bits were consumed.
            let unit = (bits >> pending) as u16;
            bits &= low_mask(pending);
            push_unit(unit, unit_offset, &mut high, out)?;
            // The leftover bits already belong to the next unit, which began in this sextet.
            unit_offset = offset;
        }
    }

    if sextets == 0 {
        out.push(SHIFT);
        return Ok(());
    }
    if pending >= SEXTET_BITS {
        return Err(Utf7Error::IncompleteUtf16 { offset: start });
    }
    if bits & low_mask(pending) != 0 {
        return Err(Utf7Error::NonZeroPadding { offset: start });
    }
    // A pair split across two sequences is rejected: the encoder never splits a character, and
    // gluing halves across `-&` would make the lenient adjacent-sequence rule ambiguous.
    if let Some((_, offset)) = high {
        return Err(Utf7Error::UnpairedSurrogate { offset });
    }
    Ok(())
}

/// Appends one decoded UTF-16 unit, pairing surrogates.
fn push_unit(
    unit: u16,
    offset: usize,
    high: &mut Option<(u16, usize)>,
    out: &mut String,
) -> Result<(), Utf7Error> {
    let is_high = (0xD800..=0xDBFF).contains(&unit);
    let is_low = (0xDC00..=0xDFFF).contains(&unit);
    let c = match (high.take(), is_high, is_low) {
        (Some((h, _)), _, true) => {
            let code = 0x1_0000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
            char::from_u32(code).ok_or(Utf7Error::UnpairedSurrogate { offset })?
        }
        (Some((_, high_offset)), _, false) => {
            return Err(Utf7Error::UnpairedSurrogate {
                offset: high_offset,
            })
        }
        (None, true, _) => {
            *high = Some((unit, offset));
            return Ok(());
        }
        (None, false, true) => return Err(Utf7Error::UnpairedSurrogate { offset }),
        (None, false, false) => {
            char::from_u32(u32::from(unit)).ok_or(Utf7Error::UnpairedSurrogate { offset })?
        }
    };
    if is_direct(c) {
        return Err(Utf7Error::DirectCharEncoded { offset, found: c });
    }
    out.push(c);
    Ok(())
}

/// The modified BASE64 character for the low six bits of `v`.
fn sextet_char(v: u32) -> char {
    // After the mask `v` < 64, so the cast is lossless and no arithmetic below can overflow.
    let v = (v & 0x3f) as u8;
    let byte = match v {
        0..=25 => b'A' + v,
        26..=51 => b'a' + (v - 26),
        52..=61 => b'0' + (v - 52),
        62 => b'+',
        _ => b',',
    };
    char::from(byte)
}

/// The six-bit value of a modified BASE64 character, or `None` if it is not one.
fn sextet_value(c: char) -> Option<u8> {
    let byte = u8::try_from(c).ok()?;
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' => Some(62),
        b',' => Some(63),
        _ => None,
    }
}

/// A mask of the low `n` bits (`n` < 32).
fn low_mask(n: u32) -> u32 {
    (1u32 << n) - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Wire form and Unicode form of names seen on real servers and in the RFC.
    const PAIRS: &[(&str, &str)] = &[
        ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
        ("&-", "&"),
        ("Tom &- Jerry", "Tom & Jerry"),
        ("Entw&APw-rfe", "Entwürfe"),
        ("&XfJT0ZAB-", "已发送"),
        ("&kAFP4W4IMH8wojCkMMYw4A-", "送信済みアイテム"),
        ("&BBoEPgRABDcEOAQ9BDA-", "Корзина"),
        ("&AMk-l&AOk-ments envoy&AOk-s", "Éléments envoyés"),
        ("&2D3eAA-", "😀"),
        ("&2D3c5w- Mail", "📧 Mail"),
        ("a&2D3eAA-b&IKw-", "a😀b€"),
        ("&AAk-", "\t"),
        ("&AAA-", "\0"),
        ("[Gmail]/All Mail", "[Gmail]/All Mail"),
        ("-", "-"),
        ("", ""),
    ];

    #[test]
    fn known_names_encode() {
        for (wire, name) in PAIRS {
            assert_eq!(encode(name), *wire, "encoding {name:?}");
        }
    }

    #[test]
    fn known_names_decode() {
        for (wire, name) in PAIRS {
            assert_eq!(decode(wire).as_deref(), Ok(*name), "decoding {wire:?}");
        }
    }

    #[test]
    fn adjacent_shift_sequences_are_accepted() {
        assert_eq!(decode("&AOQ-&APY-").as_deref(), Ok("äö"));
        assert_eq!(decode("x&AOQ-&APY-&-y").as_deref(), Ok("xäö&y"));
        // Adjacency is no excuse for encoding printable ASCII: `&AGE-` is 'a'.
        assert_eq!(
            decode("&AGE-&AGE-"),
            Err(Utf7Error::DirectCharEncoded {
                offset: 1,
                found: 'a'
            })
        );
    }

    #[test]
    fn bad_base64_is_rejected_with_its_offset() {
        assert_eq!(
            decode("&AB!-"),
            Err(Utf7Error::InvalidBase64 {
                offset: 3,
                found: '!'
            })
        );
        // Standard BASE64 `/` is not part of the modified alphabet.
        assert_eq!(
            decode("ab&U/BTFw-"),
            Err(Utf7Error::InvalidBase64 {
                offset: 4,
                found: '/'
            })
        );
        assert_eq!(
            decode("&AOQ=-"),
            Err(Utf7Error::InvalidBase64 {
                offset: 4,
                found: '='
            })
        );
    }

    #[test]
    fn partial_units_are_rejected() {
        // 12 bits: not even one unit.
        assert_eq!(
            decode("&BB-"),
            Err(Utf7Error::IncompleteUtf16 { offset: 0 })
        );
        // 6 bits.
        assert_eq!(
            decode("x&A-"),
            Err(Utf7Error::IncompleteUtf16 { offset: 1 })
        );
        // 24 bits: one unit and a byte too many.
        assert_eq!(
            decode("&AOQA-"),
            Err(Utf7Error::IncompleteUtf16 { offset: 0 })
        );
    }

    #[test]
    fn non_zero_padding_is_rejected() {
        // `&AOQ-` is "ä"; `R` sets the two padding bits.
        assert_eq!(
            decode("&AOR-"),
            Err(Utf7Error::NonZeroPadding { offset: 0 })
        );
    }

    #[test]
    fn unterminated_shift_is_rejected() {
        assert_eq!(decode("&"), Err(Utf7Error::Unterminated { offset: 0 }));
        assert_eq!(decode("x&Jjo"), Err(Utf7Error::Unterminated { offset: 1 }));
        assert_eq!(decode("&AGE"), Err(Utf7Error::Unterminated { offset: 0 }));
        assert_eq!(decode("a&-&"), Err(Utf7Error::Unterminated { offset: 3 }));
    }

    #[test]
    fn unpaired_surrogates_are_rejected() {
        // Lone high surrogate U+D83D.
        assert_eq!(
            decode("&2D0-"),
            Err(Utf7Error::UnpairedSurrogate { offset: 1 })
        );
        // Lone low surrogate U+DE00.
        assert_eq!(
            decode("&3gA-"),
            Err(Utf7Error::UnpairedSurrogate { offset: 1 })
        );
        // High surrogate followed by a non-surrogate (U+D83D U+00E4).
        assert_eq!(
            decode("&2D0A5A-"),
            Err(Utf7Error::UnpairedSurrogate { offset: 1 })
        );
        // A pair split across two sequences.
        assert_eq!(
            decode("&2D0-&3gA-"),
            Err(Utf7Error::UnpairedSurrogate { offset: 1 })
        );
    }

    #[test]
    fn encoded_printable_ascii_is_rejected() {
        // U+0061 'a'.
        assert_eq!(
            decode("&AGE-"),
            Err(Utf7Error::DirectCharEncoded {
                offset: 1,
                found: 'a'
            })
        );
        // '&' must be `&-`, not `&ACY-`.
        assert_eq!(
            decode("&ACY-"),
            Err(Utf7Error::DirectCharEncoded {
                offset: 1,
                found: '&'
            })
        );
        // The second unit ('a') begins in the third sextet (byte 3).
        assert_eq!(
            decode("&AOQAYQ-"),
            Err(Utf7Error::DirectCharEncoded {
                offset: 3,
                found: 'a'
            })
        );
    }

    #[test]
    fn raw_eight_bit_and_controls_are_rejected() {
        assert_eq!(
            decode("Entwürfe"),
            Err(Utf7Error::NotPrintableAscii {
                offset: 4,
                found: 'ü'
            })
        );
        assert_eq!(
            decode("a\tb"),
            Err(Utf7Error::NotPrintableAscii {
                offset: 1,
                found: '\t'
            })
        );
        assert_eq!(
            decode("&AOQ-\u{7f}"),
            Err(Utf7Error::NotPrintableAscii {
                offset: 5,
                found: '\u{7f}'
            })
        );
    }

    #[test]
    fn lossless_or_raw_keeps_invalid_names() {
        assert_eq!(decode_lossless_or_raw("Entw&APw-rfe"), "Entwürfe");
        assert_eq!(decode_lossless_or_raw("Entwürfe"), "Entwürfe");
        assert_eq!(decode_lossless_or_raw("&AB!-"), "&AB!-");
        assert_eq!(decode_lossless_or_raw("50% & more"), "50% & more");
    }

    #[test]
    fn errors_name_the_offset() {
        let message = decode("abc&AB!-").unwrap_err().to_string();
        assert!(message.contains("byte 6"), "{message}");
    }

    /// Whether `raw` has a shift sequence that directly follows another, the one non-canonical
    /// form [`decode`] accepts. Over-approximates (a direct `-` before `&X` also counts), which
    /// only weakens the property that uses it.
    fn may_have_adjacent_shifts(raw: &str) -> bool {
        raw.as_bytes()
            .windows(3)
            .any(|w| w.first() == Some(&b'-') && w.get(1) == Some(&b'&') && w.get(2) != Some(&b'-'))
    }

    /// Characters at the edges that matter: `&`, `-`, controls, the last BMP code points before
    /// and after the surrogate range, and the first and last supplementary ones.
    const SPECIALS: &str =
        "[&\\-a-z\u{0}-\u{1f}\u{e4}\u{4e00}\u{1f600}\u{d7ff}\u{e000}\u{ffff}\u{10000}\u{10ffff}]{0,24}";

    proptest! {
        #[test]
        fn round_trips_any_string(name in any::<String>()) {
            prop_assert_eq!(decode(&encode(&name)), Ok(name));
        }

        #[test]
        fn round_trips_names_heavy_in_specials(name in SPECIALS) {
            prop_assert_eq!(decode(&encode(&name)), Ok(name));
        }

        #[test]
        fn encoding_is_printable_ascii(name in any::<String>()) {
            let wire = encode(&name);
            prop_assert!(wire.chars().all(is_direct), "{:?}", wire);
        }

        #[test]
        fn plain_ascii_without_ampersand_is_unchanged(name in "[ -%'-~]*") {
            prop_assert_eq!(encode(&name), name);
        }

        #[test]
        fn decode_never_panics(raw in ".*") {
            let _ = decode(&raw);
        }

        #[test]
        fn decode_never_panics_on_ascii(raw in "[\u{0}-\u{7f}]*") {
            let _ = decode(&raw);
        }

        /// One changed byte in a valid encoding either is caught or yields another canonical
        /// name; never a second spelling of some name.
        #[test]
        fn mutated_encodings_stay_canonical(
            name in "[a-z&\u{e4}\u{4e00}\u{1f600}]{1,8}",
            position in any::<prop::sample::Index>(),
            replacement in "[ -~]",
        ) {
            let wire = encode(&name);
            let at = position.index(wire.len());
            let mutated = format!("{}{}{}", &wire[..at], replacement, &wire[at + 1..]);
            if let Ok(decoded) = decode(&mutated) {
                let again = encode(&decoded);
                prop_assert!(
                    again == mutated || may_have_adjacent_shifts(&mutated),
                    "{:?} decoded to {:?} which encodes as {:?}", mutated, decoded, again
                );
            }
        }

        /// Inputs shaped like shift sequences reach the deep paths that random text rarely does;
        /// whatever decodes must re-encode to the same wire name, or differ only by merging
        /// adjacent sequences.
        #[test]
        fn decode_accepts_only_canonical_forms(
            raw in "([a-z&\\-]|&[A-Za-z0-9+,]{0,11}-?){0,6}"
        ) {
            if let Ok(name) = decode(&raw) {
                let wire = encode(&name);
                prop_assert!(
                    wire == raw || may_have_adjacent_shifts(&raw),
                    "{:?} decoded to {:?} which encodes as {:?}", raw, name, wire
                );
                prop_assert_eq!(decode(&wire), Ok(name));
            }
        }
    }
}
