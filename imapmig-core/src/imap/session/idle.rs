//! Keeping a connection alive and waiting for changes: NOOP and IDLE (RFC 2177).
//!
//! An IDLE wait is bounded by the caller's duration and must never be cut short by the read
//! timeout; when it ends normally, DONE closes it and the connection is ready for the next
//! command.

use std::time::Duration;

use imap_proto::{MailboxDatum, Response};

use super::Session;
use crate::imap::error::{ImapError, Result};
use crate::wire::response::Parsed;
use crate::wire::StatusKind;

impl Session {
    /// NOOP: keeps the connection alive and lets the server report changes.
    pub async fn noop(&mut self) -> Result<()> {
        self.simple("NOOP", b"NOOP", None).await.map(|_| ())
    }

    /// IDLE (RFC 2177) for at most `wait`: returns true when the server reported a change
    /// (new or expunged messages, flag changes) in the selected folder.
    pub async fn idle(&mut self, wait: Duration) -> Result<bool> {
        if !self.caps.has("IDLE") {
            return Err(ImapError::MissingCapability {
                host: self.conn.host.clone(),
                capability: "IDLE",
                needed_for: "wait for new mail",
            });
        }
        self.require_selected("IDLE")?;
        self.ensure_idle_pipeline().await?;
        let tag = self.conn.send(b"IDLE").await?;
        if let Err(status) = self.conn.wait_continuation(&tag, |_| {}).await? {
            return Err(self.refused("IDLE", None, status));
        }
        // A wait in IDLE is not a silent server: the read timeout must not end it early.
        // Setting the timeout back also drops the read deadline the cut-short wait left armed.
        let read_timeout = self.conn.timeout();
        self.conn.set_timeout(read_timeout.saturating_add(wait));
        let waited = self.idle_wait(&tag, wait).await;
        self.conn.set_timeout(read_timeout);
        let changed = waited?;
        self.conn.send_raw_line(b"DONE").await?;
        let status = self.conn.wait(&tag, |_| {}).await?;
        self.check("IDLE", None, status)?;
        Ok(changed)
    }

    /// The waiting part of IDLE: true when a change was reported before `wait` ran out.
    async fn idle_wait(&mut self, tag: &str, wait: Duration) -> Result<bool> {
        let mut changed = false;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left, self.conn.next_line()).await {
                Err(_) => break,
                Ok(line) => {
                    let line = line?;
                    match crate::wire::response::parse_line(&line) {
                        Parsed::Data(Response::MailboxData(MailboxDatum::Exists(_)))
                        | Parsed::Data(Response::Expunge(_))
                        | Parsed::Data(Response::Fetch(..))
                        | Parsed::Data(Response::Vanished { .. }) => {
                            changed = true;
                            break;
                        }
                        Parsed::Status(s) if s.kind == StatusKind::Bye => {
                            self.conn.note_bye(s.describe());
                        }
                        Parsed::Status(s) if s.tag.as_deref() == Some(tag) => {
                            return Err(self.refused("IDLE", None, s));
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(changed)
    }
}
