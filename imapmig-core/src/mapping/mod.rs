//! Folder planning: where each source folder lands on the destination.
//!
//! This module owns one pure function, [`plan`] (and [`Planner`], the same thing with the
//! options compiled once for a batch of accounts): from the source's folder list, the
//! destination's folder list and the user's options it computes a [`FolderPlan`] that can be
//! printed for a dry run ([`FolderPlan::render`]) before anything is copied. It never does
//! I/O, never creates anything and never panics, whatever names the servers return.
//!
//! # Modes
//!
//! * [`Mode::Mapping`] (the default) puts each folder where a user of the destination expects
//!   it: INBOX into INBOX, the sent folder into the destination's sent folder, and so on;
//!   other folders keep their place in the tree.
//! * [`Mode::Unified`] puts the whole source mailbox, untouched, under
//!   `<root>/<source address>/` (e.g. `Migrated/user@old.example/INBOX`): for merging several
//!   old accounts into one, or for keeping an untouched copy. No special-use mapping is done.
//!
//! In both modes the source personal prefix is stripped and the destination's
//! ([`Destination::personal_prefix`]) is added: `INBOX.Work.Projects` on a Courier-style source
//! becomes `Work/Projects` on a `/` destination without prefix, and a top-level `Work` becomes
//! `INBOX.Work` on a destination whose prefix is `INBOX.`. The source prefix is taken from
//! [`PlanOptions::source_prefix`] (the engine passes what NAMESPACE said); when that is `None`
//! it is detected: a `.`-separated source on which every folder other than INBOX starts with
//! `INBOX.` has the prefix `INBOX.`. Detection is limited to `.` servers because on `/` servers
//! `INBOX/Sub` is usually a real child of INBOX, which stays under INBOX.
//!
//! # Special use (mapping mode)
//!
//! A source folder's special use comes from its LIST attributes (RFC 6154) first; otherwise
//! from a table of names clients create in English, German, French, Spanish, Italian,
//! Portuguese, Russian, Chinese, Japanese and Korean ("Sent Items", "Gesendete Elemente",
//! "已发送", "送信済みアイテム", ...). Names are matched on the last segment only, lower-cased
//! but otherwise exactly, and only at the top of the personal namespace or directly under
//! Gmail's `[Gmail]`: `Clients/Sent` is a customer's folder, not the sent folder.
//!
//! The destination's folder for that use is found the same way (attributes, then names); when
//! it has none, the plan names a new folder `Sent`, `Drafts`, `Trash`, `Junk` or `Archive`
//! under the destination prefix, with [`PlanEntry::exists`] `false` and
//! [`PlanEntry::special_use`] set, so the engine can create it with `CREATE ... (USE (\Sent))`.
//! Subfolders follow their parent: `Sent Items/2019` lands in `Sent/2019`.
//!
//! When two source folders have the same use (a `Sent` with the `\Sent` attribute and an old
//! `Sent Items`), the one with the attribute wins (or the first listed); the other keeps its
//! own place in the tree and a note says so.
//!
//! ## Special-use merges: the only time two folders share a target
//!
//! If the folder that lost keeps its own place, and that place *is* the destination's folder
//! for the same use (source `Sent` with `\Sent` and an old `Sent Items`; destination sent
//! folder `Sent Items`), the two are merged: both are copied into that folder, both entries
//! carry [`Reason::SpecialUse`] with the same use, and a note names them. This is the one case
//! where two entries share a target; every other pair of source folders that would land in the
//! same place is a [`PlanError::Collision`] naming both, to be resolved with a rename. That
//! includes a folder named like INBOX (`INBOX.Inbox` on a Courier source): INBOX is never
//! merged with anything.
//!
//! # Virtual folders are not copied by default
//!
//! Folders with `\All` (Gmail "All Mail"), `\Flagged` (Gmail "Starred") and `\Important`
//! (Gmail "Important") are views: every message in them is also in another folder, so copying
//! them would store each message two or more times on the destination. They are excluded with
//! [`Exclusion::Virtual`] unless [`PlanOptions::include_virtual`] is set. One caveat, repeated
//! in the plan's notes: on Gmail a message archived without any label exists *only* in All Mail;
//! to keep those, include virtual folders and accept that labelled messages arrive twice.
//!
//! # Filters and renames
//!
//! Include and exclude patterns are globs over the decoded source name with `/` between
//! segments and the source prefix stripped (`Archive/**`, `INBOX`, `Work{,/**}`); see
//! [`PlanOptions::include`]. Excluding a folder does not exclude its children: if they are
//! copied the destination creates the parent implicitly. Excluding a special use
//! ([`PlanOptions::exclude_special`]) does exclude everything under a folder of that use: "do
//! not copy Trash" includes Trash's subfolders. Where a folder lands never depends on the
//! filters; they only decide whether it is copied.
//!
//! Renames ([`PlanOptions::renames`]) come before everything else: `Old Name` → `New/Name`
//! moves that folder and everything under it, and the renamed folders take no part in
//! special-use mapping.
//!
//! # Names the destination cannot hold
//!
//! A segment (the part of a name between separators) is escaped when it holds a character the
//! destination cannot keep in a name: its hierarchy separator (`a.b` from a `/` server onto a
//! `.` server would otherwise become two folders), the LIST wildcards `*` and `%`, control
//! characters, or a leading or trailing space (which servers trim). Each such character is
//! written as `%` and two upper-case hex digits per UTF-8 byte: `a.b` → `a%2Eb`, `Q*` → `Q%2A`,
//! ` x` → `%20x`; an empty segment (from `a//b` or a trailing separator) is written `%FF`.
//! Everything else in the segment is left as it is: `Entwürfe` stays `Entwürfe`.
//!
//! Because `%` is itself one of the characters that are escaped, a segment containing `%` on
//! the destination was always escaped: the scheme is reversible with [`unescape_segment`]
//! (apply it to each segment that contains `%`), two different source names never escape to
//! the same name, and a segment that needed no escaping is never touched. The plan adds a note
//! "source folder X stored as Y because ..." for each escape, and an entry that kept its place
//! but needed escaping has the reason [`Reason::Escaped`].
//!
//! # Re-runs: a copied folder keeps its destination
//!
//! The plan of a re-run must not move a folder that earlier runs copied: its messages are at
//! the old place, and copying them to a new one would store them twice. The engine therefore
//! plans with [`Planner::plan_after`], giving the destinations the sync state recorded
//! ([`EarlierTargets`]):
//!
//! * When the destination offers several folders for one special use (a server without
//!   SPECIAL-USE on which the first run created `INBOX.Drafts` beside an `INBOX.Entwürfe`),
//!   the one the special-use folder was copied into is chosen again, with a short note. So
//!   is a destination folder that has since gained or lost an attribute.
//! * When the plan still puts a copied folder elsewhere (the options changed: unified mode, a
//!   rename; or the destination's prefix did), the folder stays where it was copied, with
//!   [`Reason::CopiedBefore`] naming where the plan would put it and a note saying how to move
//!   it: [`PlanOptions::remap`]. With `remap`, the plan is followed and the engine copies the
//!   folder afresh into its new place (re-matching by content what is already there).
//! * When the folder a copied folder went to is gone from the destination (deleted or renamed
//!   there), the entry keeps that name with [`PlanEntry::exists`] `false`: the engine creates
//!   it again and copies the folder into it afresh, and says so. It never believes its own
//!   records over the destination.
//!
//! Keeping a folder in place never makes two source folders share a destination folder that
//! the options do not merge: if another folder would now land where a kept folder's copies
//! are, planning fails with [`PlanError::Occupied`]. Folders that earlier runs already merged
//! (a special-use merge) stay merged. New folders (never copied) always go where the options
//! say, subfolders of a kept folder included.
//!
//! # Cost
//!
//! Planning costs `O(n · d)` hash lookups for `n` folders nested `d` deep: one per ancestor,
//! never a scan of all folders per folder. Compile the options once with [`Planner::new`] when
//! planning many accounts.

