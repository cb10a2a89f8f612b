//! One connection of the scripted server: the command loop, the hook, and
//! every command except SEARCH and FETCH (see `fetch.rs`).

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;

use super::parse::{self, Part, Read, Token};
use super::{append, fetch, Command, ScriptedFolder, Shared};
use crate::lock;

const CAPS_BEFORE_LOGIN: &str = "IMAP4rev1 LITERAL+ SASL-IR ID NAMESPACE AUTH=PLAIN";
const CAPS_AFTER_LOGIN: &str = "IMAP4rev1 LITERAL+ ID NAMESPACE";
/// Every command served.
const KNOWN: &[&str] = &[
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "ID",
    "LOGIN",
    "AUTHENTICATE",
    "NAMESPACE",
    "LIST",
    "STATUS",
    "SELECT",
    "EXAMINE",
    "CLOSE",
    "UNSELECT",
    "SEARCH",
    "UID SEARCH",
    "FETCH",
    "UID FETCH",
    // A destination's only (see `append.rs`).
    "APPEND",
    "UID STORE",
    "CREATE",
    "SUBSCRIBE",
];
/// Size of the read buffer of a connection.
const READ_BUFFER: usize = 16 * 1024;

/// What to do after a command.
enum Flow {
    Continue,
    Close,
}

/// The state of one connection.
pub(super) struct Session<'a> {
    pub(super) shared: &'a Shared,
    authenticated: bool,
    /// Index of the selected folder.
    pub(super) selected: Option<usize>,
}

