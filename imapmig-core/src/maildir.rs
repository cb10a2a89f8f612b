//! Maildir++ on disk, as Dovecot lays it out: shared by the Maildir source (which only reads)
//! and the Maildir sink (which writes).
//!
//! * The root directory (`cur/ new/ tmp/`) is INBOX; a folder is a directory `.` + its wire
//!   name: modified UTF-7, `.` between levels (`.Projects.&XfJT0ZAB-` for `Projects.已发送`).
//! * A message is a file in `cur/` (or `new/`, not yet seen by any client), named
//!   `<base>:2,<flags>`; the base never changes, the flags after `:2,` do.
//! * Flags are letters in ASCII order: `D` \Draft, `F` \Flagged, `P` passed (forwarded), `R`
//!   \Answered, `S` \Seen, `T` \Deleted ("trashed"); keywords are the letters `a`..`z`, mapped
//!   to names by the folder's `dovecot-keywords` file (`0 $Forwarded` makes `a` mean
//!   `$Forwarded`), so a folder holds at most 26 distinct keywords.
//! * UIDs live in the folder's `dovecot-uidlist` (version 3: `3 V<uidvalidity> N<next uid>
//!   G<guid>` then one `<uid> :<file name>` line per message, matched on the base).
//! * A folder's special use, which Maildir++ has no place for (Dovecot takes it from its
//!   configuration), is kept by imapmig in a file `imapmig-special-use` in the folder's
//!   directory holding the attribute (`\Sent`); Dovecot ignores the file. Without it, the
//!   folder plan still recognises special folders by name.
//!
//! This module never changes anything in a folder it is only asked to read.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::access::{AccessError, SkippedEntry};
use crate::model::{Flags, Folder, InternalDate, SpecialUse, Uid};
use crate::utf7;

/// The UID list of a folder.
pub(crate) const UIDLIST: &str = "dovecot-uidlist";
/// The keyword names of a folder.
pub(crate) const KEYWORDS: &str = "dovecot-keywords";
/// Dovecot's marker of a Maildir++ subfolder.
pub(crate) const FOLDER_MARKER: &str = "maildirfolder";
/// The special use of a folder, as its attribute (`\Sent`).
pub(crate) const SPECIAL_USE: &str = "imapmig-special-use";
/// The most keywords a folder can hold (the letters `a`..`z`).
pub(crate) const MAX_KEYWORDS: usize = 26;

