//! The commands a scripted *destination* serves — APPEND, UID STORE, CREATE,
//! SUBSCRIBE — and the ways it changes what APPEND gives it
//! ([`DestinationQuirks`]). Never reached when the server plays a source.

use super::parse::{SeqSet, Token};
use super::session::{uid_next, Session};
use super::{DestinationQuirks, ScriptedFolder, ScriptedMessage, REPLACED_DATE};
use crate::lock;

/// Serves one destination command; `Ok`/`Err` carry the tagged answer's text.
pub(super) fn handle(
    session: &mut Session<'_>,
    quirks: DestinationQuirks,
    name: &str,
    args: &[Token],
    out: &mut Vec<u8>,
) -> Result<String, String> {
    match name {
        "APPEND" => append(session, quirks, args, out),
        "UID STORE" => store(session, args, out),
        "CREATE" => create(session, args),
        _ => match args {
            [mailbox] => session
                .folder(mailbox)
                .map(|_| "OK SUBSCRIBE completed".to_string()),
            _ => Err("BAD SUBSCRIBE takes a mailbox".into()),
        },
    }
}

fn create(session: &mut Session<'_>, args: &[Token]) -> Result<String, String> {
    let [mailbox] = args else {
        return Err("BAD CREATE takes a mailbox (no parameters)".into());
    };
    let name = mailbox.astring().ok_or("BAD Expected a mailbox name")?;
    if session.folder(mailbox).is_ok() {
        return Err("NO [ALREADYEXISTS] Mailbox exists".into());
    }
    lock(&session.shared.folders).push(ScriptedFolder::new(name.to_vec(), 1, Vec::new()));
    Ok("OK CREATE completed".into())
}

/// A list of flags `( ... )`, joined by spaces.
fn flag_list(tokens: &[Token]) -> Option<Vec<String>> {
    tokens
        .iter()
        .map(|t| match t {
            Token::Atom(a) => Some(String::from_utf8_lossy(a).into_owned()),
            _ => None,
        })
        .collect()
}

fn append(
    session: &mut Session<'_>,
    quirks: DestinationQuirks,
    args: &[Token],
    out: &mut Vec<u8>,
) -> Result<String, String> {
    let Some((mailbox, mut rest)) = args.split_first() else {
        return Err("BAD APPEND takes a mailbox".into());
    };
    let index = session.folder(mailbox)?;
    let mut flags = Vec::new();
    if let Some(Token::Open) = rest.first() {
        let close = rest
            .iter()
            .position(|t| *t == Token::Close)
            .ok_or("BAD Unclosed flag list")?;
        flags = flag_list(&rest[1..close]).ok_or("BAD Invalid flag")?;
        rest = &rest[close + 1..];
    }
    let mut date = None;
    if let Some(Token::Quoted(d)) = rest.first() {
        date = Some(String::from_utf8_lossy(d).into_owned());
        rest = &rest[1..];
    }
    let [Token::Literal(body)] = rest else {
        return Err("BAD APPEND takes one message literal".into());
    };
    if quirks.refuse_bare_lf && has_bare_lf(body) {
        return Err("NO Message contains bare newlines".into());
    }
    let mut body = body.clone();
    if quirks.munge_8bit_headers {
        let end = header_len(&body);
        for b in &mut body[..end] {
            if *b >= 0x80 {
                *b = b'X';
            }
        }
    }
    let mut folders = lock(&session.shared.folders);
    let folder = &mut folders[index];
    let uid = uid_next(folder) as u32;
    let mut message = ScriptedMessage::new(uid, body);
    if !quirks.drop_flags {
        message.flags = flags.join(" ");
    }
    message.internal_date = match date {
        Some(d) if !quirks.replace_dates => d,
        _ => REPLACED_DATE.to_string(),
    };
    folder.messages.push(message);
    if session.selected == Some(index) {
        out.extend_from_slice(format!("* {} EXISTS\r\n", folder.messages.len()).as_bytes());
    }
    Ok("OK APPEND completed".into())
}

/// `UID STORE set [+|-]FLAGS[.SILENT] (flags)`.
fn store(session: &mut Session<'_>, args: &[Token], out: &mut Vec<u8>) -> Result<String, String> {
    let Some(index) = session.selected else {
        return Err("BAD No mailbox selected".into());
    };
    let [Token::Atom(set), Token::Atom(item), Token::Open, list @ .., Token::Close] = args else {
        return Err("BAD UID STORE takes a set, an item and a flag list".into());
    };
    let set = SeqSet::parse(set).ok_or("BAD Invalid message set")?;
    let item = String::from_utf8_lossy(item).to_ascii_uppercase();
    let silent = item.ends_with(".SILENT");
    let mode = item.trim_end_matches(".SILENT");
    let given = flag_list(list).ok_or("BAD Invalid flag")?;
    let mut folders = lock(&session.shared.folders);
    let folder = &mut folders[index];
    let max_uid = folder.messages.iter().map(|m| m.uid).max();
    for (i, m) in folder.messages.iter_mut().enumerate() {
        if !set.contains(m.uid, max_uid) {
            continue;
        }
        let mut now: Vec<String> = m.flags.split_ascii_whitespace().map(String::from).collect();
        match mode {
            "FLAGS" => now = given.clone(),
            "+FLAGS" => {
                for f in &given {
                    if !now.iter().any(|x| x.eq_ignore_ascii_case(f)) {
                        now.push(f.clone());
                    }
                }
            }
            "-FLAGS" => now.retain(|x| !given.iter().any(|f| f.eq_ignore_ascii_case(x))),
            _ => return Err("BAD Unknown STORE item".into()),
        }
        m.flags = now.join(" ");
        if !silent {
            out.extend_from_slice(
                format!("* {} FETCH (UID {} FLAGS ({}))\r\n", i + 1, m.uid, m.flags).as_bytes(),
            );
        }
    }
    Ok("OK STORE completed".into())
}

/// Whether an LF comes without a CR before it.
fn has_bare_lf(body: &[u8]) -> bool {
    body.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
}

/// The length of the header section: up to the first empty line (either line
/// ending), or the whole message when there is none.
fn header_len(body: &[u8]) -> usize {
    let crlf = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    let lf = body.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_newlines_and_headers() {
        assert!(has_bare_lf(b"a\nb"));
        assert!(!has_bare_lf(b"a\r\nb\r\n"));
        assert_eq!(header_len(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(header_len(b"A: b\n\nbody"), 6);
        assert_eq!(header_len(b"A: b"), 4);
    }
}
