//! The planning algorithm behind [`plan`](super::plan).
//!
//! Every folder is looked at a bounded number of times, and every question about another
//! folder ("is my parent the sent folder?", "does the destination have this name?") is a hash
//! lookup, so a 5,000-folder account costs no more than a few passes over its list.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::model::{Folder, SpecialUse};
use crate::utf7;

use super::escape::{escape_with_causes, Causes};
use super::glob::Patterns;
use super::localized::{self, canonical_name};
use super::{
    Destination, Detection, EarlierTargets, Exclusion, FolderPlan, Mode, PlanEntry, PlanError,
    PlanOptions, Reason,
};

const INBOX: &str = "INBOX";

/// Options compiled once (patterns, renames, unified root), ready to plan any number of
/// accounts. Build it with [`Planner::new`]; [`plan`](super::plan) is a shortcut for one
/// account.
#[derive(Clone, Debug)]
pub struct Planner {
    include: Patterns,
    exclude: Patterns,
    exclude_special: Vec<SpecialUse>,
    include_virtual: bool,
    source_prefix: Option<String>,
    renames: Vec<RenameRule>,
    rename_index: HashMap<String, usize>,
    unified: Option<Vec<String>>,
    remap: bool,
}

/// One validated rename.
#[derive(Clone, Debug)]
struct RenameRule {
    from: String,
    to: String,
    /// `to` split at `/`, the first segment canonicalised to `INBOX` if it names INBOX.
    to_segs: Vec<String>,
}

impl RenameRule {
    fn to_inbox(&self) -> bool {
        self.to_segs.first().is_some_and(|s| s == INBOX)
    }
}

/// The segments of a name given with `/` separators, `INBOX` canonicalised in first place (it
/// is case-insensitive by RFC 3501, nothing else is).
fn user_segments(name: &str) -> Vec<String> {
    let mut segs: Vec<String> = name.split('/').map(str::to_string).collect();
    if let Some(first) = segs.first_mut() {
        if first.eq_ignore_ascii_case(INBOX) {
            *first = INBOX.to_string();
        }
    }
    segs
}

impl Planner {
    /// Validates and compiles the options: patterns, renames and the unified root.
    pub fn new(opts: &PlanOptions) -> Result<Planner, PlanError> {
        let include = Patterns::new(&opts.include)?;
        let exclude = Patterns::new(&opts.exclude)?;

        let mut renames = Vec::with_capacity(opts.renames.len());
        let mut rename_index = HashMap::with_capacity(opts.renames.len());
        for (from, to) in &opts.renames {
            let bad = |why: &str| PlanError::InvalidRename {
                from: from.clone(),
                to: to.clone(),
                why: why.to_string(),
            };
            let from_segs = user_segments(from);
            if from_segs.iter().any(String::is_empty) {
                return Err(bad(
                    "the old name is empty or has an empty part (`a//b`, leading or trailing `/`)",
                ));
            }
            let to_segs = user_segments(to);
            if to_segs.iter().any(String::is_empty) {
                return Err(bad(
                    "the new name is empty or has an empty part (`a//b`, leading or trailing `/`)",
                ));
            }
            let key = from_segs.join("/");
            match rename_index.entry(key) {
                Entry::Occupied(_) => return Err(bad("this folder is renamed more than once")),
                Entry::Vacant(v) => {
                    v.insert(renames.len());
                }
            }
            renames.push(RenameRule {
                from: from.clone(),
                to: to.clone(),
                to_segs,
            });
        }

        let unified = match &opts.mode {
            Mode::Mapping => None,
            Mode::Unified { root, address } => {
                if address.is_empty() {
                    return Err(PlanError::EmptyAddress);
                }
                let mut segs = Vec::new();
                if !root.is_empty() {
                    for s in root.split('/') {
                        if s.is_empty() {
                            return Err(PlanError::InvalidRoot { root: root.clone() });
                        }
                        segs.push(s.to_string());
                    }
                }
                segs.push(address.clone());
                Some(segs)
            }
        };

        Ok(Planner {
            include,
            exclude,
            exclude_special: opts.exclude_special.clone(),
            include_virtual: opts.include_virtual,
            source_prefix: opts.source_prefix.clone(),
            renames,
            rename_index,
            unified,
            remap: opts.remap,
        })
    }

