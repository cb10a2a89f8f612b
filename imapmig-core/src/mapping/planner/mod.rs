//! The planning algorithm behind [`plan`](super::plan).
//!
//! Every folder is looked at a bounded number of times, and every question about another
//! folder ("is my parent the sent folder?", "does the destination have this name?") is a hash
//! lookup, so a 5,000-folder account costs no more than a few passes over its list.
//!
//! This file compiles the options ([`Planner`]); [`folders`] says what each folder is (its
//! special use, its path, the destination's folders by name), [`run`] places every folder of
//! one account, and [`targets`] keeps earlier runs' targets and resolves collisions.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::model::{Folder, SpecialUse};

use super::glob::Patterns;
use super::{Destination, EarlierTargets, FolderPlan, Mode, PlanError, PlanOptions};
use run::Run;

mod folders;
mod run;
mod targets;

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