mod escape;
mod glob;
mod localized;
mod planner;
mod render;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::model::{Folder, SpecialUse};

pub use escape::{escape_segment, unescape_segment};
pub use planner::Planner;

/// How source folders are placed on the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Each folder where a destination user expects it: INBOX to INBOX, special-use folders to
    /// the destination's folders of the same use, everything else in the same tree.
    #[default]
    Mapping,
    /// The whole source tree, unchanged, under `<root>/<address>/` on the destination.
    Unified {
        /// The folder everything goes under, with `/` between segments whatever the
        /// destination's separator (e.g. `Migrated`); empty for none.
        root: String,
        /// The source account's address, used as one folder name (e.g. `user@old.example`);
        /// a separator in it is escaped, never split.
        address: String,
    },
}

/// What to plan and how; [`PlanOptions::default`] is mapping mode, everything copied except
/// virtual folders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Mapping or unified placement.
    pub mode: Mode,
    /// Globs a folder must match to be copied; empty copies everything. They match the decoded
    /// source name with `/` between segments (whatever the source's separator) and the source
    /// personal prefix stripped: `INBOX`, `Work{,/**}`, `Archive/20*`. `*` stays inside one
    /// segment, `**` crosses segments. Case-sensitive.
    pub include: Vec<String>,
    /// Globs (same form as [`PlanOptions::include`]) for folders not to copy. Children of an
    /// excluded folder are still copied unless a pattern excludes them too (`Archive{,/**}`).
    pub exclude: Vec<String>,
    /// Special uses not to copy, found by attribute or localized name; the folders' subfolders
    /// are not copied either.
    pub exclude_special: Vec<SpecialUse>,
    /// Explicit renames, `(old, new)`, both decoded with `/` between segments and the source
    /// prefix left out of `old` (`("Old Name", "New/Name")`). A renamed folder takes its
    /// subfolders along. They are applied before everything else.
    pub renames: Vec<(String, String)>,
    /// The source's personal namespace prefix, as NAMESPACE gives it (`INBOX.`), or `Some("")`
    /// for none. `None` detects it from the folder list (see the module documentation).
    pub source_prefix: Option<String>,
    /// Copy virtual folders (`\All`, `\Flagged`, `\Important`) too. Off by default: their
    /// messages are also in other folders, so copying them duplicates mail.
    pub include_virtual: bool,
    /// Move folders that earlier runs copied somewhere else than these options now say: each
    /// goes where the options put it and is copied there afresh (what that folder already
    /// holds is re-matched by content first); the copies at the old place are left alone. Off
    /// by default: a copied folder keeps its destination (see "Re-runs" in the module
    /// documentation).
    /// Absent from JSON when false, so that stored task settings read as before.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remap: bool,
}

