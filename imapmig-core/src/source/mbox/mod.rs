//! The mbox source: importing archives, one folder per file.
//!
//! # Folders
//!
//! [`MboxSpec::path`] is one mbox file (one folder) or a directory of them (one folder per
//! file, subdirectories as hierarchy, `/` between levels). A folder is named after its file,
//! without an `.mbox` or `.mbx` extension; a top-level `Inbox` (any case) is INBOX. Thunderbird's
//! `Name.sbd/` directories hold the children of `Name`, and an Apple Mail export's
//! `Name.mbox/mbox` is the folder `Name`. Links are followed, each directory read once.
//!
//! Whatever in a directory is not taken as a folder is reported with its path and why
//! ([`MigrationSource::take_skipped`]): files that do not start with a `From ` line, hidden
//! entries, entries that cannot be read, pipes and sockets, names that are not UTF-8, links
//! back to a directory already read, a second file for a folder name already taken. Not
//! reported are the companions mail programs keep beside their archives that never hold mail
//! (Thunderbird's `.msf` summaries, Apple Mail's `table_of_contents`, Finder's `.DS_Store`,
//! Dovecot's `.imap` indexes: see `is_file_companion` and `is_hidden_companion`).
//!
//! # Messages
//!
//! See `scan.rs` for where messages start and end, and what their INTERNALDATE and flags are.
//! A message is imported byte for byte as the file holds it, minus its `From ` separator line
//! and the separating empty line after it, with `>From ` lines un-escaped as the
//! [`MboxFlavor`] says. Bodies are streamed from the file, never held whole.
//!
//! # UIDs
//!
//! A message's UID is its position in the file (1, 2, 3...). The folder's UIDVALIDITY is a
//! hash of the file's path, size and modification time: while the archive is unchanged, a
//! re-run skips what was copied; when it changes (even only grows), the engine re-identifies
//! the copied messages by content, so nothing is copied twice or lost.

pub(super) mod scan;
mod unescape;

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use self::scan::Entry;
use self::unescape::UnescapeReader;
use super::{AccessError, DateRange, FolderList, MigrationSource, OpenedFolder, SkippedEntry};
use crate::body::{BodyEvent, BodyOrigin, FetchedBody};
use crate::failure::ErrorKind;
use crate::filter::DateField;
use crate::maildir::blocking;
use crate::maildir::derived_validity;
use crate::model::{Folder, MessageMeta, Uid, UidValidity};

/// How `From ` lines inside messages were escaped by the program that wrote the archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MboxFlavor {
    /// mboxrd (the default; mutt, Python, Dovecot, mox): every `>*From ` line got one more
    /// `>`, so one is removed from each.
    #[default]
    Mboxrd,
    /// mboxo (Netscape, old Eudora, Thunderbird): `From ` lines got a `>`, `>From ` lines did
    /// not, so only `>From ` lines lose their `>` (a `>From ` that was there before cannot be
    /// told apart).
    Mboxo,
    /// mboxcl2 (Solaris, SysV): nothing is escaped; `Content-Length:` separates the messages.
    Mboxcl2,
}

/// Where an mbox archive is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MboxSpec {
    /// An mbox file, or a directory of them.
    pub path: PathBuf,
    /// How `From ` lines are escaped in it.
    pub flavor: MboxFlavor,
}

impl MboxSpec {
    /// An mboxrd archive at `path`.
    pub fn new(path: impl Into<PathBuf>) -> MboxSpec {
        MboxSpec {
            path: path.into(),
            flavor: MboxFlavor::default(),
        }
    }

    /// The same archive read with another flavour.
    pub fn with_flavor(mut self, flavor: MboxFlavor) -> MboxSpec {
        self.flavor = flavor;
        self
    }
}

