//! The IMAP sink: SELECT the target (appending into the selected folder is far cheaper for
//! the server), APPEND streamed and pipelined with LITERAL+, APPENDUID for the new UIDs.
//!
//! Appending into the selected folder is taken only where the server answers each APPEND
//! with its new UID (UIDPLUS). Without it, the folder is left (UNSELECT) before appending and
//! selected again to read back what it holds: GNU Mailutils' imap4d takes only the first
//! message appended into its selected folder into the session's view and rewrites the
//! folder from that view when the session ends, losing the others, all answered `OK`. It
//! also rewrites what it stores when it saves a folder, which it does when the folder is
//! left: before the read-back the folder is selected, left and selected again.

use std::collections::HashMap;

use super::{AppendTicket, MigrationSink, OpenedTarget};
use crate::body::{BodyEvent, FetchedBody};
use crate::fingerprint::ContentPrint;
use crate::imap::Account;
use crate::imap::{ImapError, Session};
use crate::model::{Flags, InternalDate, MessageMeta, SpecialUse, Uid, UidValidity};
use crate::source::{AccessError, FolderList};

/// Bodies fetched per pipelined round when fingerprinting.
const FINGERPRINT_BATCH: usize = 256;
/// Messages up to this size go into groups (MULTIAPPEND); larger ones get a command each.
const GROUP_MESSAGE_MAX: u64 = 128 * 1024;
/// The most messages in one group.
const GROUP_MAX_MESSAGES: usize = 32;
/// The most bytes in one group.
const GROUP_MAX_BYTES: u64 = 2 * 1024 * 1024;

/// A MULTIAPPEND command being written.
struct OpenGroup {
    tag: String,
    messages: usize,
    bytes: u64,
}

/// What became of a group: the UIDs its messages got (empty without UIDPLUS), or the
/// server's refusal. Kept until every member's ticket has been finished.
struct GroupOutcome {
    result: Result<Vec<Uid>, String>,
    unclaimed: usize,
}

/// An IMAP server as a sink.
pub struct ImapSink {
    session: Session,
    name: String,
    /// The wire name of the open folder.
    open: Option<String>,
    /// The open folder's UIDVALIDITY: as first selected, or as the server numbered the
    /// folder's first messages (see `validity_settled`).
    open_validity: Option<UidValidity>,
    /// Whether that UIDVALIDITY numbers anything: not when the folder was empty, where a
    /// server may number the first messages under a new one (GNU Mailutils takes the time).
    validity_settled: bool,
    /// Append from outside the folder (no UIDPLUS, UNSELECT offered): see the module docs.
    outside: bool,
    grouping: bool,
    group: Option<OpenGroup>,
    /// Sent groups by tag: how many members each had (until completed), then their outcome.
    sent_groups: HashMap<String, usize>,
    outcomes: HashMap<String, GroupOutcome>,
}

impl ImapSink {
    /// Connects and logs in.
    pub async fn open(account: &Account) -> Result<ImapSink, ImapError> {
        let session = account.open().await?;
        Ok(ImapSink::from_session(session, account))
    }

    /// Wraps a logged-in session.
    pub fn from_session(session: Session, account: &Account) -> ImapSink {
        ImapSink {
            session,
            name: format!("imap://{}:{}", account.endpoint.host, account.endpoint.port),
            open: None,
            open_validity: None,
            validity_settled: true,
            outside: false,
            grouping: true,
            group: None,
            sent_groups: HashMap::new(),
            outcomes: HashMap::new(),
        }
    }

    /// Ends the group being written, if any, so that it goes to the server.
    async fn close_group(&mut self) -> Result<(), ImapError> {
        if let Some(g) = self.group.take() {
            self.session.multiappend_close().await?;
            self.sent_groups.insert(g.tag, g.messages);
        }
        Ok(())
    }

    /// The UID of member `index` of group `tag`, waiting for the group's completion once.
    async fn finish_grouped(
        &mut self,
        tag: String,
        index: usize,
    ) -> Result<Option<Uid>, AccessError> {
        self.close_group().await?;
        if !self.outcomes.contains_key(&tag) {
            let members = self.sent_groups.remove(&tag).unwrap_or(1);
            let raw = self.open_raw()?.to_string();
            let result = match self.session.multiappend_wait(&tag, &raw).await {
                Ok(uids) => Ok(uids.into_iter().map(|(_, u)| u).collect()),
                Err(ImapError::Refused { status, .. }) => Err(status.describe()),
                Err(e) => return Err(e.into()),
            };
            self.outcomes.insert(
                tag.clone(),
                GroupOutcome {
                    result,
                    unclaimed: members,
                },
            );
        }
        let Some(outcome) = self.outcomes.get_mut(&tag) else {
            return Ok(None);
        };
        outcome.unclaimed = outcome.unclaimed.saturating_sub(1);
        let answer = match &outcome.result {
            Ok(uids) => Ok(uids.get(index).copied()),
            Err(words) => Err(AccessError::GroupRefused {
                words: words.clone(),
            }),
        };
        if outcome.unclaimed == 0 {
            self.outcomes.remove(&tag);
        }
        answer
    }