    /// Plans one account: where each of `source`'s folders lands on `dest`, as for a first
    /// run.
    pub fn plan(&self, source: &[Folder], dest: &Destination) -> Result<FolderPlan, PlanError> {
        self.plan_after(source, dest, &EarlierTargets::new())
    }

    /// Plans a re-run: like [`Planner::plan`], but every folder that `earlier` runs copied
    /// keeps its destination (see "Re-runs" in the [module documentation](super)).
    pub fn plan_after(
        &self,
        source: &[Folder],
        dest: &Destination,
        earlier: &EarlierTargets,
    ) -> Result<FolderPlan, PlanError> {
        Run::new(self, source, dest, earlier)?.finish()
    }
}

/// The special uses whose folders are views over other folders.
fn is_virtual(u: SpecialUse) -> bool {
    matches!(
        u,
        SpecialUse::All | SpecialUse::Flagged | SpecialUse::Important
    )
}

/// A folder's special use from its attributes: the parsed field first, then the raw list, in
/// case the caller built the [`Folder`] without filling the field.
fn attribute_use(f: &Folder) -> Option<SpecialUse> {
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
fn name_key(name: &str, delim: char) -> String {
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
struct Info<'a> {
    folder: &'a Folder,
    /// The segments inside the personal namespace (source prefix stripped); `INBOX`
    /// canonicalised when it is the real INBOX or the first segment of a child of it.
    segs: Vec<&'a str>,
    /// `segs` joined with `/`: what patterns and renames see.
    path: String,
    /// `path[..ends[k]]` is the path of the first `k + 1` segments.
    ends: Vec<usize>,
    /// The real INBOX.
    inbox: bool,
    /// Under INBOX on a server without prefix (`INBOX/Sub`): stays under INBOX.
    under_inbox: bool,
    own_use: Option<(SpecialUse, Detection)>,
    /// The rename that applies: rule index and how many segments it replaces.
    rename: Option<(usize, usize)>,
    /// Listed a second time under the same name.
    duplicate: bool,
}

impl<'a> Info<'a> {
    fn new(folder: &'a Folder, source_prefix: Option<&str>) -> Info<'a> {
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
    fn path_of(&self, n: usize) -> &str {
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
fn detect_source_prefix(source: &[Folder]) -> Option<String> {
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
enum Head<'d> {
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
struct DestIndex<'d> {
    by_key: HashMap<String, &'d Folder>,
    by_use: HashMap<SpecialUse, &'d Folder>,
    /// Every folder that could serve each use, in order of preference (attribute, then name;
    /// list order within each): `by_use` holds the first unless an earlier run chose another.
    candidates: HashMap<SpecialUse, Vec<&'d Folder>>,
}

impl<'d> DestIndex<'d> {
    fn new(dest: &'d Destination, prefix: &str) -> DestIndex<'d> {
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

    fn get(&self, target: &str, delim: char) -> Option<&'d Folder> {
        self.by_key.get(&name_key(target, delim)).copied()
    }
}

/// One planning run over one account.
struct Run<'p, 'a, 'd> {
    planner: &'p Planner,
    dest: &'d Destination,
    delim: char,
    prefix: String,
    /// The destination prefix is INBOX itself (`INBOX.`): INBOX's children live at the top.
    dot_inbox: bool,
    infos: Vec<Info<'a>>,
    index: DestIndex<'d>,
    earlier: &'d EarlierTargets,
    notes: Vec<String>,
}

/// A placement before escaping: where it starts, what is appended, why.
struct Placement<'x, 'd> {
    head: Head<'d>,
    tail: Vec<&'x str>,
    reason: Reason,
}

impl<'p, 'a, 'd> Run<'p, 'a, 'd> {
    fn new(
        planner: &'p Planner,
        source: &'a [Folder],
        dest: &'d Destination,
        earlier: &'d EarlierTargets,
    ) -> Result<Self, PlanError> {
        let delim = dest.delimiter;
        // The escape writes `%` and upper-case hex digits; a separator among them would split
        // escaped names. No real server uses one.
        if delim == '%'
            || delim.is_ascii_digit()
            || ('A'..='F').contains(&delim)
            || delim.is_control()
        {
            return Err(PlanError::UnsupportedDelimiter { delimiter: delim });
        }
        let mut notes = Vec::new();

        let mut prefix = dest.personal_prefix.clone();
        if !prefix.is_empty() && !prefix.ends_with(delim) {
            prefix.push(delim);
            notes.push(format!(
                "destination prefix `{}` taken as `{prefix}` (prefixes end with the separator)",
                dest.personal_prefix
            ));
        }
        if let Some(body) = prefix.strip_suffix(delim) {
            if body.split(delim).any(str::is_empty) {
                return Err(PlanError::InvalidPrefix {
                    prefix: dest.personal_prefix.clone(),
                });
            }
        }
        let dot_inbox = prefix.eq_ignore_ascii_case(&format!("{INBOX}{delim}"));

        let source_prefix = match &planner.source_prefix {
            Some(p) if p.is_empty() => None,
            Some(p) => Some(p.clone()),
            None => {
                let detected = detect_source_prefix(source);
                if let Some(p) = &detected {
                    notes.push(format!(
                        "source personal prefix `{p}` detected (every folder is under it) and \
                         stripped: `{p}Work` is planned as `Work`"
                    ));
                }
                detected
            }
        };

        let mut infos: Vec<Info<'a>> = source
            .iter()
            .map(|f| Info::new(f, source_prefix.as_deref()))
            .collect();

        let mut seen: HashSet<&str> = HashSet::with_capacity(infos.len());
        for info in &mut infos {
            info.duplicate = !seen.insert(info.folder.name.as_str());
            if !planner.rename_index.is_empty() {
                info.rename = (1..=info.segs.len()).rev().find_map(|n| {
                    planner
                        .rename_index
                        .get(info.path_of(n))
                        .map(|&rule| (rule, n))
                });
            }
        }

        let index = DestIndex::new(dest, &prefix);
        Ok(Run {
            planner,
            dest,
            delim,
            prefix,
            dot_inbox,
            infos,
            index,
            earlier,
            notes,
        })
    }

    fn finish(mut self) -> Result<FolderPlan, PlanError> {
        // Notes are written while `self` is borrowed for lookups, so they live apart.
        let mut notes = std::mem::take(&mut self.notes);
        let infos = &self.infos;

        // The folder itself and each folder above it, by segments; the first listing wins.
        let mut by_segs: HashMap<&[&str], usize> = HashMap::with_capacity(infos.len());
        for (i, info) in infos.iter().enumerate() {
            if !info.duplicate {
                by_segs.entry(info.segs.as_slice()).or_insert(i);
            }
        }

        // The source folder each special use maps from: attribute beats name, then list order.
        let mut winners: HashMap<SpecialUse, usize> = HashMap::new();
        if self.planner.unified.is_none() {
            for (i, info) in infos.iter().enumerate() {
                if info.duplicate || info.inbox || info.rename.is_some() {
                    continue;
                }
                if !info.folder.selectable() {
                    continue;
                }
                let Some((u, det)) = info.own_use else {
                    continue;
                };
                match winners.entry(u) {
                    Entry::Vacant(v) => {
                        v.insert(i);
                    }
                    Entry::Occupied(mut o) => {
                        let current = infos[*o.get()].own_use.map(|(_, d)| d);
                        if det == Detection::Attribute && current != Some(Detection::Attribute) {
                            o.insert(i);
                        }
                    }
                }
            }
        }
        // A special-use folder copied before goes where it went while the destination still
        // offers that folder for the use, even if it now offers another one first (a server
        // without SPECIAL-USE on which the first run created `Drafts` beside `Entwürfe`).
        let mut kept: Vec<(usize, SpecialUse, &'d Folder)> = Vec::new();
        for (&u, &w) in &winners {
            let Some(before) = self.earlier.get(&infos[w].folder.name) else {
                continue;
            };
            let key = name_key(before, self.delim);
            let Some(candidates) = self.index.candidates.get(&u) else {
                continue;
            };
            let Some(&chosen) = candidates
                .iter()
                .find(|f| name_key(&f.name, self.delim) == key)
            else {
                continue;
            };
            if candidates.first().is_some_and(|f| std::ptr::eq(*f, chosen)) {
                continue;
            }
            kept.push((w, u, chosen));
        }
        kept.sort_by_key(|(w, _, _)| *w);
        for (w, u, chosen) in kept {
            let others: Vec<String> = self
                .index
                .candidates
                .get(&u)
                .into_iter()
                .flatten()
                .filter(|f| !std::ptr::eq(**f, chosen))
                .map(|f| format!("`{}`", f.name))
                .collect();
            notes.push(format!(
                "`{}` is the destination's {} folder again, as earlier runs copied `{}` into it \
                 (the destination also has {})",
                chosen.name,
                u.name(),
                infos[w].folder.name,
                others.join(", ")
            ));
            self.index.by_use.insert(u, chosen);
        }

        let winner_at: HashMap<&[&str], SpecialUse> = winners
            .iter()
            .map(|(u, &i)| (infos[i].segs.as_slice(), *u))
            .collect();

        let mut entries: Vec<PlanEntry> = Vec::new();
        let mut entry_info: Vec<usize> = Vec::new();
        let mut excluded: Vec<(Folder, Exclusion)> = Vec::new();
        let mut used_renames = vec![false; self.planner.renames.len()];
        let mut escape_noted: HashSet<String> = HashSet::new();
        let mut virtual_notes: Vec<String> = Vec::new();

        for (i, info) in infos.iter().enumerate() {
            if let Some(why) = self.exclusion(info, &by_segs) {
                if let Exclusion::Virtual(u) = why {
                    if info.own_use.map(|(own, _)| own) == Some(u) {
                        virtual_notes.push(virtual_note(&info.folder.name, u));
                    }
                }
                excluded.push((info.folder.clone(), why));
                continue;
            }
            if let Some((rule, _)) = info.rename {
                used_renames[rule] = true;
            }
            let placement = self.place(i, info, &winners, &winner_at);
            let entry = self.materialize(info, placement, &mut escape_noted, &mut notes)?;
            entries.push(entry);
            entry_info.push(i);
        }

        let pinned = self.keep_earlier_targets(&mut entries, &entry_info, &mut notes);
        let merged = self.resolve_collisions(&mut entries, &entry_info, &pinned, &mut notes)?;

        // Folders that look like a special-use folder but lost to another one.
        for ((e, &i), &kept) in entries.iter().zip(&entry_info).zip(&pinned) {
            let info = &infos[i];
            if kept {
                continue;
            }
            let (Some((u, det)), None) = (info.own_use, info.rename) else {
                continue;
            };
            let Some(&w) = winners.get(&u) else { continue };
            if w == i || merged.contains(&i) || info.inbox {
                continue;
            }
            let winner = &infos[w];
            let wdet = winner.own_use.map(|(_, d)| d).unwrap_or(det);
            notes.push(format!(
                "`{}` also looks like the {} folder ({}), but `{}` ({}) is the one mapped to \
                 the destination's {} folder; `{}` keeps its own place as `{}`",
                info.folder.name,
                u.name(),
                detection_words(det),
                winner.folder.name,
                detection_words(wdet),
                u.name(),
                info.folder.name,
                e.target
            ));
        }

        for (rule, used) in self.planner.renames.iter().zip(used_renames) {
            if !used {
                notes.push(format!(
                    "rename `{}` = `{}` matched no copied source folder",
                    rule.from, rule.to
                ));
            }
        }
        notes.extend(virtual_notes);

        Ok(FolderPlan {
            entries,
            excluded,
            notes,
        })
    }

    /// Why a folder is not copied, if it is not.
    fn exclusion(&self, info: &Info<'_>, by_segs: &HashMap<&[&str], usize>) -> Option<Exclusion> {
        if info.duplicate {
            return Some(Exclusion::Duplicate);
        }
        if !info.folder.selectable() {
            return Some(Exclusion::NotSelectable);
        }
        let p = self.planner;
        if !p.include.is_empty() && p.include.first_match(&info.path).is_none() {
            return Some(Exclusion::IncludeMissed);
        }
        if let Some(pattern) = p.exclude.first_match(&info.path) {
            return Some(Exclusion::ExcludePattern(pattern.to_string()));
        }
        // The folder's own use, then each folder above it, nearest first.
        let uses = std::iter::once(info.own_use).chain((1..info.segs.len()).rev().map(|n| {
            info.segs
                .get(..n)
                .and_then(|s| by_segs.get(s))
                .and_then(|&j| self.infos.get(j))
                .and_then(|a| a.own_use)
        }));
        for (u, _) in uses.flatten() {
            if p.exclude_special.contains(&u) {
                return Some(Exclusion::SpecialUse(u));
            }
            if is_virtual(u) && !p.include_virtual {
                return Some(Exclusion::Virtual(u));
            }
        }
        None
    }

    /// Where the destination keeps (or will keep) the folder of special use `u`; `None` when it
    /// has none and nobody makes one by hand (virtual uses): the folder keeps its place.
    fn use_head(&self, u: SpecialUse) -> Option<Head<'d>> {
        match self.index.by_use.get(&u) {
            Some(f) => Some(Head::Named(f.name.as_str())),
            None => canonical_name(u).map(Head::Canonical),
        }
    }

    /// The folder's own place: under INBOX for INBOX's children, else under the prefix.
    fn own_tree<'x>(&self, info: &'x Info<'_>) -> (Head<'d>, Vec<&'x str>) {
        match info.segs.split_first() {
            Some((_, rest)) if info.under_inbox => (Head::Inbox, rest.to_vec()),
            _ => (Head::Prefix, info.segs.clone()),
        }
    }

    fn place<'x>(
        &'x self,
        i: usize,
        info: &'x Info<'a>,
        winners: &HashMap<SpecialUse, usize>,
        winner_at: &HashMap<&[&str], SpecialUse>,
    ) -> Placement<'x, 'd> {
        let renamed: Option<(&'x RenameRule, &'x [&'a str])> = info
            .rename
            .and_then(|(rule, n)| Some((self.planner.renames.get(rule)?, info.segs.get(n..)?)));

        if let Some(unified) = &self.planner.unified {
            let mut tail: Vec<&'x str> = unified.iter().map(String::as_str).collect();
            let reason = match renamed {
                Some((rule, rest)) => {
                    tail.extend(rule.to_segs.iter().map(String::as_str));
                    tail.extend(rest.iter().copied());
                    Reason::Rename
                }
                None => {
                    tail.extend(info.segs.iter().copied());
                    Reason::Unified
                }
            };
            return Placement {
                head: Head::Prefix,
                tail,
                reason,
            };
        }

        if let Some((rule, rest)) = renamed {
            let segs: Vec<&'x str> = rule
                .to_segs
                .iter()
                .map(String::as_str)
                .chain(rest.iter().copied())
                .collect();
            let (head, tail) = if rule.to_inbox() {
                (Head::Inbox, segs.get(1..).unwrap_or_default().to_vec())
            } else {
                (Head::Prefix, segs)
            };
            return Placement {
                head,
                tail,
                reason: Reason::Rename,
            };
        }

        if info.inbox {
            return Placement {
                head: Head::Inbox,
                tail: Vec::new(),
                reason: Reason::Inbox,
            };
        }

        // The folder is itself the mapped folder of its use.
        if let Some((u, det)) = info.own_use {
            if winners.get(&u) == Some(&i) {
                if let Some(head) = self.use_head(u) {
                    return Placement {
                        head,
                        tail: Vec::new(),
                        reason: Reason::SpecialUse(u, det),
                    };
                }
            }
        }

        // A folder above it is a mapped special-use folder: follow it, nearest first.
        for n in (1..info.segs.len()).rev() {
            let Some(above) = info.segs.get(..n) else {
                continue;
            };
            let Some(&u) = winner_at.get(above) else {
                continue;
            };
            if let Some(head) = self.use_head(u) {
                let parent = winners
                    .get(&u)
                    .and_then(|&w| self.infos.get(w))
                    .map(|w| w.folder.name.clone())
                    .unwrap_or_default();
                return Placement {
                    head,
                    tail: info.segs.get(n..).unwrap_or_default().to_vec(),
                    reason: Reason::FollowsParent(parent),
                };
            }
        }

        let (head, tail) = self.own_tree(info);
        Placement {
            head,
            tail,
            reason: Reason::SameTree,
        }
    }

    /// Turns a placement into an entry: escapes the appended segments, builds the name in both
    /// forms, looks it up on the destination, notes escapes.
    fn materialize(
        &self,
        info: &Info<'_>,
        placement: Placement<'_, 'd>,
        escape_noted: &mut HashSet<String>,
        notes: &mut Vec<String>,
    ) -> Result<PlanEntry, PlanError> {
        let delim = self.delim;
        let mut target = String::new();
        match placement.head {
            Head::Prefix => target.push_str(&self.prefix),
            Head::Inbox if placement.tail.is_empty() => target.push_str(INBOX),
            Head::Inbox if self.dot_inbox => target.push_str(&self.prefix),
            Head::Inbox => {
                target.push_str(INBOX);
                target.push(delim);
            }
            Head::Named(name) => {
                target.push_str(name);
                if !placement.tail.is_empty() {
                    target.push(delim);
                }
            }
            Head::Canonical(name) => {
                target.push_str(&self.prefix);
                target.push_str(name);
                if !placement.tail.is_empty() {
                    target.push(delim);
                }
            }
        }

        // The deepest escaped segment, to note it once for it and everything under it.
        let mut escaped_at: Option<(usize, &str, String, Causes)> = None;
        let mut tail_valid = true;
        for (k, seg) in placement.tail.iter().enumerate() {
            if k > 0 {
                target.push(delim);
            }
            let esc = escape_with_causes(seg, delim);
            tail_valid &= !esc.text.is_empty();
            target.push_str(&esc.text);
            if !esc.causes.is_empty() {
                escaped_at = Some((target.len(), seg, esc.text.into_owned(), esc.causes));
            }
        }

        if target.is_empty() || !tail_valid || target.ends_with(delim) {
            return Err(PlanError::InvalidTarget {
                source_name: info.folder.name.clone(),
                target,
            });
        }

        let mut reason = placement.reason;
        if let Some((end, original, escaped, causes)) = escaped_at {
            if reason == Reason::SameTree {
                reason = Reason::Escaped;
            }
            let scope = target.get(..end).unwrap_or(&target).to_string();
            let under = if end < target.len() {
                " (and so in every folder under it)"
            } else {
                ""
            };
            if escape_noted.insert(scope) {
                notes.push(format!(
                    "source folder `{}` stored as `{}`: `{original}` is written `{escaped}`{under} \
                     because {}; unescape_segment undoes it",
                    info.folder.name,
                    target,
                    causes.describe(delim)
                ));
            }
        }

        let existing = if placement_is_inbox(&target) {
            None
        } else {
            self.index.get(&target, delim)
        };
        let inbox = placement_is_inbox(&target);
        let exists = inbox || existing.is_some();
        let target_raw = match existing {
            Some(f) => f.raw.clone(),
            None if inbox => INBOX.to_string(),
            None if self.dest.utf8 => target.clone(),
            None => utf7::encode(&target),
        };
        let special_use = match &reason {
            Reason::SpecialUse(u, _) => Some(*u),
            _ => existing.and_then(|f| self.use_of(f)),
        };
        let target = if inbox { INBOX.to_string() } else { target };
        Ok(PlanEntry {
            source: info.folder.clone(),
            target,
            target_raw,
            exists,
            special_use,
            reason,
        })
    }

    /// The special use an existing destination folder serves in this plan, if any.
    fn use_of(&self, f: &Folder) -> Option<SpecialUse> {
        attribute_use(f).or_else(|| {
            self.index
                .by_use
                .iter()
                .find(|(_, g)| std::ptr::eq(**g, f))
                .map(|(u, _)| *u)
        })
    }

    /// Puts every folder that earlier runs copied back where they copied it, unless the
    /// options ask to remap. Returns, per entry, whether it was kept against the plan.
    fn keep_earlier_targets(
        &self,
        entries: &mut [PlanEntry],
        entry_info: &[usize],
        notes: &mut Vec<String>,
    ) -> Vec<bool> {
        let delim = self.delim;
        let mut pinned = vec![false; entries.len()];
        for ((entry, &i), kept) in entries.iter_mut().zip(entry_info).zip(&mut pinned) {
            let source = &self.infos[i].folder.name;
            let Some(before) = self.earlier.get(source).filter(|b| !b.is_empty()) else {
                continue;
            };
            if name_key(before, delim) == name_key(&entry.target, delim) {
                // The same folder; keep the name exactly as recorded, so the engine finds
                // its record under it.
                if !placement_is_inbox(&entry.target) {
                    entry.target = before.to_string();
                }
                if !entry.exists {
                    notes.push(gone_note(source, before));
                }
                continue;
            }
            if self.planner.remap {
                notes.push(format!(
                    "`{source}` moves from `{before}` to `{}` (remap): it is copied afresh \
                     there, where messages already present are matched by content; its copies \
                     in `{before}` stay where they are",
                    entry.target
                ));
                continue;
            }
            let inbox = placement_is_inbox(before);
            let existing = if inbox {
                None
            } else {
                self.index.get(before, delim)
            };
            let planned = std::mem::replace(
                &mut entry.target,
                if inbox {
                    INBOX.to_string()
                } else {
                    before.to_string()
                },
            );
            entry.exists = inbox || existing.is_some();
            entry.target_raw = match existing {
                Some(f) => f.raw.clone(),
                None if inbox => INBOX.to_string(),
                None if self.dest.utf8 => before.to_string(),
                None => utf7::encode(before),
            };
            entry.special_use = existing.and_then(|f| self.use_of(f));
            if entry.exists {
                notes.push(format!(
                    "`{source}` stays in `{before}`, where earlier runs copied it, although the \
                     plan now puts it in `{planned}`: moving it would copy its messages again. \
                     To move it, re-run with remap (it is then copied afresh into `{planned}`, \
                     and its copies in `{before}` stay where they are)"
                ));
            } else {
                notes.push(format!(
                    "{} (the plan alone would now put it in `{planned}`; remap moves it there)",
                    gone_note(source, before)
                ));
            }
            entry.reason = Reason::CopiedBefore { planned };
            *kept = true;
        }
        pinned
    }

    /// Whether earlier runs copied the entry's source folder into the folder named `key`.
    fn copied_before_into(&self, entry: &PlanEntry, key: &str) -> bool {
        self.earlier
            .get(&entry.source.name)
            .is_some_and(|b| name_key(b, self.delim) == key)
    }

    /// Finds entries sharing a destination name. Merges the documented special-use case and
    /// fails on anything else. Returns the source indexes of merged (losing) folders.
    ///
    /// Folders kept where earlier runs copied them (`pinned`) share a destination folder only
    /// with folders copied there before too, or in a special-use merge of their own use;
    /// anything else fails with [`PlanError::Occupied`].
    fn resolve_collisions(
        &self,
        entries: &mut [PlanEntry],
        entry_info: &[usize],
        pinned: &[bool],
        notes: &mut Vec<String>,
    ) -> Result<HashSet<usize>, PlanError> {
        let mut groups: HashMap<String, Vec<usize>> = HashMap::with_capacity(entries.len());
        for (e, entry) in entries.iter().enumerate() {
            groups
                .entry(name_key(&entry.target, self.delim))
                .or_default()
                .push(e);
        }
        let mut merged = HashSet::new();
        // Walk in entry order so the error (and notes) are the same on every run.
        for e in 0..entries.len() {
            let Some(group) = groups.get(&name_key(&entries[e].target, self.delim)) else {
                continue;
            };
            if group.len() < 2 || group.first() != Some(&e) {
                continue;
            }
            let holder = group.iter().copied().find(|&g| pinned[g]);
            let clash = |entries: &[PlanEntry], a: usize, b: usize| match holder {
                Some(h) => occupied(entries, h, group.iter().copied().find(|&g| !pinned[g])),
                None => collision(entries, a, b),
            };
            if holder.is_some() {
                // Already together on the destination: keeping them so mixes nothing new.
                let key = name_key(&entries[e].target, self.delim);
                if group
                    .iter()
                    .all(|&g| self.copied_before_into(&entries[g], &key))
                {
                    continue;
                }
            }
            let winner = group
                .iter()
                .copied()
                .find(|&g| matches!(entries[g].reason, Reason::SpecialUse(..)));
            let Some(w) = winner else {
                return Err(clash(entries, group[0], group[1]));
            };
            let Reason::SpecialUse(u, _) = entries[w].reason else {
                continue;
            };
            for &g in group.iter().filter(|&&g| g != w) {
                let info = &self.infos[entry_info[g]];
                let own_tree = matches!(entries[g].reason, Reason::SameTree | Reason::Escaped);
                match info.own_use {
                    // A folder of the same use kept where earlier runs copied it, which is
                    // now the destination's folder of that use: the same merge.
                    Some((lu, _)) if lu == u && pinned[g] => {
                        merged.insert(entry_info[g]);
                        notes.push(format!(
                            "`{}` and `{}` are both {} folders and both land in `{}`, where \
                             earlier runs copied `{}`: their messages are merged there (a \
                             special-use merge)",
                            entries[w].source.name,
                            entries[g].source.name,
                            u.name(),
                            entries[w].target,
                            entries[g].source.name,
                        ));
                    }
                    Some((lu, det)) if lu == u && own_tree => {
                        let (target, raw, exists) = (
                            entries[w].target.clone(),
                            entries[w].target_raw.clone(),
                            entries[w].exists,
                        );
                        let loser = &mut entries[g];
                        loser.target = target;
                        loser.target_raw = raw;
                        loser.exists = exists;
                        loser.special_use = Some(u);
                        loser.reason = Reason::SpecialUse(u, det);
                        merged.insert(entry_info[g]);
                        notes.push(format!(
                            "`{}` and `{}` are both {} folders and both land in `{}`: their \
                             messages are merged there (a special-use merge)",
                            entries[w].source.name,
                            entries[g].source.name,
                            u.name(),
                            entries[w].target
                        ));
                    }
                    _ => return Err(clash(entries, w.min(g), w.max(g))),
                }
            }
        }
        Ok(merged)
    }
}

fn placement_is_inbox(target: &str) -> bool {
    target.eq_ignore_ascii_case(INBOX)
}

fn collision(entries: &[PlanEntry], a: usize, b: usize) -> PlanError {
    PlanError::Collision {
        a: entries[a].source.name.clone(),
        b: entries[b].source.name.clone(),
        target: entries[b].target.clone(),
    }
}

/// `holder` is kept where earlier runs copied it; `other` (when known) would now land there.
fn occupied(entries: &[PlanEntry], holder: usize, other: Option<usize>) -> PlanError {
    let h = &entries[holder];
    let planned = match &h.reason {
        Reason::CopiedBefore { planned } => planned.clone(),
        _ => h.target.clone(),
    };
    PlanError::Occupied {
        folder: other
            .and_then(|o| entries.get(o))
            .map(|o| o.source.name.clone())
            .unwrap_or_default(),
        target: h.target.clone(),
        holder: h.source.name.clone(),
        planned,
    }
}

/// The note for a folder whose earlier destination is gone from the destination server.
fn gone_note(source: &str, before: &str) -> String {
    format!(
        "earlier runs copied `{source}` into `{before}`, which the destination no longer has \
         (deleted or renamed there): it is created again and `{source}` is copied into it afresh"
    )
}

fn detection_words(d: Detection) -> &'static str {
    match d {
        Detection::Attribute => "by its LIST attribute",
        Detection::LocalizedName => "by its name",
    }
}

fn virtual_note(name: &str, u: SpecialUse) -> String {
    let mut note = format!(
        "`{name}` ({}) is not copied: it is a virtual view whose messages are also in other \
         folders, so copying it would store them twice",
        u.attribute()
    );
    if u == SpecialUse::All {
        note.push_str(
            ". On Gmail, messages archived without any label exist only in All Mail: set \
             include_virtual to copy it too (labelled messages then arrive twice)",
        );
    }
    note
}
