//! Content fingerprints: how a message already copied is recognised again without ever
//! writing anything into it.
//!
//! A fingerprint is the SHA-256 of the message with every line ending reduced to LF. Servers
//! rewrite line endings on APPEND (Dovecot turns a bare LF into CRLF; Cyrus refuses bare LF, so
//! the caller normalises first), so the raw bytes on the two sides can differ only there; any
//! other difference is a different message. Two byte-identical messages have the same
//! fingerprint and stay two messages: matching is always one-to-one, never a merge.
//!
//! Beside it, every message gets a *masked* fingerprint: the same, with each 8-bit byte of the
//! header section (up to the first empty line) read as `X`, and without the header fields in
//! which mbox-based servers keep their bookkeeping ([`BOOKKEEPING_FIELDS`]: `Status:`,
//! `X-UID:`, ...). It is what a copy still matches after a destination rewrote its 8-bit
//! header bytes (Cyrus's default `munge8bit`) or wrote its own fields into the header when it
//! saved the folder (GNU Mailutils). Re-matching tries it only for what the fingerprint left
//! unmatched, still one to one. For a message with neither it is the fingerprint itself, and
//! costs nothing past the header.

use std::collections::{HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};

use crate::model::Uid;

/// Header fields mbox-based servers write into a message they store (lower case, with the
/// colon): left out of the masked fingerprint.
pub const BOOKKEEPING_FIELDS: &[&[u8]] = &[
    b"status:",
    b"x-status:",
    b"x-uid:",
    b"x-imapbase:",
    b"x-keywords:",
];

/// A header byte as the masked fingerprint reads it: 8-bit bytes as `X`, as Cyrus writes them.
fn mask_8bit(b: u8) -> u8 {
    if b >= 0x80 {
        b'X'
    } else {
        b
    }
}

/// The longest of [`BOOKKEEPING_FIELDS`].
const FIELD_MAX: usize = 11;

/// Computes a fingerprint from chunks as they stream past, and optionally the exact SHA-256.
///
/// Hashing is most of the client's own work when copying, so each chunk is hashed in one call:
/// the CRs of its CRLFs are dropped into a scratch buffer first rather than hashing line by
/// line, and the exact hash is only computed when asked for (verification needs it, copying
/// does not).
#[derive(Clone, Default)]
pub struct Fingerprinter {
    hash: Sha256,
    pending_cr: bool,
    exact: Option<Sha256>,
    scratch: Vec<u8>,
    /// The masked fingerprint (see the module docs), fed while in the header, and after it
    /// only when it differs from the fingerprint (8-bit header bytes, or a field left out).
    masked: Sha256,
    masked_scratch: Vec<u8>,
    header_done: bool,
    header_8bit: bool,
    /// A bookkeeping field was left out of the masked fingerprint.
    header_dropped: bool,
    /// At the start of a header line (true at the start: a message may begin with its
    /// empty line).
    after_lf: bool,
    /// The start of a header field's line, held until it shows whether the field is one
    /// left out.
    field: Vec<u8>,
    /// The header line being read belongs to a field left out (continuation lines too).
    dropping: bool,
    /// A NUL byte was seen.
    has_nul: bool,
    /// The last normalised byte hashed was LF.
    ends_with_lf: bool,
}

/// A message's fingerprint and its masked fingerprint (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ContentPrint {
    /// The fingerprint: line endings normalised.
    pub fingerprint: [u8; 32],
    /// The same with the header's 8-bit bytes read as `X` and its bookkeeping fields left
    /// out.
    pub masked: [u8; 32],
    /// The header section has 8-bit bytes.
    pub header_8bit: bool,
    /// The message holds NUL bytes (which some servers replace: Dovecot with 0x80).
    pub has_nul: bool,
    /// The fingerprint the message would have with a line ending added at its end (what
    /// Courier and Mailutils store of a message that does not end with one); the fingerprint
    /// itself when it ends with one.
    pub with_final_newline: [u8; 32],
}

impl Fingerprinter {
    /// A fingerprinter for the line-ending-normalised fingerprint only.
    pub fn new() -> Fingerprinter {
        Fingerprinter {
            after_lf: true,
            ..Fingerprinter::default()
        }
    }

