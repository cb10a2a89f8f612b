//! Writing messages into a folder: APPEND of one message streamed from any reader, and STORE
//! of flags on messages already there.
//!
//! The literal announces the body's own length (for a fetched body, its own `{N}`). A body
//! that ends before that length is never padded: the connection is marked broken. Keywords
//! that are not IMAP atoms are refused before the command is written.

use tokio::io::AsyncRead;

use super::codec::{is_sendable_keyword, quote};
use super::{FetchedBody, Session};
use crate::imap::error::{ImapError, Result};
use crate::model::{Flags, InternalDate, Uid, UidValidity};
use crate::wire::ResponseCode;

/// Where an appended message landed, from APPENDUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendUid {
    /// The destination folder's UIDVALIDITY.
    pub validity: UidValidity,
    /// The new message's UID.
    pub uid: Uid,
}

impl Session {
    fn append_line(
        &self,
        raw: &str,
        flags: &Flags,
        date: Option<&InternalDate>,
        len: u64,
    ) -> Result<(Vec<u8>, bool)> {
        let nonsync = self.caps.has("LITERAL+") || (self.caps.has("LITERAL-") && len <= 4096);
        let mut flag_list = String::from("(");
        for f in flags.iter() {
            if !f.starts_with('\\') && !is_sendable_keyword(f) {
                return Err(ImapError::Unsendable {
                    what: "keyword",
                    value: f.to_string(),
                    why: "not an IMAP atom",
                });
            }
            if flag_list.len() > 1 {
                flag_list.push(' ');
            }
            flag_list.push_str(f);
        }
        flag_list.push(')');
        let date = date
            .map(|d| format!(" \"{}\"", d.to_imap()))
            .unwrap_or_default();
        let line = format!(
            "APPEND {} {flag_list}{date} {{{len}{}}}",
            quote(raw, "folder name")?,
            if nonsync { "+" } else { "" }
        );
        Ok((line.into_bytes(), nonsync))
    }

    /// Starts an APPEND of `len` bytes read from `body` (any async reader), without waiting for
    /// its completion when the server takes non-synchronising literals. Returns the tag to
    /// pass to [`Session::append_wait`].
    pub async fn append_send<R>(
        &mut self,
        raw: &str,
        flags: &Flags,
        date: Option<&InternalDate>,
        len: u64,
        body: &mut R,
    ) -> Result<String>
    where
        R: AsyncRead + Unpin + ?Sized,
    {
        let tag = self.append_begin(raw, flags, date, len).await?;
        self.conn.write_body(len, body).await?;
        self.conn.write(b"\r\n").await?;
        self.conn.flush().await?;
        Ok(tag)
    }

    /// Like [`Session::append_send`], but from a body being fetched on another session: its
    /// chunks go to the socket without being copied.
    ///
    /// `observe` sees every chunk as it passes (for fingerprinting on the fly).
    pub async fn append_send_fetched(
        &mut self,
        raw: &str,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &mut FetchedBody<'_>,
        mut observe: impl FnMut(&[u8]),
    ) -> Result<String> {
        let tag = self.append_begin(raw, flags, date, body.len).await?;
        self.write_fetched_body(body, &mut observe).await?;
        self.conn.write(b"\r\n").await?;
        self.conn.flush().await?;
        Ok(tag)
    }

    /// Writes exactly `body.len` bytes of a body to the socket, chunk by chunk, without copying.
    /// A body that ends early leaves the server waiting for bytes: the connection is marked
    /// broken.
    pub(super) async fn write_fetched_body(
        &mut self,
        body: &mut FetchedBody<'_>,
        observe: &mut impl FnMut(&[u8]),
    ) -> Result<()> {
        let len = body.len;
        let mut sent = 0u64;
        while let Some(chunk) = body.chunk().await? {
            let take = (chunk.len() as u64).min(len - sent) as usize;
            observe(&chunk[..take]);
            self.conn.write(&chunk[..take]).await?;
            sent += take as u64;
        }
        if sent < len {
            self.conn.mark_broken();
            return Err(ImapError::BodyTooShort {
                announced: len,
                got: sent,
            });
        }
        Ok(())
    }

    /// Writes the APPEND command line; for a synchronising literal, waits for the server's go.
    async fn append_begin(
        &mut self,
        raw: &str,
        flags: &Flags,
        date: Option<&InternalDate>,
        len: u64,
    ) -> Result<String> {
        if !self.fetches.is_empty() {
            return Err(self.protocol(
                "APPEND",
                "body fetches are in flight on this session".into(),
            ));
        }
        let (line, nonsync) = self.append_line(raw, flags, date, len)?;
        let tag = self.conn.tag();
        let mut full = Vec::with_capacity(line.len() + tag.len() + 3);
        full.extend_from_slice(tag.as_bytes());
        full.push(b' ');
        full.extend_from_slice(&line);
        full.extend_from_slice(b"\r\n");
        self.conn.write(&full).await?;
        if !nonsync {
            self.conn.flush().await?;
            if let Err(status) = self.conn.wait_continuation(&tag, |_| {}).await? {
                return Err(self.refused("APPEND", Some(raw), status));
            }
        }
        Ok(tag)
    }

    /// Waits for an APPEND to complete; returns where the message landed when the server says
    /// (UIDPLUS).
    pub async fn append_wait(&mut self, tag: &str, raw: &str) -> Result<Option<AppendUid>> {
        let status = self.conn.wait(tag, |_| {}).await?;
        let status = self.check("APPEND", Some(raw), status)?;
        Ok(match status.code {
            Some(ResponseCode::AppendUid { validity, uids }) if uids.len() == 1 => {
                Some(AppendUid {
                    validity: UidValidity(validity),
                    uid: Uid(uids[0]),
                })
            }
            _ => None,
        })
    }

    /// Appends a message held in memory and waits for the result.
    pub async fn append(
        &mut self,
        raw: &str,
        flags: &Flags,
        date: Option<&InternalDate>,
        body: &[u8],
    ) -> Result<Option<AppendUid>> {
        let mut reader = body;
        let tag = self
            .append_send(raw, flags, date, body.len() as u64, &mut reader)
            .await?;
        self.append_wait(&tag, raw).await
    }

    /// Sets the flags of the messages in a UID set: `mode` is `""` (replace), `"+"` or `"-"`.
    pub async fn uid_store(&mut self, uid_set: &str, mode: &str, flags: &Flags) -> Result<()> {
        self.require_selected("STORE")?;
        let mode = match mode {
            "+" | "-" => mode,
            _ => "",
        };
        for f in flags.iter() {
            if !f.starts_with('\\') && !is_sendable_keyword(f) {
                return Err(ImapError::Unsendable {
                    what: "keyword",
                    value: f.to_string(),
                    why: "not an IMAP atom",
                });
            }
        }
        let cmd = format!(
            "UID STORE {uid_set} {mode}FLAGS.SILENT {}",
            flags.to_imap_list()
        );
        let folder = self.selected.as_ref().map(|s| s.raw.clone());
        self.simple("STORE", cmd.as_bytes(), folder.as_deref())
            .await
            .map(|_| ())
    }
}
