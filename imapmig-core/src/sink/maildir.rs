//! The Maildir sink: a mailbox written to a local Maildir++ tree, the backup before a
//! migration (read back with [`crate::source::MaildirSource`], or served by Dovecot as it is).
//!
//! # Layout
//!
//! Dovecot's Maildir++ (see the source side's `store.rs`): INBOX at the root, each folder a
//! `.Name` directory (modified UTF-7, `.` between levels: the sink announces `.` as its
//! separator, so the folder plan maps the source's separator onto it and escapes a `.` inside
//! a name), flags after `:2,` (`D F R S T`; `\Deleted` is `T`), keywords as the letters `a`-`z`
//! named in the folder's `dovecot-keywords`, INTERNALDATE as the file's mtime. A folder name
//! holding `/` cannot be a directory name and is refused with an error naming it (rename it
//! with the plan's renames). A folder's special use has no place in Maildir++; the sink keeps
//! it in a small `imapmig-special-use` file in the folder (which Dovecot ignores), so that the
//! tree keeps saying which folder is the sent folder, also when a custom folder elsewhere is
//! called "Sent Items" too.
//!
//! A message is written to `tmp/` under a unique name (`<secs>.M<µs>P<pid>Q<n>.<host>`),
//! fsynced, given its mtime, then renamed into `cur/` as `<name>,S=<size>,W=<size with CRLF
//! line ends>:2,<flags>`: a message is in the folder whole or not at all.
//!
//! # UIDs, and crash safety
//!
//! Each folder has a `dovecot-uidlist` (version 3: `3 V<uidvalidity> N<next uid> G<guid>`,
//! then `<uid> :<file name>` per message), so the engine gets stable UIDs and a UIDVALIDITY
//! like from an IMAP server with UIDPLUS, and Dovecot can serve the tree with the same UIDs. A
//! new folder's UIDVALIDITY is the time it was made. Each appended message's line is added to
//! the list; the list and the directory are fsynced before [`MigrationSink::finish_append`]
//! returns, which is before the engine records the copy. A file that reached `cur/` but not
//! the list (a crash in between) gets the next UID when the folder is opened again, which is
//! above the engine's recorded floor, so the engine finds it by content and does not copy it
//! twice. The list's header (its next UID) is brought up to date when the folder is closed or
//! reopened.
//!
//! fsync costs one sync per message file (the Maildir rule: a message is complete before it is
//! visible) and one for the list and directory per batch of appends, not per message: a
//! batch's UIDs become durable together, which is all the engine's protocol needs.
//!
//! The sink expects the tree to itself while it writes: do not let a mail server deliver into
//! the same folders meanwhile. Files left in `tmp/` by a crash are removed after 36 hours, as
//! the Maildir convention says.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AppendTicket, MigrationSink, OpenedTarget};
use crate::body::FetchedBody;
use crate::fingerprint::Fingerprinter;
use crate::maildir::{self as store, blocking, Keywords, MessageFile};
use crate::model::{Flags, InternalDate, SpecialUse, Uid};
use crate::source::MaildirSpec;
use crate::source::{AccessError, FolderList};

/// Files in `tmp/` older than this are leftovers of a crash.
const STALE_TMP: Duration = Duration::from_secs(36 * 3600);

/// Distinguishes files made in the same microsecond by one process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

struct OpenFolder {
    raw: String,
    dir: PathBuf,
    validity: u32,
    next_uid: u32,
    guid: String,
    messages: BTreeMap<Uid, MessageFile>,
    keywords: Keywords,
    uidlist: tokio::fs::File,
    /// Lines were appended to the uidlist since it was last synced.
    unsynced: bool,
    /// The uidlist's header is behind its records.
    header_stale: bool,
}

/// A Maildir++ tree as a sink.
pub struct MaildirSink {
    root: PathBuf,
    host: String,
    open: Option<OpenFolder>,
}

/// The host part of Maildir file names, with `/` and `:` written as the Maildir convention says.
fn host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let raw = raw.trim();
    let raw = if raw.is_empty() { "localhost" } else { raw };
    raw.replace('/', "\\057")
        .replace(':', "\\072")
        .replace('.', "_")
}

