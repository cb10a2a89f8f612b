//! Content fingerprints: how a message already copied is recognised again without ever
//! writing anything into it.
//!
//! A fingerprint is the SHA-256 of the message with every line ending reduced to LF. Servers
//! rewrite line endings on APPEND (Dovecot turns a bare LF into CRLF; Cyrus refuses bare LF, so
//! the caller normalises first), so the raw bytes on the two sides can differ only there; any
//! other difference is a different message. Two byte-identical messages have the same
//! fingerprint and stay two messages: matching is always one-to-one, never a merge.

use sha2::{Digest, Sha256};

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
}

impl Fingerprinter {
    /// A fingerprinter for the line-ending-normalised fingerprint only.
    pub fn new() -> Fingerprinter {
        Fingerprinter::default()
    }

    /// A fingerprinter that also computes the exact SHA-256 of the bytes.
    pub fn with_exact() -> Fingerprinter {
        Fingerprinter {
            exact: Some(Sha256::new()),
            ..Fingerprinter::default()
        }
    }

    /// Feeds the next chunk of the message.
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(exact) = &mut self.exact {
            exact.update(chunk);
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
            self.hash.update(rest);
        } else {
            self.scratch.extend_from_slice(rest);
            self.hash.update(&self.scratch);
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
) -> Result<[u8; 32], crate::imap::ImapError> {
    let mut f = Fingerprinter::new();
    while let Some(c) = body.chunk().await? {
        f.update(&c);
    }
    Ok(f.finish().0)
}

/// Reads a body to its end; returns its fingerprint and the exact SHA-256 of its bytes.
pub async fn of_body(
    body: &mut crate::body::FetchedBody<'_>,
) -> Result<([u8; 32], [u8; 32]), crate::imap::ImapError> {
    let mut f = Fingerprinter::with_exact();
    while let Some(c) = body.chunk().await? {
        f.update(&c);
    }
    Ok(f.finish())
}

/// The fingerprint of a whole message in memory.
pub fn fingerprint(message: &[u8]) -> [u8; 32] {
    let mut f = Fingerprinter::new();
    f.update(message);
    f.finish().0
}

/// Lower-case hex, for reports.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crlf_and_lf_agree_but_content_does_not() {
        assert_eq!(fingerprint(b"a\r\nb\r\n"), fingerprint(b"a\nb\n"));
        assert_ne!(fingerprint(b"a\nb\n"), fingerprint(b"a\nc\n"));
        assert_ne!(fingerprint(b"a\rb"), fingerprint(b"a\nb"));
        assert_ne!(fingerprint(b"a\r"), fingerprint(b"a"));
    }

    proptest! {
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
