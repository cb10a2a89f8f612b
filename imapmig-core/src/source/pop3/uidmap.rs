//! The persistent UIDL → UID table of a POP3 source.
//!
//! POP3 has no UIDs, but the engine's state store tracks messages by UID, so each UIDL string
//! gets a number the first time it is seen, and keeps it forever: UIDs are handed out in the
//! order messages are first seen (1, 2, 3...), and the table, a small text file, is only ever
//! appended to. The file also keeps what was learned from each message's header when it was
//! first seen (its arrival date and its `Date:`), so a later run reads the headers of new
//! messages only.
//!
//! ```text
//! imapmig-pop3-uids 1 V1700000000 pop3://user@host:110
//! !sizes-unreliable
//! 1 1699990000+0100 1699980000-0500 000000015d2b3ef1
//! 2 1699990100+0000 - 000000025d2b3ef1
//! ```
//!
//! The header names the table's UIDVALIDITY and the mailbox it belongs to (a table is never
//! used for another mailbox). Each entry is `uid arrival date uidl`, a date being Unix seconds
//! followed by the zone, `-` for none. `!` lines are notes: `!sizes-unreliable` records that the
//! server's `LIST` sizes were once found wrong, so bodies are spooled before they are appended.
//!
//! # Crash safety
//!
//! The engine only needs the same UIDL to get the same UID on every run. New entries are
//! appended and fsynced before any of their UIDs is handed out, so a UID the engine may have
//! recorded is always in the file. A crash can at worst leave a torn last line (no final
//! newline): its UID was never handed out, so it is dropped (and the file rewritten without
//! it, through a temporary file and a rename) the next time the table is read. A table that
//! is lost or deleted gets a new UIDVALIDITY when it is made again (the time of creation), so
//! the engine re-identifies what it copied before by content instead of trusting old UIDs.
//! One process at a time may use a table, as with the state file beside it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use time::{OffsetDateTime, UtcOffset};

use crate::model::{InternalDate, Uid, UidValidity};
use crate::source::AccessError;

const MAGIC: &str = "imapmig-pop3-uids";
const VERSION: &str = "1";
/// The note that the server's LIST sizes cannot be trusted.
pub(crate) const SIZES_UNRELIABLE: &str = "!sizes-unreliable";

/// What the table knows of one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its UID.
    pub uid: Uid,
    /// When it arrived (topmost `Received:`, else `Date:`, else when it was first seen).
    pub arrival: Option<InternalDate>,
    /// Its `Date:` header.
    pub date: Option<InternalDate>,
}

/// The table of one POP3 mailbox.
#[derive(Debug)]
pub(crate) struct UidMap {
    path: PathBuf,
    /// The mailbox's UIDVALIDITY.
    pub validity: UidValidity,
    /// Whether the server's LIST sizes were found wrong before.
    pub sizes_unreliable: bool,
    entries: HashMap<String, Entry>,
    next: u32,
}