fn system_time(date: &InternalDate) -> SystemTime {
    let secs = date.unix();
    if secs >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        SystemTime::UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Makes `dir` a Maildir folder: `cur/ new/ tmp/`, and the Maildir++ marker for subfolders.
fn make_folder_dirs(dir: &Path, subfolder: bool) -> Result<(), AccessError> {
    for sub in ["cur", "new", "tmp"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| store::io_error(&d, e))?;
    }
    if subfolder {
        let m = dir.join(store::FOLDER_MARKER);
        if !m.exists() {
            std::fs::write(&m, b"").map_err(|e| store::io_error(&m, e))?;
        }
    }
    if let Some(parent) = dir.parent() {
        store::sync_dir(parent);
    }
    Ok(())
}

impl MaildirSink {
    /// Opens the tree, creating its root (INBOX) when missing.
    pub async fn open(spec: &MaildirSpec) -> Result<MaildirSink, AccessError> {
        let root = spec.path.clone();
        let r = root.clone();
        blocking(&root, move || make_folder_dirs(&r, false)).await?;
        Ok(MaildirSink {
            root,
            host: host_name(),
            open: None,
        })
    }

    fn folder(&mut self) -> Result<&mut OpenFolder, AccessError> {
        let root = self.root.clone();
        self.open
            .as_mut()
            .ok_or_else(|| store::format_error(&root, "no destination folder is open"))
    }

    /// Makes what was appended durable: the uidlist and the `cur/` directory.
    async fn sync(&mut self) -> Result<(), AccessError> {
        let Some(f) = self.open.as_mut() else {
            return Ok(());
        };
        if !f.unsynced {
            return Ok(());
        }
        let list = f.dir.join(store::UIDLIST);
        f.uidlist
            .sync_all()
            .await
            .map_err(|e| store::io_error(&list, e))?;
        let cur = f.dir.join("cur");
        blocking(&cur.clone(), move || {
            store::sync_dir(&cur);
            Ok(())
        })
        .await?;
        f.unsynced = false;
        Ok(())
    }

    /// Syncs and, when the uidlist's header is behind, rewrites it whole.
    async fn finish_folder(&mut self) -> Result<(), AccessError> {
        self.sync().await?;
        let Some(f) = self.open.take() else {
            return Ok(());
        };
        if f.header_stale {
            let text = store::render_uidlist(f.validity, f.next_uid, &f.guid, &f.messages);
            let path = f.dir.join(store::UIDLIST);
            drop(f.uidlist);
            blocking(&path.clone(), move || {
                store::replace_file(&path, text.as_bytes())
            })
            .await?;
        }
        Ok(())
    }

    fn unique_base(&self) -> String {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.M{}P{}Q{n}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.host
        )
    }

    /// Renames a message's file to carry new flags; returns its new name.
    async fn rename_with(
        dir: &Path,
        file: &MessageFile,
        info: &str,
    ) -> Result<MessageFile, AccessError> {
        let base = store::split_name(&file.name).0;
        let name = format!("{base}:2,{info}");
        let mut out = file.clone();
        if name == file.name && file.sub == "cur" {
            return Ok(out);
        }
        let from = file.path(dir);
        let to = dir.join("cur").join(&name);
        tokio::fs::rename(&from, &to)
            .await
            .map_err(|e| store::io_error(&from, e))?;
        out.sub = "cur";
        out.name = name;
        Ok(out)
    }

    async fn save_keywords(f: &OpenFolder) -> Result<(), AccessError> {
        let path = f.dir.join(store::KEYWORDS);
        let text = f.keywords.render();
        blocking(&path.clone(), move || {
            store::replace_file(&path, text.as_bytes())
        })
        .await
    }
}

impl MigrationSink for MaildirSink {
    fn describe(&self) -> String {
        format!("maildir:{}", self.root.display())
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        let root = self.root.clone();
        let folders = blocking(&self.root, move || store::list_folders(&root)).await?;
        Ok(FolderList {
            folders,
            prefix: String::new(),
            delimiter: Some('.'),
            messages: Default::default(),
        })
    }

