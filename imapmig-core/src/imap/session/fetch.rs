//! Reading messages: metadata (`UID FETCH ... (UID FLAGS INTERNALDATE RFC822.SIZE)`) and
//! pipelined body fetches, each body handed on as it arrives.
//!
//! A large body is streamed chunk by chunk; this module never collects one whole, except in
//! [`Session::fetch_bodies_collected`], for bounded sets under a fixed cap. Bodies are read
//! with `BODY.PEEK[]` only, so fetching never changes the source. A body or metadata line
//! whose UID cannot be read, or that was not asked for, is reported and never copied.

use std::collections::HashMap;

use bytes::Bytes;
use imap_proto::{AttributeValue, Response};

use super::codec::{meta_from_attrs, uid_item, uid_of_attrs, MetaLine, UidItem};
use super::{BodyEvent, FetchedBody, ServerAnomaly, Session};
use crate::imap::error::{ImapError, Result};
use crate::model::{MessageMeta, Uid};
use crate::wire::response::Parsed;
use crate::wire::{Frame, StatusKind, StatusResponse};

/// A message fetched for its content fingerprint or for verification: metadata plus the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchedMessage {
    /// Metadata.
    pub meta: MessageMeta,
    /// The whole message (small messages only: callers use this for bounded sets).
    pub body: Bytes,
}

/// One pipelined body fetch.
///
/// Servers may run pipelined commands in parallel (Dovecot does): the data and even the tagged
/// completion of a later FETCH can arrive before an earlier one's completion. So every fetch in
/// flight keeps its own state, and events are handed out in request order only where that is
/// known to be safe (Missing/Failed wait for the completion; bodies go out as they arrive).
pub(super) struct PendingFetch {
    tag: String,
    uid: Uid,
    /// Its body has been handed out.
    delivered: bool,
    /// Its tagged completion, once it has arrived.
    done: Option<StatusResponse>,
    /// The server answered for it without a body (a FETCH with its UID and no `BODY[]`):
    /// what it sent, reported if no body follows.
    answered_without_body: Option<String>,
}

/// The largest message [`Session::fetch_bodies_collected`] collects in memory.
pub const MAX_COLLECTED_BODY: u64 = 64 * 1024 * 1024;

impl Session {
    /// Metadata (UID, FLAGS, INTERNALDATE, RFC822.SIZE, and MODSEQ under CONDSTORE) of the
    /// messages in a UID set such as `1:*`, optionally only those changed since a MODSEQ.
    pub async fn fetch_meta(
        &mut self,
        uid_set: &str,
        changed_since: Option<u64>,
    ) -> Result<Vec<MessageMeta>> {
        self.require_selected("FETCH")?;
        self.ensure_idle_pipeline().await?;
        let condstore = self.caps.has("CONDSTORE");
        let mut cmd = format!(
            "UID FETCH {uid_set} (UID FLAGS INTERNALDATE RFC822.SIZE{})",
            if condstore { " MODSEQ" } else { "" }
        );
        if let (Some(m), true) = (changed_since, condstore) {
            cmd.push_str(&format!(" (CHANGEDSINCE {m})"));
        }
        let tag = self.conn.send(cmd.as_bytes()).await?;
        let mut by_uid: HashMap<Uid, MessageMeta> = HashMap::new();
        // Odd lines are worked around, each one reported: a message whose UID cannot be read
        // cannot be tracked and is left out; a date that cannot be read is replaced.
        let mut odd: Vec<ServerAnomaly> = Vec::new();
        let status = self
            .conn
            .wait_raw(&tag, |line, p| match p {
                Parsed::Data(Response::Fetch(_, attrs)) => match meta_from_attrs(attrs, line) {
                    MetaLine::Listed {
                        meta,
                        dated,
                        bad_date,
                    } => {
                        if let Some(d) = bad_date {
                            odd.push(ServerAnomaly {
                                uid: Some(meta.uid),
                                detail: format!(
                                    "the source gave UID {} the INTERNALDATE {d:?}, which is not a date ({:?}); copied with the time of copying as its date",
                                    meta.uid,
                                    crate::wire::excerpt(line)
                                ),
                            });
                        }
                        // An unsolicited FETCH (a flag change by another client) may repeat
                        // a UID with only some items: it updates the flags and nothing else.
                        match by_uid.get_mut(&meta.uid) {
                            Some(e) if !dated => e.flags = meta.flags,
                            _ => {
                                by_uid.insert(meta.uid, meta);
                            }
                        }
                    }
                    MetaLine::UnreadableUid => odd.push(ServerAnomaly {
                        uid: None,
                        detail: format!(
                            "the source listed a message as {:?}; not listed: its UID cannot be read",
                            crate::wire::excerpt(line)
                        ),
                    }),
                    MetaLine::Other => {}
                },
                Parsed::Unknown(line) if memchr::memmem::find(line, b"FETCH").is_some() => {
                    let uid = match uid_item(line) {
                        UidItem::Valid(u) => Some(u),
                        _ => None,
                    };
                    odd.push(ServerAnomaly {
                        uid,
                        detail: format!(
                            "the source sent {:?}, which cannot be read; not listed: its UID cannot be read",
                            crate::wire::excerpt(line)
                        ),
                    });
                }
                _ => {}
            })
            .await?;
        let folder = self.selected.as_ref().map(|s| s.raw.clone());
        self.check("FETCH", folder.as_deref(), status)?;
        self.anomalies.extend(odd);
        let mut v: Vec<MessageMeta> = by_uid.into_values().collect();
        v.sort_by_key(|m| m.uid);
        Ok(v)
    }