/// Serves one connection until the client leaves, breaks the protocol
/// beyond repair, or the server is dropped (which shuts the socket down).
pub(super) fn serve(shared: &Shared, id: u64, stream: TcpStream) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(READ_BUFFER, read_half);
    let mut writer = stream;
    let greeting = format!("* OK [CAPABILITY {CAPS_BEFORE_LOGIN}] Scripted server ready.\r\n");
    if writer.write_all(greeting.as_bytes()).is_err() {
        return;
    }
    let mut session = Session {
        shared,
        authenticated: false,
        selected: None,
    };
    let mut index = 0u64;
    loop {
        let parts = match parse::read_command(&mut reader, &mut writer, parse::LIMITS) {
            Ok(Read::Command(parts)) => parts,
            Ok(Read::Refused { tag, why }) => {
                if writer
                    .write_all(format!("{tag} BAD {why}\r\n").as_bytes())
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Ok(Read::Broken(why)) => {
                let _ = writer.write_all(format!("* BYE {why}\r\n").as_bytes());
                break;
            }
            Ok(Read::Eof) | Err(_) => break,
        };
        let Some((command, rest)) = split_command(&parts, id, index) else {
            if writer
                .write_all(b"* BAD Invalid tag or command\r\n")
                .is_err()
            {
                break;
            }
            continue;
        };
        index += 1;
        lock(&shared.commands).push(redacted(&command, &rest));
        if command.name == "LOGIN" || command.name == "AUTHENTICATE" {
            shared.login_attempts.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(answer) = shared.hook.as_ref().and_then(|h| h(&command)) {
            if writer.write_all(&answer).is_err() {
                break;
            }
            continue;
        }
        let mut out = Vec::new();
        let flow = session.handle(&command, &rest, &mut out, &mut reader, &mut writer);
        if writer.write_all(&out).is_err() {
            break;
        }
        if let Flow::Close = flow {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Splits `tag NAME rest` (or `tag UID NAME rest`) off a command; `None`
/// when the tag or name is missing or malformed.
fn split_command(parts: &[Part], connection: u64, index: u64) -> Option<(Command, Vec<Part>)> {
    let Some(Part::Text(first)) = parts.first() else {
        return None;
    };
    let mut words = first.splitn(2, |&b| b == b' ');
    let tag = words.next()?;
    let mut rest = words.next()?;
    let valid_tag = !tag.is_empty()
        && tag
            .iter()
            .all(|&b| b.is_ascii_graphic() && !b"(){%*\"\\]+".contains(&b));
    if !valid_tag {
        return None;
    }
    let take_word = |rest: &mut &[u8]| -> Option<String> {
        let mut it = rest.splitn(2, |&b| b == b' ');
        let w = it.next()?;
        *rest = it.next().unwrap_or_default();
        (!w.is_empty() && w.iter().all(u8::is_ascii_alphanumeric))
            .then(|| String::from_utf8_lossy(w).to_ascii_uppercase())
    };
    let mut name = take_word(&mut rest)?;
    if name == "UID" {
        name = format!("UID {}", take_word(&mut rest)?);
    }
    let mut rest_parts = vec![Part::Text(rest.to_vec())];
    rest_parts.extend_from_slice(&parts[1..]);
    let command = Command {
        connection,
        index_in_connection: index,
        tag: String::from_utf8_lossy(tag).into_owned(),
        name,
        args: wire_text(&rest_parts),
    };
    Some((command, rest_parts))
}

/// Parts as they came on the wire, lossily as text.
fn wire_text(parts: &[Part]) -> String {
    let mut v = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => v.extend_from_slice(t),
            Part::Literal(l) => {
                v.extend_from_slice(b"\r\n");
                v.extend_from_slice(l);
            }
        }
    }
    String::from_utf8_lossy(&v).into_owned()
}

/// The command for [`super::ScriptedServer::commands`], secrets hidden.
fn redacted(command: &Command, rest: &[Part]) -> String {
    let args = match command.name.as_str() {
        "LOGIN" => match parse::tokenize(rest).ok().as_deref() {
            Some([user, ..]) => format!("{} ***", show(user)),
            _ => "***".to_string(),
        },
        "AUTHENTICATE" => match parse::tokenize(rest).ok().as_deref() {
            Some([mech]) => show(mech),
            Some([mech, ..]) => format!("{} ***", show(mech)),
            _ => "***".to_string(),
        },
        _ => command.args.clone(),
    };
    if args.is_empty() {
        format!("{} {}", command.tag, command.name)
    } else {
        format!("{} {} {args}", command.tag, command.name)
    }
}

fn show(t: &Token) -> String {
    match t {
        Token::Atom(v) => String::from_utf8_lossy(v).into_owned(),
        Token::Quoted(v) => format!("\"{}\"", String::from_utf8_lossy(v)),
        Token::Literal(v) => format!("{{{}}} {}", v.len(), String::from_utf8_lossy(v)),
        Token::Open => "(".into(),
        Token::Close => ")".into(),
    }
}

/// Appends `<tag> <text>\r\n`.
pub(super) fn tagged(out: &mut Vec<u8>, tag: &str, text: &str) {
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A folder name the way LIST and STATUS send it.
pub(super) fn mailbox_name(out: &mut Vec<u8>, folder: &ScriptedFolder) {
    let name = &folder.name;
    let printable = name.iter().all(|&b| (0x20..0x7f).contains(&b));
    if folder.as_literal || !printable {
        out.extend_from_slice(format!("{{{}}}\r\n", name.len()).as_bytes());
        out.extend_from_slice(name);
    } else {
        out.push(b'"');
        for &b in name {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    }
}

impl Session<'_> {
    fn handle(
        &mut self,
        cmd: &Command,
        rest: &[Part],
        out: &mut Vec<u8>,
        reader: &mut BufReader<TcpStream>,
        writer: &mut TcpStream,
    ) -> Flow {
        let tag = cmd.tag.as_str();
        let args = match parse::tokenize(rest) {
            Ok(a) => a,
            Err(why) => {
                tagged(out, tag, &format!("BAD {why}"));
                return Flow::Continue;
            }
        };
        if !KNOWN.contains(&cmd.name.as_str()) {
            tagged(out, tag, &format!("BAD Unknown command {}", cmd.name));
            return Flow::Continue;
        }
        let needs_login = !matches!(
            cmd.name.as_str(),
            "CAPABILITY" | "NOOP" | "LOGOUT" | "ID" | "LOGIN" | "AUTHENTICATE"
        );
        if needs_login && !self.authenticated {
            tagged(out, tag, "BAD Log in first");
            return Flow::Continue;
        }
        let result = match cmd.name.as_str() {
            "CAPABILITY" => {
                let caps = if self.authenticated {
                    CAPS_AFTER_LOGIN
                } else {
                    CAPS_BEFORE_LOGIN
                };
                no_args(&args).map(|()| {
                    out.extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes());
                    "OK CAPABILITY completed".to_string()
                })
            }
            "NOOP" => Ok("OK NOOP completed".to_string()),
            "LOGOUT" => {
                out.extend_from_slice(b"* BYE Logging out\r\n");
                tagged(out, tag, "OK LOGOUT completed");
                return Flow::Close;
            }
            "ID" => {
                out.extend_from_slice(b"* ID (\"name\" \"imapmig-testkit scripted\")\r\n");
                Ok("OK ID completed".to_string())
            }
            "LOGIN" => self.login(&args),
            "AUTHENTICATE" => match self.authenticate(&args, reader, writer) {
                Some(r) => r,
                None => return Flow::Close,
            },
            "NAMESPACE" => no_args(&args).map(|()| {
                out.extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                "OK NAMESPACE completed".to_string()
            }),
            "LIST" => self.list(&args, out),
            "STATUS" => self.status(&args, out),
            "SELECT" | "EXAMINE" => self.select(&cmd.name, &args, out),
            "CLOSE" | "UNSELECT" => no_args(&args).and_then(|()| {
                self.selected
                    .take()
                    .map(|_| format!("OK {} completed", cmd.name))
                    .ok_or_else(|| "BAD No mailbox selected".to_string())
            }),
            "APPEND" | "UID STORE" | "CREATE" | "SUBSCRIBE" => match self.shared.destination {
                None => Err(format!("BAD Unknown command {}", cmd.name)),
                Some(quirks) => append::handle(self, quirks, &cmd.name, &args, out),
            },
            "SEARCH" | "UID SEARCH" | "FETCH" | "UID FETCH" => match self.selected {
                None => Err("BAD No mailbox selected".to_string()),
                Some(f) => {
                    let folders = lock(&self.shared.folders);
                    let folder = &folders[f];
                    let uid = cmd.name.starts_with("UID");
                    if cmd.name.ends_with("SEARCH") {
                        fetch::search(folder, uid, &args, out)
                    } else {
                        fetch::fetch(folder, uid, &args, out)
                    }
                    .map(|()| format!("OK {} completed", cmd.name))
                }
            },
            _ => Err(format!("BAD Unknown command {}", cmd.name)),
        };
        match result {
            Ok(text) | Err(text) => tagged(out, tag, &text),
        }
        Flow::Continue
    }

    fn login(&mut self, args: &[Token]) -> Result<String, String> {
        if self.authenticated {
            return Err("BAD Already logged in".into());
        }
        let [user, password] = args else {
            return Err("BAD LOGIN takes a user name and a password".into());
        };
        let (Some(user), Some(password)) = (user.astring(), password.astring()) else {
            return Err("BAD LOGIN takes a user name and a password".into());
        };
        self.check_credentials(user, password)
    }

    fn check_credentials(&mut self, user: &[u8], password: &[u8]) -> Result<String, String> {
        if user == self.shared.user.as_bytes() && password == self.shared.password.as_bytes() {
            self.authenticated = true;
            self.shared.logins.fetch_add(1, Ordering::SeqCst);
            Ok(format!("OK [CAPABILITY {CAPS_AFTER_LOGIN}] Logged in"))
        } else {
            Err("NO [AUTHENTICATIONFAILED] Authentication failed.".into())
        }
    }

    /// AUTHENTICATE PLAIN, reading the response line when there is no
    /// initial response. `None`: the connection ended meanwhile.
    fn authenticate(
        &mut self,
        args: &[Token],
        reader: &mut BufReader<TcpStream>,
        writer: &mut TcpStream,
    ) -> Option<Result<String, String>> {
        if self.authenticated {
            return Some(Err("BAD Already logged in".into()));
        }
        let (mech, initial) = match args {
            [mech] => (mech, None),
            [mech, Token::Atom(ir)] => (mech, Some(ir.clone())),
            _ => return Some(Err("BAD AUTHENTICATE takes a mechanism".into())),
        };
        if mech.atom_upper().as_deref() != Some("PLAIN") {
            return Some(Err("NO Unsupported authentication mechanism".into()));
        }
        let response = match initial {
            Some(ir) => ir,
            None => {
                writer.write_all(b"+ \r\n").ok()?;
                parse::read_sasl_line(reader, parse::LIMITS.line).ok()??
            }
        };
        if response == b"*" {
            return Some(Err("BAD Authentication cancelled".into()));
        }
        let decoded = if response == b"=" {
            Some(Vec::new())
        } else {
            parse::base64_decode(&response)
        };
        let Some(decoded) = decoded else {
            return Some(Err("BAD Invalid base64 data".into()));
        };
        let fields: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, user, password] = fields.as_slice() else {
            return Some(Err(
                "NO [AUTHENTICATIONFAILED] Authentication failed.".into()
            ));
        };
        if !authzid.is_empty() && *authzid != *user {
            return Some(Err("NO [AUTHORIZATIONFAILED] Authorization failed.".into()));
        }
        Some(self.check_credentials(user, password))
    }

    fn list(&mut self, args: &[Token], out: &mut Vec<u8>) -> Result<String, String> {
        let [reference, pattern] = args else {
            return Err("BAD LIST takes a reference and a pattern (no extensions)".into());
        };
        let (Some(reference), Some(pattern)) = (reference.astring(), pattern.astring()) else {
            return Err("BAD LIST takes a reference and a pattern (no extensions)".into());
        };
        if pattern.is_empty() {
            out.extend_from_slice(b"* LIST (\\Noselect) \"/\" \"\"\r\n");
            return Ok("OK LIST completed".into());
        }
        let mut full = reference.to_vec();
        full.extend_from_slice(pattern);
        for folder in lock(&self.shared.folders).iter() {
            if matches_pattern(&full, &folder.name) {
                out.extend_from_slice(b"* LIST () \"/\" ");
                mailbox_name(out, folder);
                out.extend_from_slice(b"\r\n");
            }
        }
        Ok("OK LIST completed".into())
    }

    pub(super) fn folder(&self, name: &Token) -> Result<usize, String> {
        let name = name.astring().ok_or("BAD Expected a mailbox name")?;
        lock(&self.shared.folders)
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| "NO [NONEXISTENT] Mailbox doesn't exist".to_string())
    }

    fn status(&mut self, args: &[Token], out: &mut Vec<u8>) -> Result<String, String> {
        let [name, Token::Open, items @ .., Token::Close] = args else {
            return Err("BAD STATUS takes a mailbox and a list of items".into());
        };
        let index = self.folder(name)?;
        let folders = lock(&self.shared.folders);
        let folder = &folders[index];
        let mut values = Vec::new();
        for item in items {
            let item = item.atom_upper().ok_or("BAD Invalid STATUS item")?;
            let value = match item.as_str() {
                "MESSAGES" => folder.messages.len() as u64,
                "RECENT" => 0,
                "UIDNEXT" => uid_next(folder),
                "UIDVALIDITY" => u64::from(folder.uid_validity),
                "UNSEEN" => folder
                    .messages
                    .iter()
                    .filter(|m| !fetch::has_flag(m, "\\Seen"))
                    .count() as u64,
                _ => return Err(format!("BAD Unknown STATUS item {item}")),
            };
            values.push(format!("{item} {value}"));
        }
        out.extend_from_slice(b"* STATUS ");
        mailbox_name(out, folder);
        out.extend_from_slice(format!(" ({})\r\n", values.join(" ")).as_bytes());
        Ok("OK STATUS completed".into())
    }

    fn select(&mut self, verb: &str, args: &[Token], out: &mut Vec<u8>) -> Result<String, String> {
        self.selected = None;
        let [name] = args else {
            return Err(format!("BAD {verb} takes a mailbox name (no parameters)"));
        };
        let index = self.folder(name)?;
        let folders = lock(&self.shared.folders);
        let folder = &folders[index];
        let flags = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        out.extend_from_slice(format!("* FLAGS ({flags})\r\n").as_bytes());
        let permanent = if verb == "EXAMINE" {
            String::new()
        } else {
            format!("{flags} \\*")
        };
        let text = format!(
            "* OK [PERMANENTFLAGS ({permanent})] Flags\r\n\
             * {} EXISTS\r\n\
             * 0 RECENT\r\n\
             * OK [UIDVALIDITY {}] UIDs valid\r\n\
             * OK [UIDNEXT {}] Predicted next UID\r\n",
            folder.messages.len(),
            folder.uid_validity,
            uid_next(folder),
        );
        out.extend_from_slice(text.as_bytes());
        self.selected = Some(index);
        Ok(if verb == "EXAMINE" {
            "OK [READ-ONLY] EXAMINE completed".into()
        } else {
            "OK [READ-WRITE] SELECT completed".into()
        })
    }
}

