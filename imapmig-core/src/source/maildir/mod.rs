//! The Maildir source: a local Maildir++ tree read back, the restore half of
//! [`crate::sink::MaildirSink`]'s backup. It reads trees written by imapmig, by Dovecot, or by
//! any Maildir client, and changes nothing in them.
//!
//! The layout is Dovecot's Maildir++ (see `store.rs`): INBOX at the root, folders as
//! `.Name` directories with modified UTF-7 names and `.` between levels, flags after `:2,`,
//! keywords as letters named in `dovecot-keywords`, INTERNALDATE as the file's mtime (read to
//! the second, in UTC: a file keeps the instant, not the zone it was given in).
//!
//! # What is not imported is reported
//!
//! Entries of `cur/` and `new/` that are not message files (directories, links, which are
//! never followed, pipes, names starting with `.` or not UTF-8, a second file for one
//! message) and directories at the root that might be folders but are not read as such are
//! handed over by [`MigrationSource::take_skipped`] with their path and why. A message file
//! that cannot be read when its body is asked for is refused on its own
//! ([`BodyEvent::Failed`]) with its path and why. Not reported: `tmp/` (never delivered),
//! Dovecot's and imapmig's own files, and what at the root cannot hold mail (see
//! `store::read_folders`).
//!
//! # UIDs without writing anything
//!
//! Where a folder has a `dovecot-uidlist` (written by imapmig or Dovecot), its UIDs and
//! UIDVALIDITY are used as they are. Files the list does not know yet (delivered since, or a
//! tree without any list) cannot be given permanent UIDs by a reader that must not write, so
//! they get the next UIDs in file-name order (Maildir names start with the delivery time, so
//! that is arrival order) and the folder's UIDVALIDITY becomes a hash of the list's
//! UIDVALIDITY (or, without a list, of the directory's device and inode) and the names of
//! those files. Any change to that set of files changes the UIDVALIDITY, so the engine never
//! mistakes one message for another: it re-identifies what it copied before by content. A
//! tree that does not change (a backup) keeps its UIDs from run to run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::PathBuf;

use super::headers;
use super::{AccessError, DateRange, FolderList, MigrationSource, OpenedFolder, SkippedEntry};
use crate::body::{BodyEvent, BodyOrigin, FetchedBody};
use crate::failure::ErrorKind;
use crate::filter::DateField;
use crate::maildir::{self as store, blocking, Keywords, MessageFile};
use crate::model::{Folder, MessageMeta, Uid};
use crate::wire::{StatusKind, StatusResponse};

/// Where a Maildir++ tree is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaildirSpec {
    /// The root directory (the one holding INBOX's `cur/ new/ tmp/`).
    pub path: PathBuf,
}

impl MaildirSpec {
    /// The tree at `path`.
    pub fn new(path: impl Into<PathBuf>) -> MaildirSpec {
        MaildirSpec { path: path.into() }
    }
}

struct OpenFolder {
    dir: PathBuf,
    messages: BTreeMap<Uid, MessageFile>,
    keywords: Keywords,
}

/// A Maildir++ tree as a source.
pub struct MaildirSource {
    root: PathBuf,
    open: Option<OpenFolder>,
    queue: VecDeque<Uid>,
    /// Entries passed over and not yet taken by [`MigrationSource::take_skipped`].
    skipped: Vec<SkippedEntry>,
}

impl MaildirSource {
    /// Opens the tree (it must exist and have a `cur/` directory).
    pub async fn open(spec: &MaildirSpec) -> Result<MaildirSource, AccessError> {
        let root = spec.path.clone();
        if !root.join("cur").is_dir() {
            return Err(store::io_error(
                &root,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a Maildir (no cur/ directory)",
                ),
            ));
        }
        Ok(MaildirSource {
            root,
            open: None,
            queue: VecDeque::new(),
            skipped: Vec::new(),
        })
    }

    fn folder(&self) -> Result<&OpenFolder, AccessError> {
        self.open
            .as_ref()
            .ok_or_else(|| store::format_error(&self.root, "no folder is open"))
    }
}