/// System flags and their Maildir letters, in the letters' order.
const FLAG_LETTERS: [(char, &str); 5] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> AccessError {
    AccessError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) fn format_error(path: &Path, detail: impl Into<String>) -> AccessError {
    AccessError::Format {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Where a folder (by its wire name) lives under `root`. Refuses names that a Maildir++
/// directory cannot hold or that would leave the tree.
pub(crate) fn folder_dir(root: &Path, raw: &str) -> Result<PathBuf, AccessError> {
    if raw.eq_ignore_ascii_case("INBOX") {
        return Ok(root.to_path_buf());
    }
    let why = if raw.is_empty() {
        Some("an empty name")
    } else if raw.contains('/') {
        Some("`/`, which a Maildir++ directory name cannot hold (rename the folder)")
    } else if raw.contains('\0') {
        Some("a NUL character")
    } else if raw.starts_with('.') || raw.ends_with('.') || raw.contains("..") {
        Some("an empty level (a leading, trailing or doubled `.`)")
    } else if raw.len() > 250 {
        Some("more than 250 bytes")
    } else {
        None
    };
    match why {
        Some(why) => Err(format_error(
            root,
            format!("the folder name {raw:?} has {why}"),
        )),
        None => Ok(root.join(format!(".{raw}"))),
    }
}

/// The folders of a Maildir++ tree: INBOX (the root), then every `.Name` directory that holds
/// a `cur/`, sorted by name.
pub(crate) fn list_folders(root: &Path) -> Result<Vec<Folder>, AccessError> {
    read_folders(root).map(|(folders, _)| folders)
}

/// Whether a directory is a Maildir: it holds a `cur/` (Err when that cannot be told).
fn has_cur(dir: &Path) -> std::io::Result<bool> {
    match fs::metadata(dir.join("cur")) {
        Ok(m) => Ok(m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a directory without `cur/` was meant as a Maildir folder: it has a `new/` or a
/// `tmp/`, or Dovecot's marker or UID list.
fn looks_like_folder(dir: &Path) -> bool {
    ["new", "tmp", FOLDER_MARKER, UIDLIST]
        .iter()
        .any(|n| fs::symlink_metadata(dir.join(n)).is_ok())
}

/// The folders of a Maildir++ tree as [`list_folders`] finds them, and the directories at the
/// root that might hold mail but are not read as folders, with why.
///
/// Reported: `.Name` entries that are not Maildir folders (a folder directory without `cur/`,
/// unreadable, a link that leads nowhere, an empty level `..Name`, a name that is not UTF-8)
/// and plain directories
/// holding a `cur/` (a Maildir in a subdirectory, as Dovecot's `LAYOUT=fs` writes it, which
/// this Maildir++ reader does not read). Not reported: files at the root (a Maildir keeps its
/// mail only in `cur/` and `new/`; at the root are Dovecot's indexes, `subscriptions`,
/// `maildirsize`, a home directory's dot-files), hidden directories that have nothing of a
/// Maildir folder (a home directory's `.ssh`), and plain directories without `cur/` (`sieve/`,
/// Courier's `courierimapkeywords/`).
pub(crate) fn read_folders(root: &Path) -> Result<(Vec<Folder>, Vec<SkippedEntry>), AccessError> {
    let folder = |raw: String| {
        let special_use = if raw == "INBOX" {
            None
        } else {
            fs::read_to_string(root.join(format!(".{raw}")).join(SPECIAL_USE))
                .ok()
                .and_then(|a| SpecialUse::from_attribute(a.trim()))
        };
        Folder {
            name: utf7::decode_lossless_or_raw(&raw),
            attributes: special_use
                .map(|u| vec![u.attribute().to_string()])
                .unwrap_or_default(),
            raw,
            delimiter: Some('.'),
            special_use,
        }
    };
    let mut out = vec![folder("INBOX".into())];
    let mut names = Vec::new();
    let mut skipped = Vec::new();
    for entry in fs::read_dir(root).map_err(|e| io_error(root, e))? {
        let entry = entry.map_err(|e| io_error(root, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let hidden = name.as_encoded_bytes().starts_with(b".");
        if !hidden {
            if ["cur", "new", "tmp"].iter().any(|s| name == *s) {
                continue;
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) && has_cur(&path).unwrap_or(false) {
                skipped.push(SkippedEntry::at(
                    &path,
                    "a Maildir in a plain subdirectory (Dovecot's LAYOUT=fs?), not a Maildir++ \
                     `.Name` folder, so it is not read",
                ));
            }
            continue;
        }
        let why = match fs::metadata(&path) {
            Err(e) => format!("cannot be read: {e}"),
            // Hidden files at the root are not mail (`.dovecot.lda-dupes`, a home's dot-files).
            Ok(m) if !m.is_dir() => continue,
            Ok(_) => match (name.to_str(), has_cur(&path)) {
                (_, Err(e)) => format!("cannot be read: {e}"),
                // A home directory's `.ssh` or `.cache` is not a folder that lost its cur/.
                (_, Ok(false)) if !looks_like_folder(&path) => continue,
                (_, Ok(false)) => {
                    "a folder directory with no cur/, so it is not read as a Maildir folder".into()
                }
                (None, Ok(true)) => "a folder whose name is not valid UTF-8 (Maildir++ names \
                                      are modified UTF-7); rename it to import it"
                    .into(),
                (Some(name), Ok(true)) => {
                    let raw = &name[1..];
                    if raw.starts_with('.') {
                        "a folder name with an empty level (it starts with `..`); rename it to \
                         import it"
                            .into()
                    } else {
                        names.push(raw.to_string());
                        continue;
                    }
                }
            },
        };
        skipped.push(SkippedEntry::at(&path, why));
    }
    names.sort();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    out.extend(names.into_iter().map(folder));
    Ok((out, skipped))
}

/// A file name's base (up to the info separator `:`) and its flags (after `:2,`).
pub(crate) fn split_name(name: &str) -> (&str, &str) {
    match name.split_once(':') {
        Some((base, info)) => (base, info.strip_prefix("2,").unwrap_or("")),
        None => (name, ""),
    }
}

/// A folder's keyword names (`dovecot-keywords`): index `i` is the letter `a + i`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Keywords {
    names: Vec<Option<String>>,
}

impl Keywords {
    /// Reads `dovecot-keywords` in `dir` (none when missing).
    pub(crate) fn load(dir: &Path) -> Result<Keywords, AccessError> {
        let path = dir.join(KEYWORDS);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Keywords::default()),
            Err(e) => return Err(io_error(&path, e)),
        };
        let mut k = Keywords::default();
        for (i, line) in text.lines().enumerate() {
            let Some((idx, name)) = line.split_once(' ') else {
                continue;
            };
            let idx: usize = idx.parse().map_err(|_| {
                format_error(&path, format!("line {}: bad keyword index {idx:?}", i + 1))
            })?;
            if idx >= MAX_KEYWORDS || name.is_empty() {
                continue;
            }
            if k.names.len() <= idx {
                k.names.resize(idx + 1, None);
            }
            k.names[idx] = Some(name.to_string());
        }
        Ok(k)
    }

    /// The file's text.
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.names.iter().enumerate() {
            if let Some(n) = n {
                s.push_str(&format!("{i} {n}\n"));
            }
        }
        s
    }

    /// The keyword a letter stands for.
    pub(crate) fn name_of(&self, letter: char) -> Option<&str> {
        let idx = (letter as u32).checked_sub('a' as u32)? as usize;
        self.names.get(idx)?.as_deref()
    }

    fn letter_of(&self, name: &str) -> Option<char> {
        let idx = self.names.iter().position(|n| n.as_deref() == Some(name))?;
        char::from_u32('a' as u32 + idx as u32)
    }

    /// Every keyword name.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().flatten().map(String::as_str)
    }

    /// Whether all 26 letters are taken.
    pub(crate) fn is_full(&self) -> bool {
        self.names().count() >= MAX_KEYWORDS
    }

    /// The letter for a keyword, taking a free one when it is new; `None` when all are taken.
    /// The second value says whether the set changed (the file must be written).
    fn letter_or_add(&mut self, name: &str) -> (Option<char>, bool) {
        if let Some(l) = self.letter_of(name) {
            return (Some(l), false);
        }
        let idx = match self.names.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.names.len() < MAX_KEYWORDS => {
                self.names.push(None);
                self.names.len() - 1
            }
            None => return (None, false),
        };
        self.names[idx] = Some(name.to_string());
        (char::from_u32('a' as u32 + idx as u32), true)
    }
}

/// The flags a file name's info part stands for. `P` (passed) reads as `$Forwarded`, as mutt
/// and other Maildir clients mean it.
pub(crate) fn flags_from_info(info: &str, keywords: &Keywords) -> Flags {
    let mut flags = Flags::new();
    for c in info.chars() {
        if let Some((_, f)) = FLAG_LETTERS.iter().find(|(l, _)| *l == c) {
            flags.insert(f);
        } else if c == 'P' {
            flags.insert("$Forwarded");
        } else if let Some(k) = keywords.name_of(c) {
            flags.insert(k);
        }
    }
    flags
}

/// The info letters (sorted, as Dovecot writes them) for a set of flags; keywords get letters,
/// new ones added to `keywords`. Returns the letters, whether `keywords` changed, and the
/// keywords that did not fit (all 26 letters taken).
pub(crate) fn info_from_flags(
    flags: &Flags,
    keywords: &mut Keywords,
) -> (String, bool, Vec<String>) {
    let mut letters: Vec<char> = Vec::new();
    let mut changed = false;
    let mut dropped = Vec::new();
    for f in flags.iter() {
        if let Some((l, _)) = FLAG_LETTERS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
            letters.push(*l);
        } else if f.starts_with('\\') {
            // \Recent and unknown system flags have no letter.
        } else {
            match keywords.letter_or_add(f) {
                (Some(l), c) => {
                    letters.push(l);
                    changed |= c;
                }
                (None, _) => dropped.push(f.to_string()),
            }
        }
    }
    letters.sort_unstable();
    letters.dedup();
    (letters.into_iter().collect(), changed, dropped)
}

