//! SEARCH and FETCH of the scripted server: the message-level commands, and
//! the place where a [`ScriptedMessage`]'s misbehaviour is played.

use super::parse::{self, SeqSet, Token};
use super::{BodyAnswer, ScriptedFolder, ScriptedMessage};

/// Whether the message has `flag` (case-insensitively, as IMAP compares).
pub(super) fn has_flag(m: &ScriptedMessage, flag: &str) -> bool {
    m.flags
        .split_ascii_whitespace()
        .any(|f| f.eq_ignore_ascii_case(flag))
}

/// A SEARCH key.
#[derive(Debug)]
enum Key {
    All,
    Seq(SeqSet),
    Uid(SeqSet),
    /// Compares the internal date's day with this one.
    Date(
        std::cmp::Ordering,
        Option<std::cmp::Ordering>,
        (u32, u32, u32),
    ),
    Larger(u64),
    Smaller(u64),
    Flag(String, bool),
    Not(Box<Key>),
    Or(Box<Key>, Box<Key>),
}

/// `SEARCH` / `UID SEARCH`: `* SEARCH` with message numbers or UIDs.
pub(super) fn search(
    folder: &ScriptedFolder,
    uid: bool,
    args: &[Token],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut i = 0;
    if args.first().and_then(Token::atom_upper).as_deref() == Some("CHARSET") {
        let charset = args
            .get(1)
            .and_then(Token::astring)
            .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase());
        if !matches!(charset.as_deref(), Some("US-ASCII" | "UTF-8")) {
            return Err("NO [BADCHARSET (US-ASCII UTF-8)] Unsupported charset".into());
        }
        i = 2;
    }
    let mut keys = Vec::new();
    while i < args.len() {
        keys.push(search_key(args, &mut i, 0)?);
    }
    if keys.is_empty() {
        return Err("BAD SEARCH needs a key".into());
    }
    let count = folder.messages.len() as u32;
    let max_uid = folder.messages.iter().map(|m| m.uid).max();
    let mut found = Vec::new();
    for (index, m) in folder.messages.iter().enumerate() {
        let seq = index as u32 + 1;
        if keys.iter().all(|k| matches_key(k, m, seq, count, max_uid)) {
            found.push(if uid { m.uid } else { seq });
        }
    }
    out.extend_from_slice(b"* SEARCH");
    for n in found {
        out.extend_from_slice(format!(" {n}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

fn search_key(args: &[Token], i: &mut usize, depth: u32) -> Result<Key, String> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if depth > 32 {
        return Err("BAD Search keys nested too deeply".into());
    }
    let token = args.get(*i).ok_or("BAD Missing search key")?;
    *i += 1;
    let mut operand = || -> Result<&[u8], String> {
        let v = args
            .get(*i)
            .and_then(Token::astring)
            .ok_or("BAD Missing search argument")?;
        *i += 1;
        Ok(v)
    };
    let name = token.atom_upper().ok_or("BAD Unsupported search key")?;
    let flag = |f: &str, set: bool| Ok(Key::Flag(f.to_string(), set));
    let date = |v: &[u8]| parse::day(v).ok_or_else(|| "BAD Invalid search date".to_string());
    let number = |v: &[u8]| parse::number(v).ok_or_else(|| "BAD Invalid number".to_string());
    match name.as_str() {
        "ALL" => Ok(Key::All),
        "UID" => SeqSet::parse(operand()?)
            .map(Key::Uid)
            .ok_or_else(|| "BAD Invalid UID set".into()),
        "SINCE" | "SENTSINCE" => Ok(Key::Date(Greater, Some(Equal), date(operand()?)?)),
        "BEFORE" | "SENTBEFORE" => Ok(Key::Date(Less, None, date(operand()?)?)),
        "ON" | "SENTON" => Ok(Key::Date(Equal, None, date(operand()?)?)),
        "LARGER" => Ok(Key::Larger(number(operand()?)?)),
        "SMALLER" => Ok(Key::Smaller(number(operand()?)?)),
        "SEEN" => flag("\\Seen", true),
        "UNSEEN" => flag("\\Seen", false),
        "ANSWERED" => flag("\\Answered", true),
        "UNANSWERED" => flag("\\Answered", false),
        "FLAGGED" => flag("\\Flagged", true),
        "UNFLAGGED" => flag("\\Flagged", false),
        "DELETED" => flag("\\Deleted", true),
        "UNDELETED" => flag("\\Deleted", false),
        "DRAFT" => flag("\\Draft", true),
        "UNDRAFT" => flag("\\Draft", false),
        "KEYWORD" | "UNKEYWORD" => {
            let k = String::from_utf8_lossy(operand()?).into_owned();
            flag(&k, name == "KEYWORD")
        }
        "NOT" => Ok(Key::Not(Box::new(search_key(args, i, depth + 1)?))),
        "OR" => {
            let a = search_key(args, i, depth + 1)?;
            let b = search_key(args, i, depth + 1)?;
            Ok(Key::Or(Box::new(a), Box::new(b)))
        }
        _ => match token {
            Token::Atom(v) => SeqSet::parse(v)
                .map(Key::Seq)
                .ok_or_else(|| format!("BAD Unsupported search key {name}")),
            _ => Err(format!("BAD Unsupported search key {name}")),
        },
    }
}

fn matches_key(key: &Key, m: &ScriptedMessage, seq: u32, count: u32, max_uid: Option<u32>) -> bool {
    match key {
        Key::All => true,
        Key::Seq(set) => set.contains(seq, Some(count)),
        Key::Uid(set) => set.contains(m.uid, max_uid),
        Key::Date(a, b, day) => parse::day(m.internal_date.as_bytes())
            .map(|d| d.cmp(day))
            .is_some_and(|o| o == *a || Some(o) == *b),
        Key::Larger(n) => m.body.len() as u64 > *n,
        Key::Smaller(n) => (m.body.len() as u64) < *n,
        Key::Flag(f, set) => has_flag(m, f) == *set,
        Key::Not(k) => !matches_key(k, m, seq, count, max_uid),
        Key::Or(a, b) => {
            matches_key(a, m, seq, count, max_uid) || matches_key(b, m, seq, count, max_uid)
        }
    }
}

/// A FETCH item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Uid,
    Flags,
    InternalDate,
    Size,
    /// `BODY[]` or `BODY.PEEK[]` (answered as `BODY[]`).
    Body,
    /// `RFC822` (answered as `RFC822`).
    Rfc822,
}

fn items(args: &[Token]) -> Result<Vec<Item>, String> {
    let names: &[Token] = match args {
        [one] => std::slice::from_ref(one),
        [Token::Open, inner @ .., Token::Close] => inner,
        _ => return Err("BAD FETCH takes a set and items (no modifiers)".into()),
    };
    let mut items = Vec::new();
    for name in names {
        let name = name.atom_upper().ok_or("BAD Invalid FETCH item")?;
        match name.as_str() {
            "UID" => items.push(Item::Uid),
            "FLAGS" => items.push(Item::Flags),
            "INTERNALDATE" => items.push(Item::InternalDate),
            "RFC822.SIZE" => items.push(Item::Size),
            "FAST" => items.extend([Item::Flags, Item::InternalDate, Item::Size]),
            "BODY[]" | "BODY.PEEK[]" => items.push(Item::Body),
            "RFC822" => items.push(Item::Rfc822),
            _ => return Err(format!("BAD Unsupported FETCH item {name}")),
        }
    }
    if items.is_empty() {
        return Err("BAD FETCH needs an item".into());
    }
    Ok(items)
}

/// `FETCH` / `UID FETCH`.
pub(super) fn fetch(
    folder: &ScriptedFolder,
    uid: bool,
    args: &[Token],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let (Some(Token::Atom(set)), Some(rest)) = (args.first(), args.get(1..)) else {
        return Err("BAD FETCH takes a set and items".into());
    };
    let set = SeqSet::parse(set).ok_or("BAD Invalid message set")?;
    let mut items = items(rest)?;
    if uid && !items.contains(&Item::Uid) {
        items.insert(0, Item::Uid);
    }
    let count = folder.messages.len() as u32;
    if !uid && set.max_number() > count {
        return Err("BAD Invalid message number".into());
    }
    let max_uid = folder.messages.iter().map(|m| m.uid).max();
    let wants_body = items.iter().any(|i| matches!(i, Item::Body | Item::Rfc822));
    for (index, m) in folder.messages.iter().enumerate() {
        let seq = index as u32 + 1;
        let chosen = if uid {
            set.contains(m.uid, max_uid)
        } else {
            set.contains(seq, Some(count))
        };
        if !chosen {
            continue;
        }
        if !wants_body {
            match &m.meta_override {
                Some(raw) => out.extend_from_slice(format!("* {seq} FETCH ({raw})\r\n").as_bytes()),
                None => response(out, seq, m, m.uid, &items, false),
            }
            continue;
        }
        // The message standing for `other`, and its sequence number.
        let stand_in = |other: u32| {
            folder
                .messages
                .iter()
                .position(|x| x.uid == other)
                .map_or((seq, m), |i| (i as u32 + 1, &folder.messages[i]))
        };
        match m.body_answer {
            BodyAnswer::Normal => response(out, seq, m, m.uid, &items, false),
            BodyAnswer::Nil => response(out, seq, m, m.uid, &items, true),
            BodyAnswer::AsUid(other) => {
                let (s, x) = stand_in(other);
                response(out, s, x, other, &items, false);
            }
            BodyAnswer::AlsoSend(other) => {
                let (s, x) = stand_in(other);
                response(out, s, x, other, &items, false);
                response(out, seq, m, m.uid, &items, false);
            }
            BodyAnswer::Omit => {}
        }
    }
    Ok(())
}

/// `* seq FETCH (...)` for message `m`, under UID `uid`.
fn response(out: &mut Vec<u8>, seq: u32, m: &ScriptedMessage, uid: u32, items: &[Item], nil: bool) {
    out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        match item {
            Item::Uid => out.extend_from_slice(format!("UID {uid}").as_bytes()),
            Item::Flags => out.extend_from_slice(format!("FLAGS ({})", m.flags).as_bytes()),
            Item::InternalDate => {
                out.extend_from_slice(format!("INTERNALDATE \"{}\"", m.internal_date).as_bytes())
            }
            Item::Size => out.extend_from_slice(format!("RFC822.SIZE {}", m.body.len()).as_bytes()),
            Item::Body | Item::Rfc822 => {
                out.extend_from_slice(if *item == Item::Body {
                    b"BODY[] "
                } else {
                    b"RFC822 "
                });
                if nil {
                    out.extend_from_slice(b"NIL");
                } else {
                    out.extend_from_slice(format!("{{{}}}\r\n", m.body.len()).as_bytes());
                    out.extend_from_slice(&m.body);
                }
            }
        }
    }
    out.extend_from_slice(b")\r\n");
}