impl MigrationSource for MaildirSource {
    fn describe(&self) -> String {
        format!("maildir:{}", self.root.display())
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        let root = self.root.clone();
        let (folders, skipped) = blocking(&self.root, move || store::read_folders(&root)).await?;
        self.skipped.extend(skipped);
        Ok(FolderList {
            folders,
            prefix: String::new(),
            delimiter: Some('.'),
            messages: Default::default(),
        })
    }

    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError> {
        self.queue.clear();
        let dir = store::folder_dir(&self.root, &folder.raw)?;
        let d = dir.clone();
        let (scan, keywords) = blocking(&dir, move || {
            let scan = store::scan(&d)?;
            let keywords = Keywords::load(&d)?;
            Ok((scan, keywords))
        })
        .await?;
        self.skipped.extend(scan.skipped);
        let mut messages = scan.messages;
        let mut validity = scan.validity;
        let mut next = scan.next_uid;
        if !scan.unlisted.is_empty() {
            let base = if scan.has_uidlist {
                validity.to_le_bytes().to_vec()
            } else {
                store::dir_identity(&dir)
            };
            let names: Vec<&[u8]> = scan.unlisted.iter().map(|f| f.name.as_bytes()).collect();
            let mut parts: Vec<&[u8]> = vec![&base];
            parts.extend(names);
            validity = store::derived_validity(&parts);
            for f in scan.unlisted {
                messages.insert(Uid(next), f);
                next = next.saturating_add(1);
            }
        } else if !scan.has_uidlist {
            validity = store::derived_validity(&[&store::dir_identity(&dir)]);
        }
        let count = messages.len() as u32;
        self.open = Some(OpenFolder {
            dir,
            messages,
            keywords,
        });
        Ok(OpenedFolder {
            uid_validity: crate::model::UidValidity(validity),
            uid_next: Some(next),
            highest_modseq: None,
            messages: count,
        })
    }

    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError> {
        let f = self.folder()?;
        Ok(f.messages
            .iter()
            .map(|(uid, m)| MessageMeta {
                uid: *uid,
                flags: store::flags_from_info(store::split_name(&m.name).1, &f.keywords),
                internal_date: m.internal_date(),
                size: m.size,
                modseq: None,
            })
            .collect())
    }

    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError> {
        let f = self.folder()?;
        if range.field == DateField::Internal {
            return Ok(f
                .messages
                .iter()
                .filter(|(_, m)| range.contains(m.internal_date().as_ref()))
                .map(|(u, _)| *u)
                .collect());
        }
        let files: Vec<(Uid, PathBuf, MessageFile)> = f
            .messages
            .iter()
            .map(|(u, m)| (*u, m.path(&f.dir), m.clone()))
            .collect();
        let range = *range;
        blocking(&f.dir, move || {
            let mut out = HashSet::new();
            for (uid, path, m) in files {
                let head = store::read_head(&path, headers::MAX_HEADER_BYTES).unwrap_or_default();
                let fields = headers::fields(headers::header_block(&head));
                let date = headers::date_field(&fields).or_else(|| m.internal_date());
                if range.contains(date.as_ref()) {
                    out.insert(uid);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError> {
        self.queue.extend(uids.iter().copied());
        Ok(())
    }

    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError> {
        let Some(uid) = self.queue.pop_front() else {
            return Ok(None);
        };
        let f = self.folder()?;
        let Some(m) = f.messages.get(&uid) else {
            return Ok(Some(BodyEvent::Missing(uid)));
        };
        let mut path = m.path(&f.dir);
        let mut file = tokio::fs::File::open(&path).await;
        if matches!(&file, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
            // A client may have renamed it (new flags, or moved from new/ to cur/): find it by
            // its base name.
            let base = store::split_name(&m.name).0.to_string();
            let dir = f.dir.clone();
            let found = blocking(&f.dir, move || {
                for sub in ["cur", "new"] {
                    if let Ok(rd) = std::fs::read_dir(dir.join(sub)) {
                        for e in rd.flatten() {
                            let name = e.file_name();
                            if name
                                .to_str()
                                .is_some_and(|n| store::split_name(n).0 == base)
                            {
                                return Ok(Some(e.path()));
                            }
                        }
                    }
                }
                Ok(None)
            })
            .await?;
            match found {
                Some(p) => {
                    path = p;
                    file = tokio::fs::File::open(&path).await;
                }
                None => return Ok(Some(BodyEvent::Missing(uid))),
            }
        }
        let opened = match file {
            Ok(file) => file.metadata().await.map(|m| (file, m.len())),
            Err(e) => Err(e),
        };
        match opened {
            Ok((file, len)) => Ok(Some(BodyEvent::Body(FetchedBody::from_reader(
                uid,
                len,
                file,
                BodyOrigin {
                    name: path.display().to_string(),
                    kind: ErrorKind::Storage,
                },
            )))),
            // One file that cannot be read (its permissions, a link loop put in its place) is
            // refused on its own, with its path and why; the rest of the folder goes on.
            Err(e) => Ok(Some(BodyEvent::Failed(
                uid,
                StatusResponse {
                    tag: None,
                    kind: StatusKind::No,
                    code: None,
                    text: format!("{}: cannot be read: {e}", path.display()),
                },
            ))),
        }
    }

    fn take_skipped(&mut self) -> Vec<SkippedEntry> {
        std::mem::take(&mut self.skipped)
    }

    async fn close(self) {}
}
