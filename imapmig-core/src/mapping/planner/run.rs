//! One planning run over one account: every source folder placed (by its special use, its
//! rename, or its own tree), excluded with its reason, or merged; then names escaped for the
//! destination and the plan assembled with its notes.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use super::folders::{
    attribute_use, detect_source_prefix, is_virtual, name_key, DestIndex, Head, Info,
};
use super::{Planner, RenameRule, INBOX};
use crate::mapping::escape::{escape_with_causes, Causes};
use crate::mapping::localized::canonical_name;
use crate::mapping::{
    Destination, Detection, EarlierTargets, Exclusion, FolderPlan, PlanEntry, PlanError, Reason,
};
use crate::model::{Folder, SpecialUse};
use crate::utf7;

/// One planning run over one account.
pub(super) struct Run<'p, 'a, 'd> {
    pub(super) planner: &'p Planner,
    pub(super) dest: &'d Destination,
    pub(super) delim: char,
    pub(super) prefix: String,
    /// The destination prefix is INBOX itself (`INBOX.`): INBOX's children live at the top.
    pub(super) dot_inbox: bool,
    pub(super) infos: Vec<Info<'a>>,
    pub(super) index: DestIndex<'d>,
    pub(super) earlier: &'d EarlierTargets,
    pub(super) notes: Vec<String>,
}

/// A placement before escaping: where it starts, what is appended, why.
pub(super) struct Placement<'x, 'd> {
    pub(super) head: Head<'d>,
    pub(super) tail: Vec<&'x str>,
    pub(super) reason: Reason,
}

impl<'p, 'a, 'd> Run<'p, 'a, 'd> {
    pub(super) fn new(
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

    pub(super) fn finish(mut self) -> Result<FolderPlan, PlanError> {
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
    pub(super) fn own_tree<'x>(&self, info: &'x Info<'_>) -> (Head<'d>, Vec<&'x str>) {
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
    pub(super) fn use_of(&self, f: &Folder) -> Option<SpecialUse> {
        attribute_use(f).or_else(|| {
            self.index
                .by_use
                .iter()
                .find(|(_, g)| std::ptr::eq(**g, f))
                .map(|(u, _)| *u)
        })
    }
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

/// Whether a target is the INBOX (its name is case-blind).
pub(super) fn placement_is_inbox(target: &str) -> bool {
    target.eq_ignore_ascii_case(INBOX)
}
