//! Client-side SASL initial responses for `AUTHENTICATE`: PLAIN (RFC 4616), XOAUTH2 (Google's
//! and Microsoft's) and OAUTHBEARER (RFC 7628).
//!
//! Each builder returns the base64 text to send (as the initial response with `SASL-IR`, or
//! after the server's empty `+` otherwise). It carries the credentials, so it is a [`Secret`],
//! and the plaintext it was made from lives only in a buffer that is zeroed before return.
//!
//! This module does no I/O and knows nothing of IMAP framing. The fields are checked only for
//! what would corrupt the payload's structure (a separator byte inside a field, an empty field
//! the mechanism requires); whether the server accepts them is the server's business.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use std::fmt;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Field separator of PLAIN (RFC 4616).
const NUL: u8 = 0x00;
/// Field separator of XOAUTH2 and of OAUTHBEARER's key-value pairs (RFC 7628 `kvsep`).
const CTRL_A: u8 = 0x01;

/// Longest text [`decode_challenge_error`] returns, in bytes: enough for every error document
/// a provider is known to send, small enough that a hostile server cannot flood a log line.
pub const CHALLENGE_ERROR_MAX: usize = 1024;

/// A SASL mechanism this module can build a client response for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// `PLAIN`, RFC 4616: authorization identity, authentication identity, password.
    Plain,
    /// `XOAUTH2`, the pre-standard OAuth 2.0 mechanism of Gmail and Microsoft 365.
    XOAuth2,
    /// `OAUTHBEARER`, RFC 7628.
    OAuthBearer,
}

