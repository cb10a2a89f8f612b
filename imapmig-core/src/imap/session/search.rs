//! UID SEARCH: which messages a folder holds, by the criteria a migration filters on.
//!
//! The criteria are values ([`SearchKey`]); their wire form is built in `codec`, never here.
//! [`Session::uids_present`] asks in chunks, so its command lines stay bounded whatever the
//! number of UIDs.

use std::collections::HashSet;

use imap_proto::{MailboxDatum, Response};

use super::Session;
use crate::imap::error::Result;
use crate::model::Uid;
use crate::wire::response::Parsed;

/// A UID SEARCH criterion that a migration uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// Every message.
    All,
    /// INTERNALDATE on or after this day.
    Since(time::Date),
    /// INTERNALDATE before this day.
    Before(time::Date),
    /// Date header on or after this day.
    SentSince(time::Date),
    /// Date header before this day.
    SentBefore(time::Date),
    /// Larger than this many octets.
    Larger(u64),
    /// Smaller than this many octets.
    Smaller(u64),
    /// UIDs in this range (inclusive).
    UidRange(u32, u32),
    /// These UIDs.
    Uids(Vec<Uid>),
    /// Messages with this flag (or keyword).
    Flag(String),
}

impl Session {
    /// `UID SEARCH` with all the keys (AND-ed). Returns the UIDs in ascending order.
    pub async fn uid_search(&mut self, keys: &[SearchKey]) -> Result<Vec<Uid>> {
        self.require_selected("SEARCH")?;
        self.ensure_idle_pipeline().await?;
        let rendered: Vec<String> = if keys.is_empty() {
            vec!["ALL".into()]
        } else {
            keys.iter().map(SearchKey::render).collect()
        };
        let cmd = format!("UID SEARCH {}", rendered.join(" "));
        let tag = self.conn.send(cmd.as_bytes()).await?;
        let mut uids = Vec::new();
        let status = self
            .conn
            .wait(&tag, |p| {
                if let Parsed::Data(Response::MailboxData(MailboxDatum::Search(found))) = p {
                    uids.extend(found.iter().copied().filter(|&u| u > 0).map(Uid));
                }
            })
            .await?;
        let folder = self.selected.as_ref().map(|s| s.raw.clone());
        self.check("SEARCH", folder.as_deref(), status)?;
        uids.sort_unstable();
        uids.dedup();
        Ok(uids)
    }

    /// Which of these UIDs the selected folder holds (`UID SEARCH UID <set>`): tells a message
    /// expunged meanwhile from one the server would not send.
    pub async fn uids_present(&mut self, uids: &[Uid]) -> Result<Vec<Uid>> {
        let asked: HashSet<Uid> = uids.iter().copied().collect();
        let mut found = Vec::new();
        // Bounded command lines, whatever the number of UIDs.
        for chunk in uids.chunks(1000) {
            found.extend(
                self.uid_search(&[SearchKey::Uids(chunk.to_vec())])
                    .await?
                    .into_iter()
                    .filter(|u| asked.contains(u)),
            );
        }
        found.sort_unstable();
        found.dedup();
        Ok(found)
    }
}