impl PlanError {
    /// The option at fault, as configurations name it: `include`, `exclude`, `renames`,
    /// `unified_root`, `unified_address`, or `folders` for what no option caused.
    pub fn field(&self, opts: &PlanOptions) -> &'static str {
        match self {
            PlanError::InvalidPattern { pattern, .. } if opts.include.contains(pattern) => {
                "include"
            }
            PlanError::InvalidPattern { .. } => "exclude",
            PlanError::InvalidRename { .. } => "renames",
            PlanError::InvalidRoot { .. } => "unified_root",
            PlanError::EmptyAddress => "unified_address",
            _ => "folders",
        }
    }
}

/// Where earlier runs copied source folders, as the sync state recorded it: source folder name
/// (decoded, as the source lists it) → destination folder name (decoded). Given to
/// [`Planner::plan_after`] so that a re-run keeps every copied folder where it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EarlierTargets {
    by_source: std::collections::HashMap<String, String>,
}

impl EarlierTargets {
    /// No folder copied yet: the plan of a first run.
    pub fn new() -> EarlierTargets {
        EarlierTargets::default()
    }

    /// Records that earlier runs copied `source` into `target`.
    pub fn insert(&mut self, source: impl Into<String>, target: impl Into<String>) {
        self.by_source.insert(source.into(), target.into());
    }