/// One message file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageFile {
    /// `cur` or `new`.
    pub sub: &'static str,
    /// The file name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its modification time: the message's INTERNALDATE.
    pub mtime: SystemTime,
}

impl MessageFile {
    /// The path under the folder directory.
    pub(crate) fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.sub).join(&self.name)
    }

    /// The INTERNALDATE (the file's mtime, to the second, in UTC: a file has no zone).
    pub(crate) fn internal_date(&self) -> Option<InternalDate> {
        let t = time::OffsetDateTime::from(self.mtime);
        t.replace_nanosecond(0).ok().map(InternalDate)
    }
}

/// What the uidlist said, and the folder's files matched to it.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Whether a uidlist was there.
    pub has_uidlist: bool,
    /// Its UIDVALIDITY (0 when there is none).
    pub validity: u32,
    /// The next UID: the larger of the header's and one past the last record's.
    pub next_uid: u32,
    /// Whether the header's next UID is behind the records (records were appended).
    pub header_stale: bool,
    /// The mailbox GUID from the header (hex), when given.
    pub guid: Option<String>,
    /// Files with a UID.
    pub messages: BTreeMap<Uid, MessageFile>,
    /// Files the uidlist does not know, sorted by name.
    pub unlisted: Vec<MessageFile>,
    /// Entries of `cur/` and `new/` that are not read as messages, with why.
    pub skipped: Vec<SkippedEntry>,
}

