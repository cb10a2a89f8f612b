//! What each folder is, before anything is placed: a source folder's path below the prefix
//! and its special use (LIST attributes first, then the table of localized names), the source
//! prefix when the server does not say it, and the destination's folders indexed by name and
//! by use. Every question about another folder is a hash lookup.

use std::collections::HashMap;

use super::INBOX;
use crate::mapping::localized;
use crate::mapping::{Destination, Detection};
use crate::model::{Folder, SpecialUse};

/// The special uses whose folders are views over other folders.
pub(super) fn is_virtual(u: SpecialUse) -> bool {
    matches!(
        u,
        SpecialUse::All | SpecialUse::Flagged | SpecialUse::Important
    )
}

/// A folder's special use from its attributes: the parsed field first, then the raw list, in
/// case the caller built the [`Folder`] without filling the field.
pub(super) fn attribute_use(f: &Folder) -> Option<SpecialUse> {
    f.special_use.or_else(|| {
        f.attributes
            .iter()
            .find_map(|a| SpecialUse::from_attribute(a))
    })
}

/// `name` with a case-insensitive ASCII `prefix` removed, when it is there and something is
/// left after it. Never slices inside a character.
fn strip_prefix_ci<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return None;
    }
    let head = name.get(..prefix.len())?;
    let rest = name.get(prefix.len()..)?;
    (head.eq_ignore_ascii_case(prefix) && !rest.is_empty()).then_some(rest)
}

/// The identity of a destination name: INBOX is case-insensitive (and so is the INBOX part of
/// its children's names on every server we know), everything else is compared exactly.
pub(super) fn name_key(name: &str, delim: char) -> String {
    if name.eq_ignore_ascii_case(INBOX) {
        return INBOX.to_string();
    }
    let inbox_prefix = format!("{INBOX}{delim}");
    match strip_prefix_ci(name, &inbox_prefix) {
        Some(rest) => format!("{inbox_prefix}{rest}"),
        None => name.to_string(),
    }
}

/// One source folder, as the planner sees it.
pub(super) struct Info<'a> {
    pub(super) folder: &'a Folder,
    /// The segments inside the personal namespace (source prefix stripped); `INBOX`
    /// canonicalised when it is the real INBOX or the first segment of a child of it.
    pub(super) segs: Vec<&'a str>,
    /// `segs` joined with `/`: what patterns and renames see.
    pub(super) path: String,
    /// `path[..ends[k]]` is the path of the first `k + 1` segments.
    pub(super) ends: Vec<usize>,
    /// The real INBOX.
    pub(super) inbox: bool,
    /// Under INBOX on a server without prefix (`INBOX/Sub`): stays under INBOX.
    pub(super) under_inbox: bool,
    pub(super) own_use: Option<(SpecialUse, Detection)>,
    /// The rename that applies: rule index and how many segments it replaces.
    pub(super) rename: Option<(usize, usize)>,
    /// Listed a second time under the same name.
    pub(super) duplicate: bool,
}

impl<'a> Info<'a> {
    pub(super) fn new(folder: &'a Folder, source_prefix: Option<&str>) -> Info<'a> {
        let stripped = source_prefix.and_then(|p| strip_prefix_ci(&folder.name, p));
        let rest = stripped.unwrap_or(&folder.name);
        let mut segs: Vec<&'a str> = match folder.delimiter {
            Some(d) => rest.split(d).collect(),
            None => vec![rest],
        };
        let mut inbox = false;
        let mut under_inbox = false;
        if stripped.is_none() {
            if let Some(first) = segs.first_mut() {
                if first.eq_ignore_ascii_case(INBOX) {
                    *first = INBOX;
                    inbox = folder.is_inbox();
                    under_inbox = !inbox;
                }
            }
        }
        let mut path = String::with_capacity(rest.len());
        let mut ends = Vec::with_capacity(segs.len());
        for (i, s) in segs.iter().enumerate() {
            if i > 0 {
                path.push('/');
            }
            path.push_str(s);
            ends.push(path.len());
        }
        let own_use = if inbox {
            None
        } else if let Some(u) = attribute_use(folder) {
            Some((u, Detection::Attribute))
        } else {
            localized_use(&segs).map(|u| (u, Detection::LocalizedName))
        };
        Info {
            folder,
            segs,
            path,
            ends,
            inbox,
            under_inbox,
            own_use,
            rename: None,
            duplicate: false,
        }
    }