    /// Where earlier runs copied `source`, if they did.
    pub fn get(&self, source: &str) -> Option<&str> {
        self.by_source.get(source).map(String::as_str)
    }

    /// Whether no folder was copied before.
    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty()
    }
}

impl<S: Into<String>, T: Into<String>> FromIterator<(S, T)> for EarlierTargets {
    fn from_iter<I: IntoIterator<Item = (S, T)>>(iter: I) -> Self {
        let mut e = EarlierTargets::new();
        for (s, t) in iter {
            e.insert(s, t);
        }
        e
    }
}

/// What the planner needs to know about the destination account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// The destination's folders as LIST returned them.
    pub folders: Vec<Folder>,
    /// Its hierarchy separator.
    pub delimiter: char,
    /// Its personal namespace prefix from NAMESPACE (`INBOX.` on Courier, Cyrus and Dovecot
    /// with that layout, `""` on most others). A missing trailing separator is added.
    pub personal_prefix: String,
    /// Whether UTF8=ACCEPT is enabled: folder names then go on the wire as UTF-8 instead of
    /// modified UTF-7.
    pub utf8: bool,
}

/// The outcome of planning: what goes where, what is left out and why, and what the user
/// should know.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderPlan {
    /// One entry per source folder to copy, in the source's order.
    pub entries: Vec<PlanEntry>,
    /// Source folders not copied, each with the reason, in the source's order.
    pub excluded: Vec<(Folder, Exclusion)>,
    /// Things the user should read before copying: escaped names, merged or competing
    /// special-use folders, renames that matched nothing, the detected source prefix.
    pub notes: Vec<String>,
}

/// Where one source folder lands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    /// The source folder.
    pub source: Folder,
    /// The full destination name, decoded, with the destination's separator and prefix.
    pub target: String,
    /// The destination name as it goes on the wire: modified UTF-7, or UTF-8 under
    /// UTF8=ACCEPT; an existing folder's name exactly as the destination listed it.
    pub target_raw: String,
    /// Whether the destination already has this folder (INBOX always exists).
    pub exists: bool,
    /// The special use the target has, or should be created with when it does not exist yet.
    pub special_use: Option<SpecialUse>,
    /// Why the folder lands there.
    pub reason: Reason,
}

/// How a source folder's special use was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Detection {
    /// From its RFC 6154 LIST attribute (`\Sent`).
    Attribute,
    /// From its name ("Sent Items", "Gesendete Elemente", ...).
    LocalizedName,
}

/// Why a source folder lands where it does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Reason {
    /// INBOX goes to INBOX.
    Inbox,
    /// The folder has this special use (found this way) and lands in the destination's folder
    /// of the same use; several entries with the same use share a target only in a documented
    /// special-use merge.
    SpecialUse(SpecialUse, Detection),
    /// An explicit rename of this folder or of a folder above it.
    Rename,
    /// It sits under a special-use folder and follows it; the source name of that folder.
    FollowsParent(String),
    /// It keeps its place in the tree.
    SameTree,
    /// It goes under the unified root (unified mode).
    Unified,
    /// It keeps its place in the tree, but a segment of its name had to be escaped.
    Escaped,
    /// Earlier runs copied the folder here, and a copied folder keeps its destination; the
    /// plan alone would now put it at `planned` (a run with [`PlanOptions::remap`] moves it).
    CopiedBefore {
        /// Where the options (and the destination as it is now) would put the folder.
        planned: String,
    },
}