fn format_error(path: &Path, line: usize, detail: impl Into<String>) -> AccessError {
    AccessError::Format {
        path: format!("{}:{line}", path.display()),
        detail: detail.into(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> AccessError {
    AccessError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether a UIDL is what RFC 1939 allows (1 to 70 characters 0x21..0x7E): such a string
/// cannot break the table's line format.
pub(crate) fn valid_uidl(uidl: &[u8]) -> bool {
    (1..=70).contains(&uidl.len()) && uidl.iter().all(|b| (0x21..=0x7e).contains(b))
}

fn format_date(d: Option<&InternalDate>) -> String {
    match d {
        None => "-".into(),
        Some(d) => {
            let off = d.0.offset().whole_seconds();
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.abs();
            format!(
                "{}{sign}{:02}{:02}",
                d.unix(),
                off / 3600,
                (off % 3600) / 60
            )
        }
    }
}

fn parse_date(s: &str) -> Result<Option<InternalDate>, String> {
    if s == "-" {
        return Ok(None);
    }
    let bad = || format!("bad date {s:?}");
    if s.len() < 6 {
        return Err(bad());
    }
    let (secs, zone) = s.split_at(s.len() - 5);
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let sign = match &zone[..1] {
        "+" => 1,
        "-" => -1,
        _ => return Err(bad()),
    };
    let h: i32 = zone[1..3].parse().map_err(|_| bad())?;
    let m: i32 = zone[3..5].parse().map_err(|_| bad())?;
    let offset = UtcOffset::from_whole_seconds(sign * (h * 3600 + m * 60)).map_err(|_| bad())?;
    let t = OffsetDateTime::from_unix_timestamp(secs).map_err(|_| bad())?;
    Ok(Some(InternalDate(t.to_offset(offset))))
}

impl UidMap {
    /// Reads the table at `path` for `mailbox`, or makes a new one (not yet written: that
    /// happens with the first UIDs, in [`UidMap::assign`]).
    pub(crate) fn load(path: &Path, mailbox: &str) -> Result<UidMap, AccessError> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                return Ok(UidMap {
                    path: path.to_path_buf(),
                    validity: UidValidity((now as u32).max(1)),
                    sizes_unreliable: false,
                    entries: HashMap::new(),
                    next: 1,
                });
            }
            Err(e) => return Err(io_error(path, e)),
        };
        let complete = match memchr::memrchr(b'\n', &text) {
            Some(i) => i + 1,
            None => 0,
        };
        let torn = complete < text.len();
        let body = std::str::from_utf8(&text[..complete])
            .map_err(|_| format_error(path, 1, "not UTF-8 text; is this a UID table?"))?;
        let mut lines = body.lines().enumerate();
        let (validity, owner) = match lines.next() {
            Some((_, header)) => {
                let mut parts = header.splitn(4, ' ');
                let (magic, version, v, owner) =
                    (parts.next(), parts.next(), parts.next(), parts.next());
                if magic != Some(MAGIC) || version != Some(VERSION) {
                    return Err(format_error(
                        path,
                        1,
                        "not an imapmig POP3 UID table (version 1)",
                    ));
                }
                let v = v
                    .and_then(|v| v.strip_prefix('V'))
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|v| *v != 0)
                    .ok_or_else(|| format_error(path, 1, "bad UIDVALIDITY"))?;
                (v, owner.unwrap_or(""))
            }
            // Only a torn header: nothing was ever handed out.
            None => {
                let _ = std::fs::remove_file(path);
                return UidMap::load(path, mailbox);
            }
        };
        if owner != mailbox {
            return Err(format_error(
                path,
                1,
                format!("this UID table belongs to {owner}, not {mailbox}; use another file"),
            ));
        }
        let mut map = UidMap {
            path: path.to_path_buf(),
            validity: UidValidity(validity),
            sizes_unreliable: false,
            entries: HashMap::new(),
            next: 1,
        };
        for (i, line) in lines {
            let n = i + 1;
            if line.is_empty() {
                continue;
            }
            // Notes; unknown ones (from a newer version) are skipped.
            if line.starts_with('!') {
                map.sizes_unreliable |= line == SIZES_UNRELIABLE;
                continue;
            }
            let parts: Vec<&str> = line.split(' ').collect();
            let [uid, arrival, date, uidl] = parts[..] else {
                return Err(format_error(path, n, "expected `uid arrival date uidl`"));
            };
            let uid: u32 = uid
                .parse()
                .ok()
                .filter(|u| *u >= map.next)
                .ok_or_else(|| format_error(path, n, format!("bad or repeated UID {uid:?}")))?;
            if !valid_uidl(uidl.as_bytes()) {
                return Err(format_error(path, n, format!("bad UIDL {uidl:?}")));
            }
            let arrival = parse_date(arrival).map_err(|e| format_error(path, n, e))?;
            let date = parse_date(date).map_err(|e| format_error(path, n, e))?;
            if map
                .entries
                .insert(
                    uidl.to_string(),
                    Entry {
                        uid: Uid(uid),
                        arrival,
                        date,
                    },
                )
                .is_some()
            {
                return Err(format_error(path, n, format!("UIDL {uidl} appears twice")));
            }
            map.next = uid + 1;
        }
        if torn {
            map.rewrite(&text[..complete])?;
        }
        Ok(map)
    }

    fn rewrite(&self, content: &[u8]) -> Result<(), AccessError> {
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(content)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| io_error(&self.path, e))
    }

    /// What the table knows of a UIDL.
    pub(crate) fn get(&self, uidl: &str) -> Option<&Entry> {
        self.entries.get(uidl)
    }

    /// Gives each new UIDL (in the order given) the next UID, and writes them durably before
    /// returning. `mailbox` names the table's owner when the file is new.
    pub(crate) fn assign(
        &mut self,
        mailbox: &str,
        new: Vec<(String, Option<InternalDate>, Option<InternalDate>)>,
    ) -> Result<(), AccessError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        let exists = self.path.exists();
        if !exists {
            if let Some(dir) = self.path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
                }
            }
            text.push_str(&format!(
                "{MAGIC} {VERSION} V{} {mailbox}\n",
                self.validity.0
            ));
            if self.sizes_unreliable {
                text.push_str(SIZES_UNRELIABLE);
                text.push('\n');
            }
        }
        let mut added = Vec::with_capacity(new.len());
        for (uidl, arrival, date) in new {
            if self.entries.contains_key(&uidl) {
                continue;
            }
            let uid = Uid(self.next);
            self.next = self
                .next
                .checked_add(1)
                .ok_or_else(|| format_error(&self.path, 0, "out of UIDs"))?;
            text.push_str(&format!(
                "{} {} {} {uidl}\n",
                uid.0,
                format_date(arrival.as_ref()),
                format_date(date.as_ref())
            ));
            added.push((uidl, Entry { uid, arrival, date }));
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| io_error(&self.path, e))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io_error(&self.path, e))?;
        if !exists {
            sync_parent(&self.path);
        }
        self.entries.extend(added);
        Ok(())
    }

    /// Notes that the server's LIST sizes are wrong, in the file too (when it exists).
    pub(crate) fn mark_sizes_unreliable(&mut self) {
        self.sizes_unreliable = true;
        let _ = mark_sizes_unreliable(&self.path);
    }
}