/// The message files in a folder's `cur/` and `new/`, by name within each, and the entries
/// there that are not message files, with why.
///
/// Links are reported, not followed: a link could bring in a file from outside the mail store
/// (a user's link to another user's file, read by an admin's migration). `tmp/` is not read
/// and not reported: what is there was never delivered (a delivery writes there first, then
/// moves the file to `new/`), and the sender was told so.
fn list_files(dir: &Path) -> Result<(Vec<MessageFile>, Vec<SkippedEntry>), AccessError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for sub in ["cur", "new"] {
        let d = dir.join(sub);
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&d, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&d, e))?;
            let path = entry.path();
            let Ok(name) = entry.file_name().into_string() else {
                skipped.push(SkippedEntry::at(
                    &path,
                    "its name is not valid UTF-8, which no Maildir writer makes; rename it to \
                     import it",
                ));
                continue;
            };
            if name.starts_with('.') {
                skipped.push(SkippedEntry::at(
                    &path,
                    "its name starts with `.`, which marks a file that is not a message in a \
                     Maildir; rename it to import it",
                ));
                continue;
            }
            // Not followed: the entry itself.
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed meanwhile (expunged by a client): simply not there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    skipped.push(SkippedEntry::at(&path, format!("cannot be read: {e}")));
                    continue;
                }
            };
            let t = meta.file_type();
            let why = if t.is_symlink() {
                "a symbolic link, not a message file; links are not followed (one could bring \
                 in a file from outside the mail store): put the file itself here to import it"
            } else if t.is_dir() {
                "a directory, not a message file"
            } else if !t.is_file() {
                "not a regular file (a pipe, socket or device)"
            } else {
                files.push(MessageFile {
                    sub,
                    name,
                    size: meta.len(),
                    mtime: meta.modified().map_err(|e| io_error(&path, e))?,
                });
                continue;
            };
            skipped.push(SkippedEntry::at(&path, why));
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(files);
    }
    Ok((out, skipped))
}

/// Reads a folder: its uidlist (if any) and its files, matched by base name.
pub(crate) fn scan(dir: &Path) -> Result<Scan, AccessError> {
    let path = dir.join(UIDLIST);
    let mut scan = Scan {
        next_uid: 1,
        ..Scan::default()
    };
    let mut records: Vec<(u32, String)> = Vec::new();
    match fs::read_to_string(&path) {
        Ok(text) => {
            scan.has_uidlist = true;
            let mut lines = text.lines();
            let header = lines.next().unwrap_or("");
            let mut fields = header.split_ascii_whitespace();
            let version = fields.next().unwrap_or("");
            let mut header_next = 0u32;
            match version {
                "3" => {
                    for f in fields {
                        let (k, v) = f.split_at(f.len().min(1));
                        match k {
                            "V" => scan.validity = v.parse().unwrap_or(0),
                            "N" => header_next = v.parse().unwrap_or(0),
                            "G" => scan.guid = Some(v.to_string()),
                            _ => {}
                        }
                    }
                }
                "1" => {
                    scan.validity = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                    header_next = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                }
                _ => {
                    return Err(format_error(
                        &path,
                        format!("line 1: unknown uidlist version {version:?}"),
                    ))
                }
            }
            let mut last = 0u32;
            for (i, line) in lines.enumerate() {
                let n = i + 2;
                if line.is_empty() {
                    continue;
                }
                let (uid, rest) = line.split_once(' ').unwrap_or((line, ""));
                let uid: u32 = uid.parse().ok().filter(|u| *u > last).ok_or_else(|| {
                    format_error(&path, format!("line {n}: bad or unordered UID {uid:?}"))
                })?;
                let name = if version == "3" {
                    match rest.find(':') {
                        Some(at) => &rest[at + 1..],
                        None => {
                            return Err(format_error(
                                &path,
                                format!("line {n}: no `:` before the file name"),
                            ))
                        }
                    }
                } else {
                    rest.trim()
                };
                last = uid;
                records.push((uid, name.to_string()));
            }
            scan.next_uid = header_next.max(last.saturating_add(1)).max(1);
            scan.header_stale = header_next < last.saturating_add(1);
            if scan.validity == 0 {
                scan.has_uidlist = false;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&path, e)),
    }
    let mut by_base: HashMap<String, MessageFile> = HashMap::new();
    let (files, skipped) = list_files(dir)?;
    scan.skipped = skipped;
    for f in files {
        let base = split_name(&f.name).0.to_string();
        // Two files with one base should not happen (a copy made by hand, a crashed client);
        // the first in cur/ wins, and the other is reported.
        match by_base.entry(base) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(f);
            }
            std::collections::hash_map::Entry::Occupied(o) => {
                let kept = o.get().path(dir);
                scan.skipped.push(SkippedEntry::at(
                    &f.path(dir),
                    format!(
                        "the same message name as {}, which is imported in its place",
                        kept.display()
                    ),
                ));
            }
        }
    }
    if scan.has_uidlist {
        for (uid, name) in records {
            if let Some(f) = by_base.remove(split_name(&name).0) {
                scan.messages.insert(Uid(uid), f);
            }
        }
    }
    scan.unlisted = by_base.into_values().collect();
    scan.unlisted.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(scan)
}