/// Why a source folder is not copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Exclusion {
    /// Include patterns were given and none matched.
    IncludeMissed,
    /// This exclude pattern matched.
    ExcludePattern(String),
    /// The folder, or a folder above it, has this special use, which the user excluded.
    SpecialUse(SpecialUse),
    /// The folder, or a folder above it, is a virtual view (`\All`, `\Flagged`, `\Important`)
    /// whose messages are also in other folders; see [`PlanOptions::include_virtual`].
    Virtual(SpecialUse),
    /// `\Noselect` or `\NonExistent`: the folder holds no messages (its children may).
    NotSelectable,
    /// The source listed the same name twice; the first one is planned.
    Duplicate,
}

/// Why no plan could be made. Each variant names the folder, pattern or option at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid folder pattern `{pattern}`: {message}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A rename cannot be applied as given.
    #[error("invalid rename `{from}` = `{to}`: {why}")]
    InvalidRename {
        /// The old name as given.
        from: String,
        /// The new name as given.
        to: String,
        /// What is wrong with it.
        why: String,
    },
    /// The unified-mode root has an empty segment (`Migrated//x`, a leading or trailing `/`).
    #[error("invalid unified root `{root}`: use names separated by single `/`, or an empty root")]
    InvalidRoot {
        /// The root as given.
        root: String,
    },
    /// The unified-mode source address is empty.
    #[error("unified mode needs the source address to name its folder, and it is empty")]
    EmptyAddress,
    /// The destination's personal prefix has an empty segment (e.g. `INBOX..`).
    #[error("the destination's personal prefix `{prefix}` has an empty part")]
    InvalidPrefix {
        /// The prefix as given.
        prefix: String,
    },
    /// The destination's hierarchy separator is `%`, a hex digit `0`-`9` / `A`-`F` or a
    /// control character: the escape for names it cannot hold would be ambiguous there.
    #[error("the destination's hierarchy separator {delimiter:?} is not supported")]
    UnsupportedDelimiter {
        /// The separator.
        delimiter: char,
    },
    /// Two source folders would land in the same destination folder, which would mix their
    /// messages. Rename one of them.
    #[error(
        "source folders `{a}` and `{b}` would both land in `{target}`; \
         rename one of them (e.g. `{b}=<new name>`) or exclude it"
    )]
    Collision {
        /// The first source folder (source order).
        a: String,
        /// The second source folder.
        b: String,
        /// The destination name both would use.
        target: String,
    },
    /// A source folder would land in a destination folder that holds the copies of another
    /// source folder from earlier runs, which stays there although the options now put it
    /// elsewhere: copying would mix the two. Move the other folder first (remap), or rename or
    /// exclude this one.
    #[error(
        "source folder `{folder}` would land in `{target}`, which holds the copies of `{holder}` \
         from earlier runs (the options now put `{holder}` in `{planned}`, but a copied folder \
         stays where it is); move `{holder}` first with remap, or rename or exclude `{folder}`"
    )]
    Occupied {
        /// The source folder that would land there.
        folder: String,
        /// The destination folder.
        target: String,
        /// The source folder whose copies are there.
        holder: String,
        /// Where the options would put `holder`.
        planned: String,
    },
    /// A computed destination name is empty or has an empty segment. This guards the escaping
    /// rules; seeing it is a bug in imapmig, please report it with the folder name.
    #[error("source folder `{source_name}` would get the invalid destination name `{target}`")]
    InvalidTarget {
        /// The source folder.
        source_name: String,
        /// The name computed for it.
        target: String,
    },
}

/// Plans where each source folder lands on the destination; see the
/// [module documentation](self) for the rules.
///
/// Pure: no I/O, the same input gives the same plan. Equivalent to
/// `Planner::new(opts)?.plan(source, dest)`.
pub fn plan(
    source: &[Folder],
    dest: &Destination,
    opts: &PlanOptions,
) -> Result<FolderPlan, PlanError> {
    Planner::new(opts)?.plan(source, dest)
}