    /// Leaves the open folder before appending to it, where appends go from outside.
    async fn leave_for_append(&mut self) -> Result<(), AccessError> {
        if self.outside && self.session.selected().is_some() {
            self.close_group().await?;
            self.session.unselect().await?;
        }
        Ok(())
    }

    /// Selects the open folder again after appending to it from outside; a folder that was
    /// renumbered meanwhile cannot be read back by UID and fails.
    async fn reselect(&mut self) -> Result<(), AccessError> {
        self.close_group().await?;
        if self.session.selected().is_some() {
            return Ok(());
        }
        let raw = self.open_raw()?.to_string();
        self.session.select(&raw).await?;
        // Left once more and selected again: a server that rewrites what it stores when it
        // saves a folder (GNU Mailutils writes its bookkeeping into the header, and more)
        // does so when the folder is left, and the read-back sees what later sessions see.
        self.session.unselect().await?;
        let validity = self.session.select(&raw).await?.uid_validity;
        if !self.validity_settled {
            self.validity_settled = true;
            self.open_validity = validity;
        }
        if validity != self.open_validity {
            return Err(AccessError::Imap(ImapError::Protocol {
                host: self.session.host().to_string(),
                command: "SELECT",
                detail: format!(
                    "the folder {raw:?} changed its UIDVALIDITY while messages were appended to it ({:?} then {:?})",
                    self.open_validity.map(|v| v.0),
                    validity.map(|v| v.0)
                ),
            }));
        }
        Ok(())
    }

    fn open_raw(&self) -> Result<&str, AccessError> {
        self.open.as_deref().ok_or_else(|| {
            AccessError::Imap(ImapError::Protocol {
                host: self.session.host().to_string(),
                command: "APPEND",
                detail: "no destination folder is open".into(),
            })
        })
    }
}

/// Fingerprints of messages in the selected folder, streamed.
pub(crate) async fn fingerprint_selected(
    session: &mut Session,
    uids: &[Uid],
) -> Result<HashMap<Uid, ContentPrint>, ImapError> {
    let mut out = HashMap::with_capacity(uids.len());
    for chunk in uids.chunks(FINGERPRINT_BATCH) {
        session.send_fetch_bodies(chunk).await?;
        while let Some(ev) = session.next_body().await? {
            if let BodyEvent::Body(mut b) = ev {
                let uid = b.uid;
                out.insert(uid, crate::fingerprint::fingerprint_body(&mut b).await?);
            }
        }
    }
    Ok(out)
}

impl MigrationSink for ImapSink {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn take_alerts(&mut self) -> Vec<String> {
        self.session.take_alerts()
    }

    async fn list_folders(&mut self) -> Result<FolderList, AccessError> {
        Ok(crate::source::imap_list(&mut self.session).await?)
    }