impl Mechanism {
    /// The name as sent after `AUTHENTICATE` and listed in `AUTH=` capabilities.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::XOAuth2 => "XOAUTH2",
            Self::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which input of a SASL builder a [`SaslError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// The authorization identity: the user an administrator acts for.
    Authzid,
    /// The authentication identity: whose password it is.
    Authcid,
    /// The password.
    Password,
    /// The user name (XOAUTH2, OAUTHBEARER).
    User,
    /// The server host name (OAUTHBEARER).
    Host,
    /// The OAuth 2.0 access token.
    Token,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Authzid => "authorization identity",
            Self::Authcid => "authentication identity",
            Self::Password => "password",
            Self::User => "user name",
            Self::Host => "host name",
            Self::Token => "access token",
        })
    }
}

/// Why a SASL response could not be built.
///
/// Never carries the value of a field, only which field it is, so it is safe to log even when
/// the field is the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaslError {
    /// A field contains a byte the mechanism uses as a separator, so the server would read a
    /// different message than the one meant. Usually a configuration or copy-paste mistake: check
    /// the named field for stray control characters.
    #[error(
        "the {field} for SASL {mechanism} contains byte {byte:#04x}, which the mechanism uses as \
         a separator; check it for stray control characters"
    )]
    ForbiddenByte {
        /// The mechanism being built.
        mechanism: Mechanism,
        /// The field that holds the byte.
        field: Field,
        /// The forbidden byte.
        byte: u8,
    },
    /// A field the mechanism requires is empty. Usually a missing setting.
    #[error("the {field} for SASL {mechanism} is empty")]
    EmptyField {
        /// The mechanism being built.
        mechanism: Mechanism,
        /// The empty field.
        field: Field,
    },
}

/// Builds the PLAIN response (RFC 4616): `authzid NUL authcid NUL password`.
///
/// `authzid` is the user to act for, when it differs from the one authenticating: with a
/// Dovecot master user, `authzid` is the mailbox owner and `authcid` the master user. `None`
/// and `Some("")` both mean "act as myself".
///
/// Fails if any field contains NUL, or if `authcid` or the password is empty (RFC 4616 requires
/// both).
pub fn plain(authzid: Option<&str>, authcid: &str, password: &Secret) -> Result<Secret, SaslError> {
    const M: Mechanism = Mechanism::Plain;
    let authzid = authzid.unwrap_or("");
    check(M, Field::Authzid, authzid, &[NUL])?;
    check_non_empty(M, Field::Authcid, authcid)?;
    check(M, Field::Authcid, authcid, &[NUL])?;
    check_non_empty(M, Field::Password, password.expose())?;
    check(M, Field::Password, password.expose(), &[NUL])?;

    Ok(encode_parts(&[
        authzid.as_bytes(),
        &[NUL],
        authcid.as_bytes(),
        &[NUL],
        password.expose().as_bytes(),
    ]))
}

/// Builds the XOAUTH2 response: `user=<user> ^A auth=Bearer <token> ^A ^A`.
///
/// Fails if the user or token is empty or contains `^A` (0x01).
pub fn xoauth2(user: &str, token: &Secret) -> Result<Secret, SaslError> {
    const M: Mechanism = Mechanism::XOAuth2;
    check_non_empty(M, Field::User, user)?;
    check(M, Field::User, user, &[CTRL_A])?;
    check_token(M, token)?;

    Ok(encode_parts(&[
        b"user=",
        user.as_bytes(),
        b"\x01auth=Bearer ",
        token.expose().as_bytes(),
        b"\x01\x01",
    ]))
}

/// Builds the OAUTHBEARER response (RFC 7628):
/// `n,a=<user>, ^A host=<host> ^A port=<port> ^A auth=Bearer <token> ^A ^A`.
///
/// `,` and `=` in the user are escaped as `=2C` and `=3D`, as the GS2 header requires. An empty
/// user leaves the authorization identity out (`n,,`), which RFC 7628 allows; the server then
/// takes the identity from the token. `host` and `port` are the server's as the client dialled
/// them; some providers check them against the token's audience.
///
/// Fails if the user or host contains NUL or `^A`, or if the token is empty or contains `^A`.
pub fn oauthbearer(user: &str, host: &str, port: u16, token: &Secret) -> Result<Secret, SaslError> {
    const M: Mechanism = Mechanism::OAuthBearer;
    check(M, Field::User, user, &[NUL, CTRL_A])?;
    check(M, Field::Host, host, &[NUL, CTRL_A])?;
    check_token(M, token)?;

    let escaped_user = escape_saslname(user);
    let port = port.to_string();
    let authzid: &[u8] = if escaped_user.is_empty() { b"" } else { b"a=" };
    Ok(encode_parts(&[
        b"n,",
        authzid,
        escaped_user.as_bytes(),
        b",\x01host=",
        host.as_bytes(),
        b"\x01port=",
        port.as_bytes(),
        b"\x01auth=Bearer ",
        token.expose().as_bytes(),
        b"\x01\x01",
    ]))
}

/// Turns the continuation a server sends after a failed XOAUTH2 or OAUTHBEARER exchange (`+ `
/// followed by base64 JSON, such as `{"status":"401","schemes":"bearer","scope":"..."}`) into
/// text for an error message.
///
/// Pass the text after `+ `. Returns `None` if it is empty or not base64. The result is lossy
/// UTF-8, has control characters escaped (a hostile server must not be able to write terminal
/// escapes or fake log lines) and is at most [`CHALLENGE_ERROR_MAX`] bytes. Never panics.
///
/// The client must still answer such a continuation with an empty line; only then does the
/// server send the tagged `NO`. A client that waits for the `NO` first hangs.
pub fn decode_challenge_error(challenge_b64: &str) -> Option<String> {
    // Decoding only what can contribute to the result bounds the work, whatever the server
    // sends. A prefix of whole 4-character groups of valid base64 is itself valid base64.
    const MAX_ENCODED: usize = CHALLENGE_ERROR_MAX.div_ceil(3) * 4;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );

    let encoded = challenge_b64.trim_matches(|c: char| c.is_ascii_whitespace());
    // Non-ASCII is not base64; refusing it here also makes byte slicing below char-safe.
    if encoded.is_empty() || !encoded.is_ascii() {
        return None;
    }
    let encoded = encoded.get(..MAX_ENCODED).unwrap_or(encoded);
    let decoded = LENIENT.decode(encoded).ok()?;
    let text = String::from_utf8_lossy(&decoded);

    let mut out = String::with_capacity(text.len().min(CHALLENGE_ERROR_MAX));
    for c in text.trim().chars() {
        let before = out.len();
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
        if out.len() > CHALLENGE_ERROR_MAX {
            // Whole characters (and whole escapes) only; cutting one in half would leave a
            // misleading fragment.
            out.truncate(before);
            break;
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// Fails if `value` contains any of `forbidden`.
fn check(
    mechanism: Mechanism,
    field: Field,
    value: &str,
    forbidden: &[u8],
) -> Result<(), SaslError> {
    match value.bytes().find(|b| forbidden.contains(b)) {
        Some(byte) => Err(SaslError::ForbiddenByte {
            mechanism,
            field,
            byte,
        }),
        None => Ok(()),
    }
}

/// Fails if `value` is empty.
fn check_non_empty(mechanism: Mechanism, field: Field, value: &str) -> Result<(), SaslError> {
    if value.is_empty() {
        Err(SaslError::EmptyField { mechanism, field })
    } else {
        Ok(())
    }
}

/// The checks both OAuth mechanisms apply to the bearer token.
fn check_token(mechanism: Mechanism, token: &Secret) -> Result<(), SaslError> {
    check_non_empty(mechanism, Field::Token, token.expose())?;
    check(mechanism, Field::Token, token.expose(), &[CTRL_A])
}

/// Escapes a user name for the GS2 header's `saslname` (RFC 5801): `=` as `=3D`, `,` as `=2C`.
fn escape_saslname(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            _ => out.push(c),
        }
    }
    out
}

/// Concatenates `parts` and base64-encodes the result into a [`Secret`].
///
/// Both buffers are sized exactly up front: a buffer that grows leaves a copy of its old
/// contents in freed memory, which no zeroing can reach.
fn encode_parts(parts: &[&[u8]]) -> Secret {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut plaintext = Zeroizing::new(Vec::with_capacity(len));
    for part in parts {
        plaintext.extend_from_slice(part);
    }
    let mut encoded = String::with_capacity(base64::encoded_len(len, true).unwrap_or(0));
    STANDARD.encode_string(plaintext.as_slice(), &mut encoded);
    Secret::new(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_payload(payload: &Secret) -> Vec<u8> {
        STANDARD.decode(payload.expose()).unwrap()
    }

    #[test]
    fn plain_rfc_4616_vectors() {
        let password = Secret::new("tanstaaftanstaaf");
        assert_eq!(
            plain(None, "tim", &password).unwrap().expose(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert_eq!(
            plain(Some(""), "tim", &password).unwrap().expose(),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert_eq!(
            plain(Some("Ursel"), "Kurt", &Secret::new("xipj3plmq"))
                .unwrap()
                .expose(),
            "VXJzZWwAS3VydAB4aXBqM3BsbXE="
        );
    }

    #[test]
    fn plain_dovecot_master_user_puts_the_target_first() {
        let payload = plain(Some("alice@example.com"), "master", &Secret::new("pw")).unwrap();
        assert_eq!(decode_payload(&payload), b"alice@example.com\0master\0pw");
    }

    #[test]
    fn plain_rejects_nul_and_empty_fields() {
        let pw = Secret::new("pw");
        let forbidden = |field| SaslError::ForbiddenByte {
            mechanism: Mechanism::Plain,
            field,
            byte: 0,
        };
        assert_eq!(
            plain(Some("a\0b"), "tim", &pw),
            Err(forbidden(Field::Authzid))
        );
        assert_eq!(plain(None, "t\0im", &pw), Err(forbidden(Field::Authcid)));
        assert_eq!(
            plain(None, "tim", &Secret::new("p\0w")),
            Err(forbidden(Field::Password))
        );
        assert_eq!(
            plain(None, "", &pw),
            Err(SaslError::EmptyField {
                mechanism: Mechanism::Plain,
                field: Field::Authcid
            })
        );
        assert_eq!(
            plain(None, "tim", &Secret::new("")),
            Err(SaslError::EmptyField {
                mechanism: Mechanism::Plain,
                field: Field::Password
            })
        );
    }

    #[test]
    fn xoauth2_google_vector() {
        let token = Secret::new("ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg");
        assert_eq!(
            xoauth2("someuser@example.com", &token).unwrap().expose(),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbG\
             NrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
        );
    }

    #[test]
    fn xoauth2_rejects_separator_and_empty_fields() {
        let token = Secret::new("t");
        assert_eq!(
            xoauth2("a\x01b", &token),
            Err(SaslError::ForbiddenByte {
                mechanism: Mechanism::XOAuth2,
                field: Field::User,
                byte: 1
            })
        );
        assert_eq!(
            xoauth2("a", &Secret::new("t\x01")),
            Err(SaslError::ForbiddenByte {
                mechanism: Mechanism::XOAuth2,
                field: Field::Token,
                byte: 1
            })
        );
        assert!(matches!(
            xoauth2("", &token),
            Err(SaslError::EmptyField { .. })
        ));
        assert!(matches!(
            xoauth2("a", &Secret::new("")),
            Err(SaslError::EmptyField { .. })
        ));
    }

    #[test]
    fn oauthbearer_rfc_7628_vector() {
        let token = Secret::new("vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
        assert_eq!(
            oauthbearer("user@example.com", "server.example.com", 143, &token)
                .unwrap()
                .expose(),
            "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcm\
             VyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
        );
    }

    #[test]
    fn oauthbearer_escapes_the_user() {
        let payload = oauthbearer("a=b,c", "imap.example.org", 993, &Secret::new("tok")).unwrap();
        assert_eq!(
            payload.expose(),
            "bixhPWE9M0RiPTJDYywBaG9zdD1pbWFwLmV4YW1wbGUub3JnAXBvcnQ9OTkzAWF1dGg9QmVhcmVyIHRvawEB"
        );
    }

    #[test]
    fn oauthbearer_without_user_omits_the_authzid() {
        let payload = oauthbearer("", "h", 1, &Secret::new("tok")).unwrap();
        assert_eq!(
            decode_payload(&payload),
            b"n,,\x01host=h\x01port=1\x01auth=Bearer tok\x01\x01"
        );
    }

    #[test]
    fn oauthbearer_rejects_separators() {
        let token = Secret::new("t");
        for (user, host, field, byte) in [
            ("a\x01", "h", Field::User, 1),
            ("a\0", "h", Field::User, 0),
            ("a", "h\x01", Field::Host, 1),
            ("a", "h\0", Field::Host, 0),
        ] {
            assert_eq!(
                oauthbearer(user, host, 993, &token),
                Err(SaslError::ForbiddenByte {
                    mechanism: Mechanism::OAuthBearer,
                    field,
                    byte
                })
            );
        }
        assert!(oauthbearer("a", "h", 993, &Secret::new("t\x01")).is_err());
        assert!(oauthbearer("a", "h", 993, &Secret::new("")).is_err());
    }

    #[test]
    fn errors_do_not_contain_the_secret() {
        let err = plain(None, "tim", &Secret::new("zq9\0xk7")).unwrap_err();
        for rendered in [err.to_string(), format!("{err:?}")] {
            assert!(!rendered.contains("zq9"), "{rendered}");
            assert!(!rendered.contains("xk7"), "{rendered}");
        }
        assert!(err.to_string().contains("password"));
    }

    #[test]
    fn payload_does_not_print() {
        let payload = plain(None, "tim", &Secret::new("tanstaaftanstaaf")).unwrap();
        assert!(!format!("{payload:?}").contains("AHRpbQ"));
    }

    #[test]
    fn gmail_challenge_error_decodes() {
        assert_eq!(
            decode_challenge_error(
                "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdv\
                 b2dsZS5jb20vIn0K\r\n"
            )
            .as_deref(),
            Some(r#"{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}"#)
        );
    }

    #[test]
    fn challenge_error_tolerates_missing_padding() {
        // "ab" is "YWI=" padded.
        assert_eq!(decode_challenge_error("YWI").as_deref(), Some("ab"));
        assert_eq!(decode_challenge_error("YWI=").as_deref(), Some("ab"));
    }

    #[test]
    fn challenge_error_rejects_garbage() {
        assert_eq!(decode_challenge_error(""), None);
        assert_eq!(decode_challenge_error("   "), None);
        assert_eq!(decode_challenge_error("not base64!"), None);
        assert_eq!(decode_challenge_error("Zm9v\u{e9}"), None);
        // Decodes to whitespace only.
        assert_eq!(decode_challenge_error("ICAg"), None);
    }

    #[test]
    fn challenge_error_escapes_control_characters() {
        let payload = STANDARD.encode(b"bad\x1b[2Jtoken\nfake log line\xff");
        assert_eq!(
            decode_challenge_error(&payload).as_deref(),
            Some("bad\\u{1b}[2Jtoken\\nfake log line\u{fffd}")
        );
    }

    #[test]
    fn challenge_error_is_bounded() {
        let long = "x".repeat(100_000);
        let decoded = decode_challenge_error(&STANDARD.encode(&long)).unwrap();
        assert_eq!(decoded.len(), CHALLENGE_ERROR_MAX);
        // An escape is not cut in half at the limit: 1020 bytes of text, then ESC, whose
        // 6-byte escape `\u{1b}` would end past 1024.
        let mut text = "y".repeat(CHALLENGE_ERROR_MAX - 4).into_bytes();
        text.extend_from_slice(b"\x1bz");
        let decoded = decode_challenge_error(&STANDARD.encode(&text)).unwrap();
        assert_eq!(decoded, "y".repeat(CHALLENGE_ERROR_MAX - 4));
    }

    /// Reverses `escape_saslname`, independently of it: one pass, left to right.
    fn unescape_saslname(escaped: &str) -> String {
        let mut out = String::new();
        let mut rest = escaped;
        while let Some(c) = rest.chars().next() {
            if let Some(tail) = rest.strip_prefix("=2C") {
                out.push(',');
                rest = tail;
            } else if let Some(tail) = rest.strip_prefix("=3D") {
                out.push('=');
                rest = tail;
            } else {
                assert!(c != '=' && c != ',', "unescaped {c:?} in {escaped:?}");
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    /// Splits an OAUTHBEARER payload into (authzid, host, port, token).
    fn parse_oauthbearer(payload: &[u8]) -> (String, String, String, String) {
        let text = std::str::from_utf8(payload).unwrap();
        let (gs2, rest) = text.split_once(",\x01").unwrap();
        let user = gs2.strip_prefix("n,").unwrap();
        let user = user.strip_prefix("a=").unwrap_or(user);
        let user = unescape_saslname(user);
        let rest = rest.strip_suffix("\x01\x01").unwrap();
        let fields: Vec<&str> = rest.split('\x01').collect();
        assert_eq!(fields.len(), 3, "{rest:?}");
        (
            user,
            fields[0].strip_prefix("host=").unwrap().to_owned(),
            fields[1].strip_prefix("port=").unwrap().to_owned(),
            fields[2].strip_prefix("auth=Bearer ").unwrap().to_owned(),
        )
    }

    proptest! {
        #[test]
        fn plain_round_trips(
            authzid in proptest::option::of("[^\u{0}]*"),
            authcid in "[^\u{0}]+",
            password in "[^\u{0}]+",
        ) {
            let password_secret = Secret::new(password.clone());
            let payload = plain(authzid.as_deref(), &authcid, &password_secret).unwrap();
            let bytes = decode_payload(&payload);
            let fields: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
            let authzid = authzid.unwrap_or_default();
            let expected = vec![authzid.as_bytes(), authcid.as_bytes(), password.as_bytes()];
            prop_assert_eq!(fields, expected);
        }

        #[test]
        fn plain_rejects_any_nul(
            prefix in "[^\u{0}]*",
            suffix in "[^\u{0}]*",
            which in 0..3usize,
        ) {
            let bad = format!("{prefix}\0{suffix}");
            let (authzid, authcid, password) = match which {
                0 => (bad.as_str(), "u", "p"),
                1 => ("", bad.as_str(), "p"),
                _ => ("", "u", bad.as_str()),
            };
            let result = plain(Some(authzid), authcid, &Secret::new(password));
            let is_forbidden = matches!(result, Err(SaslError::ForbiddenByte { byte: 0, .. }));
            prop_assert!(is_forbidden);
        }

        #[test]
        fn xoauth2_round_trips(user in "[^\u{1}]+", token in "[^\u{1}]+") {
            let payload = xoauth2(&user, &Secret::new(token.clone())).unwrap();
            let expected = format!("user={user}\x01auth=Bearer {token}\x01\x01");
            prop_assert_eq!(decode_payload(&payload), expected.into_bytes());
        }

        #[test]
        fn oauthbearer_round_trips(
            user in "[^\u{0}\u{1}]*",
            host in "[^\u{0}\u{1}]*",
            port in any::<u16>(),
            token in "[^\u{1}]+",
        ) {
            let payload = oauthbearer(&user, &host, port, &Secret::new(token.clone())).unwrap();
            let (got_user, got_host, got_port, got_token) =
                parse_oauthbearer(&decode_payload(&payload));
            prop_assert_eq!(got_user, user);
            prop_assert_eq!(got_host, host);
            prop_assert_eq!(got_port, port.to_string());
            prop_assert_eq!(got_token, token);
        }

        #[test]
        fn challenge_error_never_panics(raw in ".*") {
            if let Some(text) = decode_challenge_error(&raw) {
                prop_assert!(text.len() <= CHALLENGE_ERROR_MAX);
                prop_assert!(!text.chars().any(char::is_control), "{:?}", text);
            }
        }

        #[test]
        fn challenge_error_round_trips_printable_text(text in "[!-~][ -~]{0,1000}[!-~]") {
            prop_assert_eq!(decode_challenge_error(&STANDARD.encode(&text)), Some(text));
        }

        #[test]
        fn challenge_error_keeps_a_prefix_of_long_text(text in "[!-~]{1025,3000}") {
            let decoded = decode_challenge_error(&STANDARD.encode(&text)).unwrap();
            prop_assert_eq!(decoded.len(), CHALLENGE_ERROR_MAX);
            prop_assert!(text.starts_with(&decoded));
        }
    }
}
