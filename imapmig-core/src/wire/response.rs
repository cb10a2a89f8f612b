//! Parsing one complete response line.
//!
//! Status responses (`tag OK/NO/BAD`, `* OK/NO/BAD/BYE/PREAUTH`) are parsed here, by hand,
//! because the client acts on their response codes and imap-proto knows only some of them
//! (`[LIMIT]`, `[OVERQUOTA]`, `[UNAVAILABLE]`, `[AUTHENTICATIONFAILED]` are missing). Everything
//! else (FETCH, LIST, STATUS, SEARCH, CAPABILITY, ...) goes to imap-proto, which is zero-copy and
//! tolerant of real servers' quirks.

pub use super::uid_set::parse_uid_set;
use imap_proto::Response;

/// The condition of a status response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusKind {
    /// `OK`.
    Ok,
    /// `NO`: the command failed.
    No,
    /// `BAD`: the server did not understand the command.
    Bad,
    /// `BYE`: the server is closing the connection.
    Bye,
    /// `PREAUTH`: the connection is already authenticated (greeting only).
    PreAuth,
}

/// A response code (`[...]`) the client knows what to do with, or any other one by name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `[ALERT]`: the text must be shown to the user.
    Alert,
    /// `[LIMIT]` (RFC 5530): a server limit was hit; back off.
    Limit,
    /// `[OVERQUOTA]` (RFC 5530): the destination mailbox is full.
    OverQuota,
    /// `[TRYCREATE]`: the target folder does not exist.
    TryCreate,
    /// `[UNAVAILABLE]` (RFC 5530): a temporary failure; try again later.
    Unavailable,
    /// `[AUTHENTICATIONFAILED]` (RFC 5530): wrong credentials.
    AuthenticationFailed,
    /// `[AUTHORIZATIONFAILED]` (RFC 5530): right credentials, but may not act as that user.
    AuthorizationFailed,
    /// `[TOOBIG]` (RFC 4469/7889): the message is over the server's size limit.
    TooBig,
    /// `[CAPABILITY ...]`: the capabilities, sent along with a greeting or login.
    Capability(Vec<String>),
    /// `[APPENDUID validity uids]` (UIDPLUS): where an appended message landed.
    AppendUid {
        /// The destination folder's UIDVALIDITY.
        validity: u32,
        /// The UIDs given, one per appended message, in order.
        uids: Vec<u32>,
    },
    /// `[UIDVALIDITY n]`.
    UidValidity(u32),
    /// `[UIDNEXT n]`.
    UidNext(u32),
    /// `[HIGHESTMODSEQ n]` (CONDSTORE).
    HighestModSeq(u64),
    /// `[NOMODSEQ]`: the folder does not keep MODSEQs.
    NoModSeq,
    /// `[PERMANENTFLAGS (...)]`: the flags a client may store; `\*` means any keyword.
    PermanentFlags(Vec<String>),
    /// `[READ-ONLY]`.
    ReadOnly,
    /// `[READ-WRITE]`.
    ReadWrite,
    /// Any other code, by its name (upper-cased) and the rest of its text.
    Other {
        /// The code's atom, upper-cased: `SERVERBUG`, `INUSE`, ...
        name: String,
        /// What followed the atom inside the brackets.
        args: String,
    },
}

/// A status response: tagged completion, or untagged OK/NO/BAD/BYE/PREAUTH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusResponse {
    /// The tag, or `None` for an untagged (`*`) response.
    pub tag: Option<String>,
    /// OK, NO, BAD, BYE or PREAUTH.
    pub kind: StatusKind,
    /// The response code, if any.
    pub code: Option<ResponseCode>,
    /// The human-readable text, as the server wrote it.
    pub text: String,
}

impl StatusResponse {
    /// The server's words with the code, as a user should see them: `[OVERQUOTA] Quota exceeded`.
    pub fn describe(&self) -> String {
        match &self.code {
            Some(code) => format!("[{}] {}", code_name(code), self.text),
            None => self.text.clone(),
        }
    }
}