fn io_error(path: &Path, source: std::io::Error) -> AccessError {
    AccessError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether a file is an mbox: empty, or starting with `From `.
fn looks_like_mbox(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut head = [0u8; 5];
    let mut n = 0;
    while n < 5 {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == 0 || &head[..n] == b"From ")
}

fn strip_extension(name: &str) -> &str {
    for ext in [".mbox", ".mbx", ".MBOX", ".MBX"] {
        if let Some(stem) = name.strip_suffix(ext) {
            if !stem.is_empty() {
                return stem;
            }
        }
    }
    name
}

fn folder_name(segments: &[String]) -> String {
    let mut segs = segments.to_vec();
    if let Some(first) = segs.first_mut() {
        if first.eq_ignore_ascii_case("inbox") {
            *first = "INBOX".into();
        }
    }
    segs.join("/")
}

/// Hidden entries that mail programs keep beside their archives and that never hold mail:
/// Finder's `.DS_Store` and AppleDouble `._*` files, Dovecot's index directory `.imap` and
/// its `.subscriptions`. Every other hidden entry is reported.
fn is_hidden_companion(name: &str) -> bool {
    matches!(name, ".DS_Store" | ".imap" | ".subscriptions") || name.starts_with("._")
}

/// Files that are not mbox archives and that mail programs keep beside them, one per folder
/// or account, never holding mail: Thunderbird's summaries (`Name.msf`), filters and POP
/// state; an Apple Mail export's `table_of_contents` and `Info.plist`. Reporting them would
/// bury what matters under one line per folder. Every other file that is not an mbox is
/// reported (an `.eml`, notes, an archive in another format).
fn is_file_companion(name: &str) -> bool {
    name.ends_with(".msf")
        || matches!(
            name,
            "msgFilterRules.dat" | "popstate.dat" | "table_of_contents" | "Info.plist"
        )
}

/// What reading an archive found: its folders (name, file), sorted by name, and the entries
/// of a directory that were passed over.
#[derive(Debug, Default)]
struct Discovered {
    folders: Vec<(String, PathBuf)>,
    skipped: Vec<SkippedEntry>,
}

/// The folders of an archive, and (for a directory) what was passed over.
fn discover(path: &Path) -> Result<Discovered, AccessError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_file() {
        if !looks_like_mbox(path).map_err(|e| io_error(path, e))? {
            return Err(AccessError::Format {
                path: format!("{}:1", path.display()),
                detail: "not an mbox file: it does not start with a `From ` line".into(),
            });
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(|n| strip_extension(n).to_string())
            .unwrap_or_else(|| "INBOX".into());
        return Ok(Discovered {
            folders: vec![(folder_name(&[name]), path.to_path_buf())],
            skipped: Vec::new(),
        });
    }
    let mut found = Discovered::default();
    let mut walk = Walk {
        segments: Vec::new(),
        seen_dirs: HashSet::from([(meta.dev(), meta.ino())]),
        found: &mut found,
    };
    let entries = std::fs::read_dir(path).map_err(|e| io_error(path, e))?;
    walk.dir(path, entries);
    found.folders.sort();
    // Two files that make one folder name (`Inbox` and `Inbox.mbox`, `Name` and an Apple
    // `Name.mbox/mbox`): the first by path is the folder, the others are reported, never
    // listed twice under one name (the engine would read the first twice).
    let mut folders: Vec<(String, PathBuf)> = Vec::with_capacity(found.folders.len());
    for (name, file) in std::mem::take(&mut found.folders) {
        match folders.last() {
            Some((taken, first)) if *taken == name => found.skipped.push(SkippedEntry::at(
                &file,
                format!(
                    "its folder name {name:?} is already taken by {}; rename one of them to \
                     import both",
                    first.display()
                ),
            )),
            _ => folders.push((name, file)),
        }
    }
    found.folders = folders;
    Ok(found)
}

/// A walk through a directory of archives.
struct Walk<'a> {
    /// The folder names of the directories above.
    segments: Vec<String>,
    /// Directories read so far (device, inode): a link back up the tree is read once, not
    /// until the path grows too long, importing the same archives under ever longer names.
    seen_dirs: HashSet<(u64, u64)>,
    found: &'a mut Discovered,
}

