//! Verifying a migration against the source, never against our own records.
//!
//! For every planned folder both sides are read afresh: every message body is hashed as it
//! streams past, source messages are matched one-to-one with destination messages by content,
//! and matched pairs are compared for flags and INTERNALDATE. What the destination holds beyond
//! the source (mail it had before, or new mail after the MX switch) is counted, not blamed.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

use super::{Account, EngineError, MessageFilter, Side};
use crate::body::BodyEvent;
use crate::fingerprint::hex;
use crate::mapping::PlanOptions;
use crate::model::{Folder, MessageMeta, Uid};
use crate::sink::{MigrationSink, SinkSpec};
use crate::source::{AccessError, AnySource, MigrationSource, SourceSpec};

/// One way a copied message differs from its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum MessageDifference {
    /// No destination message has this content.
    Missing {
        /// Source UID.
        uid: u32,
        /// SHA-256 of the source bytes.
        sha256: String,
    },
    /// The copy's bytes differ from the source only in line endings.
    LineEndings {
        /// Source UID.
        uid: u32,
        /// Destination UID.
        dest_uid: u32,
    },
    /// The flags differ.
    Flags {
        /// Source UID.
        uid: u32,
        /// Destination UID.
        dest_uid: u32,
        /// Source flags.
        source: String,
        /// Destination flags.
        destination: String,
    },
    /// INTERNALDATE differs (compared as instants).
    InternalDate {
        /// Source UID.
        uid: u32,
        /// Destination UID.
        dest_uid: u32,
        /// Source date.
        source: String,
        /// Destination date.
        destination: String,
    },
}

/// The verdict on one folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FolderVerification {
    /// Source folder (decoded).
    pub source: String,
    /// Destination folder (decoded).
    pub target: String,
    /// Messages in the source folder (within the date range).
    pub source_messages: u64,
    /// Messages in the destination folder.
    pub destination_messages: u64,
    /// Source messages found with identical content on the destination.
    pub matched: u64,
    /// Destination messages that no source message accounts for.
    pub extra_on_destination: u64,
    /// Everything that differs.
    pub differences: Vec<MessageDifference>,
}

/// The verdict on a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// One entry per planned folder.
    pub folders: Vec<FolderVerification>,
}

impl Verification {
    /// Whether every source message is on the destination, byte for byte, with its flags and
    /// INTERNALDATE.
    pub fn is_identical(&self) -> bool {
        self.folders.iter().all(|f| f.differences.is_empty())
    }

    /// The number of differences.
    pub fn difference_count(&self) -> usize {
        self.folders.iter().map(|f| f.differences.len()).sum()
    }
}

struct Hashed {
    meta: MessageMeta,
    normalized: [u8; 32],
    exact: [u8; 32],
}

async fn hash_folder(
    source: &mut AnySource,
    folder: &Folder,
    filter: Option<&MessageFilter>,
) -> Result<Vec<Hashed>, AccessError> {
    source.open_folder(folder).await?;
    let metas = source.messages().await?;
    let metas = match filter.and_then(MessageFilter::date_range) {
        Some(range) => {
            let keep = source.select_dates(&range).await?;
            metas
                .into_iter()
                .filter(|m| keep.contains(&m.uid))
                .collect()
        }
        None => metas,
    };
    let mut by_uid: HashMap<Uid, MessageMeta> = metas.into_iter().map(|m| (m.uid, m)).collect();
    let mut uids: Vec<Uid> = by_uid.keys().copied().collect();
    uids.sort_unstable();
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(256) {
        source.request_bodies(chunk).await?;
        while let Some(ev) = source.next_body().await? {
            if let BodyEvent::Body(mut b) = ev {
                let uid = b.uid;
                let (normalized, exact) = crate::fingerprint::of_body(&mut b).await?;
                if let Some(meta) = by_uid.remove(&uid) {
                    out.push(Hashed {
                        meta,
                        normalized,
                        exact,
                    });
                }
            }
        }
    }
    out.sort_by_key(|h| h.meta.uid);
    Ok(out)
}

/// Compares every planned folder of an IMAP source with its IMAP destination.
pub async fn verify(
    source: &Account,
    destination: &Account,
    plan_options: &PlanOptions,
    filter: &MessageFilter,
) -> Result<Verification, EngineError> {
    verify_between(
        &SourceSpec::Imap(source.clone()),
        &SinkSpec::Imap(destination.clone()),
        plan_options,
        filter,
    )
    .await
}