    /// A fingerprinter that also computes the exact SHA-256 of the bytes.
    pub fn with_exact() -> Fingerprinter {
        Fingerprinter {
            exact: Some(Sha256::new()),
            ..Fingerprinter::new()
        }
    }

    /// Feeds the next chunk of the message.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(exact) = &mut self.exact {
            exact.update(chunk);
        }
        if !self.has_nul && memchr::memchr(0, chunk).is_some() {
            self.has_nul = true;
        }
        if chunk.is_empty() {
            // Nothing to decide yet: a CR held back from the last chunk waits for the next
            // byte, or it would count as a stray CR when the LF comes after an empty read.
            return;
        }
        self.scratch.clear();
        let mut rest = chunk;
        if self.pending_cr {
            self.pending_cr = false;
            if rest.first() != Some(&b'\n') {
                self.scratch.push(b'\r');
            }
        }
        while let Some(i) = memchr::memchr(b'\r', rest) {
            self.scratch.extend_from_slice(&rest[..i]);
            match rest.get(i + 1) {
                // CRLF: keep only the LF, which comes with the next slice.
                Some(b'\n') => {}
                Some(_) => self.scratch.push(b'\r'),
                None => self.pending_cr = true,
            }
            rest = &rest[i + 1..];
        }
        if self.scratch.is_empty() {
            // No CR at all (bare-LF mail): hash the chunk where it lies.
            self.absorb(rest);
        } else {
            self.scratch.extend_from_slice(rest);
            let scratch = std::mem::take(&mut self.scratch);
            self.absorb(&scratch);
            self.scratch = scratch;
        }
    }

    /// Hashes normalised bytes into the fingerprint, and into the masked one while it differs.
    fn absorb(&mut self, d: &[u8]) {
        self.hash.update(d);
        if d.is_empty() {
            return;
        }
        self.ends_with_lf = d.last() == Some(&b'\n');
        if self.header_done {
            if self.differs() {
                self.masked.update(d);
            }
            return;
        }
        // The header is read line by line: it ends after the first empty line.
        let mut scratch = std::mem::take(&mut self.masked_scratch);
        scratch.clear();
        let mut end = None;
        for (i, &b) in d.iter().enumerate() {
            if self.after_lf {
                self.after_lf = false;
                match b {
                    b'\n' => {
                        scratch.push(b);
                        end = Some(i + 1);
                        break;
                    }
                    // A continuation line: the field's disposition holds.
                    b' ' | b'\t' => {}
                    _ => {
                        self.dropping = false;
                        self.field.push(b);
                        if b == b':' {
                            self.decide(&mut scratch);
                        }
                        continue;
                    }
                }
            } else if !self.field.is_empty() {
                self.field.push(b);
                if b == b':' || b == b'\n' || self.field.len() > FIELD_MAX {
                    self.decide(&mut scratch);
                }
                self.after_lf = b == b'\n';
                continue;
            }
            if b >= 0x80 {
                self.header_8bit = true;
            }
            if !self.dropping {
                scratch.push(mask_8bit(b));
            }
            self.after_lf = b == b'\n';
        }
        self.masked.update(&scratch);
        self.masked_scratch = scratch;
        if let Some(end) = end {
            self.header_done = true;
            if self.differs() {
                self.masked.update(&d[end..]);
            }
        }
    }

    /// Whether the masked fingerprint differs from the fingerprint.
    fn differs(&self) -> bool {
        self.header_8bit || self.header_dropped
    }

    /// Decides on the field whose start is held: left out, or passed to the masked print.
    fn decide(&mut self, scratch: &mut Vec<u8>) {
        let field = std::mem::take(&mut self.field);
        self.dropping = BOOKKEEPING_FIELDS
            .iter()
            .any(|f| field.eq_ignore_ascii_case(f));
        if self.dropping {
            self.header_dropped = true;
        } else {
            if field.iter().any(|&b| b >= 0x80) {
                self.header_8bit = true;
            }
            scratch.extend(field.iter().copied().map(mask_8bit));
        }
        self.field = field;
        self.field.clear();
    }

    /// The fingerprint and the masked fingerprint.
    pub fn finish_print(mut self) -> ContentPrint {
        if self.pending_cr {
            self.pending_cr = false;
            self.absorb(b"\r");
        }
        if !self.header_done && !self.field.is_empty() {
            // The message ended inside a field's name.
            let mut scratch = Vec::new();
            self.decide(&mut scratch);
            self.masked.update(&scratch);
        }
        let differs = self.differs();
        let with_final_newline: Option<[u8; 32]> = (!self.ends_with_lf).then(|| {
            let mut h = self.hash.clone();
            h.update(b"\n");
            h.finalize().into()
        });
        let fingerprint: [u8; 32] = self.hash.finalize().into();
        let masked = if differs {
            self.masked.finalize().into()
        } else {
            fingerprint
        };
        ContentPrint {
            fingerprint,
            masked,
            header_8bit: self.header_8bit,
            has_nul: self.has_nul,
            with_final_newline: with_final_newline.unwrap_or(fingerprint),
        }
    }

    /// The fingerprint (line endings normalised) and the exact SHA-256 of the bytes (all
    /// zeros unless made [`with_exact`](Self::with_exact)).
    pub fn finish(mut self) -> ([u8; 32], [u8; 32]) {
        if self.pending_cr {
            self.hash.update(b"\r");
        }
        let exact = self.exact.map(|e| e.finalize().into()).unwrap_or([0; 32]);
        (self.hash.finalize().into(), exact)
    }
}

