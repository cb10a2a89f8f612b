//! Targets that must not move or meet: folders that earlier runs copied stay where they went
//! (unless the options ask to remap), and two folders planned into one target are resolved
//! or refused, naming both.

use std::collections::{HashMap, HashSet};

use super::folders::name_key;
use super::run::{placement_is_inbox, Run};
use super::INBOX;
use crate::mapping::{PlanEntry, PlanError, Reason};
use crate::utf7;

impl Run<'_, '_, '_> {
    /// Puts every folder that earlier runs copied back where they copied it, unless the
    /// options ask to remap. Returns, per entry, whether it was kept against the plan.
    pub(super) fn keep_earlier_targets(
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
    pub(super) fn resolve_collisions(
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