/// A UIDVALIDITY derived from things that identify a folder's content: nonzero, stable as long
/// as the things are.
pub(crate) fn derived_validity(parts: &[&[u8]]) -> u32 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]]).max(1)
}

/// The identity of a directory (device and inode), for derived UIDVALIDITYs.
pub(crate) fn dir_identity(dir: &Path) -> Vec<u8> {
    match fs::metadata(dir) {
        Ok(m) => [m.dev().to_le_bytes(), m.ino().to_le_bytes()].concat(),
        Err(_) => dir.as_os_str().as_encoded_bytes().to_vec(),
    }
}

/// A mailbox GUID for a new uidlist: 32 hex digits.
pub(crate) fn new_guid(dir: &Path) -> String {
    let mut h = Sha256::new();
    h.update(dir.as_os_str().as_encoded_bytes());
    h.update(std::process::id().to_le_bytes());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The text of a whole uidlist.
pub(crate) fn render_uidlist(
    validity: u32,
    next_uid: u32,
    guid: &str,
    messages: &BTreeMap<Uid, MessageFile>,
) -> String {
    let mut s = format!("3 V{validity} N{next_uid} G{guid}\n");
    for (uid, f) in messages {
        s.push_str(&format!("{} :{}\n", uid.0, f.name));
    }
    s
}

/// Replaces a file atomically: written beside it, synced, renamed over it.
pub(crate) fn replace_file(path: &Path, content: &[u8]) -> Result<(), AccessError> {
    let tmp = path.with_file_name(format!(
        "{}.imapmig-tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| io_error(path, e))
}

/// Makes the entries of a directory durable (best effort where directories cannot be synced).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The end of the header block of a file, read up to `max` bytes.
pub(crate) fn read_head(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; max];
    let mut n = 0;
    while n < max {
        let got = f.read(&mut buf[n..])?;
        if got == 0 {
            break;
        }
        n += got;
        let seen = &buf[..n];
        if memchr::memmem::find(seen, b"\n\n").is_some()
            || memchr::memmem::find(seen, b"\n\r\n").is_some()
        {
            break;
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Runs blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &Path,
    f: impl FnOnce() -> Result<T, AccessError> + Send + 'static,
) -> Result<T, AccessError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(io_error(
            what,
            std::io::Error::other(format!("file task failed: {e}")),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_map_to_dot_directories() {
        let root = Path::new("/m");
        assert_eq!(folder_dir(root, "INBOX").unwrap(), root);
        assert_eq!(folder_dir(root, "inbox").unwrap(), root);
        assert_eq!(
            folder_dir(root, "Projects.&XfJT0ZAB-").unwrap(),
            Path::new("/m/.Projects.&XfJT0ZAB-")
        );
        for bad in ["", "a/b", ".a", "a.", "a..b", "../x"] {
            assert!(folder_dir(root, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_and_keywords_round_trip_through_letters() {
        let mut kw = Keywords::default();
        let flags: Flags = [
            "\\Seen",
            "\\Deleted",
            "\\Draft",
            "$Forwarded",
            "Work",
            "\\Recent",
        ]
        .into_iter()
        .collect();
        let (info, changed, dropped) = info_from_flags(&flags, &mut kw);
        assert_eq!(info, "DSTab");
        assert!(changed && dropped.is_empty());
        assert_eq!(kw.render(), "0 $Forwarded\n1 Work\n");
        let back = flags_from_info(&info, &kw);
        let expected: Flags = ["\\Seen", "\\Deleted", "\\Draft", "$Forwarded", "Work"]
            .into_iter()
            .collect();
        assert_eq!(back, expected);
        // Known keywords are not "changes"; `P` reads as $Forwarded.
        assert!(!info_from_flags(&back, &mut kw).1);
        assert!(flags_from_info("PS", &Keywords::default()).contains("$Forwarded"));
        assert_eq!(split_name("123.x,S=5:2,RS"), ("123.x,S=5", "RS"));
        assert_eq!(split_name("123.x"), ("123.x", ""));
    }

    #[test]
    fn at_most_26_keywords() {
        let mut kw = Keywords::default();
        let many: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
        let flags: Flags = many.iter().map(String::as_str).collect();
        let (info, _, dropped) = info_from_flags(&flags, &mut kw);
        assert_eq!(info.len(), 26);
        assert_eq!(dropped.len(), 4);
        assert!(kw.is_full());
    }

    #[test]
    fn uidlist_records_match_files_by_base() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for s in ["cur", "new", "tmp"] {
            fs::create_dir(d.join(s)).unwrap();
        }
        fs::write(d.join("cur/1.a.h,S=1:2,S"), "x").unwrap();
        fs::write(d.join("cur/2.b.h:2,"), "yy").unwrap();
        fs::write(d.join("new/3.c.h"), "zzz").unwrap();
        fs::write(
            d.join(UIDLIST),
            "3 V42 N3 Gabc\n1 :1.a.h,S=1\n2 W5 :2.b.h:2,\n7 :gone.h\n",
        )
        .unwrap();
        let s = scan(d).unwrap();
        assert!(s.has_uidlist);
        assert_eq!(s.validity, 42);
        assert_eq!(s.next_uid, 8);
        assert!(s.header_stale);
        assert_eq!(s.messages.len(), 2);
        assert_eq!(s.messages[&Uid(2)].size, 2);
        assert_eq!(s.unlisted.len(), 1);
        assert_eq!(s.unlisted[0].name, "3.c.h");
        fs::write(d.join(UIDLIST), "3 V42 N3\n2 :x\n1 :y\n").unwrap();
        let err = scan(d).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn entries_that_are_not_messages_or_folders_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for s in [
            "cur",
            "new",
            "tmp",
            ".A/cur",
            ".NoCur/tmp",
            ".ssh",
            "fs/cur",
            "sieve",
        ] {
            fs::create_dir_all(d.join(s)).unwrap();
        }
        fs::write(d.join(".NoCur/maildirfolder"), "").unwrap();
        fs::write(d.join(".bashrc"), "").unwrap();
        fs::write(d.join("dovecot-uidlist"), "3 V1 N1\n").unwrap();
        fs::write(d.join("cur/1.a.h:2,S"), "x").unwrap();
        fs::write(d.join("new/1.a.h"), "x, again").unwrap();
        fs::write(d.join("tmp/2.b.h"), "never delivered").unwrap();
        fs::create_dir(d.join("new/dir")).unwrap();
        std::os::unix::fs::symlink(d.join("cur/1.a.h:2,S"), d.join("cur/3.c.h:2,")).unwrap();
        let paths = |s: &[SkippedEntry]| -> Vec<String> {
            s.iter()
                .map(|e| {
                    e.path
                        .strip_prefix(&d.display().to_string())
                        .unwrap()
                        .into()
                })
                .collect()
        };
        let (folders, skipped) = read_folders(d).unwrap();
        let names: Vec<&str> = folders.iter().map(|f| f.raw.as_str()).collect();
        assert_eq!(names, ["INBOX", "A"]);
        assert_eq!(paths(&skipped), ["/.NoCur", "/fs"], "{skipped:#?}");
        let s = scan(d).unwrap();
        assert_eq!(s.unlisted.len(), 1);
        assert_eq!(s.unlisted[0].sub, "cur");
        assert_eq!(
            paths(&s.skipped),
            ["/cur/3.c.h:2,", "/new/dir", "/new/1.a.h"],
            "{:#?}",
            s.skipped
        );
        assert!(s.skipped[0].reason.contains("symbolic link"));
        assert!(s.skipped[2].reason.contains("/cur/1.a.h:2,S"));
    }
}
