//! Did a contender really copy everything? A fast wrong run must not count.
//!
//! The check is ours, independent of every contender: read each folder of an account (every
//! body hashed as it streams past, flags, INTERNALDATE) and compare the multisets with the
//! source's. Two identical messages are two entries; nothing is matched by Message-ID.

use std::collections::{BTreeMap, HashMap};

use imapmig_core::engine::Account;
use imapmig_core::imap::BodyEvent;
use imapmig_core::model::Uid;
use sha2::{Digest as _, Sha256};

/// One message as the check sees it: SHA-256 of its bytes, SHA-256 of its bytes without an
/// `X-TUID:` header line (mbsync adds one to every message it stores), flags, INTERNALDATE.
type Item = ([u8; 32], [u8; 32], String, i64);

/// Where the `X-TUID:` header line is in the first chunk of a message, if it has one.
fn tuid_line(first: &[u8]) -> Option<(usize, usize)> {
    let head_end = memchr::memmem::find(first, b"\r\n\r\n")
        .map(|i| i + 2)
        .unwrap_or(first.len());
    let head = &first[..head_end];
    let start = if head.starts_with(b"X-TUID:") {
        0
    } else {
        memchr::memmem::find(head, b"\nX-TUID:")? + 1
    };
    let end = memchr::memchr(b'\n', &head[start..]).map(|i| start + i + 1)?;
    Some((start, end))
}

/// What one folder holds.
#[derive(Clone, Debug, Default)]
pub struct FolderDigest {
    pub bytes: u64,
    items: Vec<Item>,
}

impl FolderDigest {
    pub fn messages(&self) -> u64 {
        self.items.len() as u64
    }
}

/// Folder name (decoded) -> contents.
pub type AccountDigest = BTreeMap<String, FolderDigest>;

pub fn total(d: &AccountDigest) -> (u64, u64) {
    d.values()
        .fold((0, 0), |(m, b), f| (m + f.messages(), b + f.bytes))
}

fn flags_line(flags: &imapmig_core::model::Flags) -> String {
    let mut v: Vec<&str> = flags
        .iter()
        .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
        .collect();
    v.sort_unstable();
    v.join(" ")
}

fn hash_without_tuid(h: &mut Sha256, head: &[u8]) {
    match tuid_line(head) {
        Some((a, z)) => {
            h.update(&head[..a]);
            h.update(&head[z..]);
        }
        None => h.update(head),
    }
}

/// Reads every message of every folder of `account`.
pub async fn digest(account: &Account) -> AccountDigest {
    let mut s = account.open().await.expect("log in to check");
    let folders = s.list().await.expect("LIST");
    let mut out = AccountDigest::new();
    for f in folders.iter().filter(|f| f.selectable()) {
        s.examine(&f.raw).await.expect("EXAMINE");
        let metas = s.fetch_meta("1:*", None).await.expect("FETCH metadata");
        let meta: HashMap<Uid, (String, i64)> = metas
            .iter()
            .map(|m| {
                (
                    m.uid,
                    (
                        flags_line(&m.flags),
                        m.internal_date.as_ref().map(|d| d.unix()).unwrap_or(0),
                    ),
                )
            })
            .collect();
        let uids: Vec<Uid> = metas.iter().map(|m| m.uid).collect();
        let mut fd = FolderDigest::default();
        for chunk in uids.chunks(256) {
            s.send_fetch_bodies(chunk).await.expect("FETCH bodies");
            while let Some(ev) = s.next_body().await.expect("a body") {
                if let BodyEvent::Body(mut b) = ev {
                    let mut exact = Sha256::new();
                    let mut stripped = Sha256::new();
                    // The header (where mbsync puts X-TUID) may come in several chunks: gather
                    // it, up to 64 KiB, before hashing.
                    let mut head: Option<Vec<u8>> = Some(Vec::new());
                    while let Some(c) = b.chunk().await.expect("body bytes") {
                        exact.update(&c);
                        match head.as_mut() {
                            Some(h) => {
                                h.extend_from_slice(&c);
                                if h.len() >= 65_536
                                    || memchr::memmem::find(h, b"\r\n\r\n").is_some()
                                {
                                    hash_without_tuid(&mut stripped, h);
                                    head = None;
                                }
                            }
                            None => stripped.update(&c),
                        }
                    }
                    if let Some(h) = head {
                        hash_without_tuid(&mut stripped, &h);
                    }
                    fd.bytes += b.len;
                    let (flags, date) = meta.get(&b.uid).cloned().unwrap_or_default();
                    fd.items.push((
                        exact.finalize().into(),
                        stripped.finalize().into(),
                        flags,
                        date,
                    ));
                }
            }
        }
        out.insert(f.name.clone(), fd);
    }
    s.logout().await;
    out
}