    /// The path of the first `n` segments.
    pub(super) fn path_of(&self, n: usize) -> &str {
        match n.checked_sub(1).and_then(|i| self.ends.get(i)) {
            Some(&end) => self.path.get(..end).unwrap_or(&self.path),
            None => "",
        }
    }
}

/// A special use from the name, for a folder at the top of the namespace or directly under
/// `[Gmail]`; never deeper, where such names are the user's own.
fn localized_use(segs: &[&str]) -> Option<SpecialUse> {
    match segs {
        [name] if *name != INBOX => localized::lookup(name, false),
        [root, name] if localized::is_gmail_root(root) => localized::lookup(name, true),
        _ => None,
    }
}

/// The source prefix to strip: the caller's, or detected (see the module documentation).
pub(super) fn detect_source_prefix(source: &[Folder]) -> Option<String> {
    let prefix = format!("{INBOX}.");
    let mut others = 0usize;
    for f in source {
        if f.is_inbox() {
            continue;
        }
        if f.delimiter != Some('.') || strip_prefix_ci(&f.name, &prefix).is_none() {
            return None;
        }
        others += 1;
    }
    (others > 0).then_some(prefix)
}

/// Where a target starts, before the source-derived segments are appended.
#[derive(Clone, Copy)]
pub(super) enum Head<'d> {
    /// The destination's personal prefix.
    Prefix,
    /// INBOX (children go under it, or under the prefix when the prefix is `INBOX.`).
    Inbox,
    /// An existing destination folder, by its decoded name.
    Named(&'d str),
    /// A new special-use folder of this name under the prefix.
    Canonical(&'static str),
}

/// The destination, indexed.
pub(super) struct DestIndex<'d> {
    pub(super) by_key: HashMap<String, &'d Folder>,
    pub(super) by_use: HashMap<SpecialUse, &'d Folder>,
    /// Every folder that could serve each use, in order of preference (attribute, then name;
    /// list order within each): `by_use` holds the first unless an earlier run chose another.
    pub(super) candidates: HashMap<SpecialUse, Vec<&'d Folder>>,
}

impl<'d> DestIndex<'d> {
    pub(super) fn new(dest: &'d Destination, prefix: &str) -> DestIndex<'d> {
        let delim = dest.delimiter;
        let mut by_key = HashMap::with_capacity(dest.folders.len());
        for f in &dest.folders {
            by_key.entry(name_key(&f.name, delim)).or_insert(f);
        }
        let mut candidates: HashMap<SpecialUse, Vec<&'d Folder>> = HashMap::new();
        // A folder the destination lists with an empty name or an empty segment in it is a
        // server oddity we will not build on: appending under it would give an invalid name.
        let usable =
            |f: &Folder| f.selectable() && !f.is_inbox() && !f.name.split(delim).any(str::is_empty);
        for f in dest.folders.iter().filter(|f| usable(f)) {
            if let Some(u) = attribute_use(f) {
                candidates.entry(u).or_default().push(f);
            }
        }
        // By name only where the folder announces no use of its own: an "Archive" marked
        // `\Sent` is the sent folder, not the archive.
        for f in dest
            .folders
            .iter()
            .filter(|f| usable(f) && attribute_use(f).is_none())
        {
            let rest = strip_prefix_ci(&f.name, prefix).unwrap_or(&f.name);
            let segs: Vec<&str> = rest.split(f.delimiter.unwrap_or(delim)).collect();
            if let Some(u) = localized_use(&segs) {
                candidates.entry(u).or_default().push(f);
            }
        }
        let by_use = candidates
            .iter()
            .filter_map(|(u, fs)| Some((*u, *fs.first()?)))
            .collect();
        DestIndex {
            by_key,
            by_use,
            candidates,
        }
    }

    pub(super) fn get(&self, target: &str, delim: char) -> Option<&'d Folder> {
        self.by_key.get(&name_key(target, delim)).copied()
    }
}