impl Walk<'_> {
    fn skip(&mut self, path: &Path, reason: impl Into<String>) {
        self.found.skipped.push(SkippedEntry::at(path, reason));
    }

    fn dir(&mut self, dir: &Path, entries: std::fs::ReadDir) {
        let mut list = Vec::new();
        for e in entries {
            match e {
                Ok(e) => list.push(e),
                Err(err) => self.skip(dir, format!("an entry in it cannot be read: {err}")),
            }
        }
        list.sort_by_key(|e| e.file_name());
        for e in list {
            let path = e.path();
            let Ok(name) = e.file_name().into_string() else {
                self.skip(
                    &path,
                    "its name is not valid UTF-8, so it cannot name a folder; rename it to \
                     import it",
                );
                continue;
            };
            if name.starts_with('.') {
                if !is_hidden_companion(&name) {
                    self.skip(
                        &path,
                        "hidden (its name starts with `.`); rename it to import it",
                    );
                }
                continue;
            }
            // Links are followed: an archive linked into the tree is imported.
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(err) => {
                    self.skip(&path, format!("cannot be read: {err}"));
                    continue;
                }
            };
            if meta.is_dir() {
                if !self.seen_dirs.insert((meta.dev(), meta.ino())) {
                    self.skip(
                        &path,
                        "a link to a directory that is already read; not read twice",
                    );
                    continue;
                }
                let entries = match std::fs::read_dir(&path) {
                    Ok(rd) => rd,
                    Err(err) => {
                        self.skip(&path, format!("cannot be read: {err}"));
                        continue;
                    }
                };
                let seg = name
                    .strip_suffix(".sbd")
                    .or_else(|| name.strip_suffix(".mbox"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or(&name)
                    .to_string();
                self.segments.push(seg);
                self.dir(&path, entries);
                self.segments.pop();
            } else if !meta.is_file() {
                self.skip(
                    &path,
                    "not a regular file or directory (a pipe, socket or device)",
                );
            } else {
                match looks_like_mbox(&path) {
                    Ok(true) => {
                        // Apple Mail: `Name.mbox/mbox` is the folder `Name`.
                        let folder = if name == "mbox" && !self.segments.is_empty() {
                            folder_name(&self.segments)
                        } else {
                            self.segments.push(strip_extension(&name).to_string());
                            let f = folder_name(&self.segments);
                            self.segments.pop();
                            f
                        };
                        self.found.folders.push((folder, path));
                    }
                    Ok(false) if is_file_companion(&name) => {}
                    Ok(false) => self.skip(
                        &path,
                        "not an mbox file: it does not start with a `From ` line",
                    ),
                    Err(err) => self.skip(&path, format!("cannot be read: {err}")),
                }
            }
        }
    }
}

struct OpenMbox {
    path: PathBuf,
    size: u64,
    mtime_ns: i128,
    entries: Vec<Entry>,
}

/// An mbox archive as a source.
pub struct MboxSource {
    spec: MboxSpec,
    folders: Option<Vec<(String, PathBuf)>>,
    open: Option<OpenMbox>,
    queue: VecDeque<Uid>,
    /// Entries passed over and not yet taken by [`MigrationSource::take_skipped`].
    skipped: Vec<SkippedEntry>,
}