/// Reads a body to its end; returns its fingerprint.
pub async fn fingerprint_body(
    body: &mut crate::body::FetchedBody<'_>,
) -> Result<ContentPrint, crate::imap::error::ImapError> {
    let mut f = Fingerprinter::new();
    while let Some(c) = body.chunk().await? {
        f.update(&c);
    }
    Ok(f.finish_print())
}

/// Reads a body to its end; returns its fingerprint and the exact SHA-256 of its bytes.
pub async fn of_body(
    body: &mut crate::body::FetchedBody<'_>,
) -> Result<([u8; 32], [u8; 32]), crate::imap::error::ImapError> {
    let mut f = Fingerprinter::with_exact();
    while let Some(c) = body.chunk().await? {
        f.update(&c);
    }
    Ok(f.finish())
}

/// The fingerprint of a whole message in memory.
pub fn fingerprint(message: &[u8]) -> [u8; 32] {
    print(message).fingerprint
}

/// The fingerprint and masked fingerprint of a whole message in memory.
pub fn print(message: &[u8]) -> ContentPrint {
    let mut f = Fingerprinter::new();
    f.update(message);
    f.finish_print()
}

/// Lower-case hex, for reports.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Matches messages one-to-one by fingerprint: each `wanted` (in order) takes the lowest
/// unused candidate UID with the same fingerprint. Identical messages stay distinct.
pub(crate) fn match_by_fingerprint<K: Copy>(
    wanted: &[(K, [u8; 32])],
    candidates: &HashMap<Uid, [u8; 32]>,
) -> Vec<(K, Uid)> {
    let mut by_fp: HashMap<[u8; 32], VecDeque<Uid>> = HashMap::new();
    let mut sorted: Vec<(&Uid, &[u8; 32])> = candidates.iter().collect();
    sorted.sort_by_key(|(u, _)| **u);
    for (u, fp) in sorted {
        by_fp.entry(*fp).or_default().push_back(*u);
    }
    wanted
        .iter()
        .filter_map(|(k, fp)| {
            by_fp
                .get_mut(fp)
                .and_then(VecDeque::pop_front)
                .map(|u| (*k, u))
        })
        .collect()
}