fn code_name(code: &ResponseCode) -> String {
    match code {
        ResponseCode::Alert => "ALERT".into(),
        ResponseCode::Limit => "LIMIT".into(),
        ResponseCode::OverQuota => "OVERQUOTA".into(),
        ResponseCode::TryCreate => "TRYCREATE".into(),
        ResponseCode::Unavailable => "UNAVAILABLE".into(),
        ResponseCode::AuthenticationFailed => "AUTHENTICATIONFAILED".into(),
        ResponseCode::AuthorizationFailed => "AUTHORIZATIONFAILED".into(),
        ResponseCode::TooBig => "TOOBIG".into(),
        ResponseCode::Capability(_) => "CAPABILITY".into(),
        ResponseCode::AppendUid { .. } => "APPENDUID".into(),
        ResponseCode::UidValidity(_) => "UIDVALIDITY".into(),
        ResponseCode::UidNext(_) => "UIDNEXT".into(),
        ResponseCode::HighestModSeq(_) => "HIGHESTMODSEQ".into(),
        ResponseCode::NoModSeq => "NOMODSEQ".into(),
        ResponseCode::PermanentFlags(_) => "PERMANENTFLAGS".into(),
        ResponseCode::ReadOnly => "READ-ONLY".into(),
        ResponseCode::ReadWrite => "READ-WRITE".into(),
        ResponseCode::Other { name, .. } => name.clone(),
    }
}

/// One parsed response line.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// A status response (tagged or untagged).
    Status(StatusResponse),
    /// A continuation request (`+ text`); the text is kept for SASL challenges.
    Continue(String),
    /// Any other untagged data, parsed by imap-proto.
    Data(Response<'a>),
    /// Untagged data imap-proto does not accept; the caller decides whether it matters.
    Unknown(&'a [u8]),
}

/// Parses one complete response line (CRLF included, as the framer hands it on).
pub fn parse_line(line: &[u8]) -> Parsed<'_> {
    if line.first() == Some(&b'+') {
        let text = line.get(1..).unwrap_or_default();
        let text = String::from_utf8_lossy(text);
        return Parsed::Continue(text.trim().to_string());
    }
    if let Some(status) = parse_status(line) {
        return Parsed::Status(status);
    }
    match Response::parse(line) {
        Ok((_, resp)) => Parsed::Data(resp),
        Err(_) => Parsed::Unknown(line),
    }
}

/// The text of an `[ALERT]` (RFC 3501 7.1: it must reach the user), tagged or not; `None`
/// for any other line. Cheap for data lines: they fail [`parse_status`] at their second word.
pub fn alert_text(line: &[u8]) -> Option<String> {
    parse_status(line).and_then(|s| (s.code == Some(ResponseCode::Alert)).then_some(s.text))
}

/// Parses a status response, or returns `None` if the line is not one.
pub fn parse_status(line: &[u8]) -> Option<StatusResponse> {
    let line = trim_crlf(line);
    let sp = memchr::memchr(b' ', line)?;
    let tag = &line[..sp];
    if tag.is_empty() {
        return None;
    }
    let rest = &line[sp + 1..];
    let (word, rest) = match memchr::memchr(b' ', rest) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let kind = match () {
        _ if word.eq_ignore_ascii_case(b"OK") => StatusKind::Ok,
        _ if word.eq_ignore_ascii_case(b"NO") => StatusKind::No,
        _ if word.eq_ignore_ascii_case(b"BAD") => StatusKind::Bad,
        _ if word.eq_ignore_ascii_case(b"BYE") => StatusKind::Bye,
        _ if word.eq_ignore_ascii_case(b"PREAUTH") => StatusKind::PreAuth,
        _ => return None,
    };
    let tag = if tag == b"*" {
        None
    } else {
        Some(String::from_utf8_lossy(tag).into_owned())
    };
    let (code, text) = if rest.first() == Some(&b'[') {
        match find_code_end(rest) {
            Some(end) => {
                let code = parse_code(&rest[1..end]);
                let text = rest.get(end + 1..).unwrap_or_default();
                (Some(code), text.strip_prefix(b" ").unwrap_or(text))
            }
            None => (None, rest),
        }
    } else {
        (None, rest)
    };
    Some(StatusResponse {
        tag,
        kind,
        code,
        text: String::from_utf8_lossy(text).into_owned(),
    })
}