fn mtime_ns(meta: &std::fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

impl MboxSource {
    /// Opens the archive (the path must exist).
    pub async fn open(spec: &MboxSpec) -> Result<MboxSource, AccessError> {
        let path = spec.path.clone();
        tokio::fs::metadata(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        Ok(MboxSource {
            spec: spec.clone(),
            folders: None,
            open: None,
            queue: VecDeque::new(),
            skipped: Vec::new(),
        })
    }

    async fn folders(&mut self) -> Result<&[(String, PathBuf)], AccessError> {
        if self.folders.is_none() {
            let path = self.spec.path.clone();
            let found = blocking(&self.spec.path, move || discover(&path)).await?;
            self.folders = Some(found.folders);
            self.skipped.extend(found.skipped);
        }
        Ok(self.folders.as_deref().unwrap_or_default())
    }

    fn opened(&self) -> Result<&OpenMbox, AccessError> {
        self.open.as_ref().ok_or_else(|| AccessError::Format {
            path: self.spec.path.display().to_string(),
            detail: "no folder is open".into(),
        })
    }
}

impl MigrationSource for MboxSource {
    fn describe(&self) -> String {
        format!("mbox:{}", self.spec.path.display())
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        let folders = self
            .folders()
            .await?
            .iter()
            .map(|(name, _)| Folder {
                name: name.clone(),
                raw: name.clone(),
                delimiter: Some('/'),
                attributes: Vec::new(),
                special_use: None,
            })
            .collect();
        Ok(FolderList {
            folders,
            prefix: String::new(),
            delimiter: Some('/'),
            messages: Default::default(),
        })
    }

    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError> {
        self.queue.clear();
        let path = self
            .folders()
            .await?
            .iter()
            .find(|(n, _)| *n == folder.raw)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| AccessError::Format {
                path: self.spec.path.display().to_string(),
                detail: format!("no mbox file for the folder {:?}", folder.name),
            })?;
        let flavor = self.spec.flavor;
        let p = path.clone();
        let (entries, size, mtime, canonical) = blocking(&path, move || {
            let meta = std::fs::metadata(&p).map_err(|e| io_error(&p, e))?;
            let (entries, size) = scan::scan(&p, flavor)?;
            let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
            Ok((entries, size, mtime_ns(&meta), canonical))
        })
        .await?;
        let validity = derived_validity(&[
            canonical.as_os_str().as_encoded_bytes(),
            &size.to_le_bytes(),
            &mtime.to_le_bytes(),
        ]);
        let count = entries.len() as u32;
        self.open = Some(OpenMbox {
            path,
            size,
            mtime_ns: mtime,
            entries,
        });
        Ok(OpenedFolder {
            uid_validity: UidValidity(validity),
            uid_next: Some(count + 1),
            highest_modseq: None,
            messages: count,
        })
    }

    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError> {
        let o = self.opened()?;
        Ok(o.entries
            .iter()
            .enumerate()
            .map(|(i, e)| MessageMeta {
                uid: Uid(i as u32 + 1),
                flags: e.flags.clone(),
                internal_date: e.internal_date,
                size: e.len,
                modseq: None,
            })
            .collect())
    }

    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError> {
        let o = self.opened()?;
        Ok(o.entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                let date = match range.field {
                    DateField::Internal => e.internal_date.as_ref(),
                    DateField::Header => e.header_date.as_ref().or(e.internal_date.as_ref()),
                };
                range.contains(date)
            })
            .map(|(i, _)| Uid(i as u32 + 1))
            .collect())
    }

    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError> {
        self.queue.extend(uids.iter().copied());
        Ok(())
    }

    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError> {
        let Some(uid) = self.queue.pop_front() else {
            return Ok(None);
        };
        let flavor = self.spec.flavor;
        let o = self.opened()?;
        let Some(e) = (uid.0 as usize)
            .checked_sub(1)
            .and_then(|i| o.entries.get(i))
        else {
            return Ok(Some(BodyEvent::Missing(uid)));
        };
        let mut file = tokio::fs::File::open(&o.path)
            .await
            .map_err(|err| io_error(&o.path, err))?;
        let meta = file
            .metadata()
            .await
            .map_err(|err| io_error(&o.path, err))?;
        if meta.len() != o.size || mtime_ns(&meta) != o.mtime_ns {
            return Err(AccessError::Format {
                path: format!("{}:{}", o.path.display(), e.line),
                detail: "the mbox file changed while it was being read; run again".into(),
            });
        }
        file.seek(std::io::SeekFrom::Start(e.start))
            .await
            .map_err(|err| io_error(&o.path, err))?;
        let raw = file.take(e.end - e.start);
        let origin = BodyOrigin {
            name: o.path.display().to_string(),
            kind: ErrorKind::Storage,
        };
        let body = FetchedBody::from_reader(uid, e.len, UnescapeReader::new(raw, flavor), origin);
        Ok(Some(BodyEvent::Body(body)))
    }

    fn take_skipped(&mut self) -> Vec<SkippedEntry> {
        std::mem::take(&mut self.skipped)
    }

    async fn close(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_from_a_directory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mbox = "From a Mon Jan  1 00:00:00 2001\n\nx\n";
        std::fs::write(d.join("Inbox"), mbox).unwrap();
        std::fs::write(d.join("Inbox.msf"), "index").unwrap();
        std::fs::create_dir(d.join("Inbox.sbd")).unwrap();
        std::fs::write(d.join("Inbox.sbd/Sub"), mbox).unwrap();
        std::fs::write(d.join("Sent Items.mbox"), "").unwrap();
        std::fs::create_dir_all(d.join("Archive.mbox")).unwrap();
        std::fs::write(d.join("Archive.mbox/mbox"), mbox).unwrap();
        std::fs::write(d.join(".hidden"), mbox).unwrap();
        let found = discover(d).unwrap();
        let names: Vec<&str> = found.folders.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Archive", "INBOX", "INBOX/Sub", "Sent Items"]);
        // The index is not reported; the hidden archive is.
        let skipped: Vec<&str> = found.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(skipped, [d.join(".hidden").display().to_string()]);
        let one = discover(&d.join("Sent Items.mbox")).unwrap();
        assert_eq!(one.folders[0].0, "Sent Items");
        let err = discover(&d.join("Inbox.msf")).unwrap_err().to_string();
        assert!(err.contains("Inbox.msf:1"), "{err}");
    }

    #[test]
    fn what_is_not_a_folder_is_reported_except_companions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mbox = "From a Mon Jan  1 00:00:00 2001\n\nx\n";
        std::fs::create_dir_all(d.join("Archive.mbox")).unwrap();
        std::fs::write(d.join("Archive.mbox/mbox"), mbox).unwrap();
        std::fs::write(d.join("Archive.mbox/table_of_contents"), "toc").unwrap();
        std::fs::write(d.join("Archive.mbox/Info.plist"), "<plist/>").unwrap();
        std::fs::write(d.join("Archive"), mbox).unwrap();
        std::fs::write(d.join("msgFilterRules.dat"), "version=\"9\"").unwrap();
        std::fs::write(d.join("._Archive"), "resource fork").unwrap();
        std::fs::create_dir(d.join(".imap")).unwrap();
        std::fs::write(d.join("old.eml"), "Subject: x\n\ny\n").unwrap();
        std::fs::create_dir(d.join("empty.sbd")).unwrap();
        let found = discover(d).unwrap();
        let names: Vec<&str> = found.folders.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Archive"]);
        assert_eq!(found.folders[0].1, d.join("Archive"));
        let skipped: Vec<(String, &str)> = found
            .skipped
            .iter()
            .map(|s| (s.path.clone(), s.reason.as_str()))
            .collect();
        assert_eq!(skipped.len(), 2, "{skipped:#?}");
        assert_eq!(skipped[0].0, d.join("old.eml").display().to_string());
        assert!(skipped[0].1.contains("`From `"), "{skipped:#?}");
        // Sorted by name, then path: the plain file wins over the Apple export.
        assert_eq!(
            skipped[1].0,
            d.join("Archive.mbox/mbox").display().to_string()
        );
        assert!(skipped[1].1.contains("already taken by"), "{skipped:#?}");
    }
}