/// Messages per folder, from STATUS: the cheap check after an incremental pass (a duplicate
/// or a missing message shows as a different count).
pub async fn counts(account: &Account) -> BTreeMap<String, u64> {
    let mut s = account.open().await.expect("log in to count");
    let folders = s.list().await.expect("LIST");
    let mut out = BTreeMap::new();
    for f in folders.iter().filter(|f| f.selectable()) {
        let st = s.status(&f.raw).await.expect("STATUS");
        out.insert(f.name.clone(), u64::from(st.messages.unwrap_or(0)));
    }
    s.logout().await;
    out
}

/// How a copy differs from its source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fidelity {
    /// Source messages with no byte-identical copy.
    pub missing: u64,
    /// Messages on the destination that are not on the source (duplicates included).
    pub extra: u64,
    /// Copies that differ from their source only by an added `X-TUID:` header line.
    pub altered: u64,
    /// Copies whose flags (keywords included) differ.
    pub flags_differ: u64,
    /// Copies whose INTERNALDATE differs.
    pub dates_differ: u64,
    /// Keywords on the source minus keywords on the destination.
    pub keywords_lost: i64,
}

impl Fidelity {
    /// Everything there, once, byte for byte.
    pub fn complete(&self) -> bool {
        self.missing == 0 && self.extra == 0
    }

    /// Complete, byte for byte, and every flag, keyword and date kept too.
    pub fn exact(&self) -> bool {
        self.complete() && self.altered == 0 && self.flags_differ == 0 && self.dates_differ == 0
    }

    pub fn describe(&self) -> String {
        if self.exact() {
            return "exact".into();
        }
        let mut parts = Vec::new();
        if self.missing > 0 {
            parts.push(format!("{} missing", self.missing));
        }
        if self.extra > 0 {
            parts.push(format!("{} extra", self.extra));
        }
        if self.altered > 0 {
            parts.push(format!("{} with X-TUID added", self.altered));
        }
        if self.flags_differ > 0 {
            parts.push(format!("{} flags differ", self.flags_differ));
        }
        if self.keywords_lost > 0 {
            parts.push(format!("{} keywords lost", self.keywords_lost));
        }
        if self.dates_differ > 0 {
            parts.push(format!("{} dates differ", self.dates_differ));
        }
        parts.join(", ")
    }
}

fn surplus<K: std::hash::Hash + Eq>(a: impl Iterator<Item = K>, b: impl Iterator<Item = K>) -> u64 {
    let mut m: HashMap<K, i64> = HashMap::new();
    for k in a {
        *m.entry(k).or_default() += 1;
    }
    for k in b {
        *m.entry(k).or_default() -= 1;
    }
    m.values().filter(|v| **v > 0).map(|v| *v as u64).sum()
}

/// Compares a destination with its source, folder by folder (same names on both sides).
pub fn compare(src: &AccountDigest, dst: &AccountDigest) -> Fidelity {
    let empty = FolderDigest::default();
    let mut fid = Fidelity::default();
    let names: std::collections::BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
    for name in names {
        let s = src.get(name).unwrap_or(&empty);
        let d = dst.get(name).unwrap_or(&empty);
        // Matched on the bytes without X-TUID; how many needed that is counted apart.
        let exact_missing = surplus(s.items.iter().map(|i| i.0), d.items.iter().map(|i| i.0));
        let missing = surplus(s.items.iter().map(|i| i.1), d.items.iter().map(|i| i.1));
        fid.missing += missing;
        fid.altered += exact_missing.saturating_sub(missing);
        fid.extra += surplus(d.items.iter().map(|i| i.1), s.items.iter().map(|i| i.1));
        let flags = surplus(
            s.items.iter().map(|i| (i.1, i.2.as_str())),
            d.items.iter().map(|i| (i.1, i.2.as_str())),
        );
        fid.flags_differ += flags.saturating_sub(missing);
        let dates = surplus(
            s.items.iter().map(|i| (i.1, i.3)),
            d.items.iter().map(|i| (i.1, i.3)),
        );
        fid.dates_differ += dates.saturating_sub(missing);
        let keywords = |f: &FolderDigest| -> i64 {
            f.items
                .iter()
                .map(|i| {
                    i.2.split(' ')
                        .filter(|k| !k.is_empty() && !k.starts_with('\\'))
                        .count() as i64
                })
                .sum()
        };
        fid.keywords_lost += keywords(s) - keywords(d);
    }
    fid
}

/// Compares message counts per folder (after an incremental pass) with the source's.
pub fn compare_counts(src: &BTreeMap<String, u64>, dst: &BTreeMap<String, u64>) -> Fidelity {
    let mut fid = Fidelity::default();
    let names: std::collections::BTreeSet<&String> = src.keys().chain(dst.keys()).collect();
    for name in names {
        let s = src.get(name).copied().unwrap_or(0);
        let d = dst.get(name).copied().unwrap_or(0);
        fid.missing += s.saturating_sub(d);
        fid.extra += d.saturating_sub(s);
    }
    fid
}