fn trim_crlf(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Finds the `]` closing a response code, skipping brackets nested in a parenthesised list
/// (`[PERMANENTFLAGS (\Seen \*)]` has none, but `[BADCHARSET (x])]`-style oddities exist).
fn find_code_end(s: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in s.iter().enumerate().skip(1) {
        match b {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b']' if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

fn parse_code(inner: &[u8]) -> ResponseCode {
    let inner = String::from_utf8_lossy(inner);
    let (name, args) = match inner.split_once(' ') {
        Some((n, a)) => (n.to_ascii_uppercase(), a.trim().to_string()),
        None => (inner.to_ascii_uppercase(), String::new()),
    };
    let number = |s: &str| s.trim().parse::<u64>().ok();
    let other = |name: String, args: String| ResponseCode::Other { name, args };
    match name.as_str() {
        "ALERT" => ResponseCode::Alert,
        "LIMIT" => ResponseCode::Limit,
        "OVERQUOTA" => ResponseCode::OverQuota,
        "TRYCREATE" => ResponseCode::TryCreate,
        "UNAVAILABLE" => ResponseCode::Unavailable,
        "AUTHENTICATIONFAILED" => ResponseCode::AuthenticationFailed,
        "AUTHORIZATIONFAILED" => ResponseCode::AuthorizationFailed,
        "TOOBIG" => ResponseCode::TooBig,
        "READ-ONLY" => ResponseCode::ReadOnly,
        "READ-WRITE" => ResponseCode::ReadWrite,
        "NOMODSEQ" => ResponseCode::NoModSeq,
        "CAPABILITY" => {
            ResponseCode::Capability(args.split_ascii_whitespace().map(str::to_string).collect())
        }
        "PERMANENTFLAGS" => ResponseCode::PermanentFlags(
            args.trim_start_matches('(')
                .trim_end_matches(')')
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
        ),
        "UIDVALIDITY" => match number(&args).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => ResponseCode::UidValidity(n),
            None => other(name, args),
        },
        "UIDNEXT" => match number(&args).and_then(|n| u32::try_from(n).ok()) {
            Some(n) => ResponseCode::UidNext(n),
            None => other(name, args),
        },
        "HIGHESTMODSEQ" => match number(&args) {
            Some(n) => ResponseCode::HighestModSeq(n),
            None => other(name, args),
        },
        "APPENDUID" => {
            let mut parts = args.split_ascii_whitespace();
            let validity = parts.next().and_then(|v| v.parse::<u32>().ok());
            let uids = parts.next().and_then(parse_uid_set);
            match (validity, uids, parts.next()) {
                (Some(validity), Some(uids), None) => ResponseCode::AppendUid { validity, uids },
                _ => other(name, args),
            }
        }
        _ => other(name, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(line: &str) -> StatusResponse {
        match parse_line(line.as_bytes()) {
            Parsed::Status(s) => s,
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn alerts_are_found_in_any_status_and_nowhere_else() {
        let alert = |l: &str| alert_text(l.as_bytes());
        assert_eq!(
            alert("* OK [ALERT] System shutdown in 10 minutes\r\n").as_deref(),
            Some("System shutdown in 10 minutes")
        );
        assert_eq!(
            alert("m2 NO [alert] Too many simultaneous connections.\r\n").as_deref(),
            Some("Too many simultaneous connections.")
        );
        assert_eq!(alert("* OK [UNAVAILABLE] busy\r\n"), None);
        assert_eq!(alert("* OK see [ALERT] later\r\n"), None);
        assert_eq!(alert("* 1 FETCH (BODY[] {7}\r\n[ALERT])\r\n"), None);
    }

    #[test]
    fn tagged_no_keeps_rfc5530_codes() {
        let s = status("a7 NO [OVERQUOTA] Quota exceeded (mailbox for user is full)\r\n");
        assert_eq!(s.tag.as_deref(), Some("a7"));
        assert_eq!(s.kind, StatusKind::No);
        assert_eq!(s.code, Some(ResponseCode::OverQuota));
        assert_eq!(s.text, "Quota exceeded (mailbox for user is full)");
        assert_eq!(
            s.describe(),
            "[OVERQUOTA] Quota exceeded (mailbox for user is full)"
        );
        for (line, code) in [
            ("a NO [LIMIT] too many\r\n", ResponseCode::Limit),
            ("a NO [UNAVAILABLE] later\r\n", ResponseCode::Unavailable),
            (
                "a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                ResponseCode::AuthenticationFailed,
            ),
            (
                "a NO [TRYCREATE] Mailbox doesn't exist\r\n",
                ResponseCode::TryCreate,
            ),
            ("a NO [trycreate] lower case\r\n", ResponseCode::TryCreate),
        ] {
            assert_eq!(status(line).code, Some(code), "{line}");
        }
    }

    #[test]
    fn appenduid_single_and_multi() {
        let s = status("a3 OK [APPENDUID 1700000000 42] Append completed.\r\n");
        assert_eq!(
            s.code,
            Some(ResponseCode::AppendUid {
                validity: 1_700_000_000,
                uids: vec![42]
            })
        );
        let s = status("a3 OK [APPENDUID 9 5:7,9] done\r\n");
        assert_eq!(
            s.code,
            Some(ResponseCode::AppendUid {
                validity: 9,
                uids: vec![5, 6, 7, 9]
            })
        );
        let s = status("a3 OK [APPENDUID 9 1:4294967295] absurd\r\n");
        assert!(matches!(s.code, Some(ResponseCode::Other { .. })));
        let s = status("a3 OK [APPENDUID x 1] bad\r\n");
        assert!(matches!(s.code, Some(ResponseCode::Other { .. })));
    }

    #[test]
    fn untagged_codes_and_odd_lines() {
        let s = status("* OK [UIDVALIDITY 1234] UIDs valid\r\n");
        assert_eq!(s.tag, None);
        assert_eq!(s.code, Some(ResponseCode::UidValidity(1234)));
        let s = status("* OK [PERMANENTFLAGS (\\Answered \\Seen \\*)] Limited\r\n");
        assert_eq!(
            s.code,
            Some(ResponseCode::PermanentFlags(vec![
                "\\Answered".into(),
                "\\Seen".into(),
                "\\*".into()
            ]))
        );
        let s = status("* BYE\r\n");
        assert_eq!(s.kind, StatusKind::Bye);
        assert_eq!(s.text, "");
        let s = status("* OK [unterminated code\r\n");
        assert_eq!(s.code, None);
        assert_eq!(s.text, "[unterminated code");
        let s = status("* NO [SERVERBUG] oops\r\n");
        assert_eq!(
            s.code,
            Some(ResponseCode::Other {
                name: "SERVERBUG".into(),
                args: String::new()
            })
        );
    }

    #[test]
    fn data_goes_to_imap_proto() {
        match parse_line(b"* 3 EXISTS\r\n") {
            Parsed::Data(Response::MailboxData(imap_proto::MailboxDatum::Exists(3))) => {}
            other => panic!("{other:?}"),
        }
        match parse_line(b"+ go ahead\r\n") {
            Parsed::Continue(t) => assert_eq!(t, "go ahead"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_line(b"* \xff\xfe garbage\r\n"),
            Parsed::Unknown(_)
        ));
        assert!(matches!(parse_line(b"\r\n"), Parsed::Unknown(_)));
        assert!(matches!(parse_line(b""), Parsed::Unknown(_)));
    }

    #[test]
    fn streamed_fetch_placeholder_parses() {
        let line = b"* 3 FETCH (UID 17 BODY[] {0}\r\n FLAGS (\\Seen))\r\n";
        match parse_line(line) {
            Parsed::Data(Response::Fetch(3, attrs)) => assert_eq!(attrs.len(), 3),
            other => panic!("{other:?}"),
        }
    }
}