/// Compares every planned folder of any source with its destination, reading the
/// destination back as a source.
pub async fn verify_between(
    source: &SourceSpec,
    destination: &SinkSpec,
    plan_options: &PlanOptions,
    filter: &MessageFilter,
) -> Result<Verification, EngineError> {
    let (plan, mut src, sink) = super::plan(source, destination, plan_options).await?;
    sink.close().await;
    let server = |side| move |source| EngineError::Server { side, source };
    let mut dst = destination
        .as_source()
        .open()
        .await
        .map_err(server(Side::Destination))?;
    let dst_folders: HashMap<String, Folder> = dst
        .list_folders()
        .await
        .map_err(server(Side::Destination))?
        .folders
        .into_iter()
        .map(|f| (f.raw.clone(), f))
        .collect();
    let mut out = Verification::default();
    for entry in &plan.entries {
        let folder = entry.source.name.clone();
        let on = |side: Side| {
            let folder = folder.clone();
            move |source: AccessError| EngineError::Folder {
                side,
                folder,
                source,
            }
        };
        let src_msgs = hash_folder(&mut src, &entry.source, Some(filter))
            .await
            .map_err(on(Side::Source))?;
        let dst_msgs = match dst_folders.get(&entry.target_raw) {
            Some(target) => hash_folder(&mut dst, target, None)
                .await
                .map_err(on(Side::Destination))?,
            None => Vec::new(),
        };
        let mut fv = FolderVerification {
            source: entry.source.name.clone(),
            target: entry.target.clone(),
            source_messages: src_msgs.len() as u64,
            destination_messages: dst_msgs.len() as u64,
            ..FolderVerification::default()
        };
        let mut by_exact: HashMap<[u8; 32], VecDeque<usize>> = HashMap::new();
        let mut by_norm: HashMap<[u8; 32], VecDeque<usize>> = HashMap::new();
        for (i, d) in dst_msgs.iter().enumerate() {
            by_exact.entry(d.exact).or_default().push_back(i);
            by_norm.entry(d.normalized).or_default().push_back(i);
        }
        let mut used = vec![false; dst_msgs.len()];
        let mut take = |map: &mut HashMap<[u8; 32], VecDeque<usize>>, key: &[u8; 32]| {
            let q = map.get_mut(key)?;
            while let Some(i) = q.pop_front() {
                if !used[i] {
                    used[i] = true;
                    return Some(i);
                }
            }
            None
        };
        for s in &src_msgs {
            let uid = s.meta.uid.0;
            let (i, exact) = match take(&mut by_exact, &s.exact) {
                Some(i) => (i, true),
                None => match take(&mut by_norm, &s.normalized) {
                    Some(i) => (i, false),
                    None => {
                        fv.differences.push(MessageDifference::Missing {
                            uid,
                            sha256: hex(&s.exact),
                        });
                        continue;
                    }
                },
            };
            let d = &dst_msgs[i];
            let dest_uid = d.meta.uid.0;
            fv.matched += 1;
            if !exact {
                fv.differences
                    .push(MessageDifference::LineEndings { uid, dest_uid });
            }
            if s.meta.flags != d.meta.flags {
                fv.differences.push(MessageDifference::Flags {
                    uid,
                    dest_uid,
                    source: s.meta.flags.to_imap_list(),
                    destination: d.meta.flags.to_imap_list(),
                });
            }
            let same_date = match (&s.meta.internal_date, &d.meta.internal_date) {
                (Some(a), Some(b)) => a.unix() == b.unix(),
                (None, _) => true,
                (Some(_), None) => false,
            };
            if !same_date {
                fv.differences.push(MessageDifference::InternalDate {
                    uid,
                    dest_uid,
                    source: s
                        .meta
                        .internal_date
                        .map(|d| d.to_imap())
                        .unwrap_or_default(),
                    destination: d
                        .meta
                        .internal_date
                        .map(|d| d.to_imap())
                        .unwrap_or_default(),
                });
            }
        }
        fv.extra_on_destination = fv.destination_messages - fv.matched;
        out.folders.push(fv);
    }
    src.close().await;
    dst.close().await;
    Ok(out)
}
