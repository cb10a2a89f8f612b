//! The mbox source: importing archives, one folder per file.
//!
//! # Folders
//!
//! [`MboxSpec::path`] is one mbox file (one folder) or a directory of them (one folder per
//! file, subdirectories as hierarchy, `/` between levels). A folder is named after its file,
//! without an `.mbox` or `.mbx` extension; a top-level `Inbox` (any case) is INBOX. Thunderbird's
//! `Name.sbd/` directories hold the children of `Name`, and an Apple Mail export's
//! `Name.mbox/mbox` is the folder `Name`. In a directory, files that do not start with a
//! `From ` line (indexes such as `.msf`, notes, hidden files) are not folders and are skipped.
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

mod scan;
mod unescape;

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use self::scan::Entry;
use self::unescape::UnescapeReader;
use super::headers;
use super::maildir::blocking;
use super::maildir::store::derived_validity;
use super::{AccessError, DateRange, FolderList, MigrationSource, OpenedFolder};
use crate::body::{BodyEvent, FetchedBody};
use crate::engine::DateField;
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
fn looks_like_mbox(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 5];
    let mut n = 0;
    while n < 5 {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    n == 0 || &head[..n] == b"From "
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

/// The folders of an archive: (folder name, file), sorted by name.
fn discover(path: &Path) -> Result<Vec<(String, PathBuf)>, AccessError> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
    if meta.is_file() {
        if !looks_like_mbox(path) {
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
        return Ok(vec![(folder_name(&[name]), path.to_path_buf())]);
    }
    let mut out = Vec::new();
    walk(path, &mut Vec::new(), &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(
    dir: &Path,
    segments: &mut Vec<String>,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), AccessError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let seg = name
                .strip_suffix(".sbd")
                .or_else(|| name.strip_suffix(".mbox"))
                .filter(|s| !s.is_empty())
                .unwrap_or(&name)
                .to_string();
            segments.push(seg);
            walk(&path, segments, out)?;
            segments.pop();
        } else if meta.is_file() && looks_like_mbox(&path) {
            // Apple Mail: `Name.mbox/mbox` is the folder `Name`.
            if name == "mbox" && !segments.is_empty() {
                out.push((folder_name(segments), path));
            } else {
                segments.push(strip_extension(&name).to_string());
                out.push((folder_name(segments), path));
                segments.pop();
            }
        }
    }
    Ok(())
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
        })
    }

    async fn folders(&mut self) -> Result<&[(String, PathBuf)], AccessError> {
        if self.folders.is_none() {
            let path = self.spec.path.clone();
            let found = blocking(&self.spec.path, move || discover(&path)).await?;
            self.folders = Some(found);
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
                headers::in_range(date, range)
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
        let body = FetchedBody::from_reader(uid, e.len, UnescapeReader::new(raw, flavor));
        Ok(Some(BodyEvent::Body(body)))
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
        let names: Vec<String> = discover(d).unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Archive", "INBOX", "INBOX/Sub", "Sent Items"]);
        let one = discover(&d.join("Sent Items.mbox")).unwrap();
        assert_eq!(one[0].0, "Sent Items");
        let err = discover(&d.join("Inbox.msf")).unwrap_err().to_string();
        assert!(err.contains("Inbox.msf:1"), "{err}");
    }
}