/// Appends the "sizes unreliable" note to an existing table (a plain synchronous append: it is
/// called at most once per server, from inside a body reader).
pub(crate) fn mark_sizes_unreliable(path: &Path) -> std::io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(path)?;
    f.write_all(format!("{SIZES_UNRELIABLE}\n").as_bytes())?;
    f.sync_all()
}

/// Makes a new directory entry durable (best effort: not every file system can sync a
/// directory).
pub(crate) fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Option<InternalDate> {
        InternalDate::parse_imap(s)
    }

    #[test]
    fn uids_survive_reloads_and_torn_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/map.uids");
        let who = "pop3://alice@host:110";
        let mut m = UidMap::load(&path, who).unwrap();
        let v = m.validity;
        m.assign(
            who,
            vec![
                ("a1".into(), date("01-Jan-2020 10:00:00 +0100"), None),
                ("b2".into(), None, date("02-Jan-2020 10:00:00 -0500")),
            ],
        )
        .unwrap();
        let m2 = UidMap::load(&path, who).unwrap();
        assert_eq!(m2.validity, v);
        assert_eq!(m2.get("a1").unwrap().uid, Uid(1));
        assert_eq!(
            m2.get("a1").unwrap().arrival.unwrap().to_imap(),
            "01-Jan-2020 10:00:00 +0100"
        );
        assert_eq!(m2.get("b2").unwrap().uid, Uid(2));
        assert_eq!(
            m2.get("b2").unwrap().date.unwrap().to_imap(),
            "02-Jan-2020 10:00:00 -0500"
        );

        // A torn last line is dropped, and its UID is given again.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"3 - - c3").unwrap();
        drop(f);
        let mut m3 = UidMap::load(&path, who).unwrap();
        assert!(m3.get("c3").is_none());
        assert!(std::fs::read(&path).unwrap().ends_with(b"\n"));
        m3.assign(
            who,
            vec![("zz".into(), None, None), ("a1".into(), None, None)],
        )
        .unwrap();
        assert_eq!(m3.get("zz").unwrap().uid, Uid(3));
        assert_eq!(m3.get("a1").unwrap().uid, Uid(1));

        m3.mark_sizes_unreliable();
        assert!(UidMap::load(&path, who).unwrap().sizes_unreliable);
        // Another mailbox may not use it.
        let err = UidMap::load(&path, "pop3://bob@host:110").unwrap_err();
        assert!(err.to_string().contains("belongs to"), "{err}");
    }

    #[test]
    fn damaged_tables_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map");
        std::fs::write(&path, "imapmig-pop3-uids 1 V5 x\n1 - - a\n1 - - b\n").unwrap();
        let err = UidMap::load(&path, "x").unwrap_err().to_string();
        assert!(err.contains("map:3"), "{err}");
        std::fs::write(&path, "something else\n").unwrap();
        assert!(UidMap::load(&path, "x").is_err());
        assert!(valid_uidl(b"abc"));
        assert!(!valid_uidl(b"a b"));
        assert!(!valid_uidl(b""));
    }
}