    async fn create_folder(
        &mut self,
        raw: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<(), AccessError> {
        let dir = store::folder_dir(&self.root, raw)?;
        let sub = dir != self.root;
        blocking(&dir.clone(), move || {
            make_folder_dirs(&dir, sub)?;
            if let (Some(u), true) = (special_use, sub) {
                let marker = dir.join(store::SPECIAL_USE);
                store::replace_file(&marker, format!("{}\n", u.attribute()).as_bytes())?;
            }
            Ok(())
        })
        .await
    }

    async fn open_folder(&mut self, raw: &str) -> Result<OpenedTarget, AccessError> {
        self.finish_folder().await?;
        let dir = store::folder_dir(&self.root, raw)?;
        let sub = dir != self.root;
        let d = dir.clone();
        let (mut scan, keywords) = blocking(&dir, move || {
            make_folder_dirs(&d, sub)?;
            // Leftovers of a crash in tmp/ (never visible as messages).
            if let Ok(rd) = std::fs::read_dir(d.join("tmp")) {
                for e in rd.flatten() {
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > STALE_TMP);
                    if old {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
            Ok((store::scan(&d)?, Keywords::load(&d)?))
        })
        .await?;
        let mut rewrite = scan.header_stale || !scan.unlisted.is_empty() || !scan.has_uidlist;
        if !scan.has_uidlist {
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            scan.validity = (now as u32).max(1);
            scan.next_uid = 1;
            scan.messages.clear();
            rewrite = true;
        }
        let guid = scan.guid.clone().unwrap_or_else(|| store::new_guid(&dir));
        // Files the list does not know (a crash between the rename and the list, or a tree
        // written by another program) get the next UIDs, in name (= arrival) order.
        for f in std::mem::take(&mut scan.unlisted) {
            scan.messages.insert(Uid(scan.next_uid), f);
            scan.next_uid = scan.next_uid.saturating_add(1);
        }
        let list = dir.join(store::UIDLIST);
        if rewrite {
            let text = store::render_uidlist(scan.validity, scan.next_uid, &guid, &scan.messages);
            let path = list.clone();
            blocking(&list, move || store::replace_file(&path, text.as_bytes())).await?;
        }
        let uidlist = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&list)
            .await
            .map_err(|e| store::io_error(&list, e))?;
        let permanent_flags = keywords.is_full().then(|| {
            let mut f: Vec<String> = ["\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            f.extend(keywords.names().map(str::to_string));
            f
        });
        let target = OpenedTarget {
            uid_validity: Some(crate::model::UidValidity(scan.validity)),
            uid_next: Some(scan.next_uid),
            permanent_flags,
            append_limit: None,
            reports_uids: true,
            messages: u32::try_from(scan.messages.len()).unwrap_or(u32::MAX),
        };
        self.open = Some(OpenFolder {
            raw: raw.to_string(),
            dir,
            validity: scan.validity,
            next_uid: scan.next_uid,
            guid,
            messages: scan.messages,
            keywords,
            uidlist,
            unsynced: false,
            header_stale: false,
        });
        Ok(target)
    }

    async fn append(
        &mut self,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<AppendTicket, AccessError> {
        let base = self.unique_base();
        let f = self.folder()?;
        let (info, keywords_changed, dropped) = store::info_from_flags(flags, &mut f.keywords);
        if !dropped.is_empty() {
            tracing::warn!(
                folder = %f.raw,
                keywords = %dropped.join(" "),
                "a Maildir folder holds at most 26 keywords; these were left off"
            );
        }
        if keywords_changed {
            MaildirSink::save_keywords(f).await?;
        }
        let tmp = f.dir.join("tmp").join(&base);
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| store::io_error(&tmp, e))?;
        let written: Result<(u64, u64), AccessError> = async {
            let (mut size, mut vsize, mut prev_cr) = (0u64, 0u64, false);
            while let Some(chunk) = body.chunk().await? {
                observe(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| store::io_error(&tmp, e))?;
                size += chunk.len() as u64;
                vsize += chunk.len() as u64;
                for &b in chunk.iter() {
                    if b == b'\n' && !prev_cr {
                        vsize += 1;
                    }
                    prev_cr = b == b'\r';
                }
            }
            if size != body.len {
                return Err(store::format_error(
                    &tmp,
                    format!("the message ended after {size} of {} bytes", body.len),
                ));
            }
            file.flush().await.map_err(|e| store::io_error(&tmp, e))?;
            Ok((size, vsize))
        }
        .await;
        let (size, vsize) = match written {
            Ok(s) => s,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let mtime = date.map(system_time);
        let std_file = file.into_std().await;
        let t = tmp.clone();
        let finished = blocking(&tmp, move || {
            if let Some(m) = mtime {
                std_file
                    .set_modified(m)
                    .map_err(|e| store::io_error(&t, e))?;
            }
            std_file.sync_all().map_err(|e| store::io_error(&t, e))
        })
        .await;
        if let Err(e) = finished {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        let name = format!("{base},S={size},W={vsize}:2,{info}");
        let dest = f.dir.join("cur").join(&name);
        if let Err(e) = tokio::fs::rename(&tmp, &dest).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(store::io_error(&dest, e));
        }
        let uid = Uid(f.next_uid);
        f.next_uid = f.next_uid.saturating_add(1);
        let line = format!("{} :{name}\n", uid.0);
        let list = f.dir.join(store::UIDLIST);
        f.uidlist
            .write_all(line.as_bytes())
            .await
            .map_err(|e| store::io_error(&list, e))?;
        f.uidlist
            .flush()
            .await
            .map_err(|e| store::io_error(&list, e))?;
        f.unsynced = true;
        f.header_stale = true;
        f.messages.insert(
            uid,
            MessageFile {
                sub: "cur",
                name,
                size,
                mtime: mtime.unwrap_or_else(SystemTime::now),
            },
        );
        Ok(AppendTicket::Done(Some(uid)))
    }

    async fn finish_append(&mut self, ticket: AppendTicket) -> Result<Option<Uid>, AccessError> {
        // The first completion of a batch makes the whole batch durable.
        self.sync().await?;
        match ticket {
            AppendTicket::Done(uid) => Ok(uid),
            other => Err(store::format_error(
                &self.root,
                format!("not an append of this sink: {other:?}"),
            )),
        }
    }

    async fn uids_from(&mut self, floor: u32) -> Result<Vec<Uid>, AccessError> {
        let f = self.folder()?;
        Ok(f.messages
            .range(Uid(floor.max(1))..)
            .map(|(u, _)| *u)
            .collect())
    }

    async fn sizes(&mut self) -> Result<Option<Vec<(Uid, u64)>>, AccessError> {
        // Files may hold LF line endings: their lengths are not RFC 822 sizes. Reading local
        // files to fingerprint them is cheap anyway.
        Ok(None)
    }

    async fn fingerprints(
        &mut self,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, crate::fingerprint::ContentPrint>, AccessError> {
        let f = self.folder()?;
        let mut out = HashMap::with_capacity(uids.len());
        let mut buf = vec![0u8; 256 * 1024];
        for uid in uids {
            let Some(m) = f.messages.get(uid) else {
                continue;
            };
            let path = m.path(&f.dir);
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(store::io_error(&path, e)),
            };
            let mut fp = Fingerprinter::new();
            loop {
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| store::io_error(&path, e))?;
                if n == 0 {
                    break;
                }
                fp.update(&buf[..n]);
            }
            out.insert(*uid, fp.finish_print());
        }
        Ok(out)
    }

    async fn read_back(
        &mut self,
        _uids: &[Uid],
        _floor: u32,
    ) -> Result<Option<Vec<crate::model::MessageMeta>>, AccessError> {
        // Files hold exactly the flags and date they were written with.
        Ok(None)
    }

    async fn add_flags(&mut self, _uids: &[Uid], _flags: &Flags) -> Result<(), AccessError> {
        // Only repairs what a read-back found changed; nothing is read back here.
        Ok(())
    }

    async fn store_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError> {
        let f = self.folder()?;
        let (info, changed, _) = store::info_from_flags(flags, &mut f.keywords);
        if changed {
            MaildirSink::save_keywords(f).await?;
        }
        for uid in uids {
            let Some(m) = f.messages.get(uid) else {
                continue;
            };
            let renamed = MaildirSink::rename_with(&f.dir, m, &info).await?;
            f.messages.insert(*uid, renamed);
        }
        let cur = f.dir.join("cur");
        blocking(&cur.clone(), move || {
            store::sync_dir(&cur);
            Ok(())
        })
        .await
    }

    async fn close(mut self) {
        if let Err(e) = self.finish_folder().await {
            tracing::warn!(error = %e, "closing the Maildir sink");
        }
    }
}
