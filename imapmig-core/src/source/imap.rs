//! The IMAP source: EXAMINE (never touching `\Seen`), metadata in one FETCH, date selection by
//! server-side SEARCH, bodies by pipelined `UID FETCH ... BODY.PEEK[]`.

use std::collections::HashSet;

use super::{AccessError, DateRange, FolderList, MigrationSource, OpenedFolder, SourceAnomaly};
use crate::body::BodyEvent;
use crate::filter::DateField;
use crate::imap::Account;
use crate::imap::{ImapError, SearchKey, Session};
use crate::model::{Folder, MessageMeta, Uid};

/// An IMAP server as a source.
pub struct ImapSource {
    session: Session,
    name: String,
}

impl ImapSource {
    /// Connects and logs in.
    pub async fn open(account: &Account) -> Result<ImapSource, ImapError> {
        let session = account.open().await?;
        Ok(ImapSource::from_session(session, account))
    }

    /// Wraps a logged-in session.
    pub fn from_session(session: Session, account: &Account) -> ImapSource {
        ImapSource {
            session,
            name: format!("imap://{}:{}", account.endpoint.host, account.endpoint.port),
        }
    }

    /// The session underneath.
    pub fn session(&mut self) -> &mut Session {
        &mut self.session
    }
}

/// The SEARCH keys for a date range.
pub(crate) fn date_keys(range: &DateRange) -> Vec<SearchKey> {
    let header = range.field == DateField::Header;
    let mut keys = Vec::new();
    if let Some(d) = range.since {
        keys.push(if header {
            SearchKey::SentSince(d)
        } else {
            SearchKey::Since(d)
        });
    }
    if let Some(d) = range.before {
        keys.push(if header {
            SearchKey::SentBefore(d)
        } else {
            SearchKey::Before(d)
        });
    }
    keys
}

/// Lists folders with the namespace, shared by the IMAP source and sink.
pub(crate) async fn imap_list(session: &mut Session) -> Result<FolderList, ImapError> {
    let _ = session.id().await;
    // With LIST-STATUS the message counts come in the same round trip as the names.
    let (folders, messages) = if session.capabilities().has("LIST-STATUS") {
        let listed = session.list_with_status().await?;
        let counts = listed
            .iter()
            .filter_map(|(f, st)| Some((f.raw.clone(), st.messages?)))
            .collect();
        (listed.into_iter().map(|(f, _)| f).collect(), counts)
    } else {
        (session.list().await?, Default::default())
    };
    let ns = session.namespace().await?;
    let delimiter: Option<char> = ns.delimiter.or_else(|| {
        folders
            .iter()
            .find_map(|f: &crate::model::Folder| f.delimiter)
    });
    Ok(FolderList {
        folders,
        prefix: ns.prefix,
        delimiter,
        messages,
    })
}

impl MigrationSource for ImapSource {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        Ok(imap_list(&mut self.session).await?)
    }

    async fn open_folder(&mut self, folder: &Folder) -> Result<OpenedFolder, AccessError> {
        let host = self.session.host().to_string();
        let sel = self.session.examine(&folder.raw).await?;
        let Some(uid_validity) = sel.uid_validity else {
            return Err(ImapError::Protocol {
                host,
                command: "EXAMINE",
                detail: "the folder has no UIDVALIDITY; its messages cannot be tracked".into(),
            }
            .into());
        };
        Ok(OpenedFolder {
            uid_validity,
            uid_next: sel.uid_next,
            highest_modseq: sel.highest_modseq,
            messages: sel.exists,
        })
    }

    async fn messages(&mut self) -> Result<Vec<MessageMeta>, AccessError> {
        if self.session.selected().is_some_and(|s| s.exists == 0) {
            return Ok(Vec::new());
        }
        Ok(self.session.fetch_meta("1:*", None).await?)
    }

    async fn messages_changed_since(
        &mut self,
        modseq: u64,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError> {
        // CHANGEDSINCE needs CONDSTORE, and a folder opened with it (it then has a
        // HIGHESTMODSEQ); a server without either is asked for everything.
        let Some(sel) = self.session.selected() else {
            return Ok(None);
        };
        if !self.session.capabilities().has("CONDSTORE") || sel.highest_modseq.is_none() {
            return Ok(None);
        }
        if sel.exists == 0 {
            return Ok(Some(Vec::new()));
        }
        match self.session.fetch_meta("1:*", Some(modseq)).await {
            Ok(metas) => Ok(Some(metas)),
            // A server that announces CONDSTORE but refuses CHANGEDSINCE (NO or BAD, the
            // connection still in step) is read in full rather than failing every pass.
            Err(ImapError::Refused { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn select_dates(&mut self, range: &DateRange) -> Result<HashSet<Uid>, AccessError> {
        let keys = date_keys(range);
        Ok(self.session.uid_search(&keys).await?.into_iter().collect())
    }

    async fn request_bodies(&mut self, uids: &[Uid]) -> Result<(), AccessError> {
        Ok(self.session.send_fetch_bodies(uids).await?)
    }

    async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>, AccessError> {
        Ok(self.session.next_body().await?)
    }

    fn take_alerts(&mut self) -> Vec<String> {
        self.session.take_alerts()
    }

    fn take_anomalies(&mut self) -> Vec<SourceAnomaly> {
        self.session
            .take_anomalies()
            .into_iter()
            .map(|a| SourceAnomaly {
                uid: a.uid,
                detail: a.detail,
            })
            .collect()
    }

    async fn still_present(&mut self, uids: &[Uid]) -> Result<Vec<Uid>, AccessError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.session.uids_present(uids).await?)
    }

    async fn close(self) {
        self.session.logout().await;
    }
}