    async fn create_folder(
        &mut self,
        raw: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<(), AccessError> {
        self.session.create_with_use(raw, special_use).await?;
        // Subscribing is a courtesy for clients that show subscribed folders only.
        let _ = self.session.subscribe(raw).await;
        Ok(())
    }

    async fn open_folder(&mut self, raw: &str) -> Result<OpenedTarget, AccessError> {
        self.close_group().await?;
        let sel = self.session.select(raw).await?.clone();
        self.open = Some(raw.to_string());
        self.open_validity = sel.uid_validity;
        self.validity_settled = sel.exists > 0;
        let caps = self.session.capabilities();
        self.outside = !caps.has("UIDPLUS") && caps.has("UNSELECT");
        Ok(OpenedTarget {
            uid_validity: sel.uid_validity,
            uid_next: sel.uid_next,
            permanent_flags: sel.permanent_flags,
            append_limit: self.session.capabilities().append_limit(),
            reports_uids: self.session.capabilities().has("UIDPLUS"),
            messages: sel.exists,
        })
    }

    async fn append(
        &mut self,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        observe: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<AppendTicket, AccessError> {
        self.leave_for_append().await?;
        let raw = self.open_raw()?.to_string();
        let len = body.len;
        if self.grouping && len <= GROUP_MESSAGE_MAX && self.session.can_multiappend() {
            let full = self.group.as_ref().is_some_and(|g| {
                g.messages >= GROUP_MAX_MESSAGES || g.bytes + len > GROUP_MAX_BYTES
            });
            if full {
                self.close_group().await?;
            }
            if self.group.is_none() {
                let tag = self.session.multiappend_open(&raw).await?;
                self.group = Some(OpenGroup {
                    tag,
                    messages: 0,
                    bytes: 0,
                });
            }
            self.session
                .multiappend_add(flags, date, body, observe)
                .await?;
            let Some(g) = self.group.as_mut() else {
                return Err(AccessError::Imap(ImapError::Protocol {
                    host: self.session.host().to_string(),
                    command: "APPEND",
                    detail: "lost the open group".into(),
                }));
            };
            let index = g.messages;
            g.messages += 1;
            g.bytes += len;
            return Ok(AppendTicket::Grouped {
                tag: g.tag.clone(),
                index,
            });
        }
        self.close_group().await?;
        let tag = self
            .session
            .append_send_fetched(&raw, flags, date, body, observe)
            .await?;
        Ok(AppendTicket::InFlight(tag))
    }

    async fn finish_append(&mut self, ticket: AppendTicket) -> Result<Option<Uid>, AccessError> {
        match ticket {
            AppendTicket::Done(uid) => Ok(uid),
            AppendTicket::Grouped { tag, index } => self.finish_grouped(tag, index).await,
            AppendTicket::InFlight(tag) => {
                self.close_group().await?;
                let raw = self.open_raw()?.to_string();
                Ok(self.session.append_wait(&tag, &raw).await?.map(|a| a.uid))
            }
        }
    }

    async fn uids_from(&mut self, floor: u32) -> Result<Vec<Uid>, AccessError> {
        self.reselect().await?;
        let floor = floor.max(1);
        if self.session.selected().is_some_and(|s| s.exists == 0) {
            return Ok(Vec::new());
        }
        let metas = self.session.fetch_meta(&format!("{floor}:*"), None).await?;
        // `n:*` also returns the highest message when all are below n.
        Ok(metas
            .into_iter()
            .map(|m| m.uid)
            .filter(|u| u.0 >= floor)
            .collect())
    }

    async fn sizes(&mut self) -> Result<Option<Vec<(Uid, u64)>>, AccessError> {
        self.reselect().await?;
        if self.session.selected().is_some_and(|s| s.exists == 0) {
            return Ok(Some(Vec::new()));
        }
        let metas = self.session.fetch_meta("1:*", None).await?;
        Ok(Some(metas.into_iter().map(|m| (m.uid, m.size)).collect()))
    }

    async fn fingerprints(
        &mut self,
        uids: &[Uid],
    ) -> Result<HashMap<Uid, ContentPrint>, AccessError> {
        self.reselect().await?;
        Ok(fingerprint_selected(&mut self.session, uids).await?)
    }

    async fn store_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError> {
        self.reselect().await?;
        if uids.is_empty() {
            return Ok(());
        }
        let set = crate::imap::uid_set(uids);
        Ok(self.session.uid_store(&set, "", flags).await?)
    }

    async fn read_back(
        &mut self,
        uids: &[Uid],
        floor: u32,
    ) -> Result<Option<Vec<MessageMeta>>, AccessError> {
        self.reselect().await?;
        // No shortcut on an empty folder: EXISTS as seen at SELECT is out of date by now.
        let floor = floor.max(1);
        let set = if uids.is_empty() {
            format!("{floor}:*")
        } else {
            crate::imap::uid_set(uids)
        };
        let mut metas = self.session.fetch_meta(&set, None).await?;
        // A server may show messages appended into the selected folder only after a NOOP
        // (Courier sends no EXISTS for them): what APPENDUID named and the FETCH did not
        // return is asked for once more after one.
        let shown: std::collections::HashSet<Uid> = metas.iter().map(|m| m.uid).collect();
        let unseen: Vec<Uid> = uids
            .iter()
            .copied()
            .filter(|u| !shown.contains(u))
            .collect();
        if !unseen.is_empty() {
            self.session.noop().await?;
            let set = crate::imap::uid_set(&unseen);
            metas.extend(self.session.fetch_meta(&set, None).await?);
        }
        // `n:*` also returns the highest message when all are below n.
        Ok(Some(
            metas
                .into_iter()
                .filter(|m| !uids.is_empty() || m.uid.0 >= floor)
                .collect(),
        ))
    }

    async fn add_flags(&mut self, uids: &[Uid], flags: &Flags) -> Result<(), AccessError> {
        self.reselect().await?;
        if uids.is_empty() || flags.is_empty() {
            return Ok(());
        }
        let set = crate::imap::uid_set(uids);
        Ok(self.session.uid_store(&set, "+", flags).await?)
    }

    fn set_grouping(&mut self, on: bool) {
        self.grouping = on;
    }

    fn open_validity(&self) -> Option<UidValidity> {
        self.open_validity
    }

    async fn close(mut self) {
        let _ = self.close_group().await;
        self.session.logout().await;
    }
}