    /// Queues `UID FETCH uid (UID BODY.PEEK[])` for each UID, pipelined; collect the bodies
    /// in order with [`Session::next_body`]. BODY.PEEK never sets `\Seen` on the source.
    pub async fn send_fetch_bodies(&mut self, uids: &[Uid]) -> Result<()> {
        self.require_selected("FETCH")?;
        self.conn.drain_literal().await?;
        for &uid in uids {
            let tag = self
                .conn
                .queue(format!("UID FETCH {uid} (UID BODY.PEEK[])").as_bytes())
                .await?;
            self.fetches.push_back(PendingFetch {
                tag,
                uid,
                delivered: false,
                done: None,
                answered_without_body: None,
            });
        }
        self.conn.flush().await
    }

    /// Body fetches still in flight.
    pub fn fetches_in_flight(&self) -> usize {
        self.fetches.len()
    }

    /// The next body of the pipelined fetches, `None` when none is in flight.
    ///
    /// Bodies come in the order the server sends them (normally the order asked for; a server
    /// that runs pipelined commands in parallel may reorder them). A UID the server did not
    /// send is reported as [`BodyEvent::Missing`] once its command has completed.
    pub async fn next_body(&mut self) -> Result<Option<BodyEvent<'_>>> {
        self.conn.drain_literal().await?;
        loop {
            let Some(front) = self.fetches.front() else {
                return Ok(None);
            };
            if front.done.is_some() {
                let Some(PendingFetch {
                    uid,
                    delivered,
                    done: Some(status),
                    answered_without_body,
                    ..
                }) = self.fetches.pop_front()
                else {
                    unreachable!("the front fetch was just seen completed")
                };
                if status.kind != StatusKind::Ok {
                    return Ok(Some(BodyEvent::Failed(uid, status)));
                }
                if !delivered {
                    return Ok(Some(match answered_without_body {
                        Some(detail) => BodyEvent::Withheld { uid, detail },
                        None => BodyEvent::Missing(uid),
                    }));
                }
                continue;
            }
            match self.conn.next_frame().await? {
                Frame::LiteralStart { head, len } => {
                    let said = || crate::wire::excerpt(&head);
                    let uid = match uid_item(&head) {
                        UidItem::Valid(u) if self.awaits(u) => u,
                        UidItem::Valid(uid) => {
                            // Not asked for in this round, or already delivered: skipped whole,
                            // so the connection stays in step.
                            self.conn.drain_literal().await?;
                            self.after_stream = true;
                            return Ok(Some(BodyEvent::Unasked {
                                uid,
                                detail: unasked_detail(uid, len, &said()),
                            }));
                        }
                        UidItem::Unreadable => {
                            self.conn.drain_literal().await?;
                            self.after_stream = true;
                            self.anomalies.push(ServerAnomaly {
                                uid: None,
                                detail: format!(
                                    "the source sent a body ({len} bytes) under a UID that cannot be read ({:?}); it was not copied",
                                    said()
                                ),
                            });
                            continue;
                        }
                        // No UID at all (a server that leaves it out of UID FETCH answers):
                        // the body belongs to the oldest fetch still waiting for one.
                        UidItem::Absent => match self.first_undelivered() {
                            Some(u) => u,
                            None => {
                                return Err(self.protocol(
                                    "FETCH",
                                    format!("a message body arrived without its UID: {:?}", said()),
                                ))
                            }
                        },
                    };
                    self.mark_delivered(uid);
                    self.after_stream = true;
                    return Ok(Some(BodyEvent::Body(FetchedBody::streaming(
                        uid,
                        len,
                        &mut self.conn,
                    ))));
                }
                Frame::LiteralData(_) | Frame::LiteralEnd => {
                    return Err(self.protocol("FETCH", "stray literal data".into()))
                }
                Frame::Line(line) => {
                    if std::mem::take(&mut self.after_stream) {
                        // The rest of a FETCH whose body was streamed.
                        continue;
                    }
                    match crate::wire::response::parse_line(&line) {
                        Parsed::Status(s) if s.tag.is_some() => {
                            let ours = self
                                .fetches
                                .iter_mut()
                                .find(|f| s.tag.as_deref() == Some(f.tag.as_str()));
                            match ours {
                                Some(f) => f.done = Some(s),
                                None => self.conn.stash_completion(s),
                            }
                        }
                        Parsed::Status(s) if s.kind == StatusKind::Bye => {
                            self.conn.note_bye(s.describe())
                        }
                        Parsed::Unknown(l) if self.conn.is_our_tag(l) => {
                            return Err(self.conn.garbled_completion(l))
                        }
                        Parsed::Data(Response::Fetch(_, attrs)) => {
                            // `None`: no body item; `Some(None)`: `BODY[] NIL`.
                            let mut body: Option<Option<&[u8]>> = None;
                            for a in &attrs {
                                if let AttributeValue::BodySection {
                                    section: None,
                                    data,
                                    ..
                                } = a
                                {
                                    body = Some(data.as_deref());
                                }
                            }
                            let said = || crate::wire::excerpt(&line);
                            let uid = match uid_of_attrs(&attrs, &line) {
                                UidItem::Valid(u) => u,
                                UidItem::Unreadable if body.is_some() => {
                                    self.anomalies.push(ServerAnomaly {
                                        uid: None,
                                        detail: format!(
                                            "the source answered a body FETCH under a UID that cannot be read ({:?}); nothing of it was copied",
                                            said()
                                        ),
                                    });
                                    continue;
                                }
                                UidItem::Absent if body.is_some() => {
                                    match self.first_undelivered() {
                                        Some(u) => u,
                                        None => {
                                            self.anomalies.push(ServerAnomaly {
                                                uid: None,
                                                detail: format!(
                                                    "the source sent a body without a UID when none was awaited ({:?}); it was not copied",
                                                    said()
                                                ),
                                            });
                                            continue;
                                        }
                                    }
                                }
                                // A FETCH without a body and without a readable UID (a flag
                                // change) says nothing about the bodies asked for.
                                UidItem::Unreadable | UidItem::Absent => continue,
                            };
                            match body {
                                None => {
                                    // Flags alone, say: only if no body follows before the
                                    // command completes is the message withheld.
                                    if let Some(f) = self.awaited_mut(uid) {
                                        f.answered_without_body.get_or_insert_with(|| {
                                            format!(
                                                "the source answered the FETCH of UID {uid} without its body ({:?}); the message was not copied",
                                                said()
                                            )
                                        });
                                    }
                                }
                                Some(None) if self.awaits(uid) => {
                                    self.mark_delivered(uid);
                                    return Ok(Some(BodyEvent::Withheld {
                                        uid,
                                        detail: format!(
                                            "the source answered the FETCH of UID {uid} with BODY[] NIL, no body ({:?}); the message was not copied",
                                            said()
                                        ),
                                    }));
                                }
                                Some(None) => {
                                    return Ok(Some(BodyEvent::Unasked {
                                        uid,
                                        detail: format!(
                                            "the source sent BODY[] NIL for UID {uid}, which was not asked for or was already sent ({:?})",
                                            said()
                                        ),
                                    }))
                                }
                                Some(Some(data)) if self.awaits(uid) => {
                                    let data = slice_of(&line, data);
                                    self.mark_delivered(uid);
                                    return Ok(Some(BodyEvent::Body(FetchedBody::from_bytes(
                                        uid, data,
                                    ))));
                                }
                                Some(Some(data)) => {
                                    return Ok(Some(BodyEvent::Unasked {
                                        uid,
                                        detail: unasked_detail(uid, data.len() as u64, &said()),
                                    }))
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Whether a body for `uid` is awaited: asked for in a fetch still running, and not
    /// delivered yet.
    fn awaits(&self, uid: Uid) -> bool {
        self.fetches
            .iter()
            .any(|f| f.uid == uid && !f.delivered && f.done.is_none())
    }

    fn awaited_mut(&mut self, uid: Uid) -> Option<&mut PendingFetch> {
        self.fetches
            .iter_mut()
            .find(|f| f.uid == uid && !f.delivered && f.done.is_none())
    }

    /// The UID of the oldest fetch still waiting for its body: the owner of a body that came
    /// without a UID.
    fn first_undelivered(&self) -> Option<Uid> {
        self.fetches
            .iter()
            .find(|f| !f.delivered && f.done.is_none())
            .map(|f| f.uid)
    }

    fn mark_delivered(&mut self, uid: Uid) {
        if let Some(f) = self.awaited_mut(uid) {
            f.delivered = true;
        }
    }

    /// Fetches whole messages with their metadata into memory: for fingerprints and
    /// verification of bounded sets. Messages larger than [`MAX_COLLECTED_BODY`] are refused.
    pub async fn fetch_bodies_collected(&mut self, uids: &[Uid]) -> Result<Vec<(Uid, Bytes)>> {
        self.send_fetch_bodies(uids).await?;
        let host = self.conn.host.clone();
        let mut out = Vec::with_capacity(uids.len());
        while let Some(ev) = self.next_body().await? {
            if let BodyEvent::Body(mut b) = ev {
                if b.len > MAX_COLLECTED_BODY {
                    return Err(ImapError::Protocol {
                        host,
                        command: "FETCH",
                        detail: format!("message UID {} is too large to hold in memory", b.uid),
                    });
                }
                let mut v = Vec::with_capacity(b.len as usize);
                while let Some(c) = b.chunk().await? {
                    v.extend_from_slice(&c);
                }
                out.push((b.uid, Bytes::from(v)));
            }
        }
        Ok(out)
    }
}

/// What a body for a UID that was not awaited is reported as.
fn unasked_detail(uid: Uid, len: u64, said: &str) -> String {
    format!(
        "the source sent a body ({len} bytes) for UID {uid}, which was not asked for or was already sent ({said:?}); it was not copied"
    )
}

/// A zero-copy view of `part` inside `line` when it is one (imap-proto borrows from the line),
/// else a copy.
fn slice_of(line: &Bytes, part: &[u8]) -> Bytes {
    let base = line.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= base && p + part.len() <= base + line.len() {
        line.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}
