//! The human-readable form of a plan, for `--dry-run`.

use std::fmt::{self, Write as _};

use super::{Detection, Exclusion, FolderPlan, Reason};

/// Names longer than this are not padded: one very long name should not push every other
/// line of the table off the screen.
const MAX_COLUMN: usize = 48;

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Inbox => f.write_str("inbox"),
            Reason::SpecialUse(u, Detection::Attribute) => {
                write!(f, "{} folder ({} attribute)", u.name(), u.attribute())
            }
            Reason::SpecialUse(u, Detection::LocalizedName) => {
                write!(f, "{} folder (by name)", u.name())
            }
            Reason::Rename => f.write_str("renamed"),
            Reason::FollowsParent(parent) => write!(f, "under `{parent}`"),
            Reason::SameTree => f.write_str("same place"),
            Reason::Unified => f.write_str("unified"),
            Reason::Escaped => f.write_str("same place, name escaped"),
            Reason::CopiedBefore { planned } => {
                write!(f, "copied here before (the options now say `{planned}`)")
            }
        }
    }
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::IncludeMissed => f.write_str("no include pattern matched"),
            Exclusion::ExcludePattern(p) => write!(f, "exclude pattern `{p}` matched"),
            Exclusion::SpecialUse(u) => write!(f, "{} folders excluded", u.name()),
            Exclusion::Virtual(u) => write!(
                f,
                "virtual folder ({}): its messages are also in other folders",
                u.attribute()
            ),
            Exclusion::NotSelectable => f.write_str("holds no messages (\\Noselect)"),
            Exclusion::Duplicate => f.write_str("listed twice"),
        }
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(out: &mut String, s: &str, to: usize) {
    out.push_str(s);
    for _ in width(s)..to {
        out.push(' ');
    }
}

impl FolderPlan {
    /// A table for a dry run: each copied folder with its target and why, then the folders not
    /// copied and why, then the notes. Targets the destination does not have yet are marked
    /// `(new)`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Folder plan: {} to copy, {} not copied",
            self.entries.len(),
            self.excluded.len()
        );

        if !self.entries.is_empty() {
            let targets: Vec<String> = self
                .entries
                .iter()
                .map(|e| {
                    if e.exists {
                        e.target.clone()
                    } else {
                        format!("{} (new)", e.target)
                    }
                })
                .collect();
            let src_w = self
                .entries
                .iter()
                .map(|e| width(&e.source.name))
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN);
            let dst_w = targets
                .iter()
                .map(|t| width(t))
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN);
            out.push('\n');
            for (e, t) in self.entries.iter().zip(&targets) {
                out.push_str("  ");
                pad(&mut out, &e.source.name, src_w);
                out.push_str("  ->  ");
                pad(&mut out, t, dst_w);
                let _ = writeln!(out, "  {}", e.reason);
            }
        }

        if !self.excluded.is_empty() {
            let w = self
                .excluded
                .iter()
                .map(|(f, _)| width(&f.name))
                .max()
                .unwrap_or(0)
                .min(MAX_COLUMN);
            out.push_str("\nNot copied:\n");
            for (f, why) in &self.excluded {
                out.push_str("  ");
                pad(&mut out, &f.name, w);
                let _ = writeln!(out, "  {why}");
            }
        }

        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(out, "  - {n}");
            }
        }
        out
    }
}

impl fmt::Display for FolderPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}