fn no_args(args: &[Token]) -> Result<(), String> {
    if args.is_empty() {
        Ok(())
    } else {
        Err("BAD Unexpected arguments".into())
    }
}

pub(super) fn uid_next(folder: &ScriptedFolder) -> u64 {
    folder
        .messages
        .iter()
        .map(|m| u64::from(m.uid))
        .max()
        .unwrap_or(0)
        + 1
}

/// LIST pattern matching: `*` matches anything, `%` anything but `/`.
fn matches_pattern(pattern: &[u8], name: &[u8]) -> bool {
    // Iterative matching with one backtrack point per wildcard run keeps
    // this linear-ish; names and patterns are short anyway.
    fn go(p: &[u8], n: &[u8], depth: u32) -> bool {
        if depth > 64 {
            return false;
        }
        match p.split_first() {
            None => n.is_empty(),
            Some((&b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..], depth + 1)),
            Some((&b'%', rest)) => {
                let limit = n.iter().position(|&b| b == b'/').unwrap_or(n.len());
                (0..=limit).any(|i| go(rest, &n[i..], depth + 1))
            }
            Some((&c, rest)) => n.first() == Some(&c) && go(rest, &n[1..], depth),
        }
    }
    go(pattern, name, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_patterns() {
        assert!(matches_pattern(b"*", b"a/b/c"));
        assert!(matches_pattern(b"%", b"INBOX"));
        assert!(!matches_pattern(b"%", b"a/b"));
        assert!(matches_pattern(b"a/%", b"a/b"));
        assert!(matches_pattern(b"INBOX", b"INBOX"));
        assert!(!matches_pattern(b"INBOX", b"INBOX/x"));
        assert!(!matches_pattern(b"*x*y*z*", &[b'a'; 200]));
    }

    #[test]
    fn commands_split_and_passwords_are_hidden() {
        let parts = vec![
            Part::Text(b"a1 login {5}".to_vec()),
            Part::Literal(b"alice".to_vec()),
            Part::Text(b" \"s3cret\"".to_vec()),
        ];
        let (cmd, rest) = split_command(&parts, 3, 4).unwrap();
        assert_eq!((cmd.tag.as_str(), cmd.name.as_str()), ("a1", "LOGIN"));
        assert_eq!(cmd.args, "{5}\r\nalice \"s3cret\"");
        assert_eq!((cmd.connection, cmd.index_in_connection), (3, 4));
        assert_eq!(redacted(&cmd, &rest), "a1 LOGIN {5} alice ***");

        let (cmd, _) =
            split_command(&[Part::Text(b"x uid fetch 1:* (UID)".to_vec())], 0, 0).unwrap();
        assert_eq!(
            (cmd.name.as_str(), cmd.args.as_str()),
            ("UID FETCH", "1:* (UID)")
        );
        for bad in [
            &b"noname"[..],
            b"",
            b" NOOP",
            b"a* NOOP",
            b"a NO-OP",
            b"a UID",
        ] {
            assert!(
                split_command(&[Part::Text(bad.to_vec())], 0, 0).is_none(),
                "{bad:?}"
            );
        }
    }
}
