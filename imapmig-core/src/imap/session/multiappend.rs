//! MULTIAPPEND (RFC 3502): several messages in one APPEND command.
//!
//! For small messages the server's per-command work (a transaction, an index and UID list
//! update, often an fsync) costs more than the message itself; one command for a group of them
//! pays it once. The group is atomic: if the server refuses any message, it stores none, and
//! the caller sends them again one by one. Groups are only written with non-synchronising
//! literals (LITERAL+), so they stream without waiting for the server between messages.

use super::codec::{is_sendable_keyword, quote};
use super::Session;
use crate::body::FetchedBody;
use crate::imap::error::{ImapError, Result};
use crate::model::{Flags, InternalDate, Uid, UidValidity};
use crate::wire::ResponseCode;

impl Session {
    /// Whether groups can be sent: MULTIAPPEND with non-synchronising literals.
    pub fn can_multiappend(&self) -> bool {
        self.caps.has("MULTIAPPEND") && self.caps.has("LITERAL+")
    }

    /// Starts a MULTIAPPEND command to folder `raw`; returns its tag. Add messages with
    /// [`Session::multiappend_add`] and end it with [`Session::multiappend_close`].
    pub async fn multiappend_open(&mut self, raw: &str) -> Result<String> {
        if !self.can_multiappend() {
            return Err(ImapError::MissingCapability {
                host: self.conn.host.clone(),
                capability: "MULTIAPPEND",
                needed_for: "send several messages in one APPEND",
            });
        }
        if !self.fetches.is_empty() {
            return Err(self.protocol(
                "APPEND",
                "body fetches are in flight on this session".into(),
            ));
        }
        let tag = self.conn.tag();
        let line = format!("{tag} APPEND {}", quote(raw, "folder name")?);
        self.conn.write(line.as_bytes()).await?;
        Ok(tag)
    }

    /// Adds one message to the open MULTIAPPEND command, streaming its body. `observe` sees
    /// every byte.
    pub async fn multiappend_add(
        &mut self,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<()> {
        let mut part = String::from(" (");
        for (i, f) in flags.iter().enumerate() {
            if !f.starts_with('\\') && !is_sendable_keyword(f) {
                // Nothing of this message is written yet, but the command is half-sent: the
                // caller checks keywords before (the engine only passes sendable ones).
                self.conn.mark_broken();
                return Err(ImapError::Unsendable {
                    what: "keyword",
                    value: f.to_string(),
                    why: "not an IMAP atom",
                });
            }
            if i > 0 {
                part.push(' ');
            }
            part.push_str(f);
        }
        part.push(')');
        if let Some(d) = date {
            part.push_str(&format!(" \"{}\"", d.to_imap()));
        }
        part.push_str(&format!(" {{{}+}}\r\n", body.len));
        self.conn.write(part.as_bytes()).await?;
        self.write_fetched_body(body, &mut observe).await
    }

    /// Ends the open MULTIAPPEND command and sends it on its way.
    pub async fn multiappend_close(&mut self) -> Result<()> {
        self.conn.write(b"\r\n").await?;
        self.conn.flush().await
    }

    /// Waits for a MULTIAPPEND to complete; returns the new UIDs in message order when the
    /// server tells them (UIDPLUS), else an empty list.
    pub async fn multiappend_wait(
        &mut self,
        tag: &str,
        raw: &str,
    ) -> Result<Vec<(UidValidity, Uid)>> {
        let status = self.conn.wait(tag, |_| {}).await?;
        let status = self.check("APPEND", Some(raw), status)?;
        Ok(match status.code {
            Some(ResponseCode::AppendUid { validity, uids }) => uids
                .into_iter()
                .map(|u| (UidValidity(validity), Uid(u)))
                .collect(),
            _ => Vec::new(),
        })
    }
}