/// Matches messages one-to-one by content: by fingerprint first, then what is left on both
/// sides by masked fingerprint (a copy whose 8-bit header bytes the destination rewrote).
/// Never more than one candidate per wanted message, nor the other way round.
pub(crate) fn match_by_print(
    wanted: &[(Uid, ContentPrint)],
    candidates: &HashMap<Uid, ContentPrint>,
) -> Vec<(Uid, Uid)> {
    let exact: Vec<(Uid, [u8; 32])> = wanted.iter().map(|(k, p)| (*k, p.fingerprint)).collect();
    let cands: HashMap<Uid, [u8; 32]> = candidates
        .iter()
        .map(|(u, p)| (*u, p.fingerprint))
        .collect();
    let mut out = match_by_fingerprint(&exact, &cands);
    let taken: HashSet<Uid> = out.iter().map(|(k, _)| *k).collect();
    let used: HashSet<Uid> = out.iter().map(|(_, u)| *u).collect();
    let rest: Vec<(Uid, [u8; 32])> = wanted
        .iter()
        .filter(|(k, _)| !taken.contains(k))
        .map(|(k, p)| (*k, p.masked))
        .collect();
    let rest_cands: HashMap<Uid, [u8; 32]> = candidates
        .iter()
        .filter(|(u, _)| !used.contains(u))
        .map(|(u, p)| (*u, p.masked))
        .collect();
    if !rest.is_empty() && !rest_cands.is_empty() {
        out.extend(match_by_fingerprint(&rest, &rest_cands));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An empty chunk between a chunk ending in CR and one starting with LF made the CR count
    /// as a stray one, so the same message read in other pieces got another fingerprint (and
    /// a copy made before a crash would not have been found again).
    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        let data = b"\r\nbody: line\n\r\n folded\r\n folded\r\n";
        let mut f = Fingerprinter::new();
        f.update(&data[..32]);
        f.update(&[]);
        f.update(&data[32..]);
        assert_eq!(f.finish_print(), print(data));
    }

    #[test]
    fn masked_prints_never_merge_distinct_source_messages() {
        // Two source messages that differ only in 8-bit header bytes: rewritten to X they
        // would be the same, so one destination copy is claimed by one of them only.
        let a = print("Subject: \u{e4}\r\n\r\nx\r\n".as_bytes());
        let b = print("Subject: \u{f6}\r\n\r\nx\r\n".as_bytes());
        let munged = print(b"Subject: XX\r\n\r\nx\r\n");
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.masked, munged.masked);
        let cands: HashMap<Uid, ContentPrint> = [(Uid(7), munged)].into_iter().collect();
        let m = match_by_print(&[(Uid(1), a), (Uid(2), b)], &cands);
        assert_eq!(m, vec![(Uid(1), Uid(7))]);
        // An exact match is preferred to a masked one.
        let cands: HashMap<Uid, ContentPrint> =
            [(Uid(7), munged), (Uid(8), b)].into_iter().collect();
        let m = match_by_print(&[(Uid(1), a), (Uid(2), b)], &cands);
        assert_eq!(m, vec![(Uid(2), Uid(8)), (Uid(1), Uid(7))]);
    }

    #[test]
    fn identical_messages_match_one_to_one() {
        let fp = [1u8; 32];
        let other = [2u8; 32];
        let cands: HashMap<Uid, [u8; 32]> = [(Uid(10), fp), (Uid(11), fp), (Uid(12), other)]
            .into_iter()
            .collect();
        let wanted = vec![(Uid(1), fp), (Uid(2), fp), (Uid(3), fp), (Uid(4), other)];
        let m = match_by_fingerprint(&wanted, &cands);
        assert_eq!(
            m,
            vec![(Uid(1), Uid(10)), (Uid(2), Uid(11)), (Uid(4), Uid(12))]
        );
    }

    #[test]
    fn crlf_and_lf_agree_but_content_does_not() {
        assert_eq!(fingerprint(b"a\r\nb\r\n"), fingerprint(b"a\nb\n"));
        assert_ne!(fingerprint(b"a\nb\n"), fingerprint(b"a\nc\n"));
        assert_ne!(fingerprint(b"a\rb"), fingerprint(b"a\nb"));
        assert_ne!(fingerprint(b"a\r"), fingerprint(b"a"));
    }

    #[test]
    fn masked_prints_see_past_rewritten_8bit_header_bytes() {
        let raw = "Subject: Gr\u{fc}\u{df}e\r\nFrom: a\r\n\r\nK\u{f6}rper\r\n".as_bytes();
        let munged: Vec<u8> = {
            let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            raw.iter()
                .enumerate()
                .map(|(i, &b)| if i < end && b >= 0x80 { b'X' } else { b })
                .collect()
        };
        let (a, b) = (print(raw), print(&munged));
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.masked, b.masked);
        assert_eq!(b.masked, b.fingerprint);
        // The body's 8-bit bytes are not masked.
        let other = "Subject: Gr\u{fc}\u{df}e\r\nFrom: a\r\n\r\nKXXrper\r\n".as_bytes();
        assert_ne!(print(other).masked, a.masked);
        let plain = print(b"Subject: x\n\nbody\n");
        assert_eq!(plain.masked, plain.fingerprint);
    }

    #[test]
    fn masked_prints_see_past_mbox_bookkeeping_fields() {
        let sent = b"From: a@example.org\r\nSubject: x\r\n\r\nline\r\nStatus: body\r\n";
        // What GNU Mailutils serves once it has saved the folder.
        let saved = b"From: a@example.org\r\nSubject: x\r\nX-IMAPbase: 1796505173 300          \r\nStatus: O\r\nX-UID: 1\r\n\r\nline\r\nStatus: body\r\n";
        let (a, b) = (print(sent), print(saved));
        assert_ne!(a.fingerprint, b.fingerprint);
        assert_eq!(a.masked, b.masked);
        assert_eq!(a.masked, a.fingerprint);
        assert!(!b.header_8bit);
        // Folded and differently cased fields go too.
        let folded = b"status: RO\r\n  folded\r\nFrom: a@example.org\r\nX-Keywords: $Label1\r\nSubject: x\r\n\r\nline\r\nStatus: body\r\n";
        assert_eq!(print(folded).masked, a.masked);
        // Only in the header, and only those fields.
        let body_changed = b"From: a@example.org\r\nSubject: x\r\n\r\nline\r\nStatus: other\r\n";
        assert_ne!(print(body_changed).masked, a.masked);
        for other in [
            &b"X-UIDL: 1\r\n"[..],
            b"Status-Line: 1\r\n",
            b"X-Status-Extra: 1\r\n",
        ] {
            let mut m = other.to_vec();
            m.extend_from_slice(sent);
            assert_ne!(
                print(&m).masked,
                a.masked,
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
        // A line ending added at the end is recognised.
        let cut = print(b"From: a\r\n\r\nno end");
        assert_eq!(
            cut.with_final_newline,
            print(b"From: a\r\n\r\nno end\r\n").fingerprint
        );
        assert_eq!(a.with_final_newline, a.fingerprint);
        // A message that is all header, ending in a field name.
        assert_eq!(
            print(b"From: a\nStatus:").masked,
            print(b"From: a\n").masked
        );
    }

    proptest! {
        #[test]
        fn masked_chunking_does_not_matter(data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0xc3u8), any::<u8>()], 0..200), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut f = Fingerprinter::new();
            f.update(&data[..cut]);
            f.update(&data[cut..]);
            prop_assert_eq!(f.finish_print(), print(&data));
        }

        #[test]
        fn masked_header_chunking_does_not_matter(
            lines in proptest::collection::vec(prop_oneof![
                Just(&b"Status: O\r\n"[..]),
                Just(&b"X-UID: 12\n"[..]),
                Just(&b" folded\r\n"[..]),
                Just(&b"Subject: Gr\xc3\xbc\xc3\x9fe\r\n"[..]),
                Just(&b"From: a\n"[..]),
                Just(&b"X-IMAPbase: 1 2\r\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"body: line\n"[..]),
            ], 0..12),
            cuts in proptest::collection::vec(0usize..200, 0..4),
        ) {
            let data: Vec<u8> = lines.concat();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut f = Fingerprinter::new();
            let mut at = 0;
            for c in cuts {
                f.update(&data[at..c]);
                at = c;
            }
            f.update(&data[at..]);
            prop_assert_eq!(f.finish_print(), print(&data));
        }

        #[test]
        fn chunking_does_not_matter(data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..200), cut in 0usize..200) {
            let cut = cut.min(data.len());
            let mut f = Fingerprinter::new();
            f.update(&data[..cut]);
            f.update(&data[cut..]);
            prop_assert_eq!(f.finish().0, fingerprint(&data));
            let crlf: Vec<u8> = data.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
            // Turning every LF into CRLF (what Dovecot does to bare LFs) keeps the fingerprint,
            // unless a CR already stood before that LF.
            if !data.windows(2).any(|w| w == b"\r\n") && !data.ends_with(b"\r") {
                prop_assert_eq!(fingerprint(&crlf), fingerprint(&data));
            }
        }
    }
}
