//! Include and exclude patterns, compiled once per [`Planner`](super::Planner).
//!
//! Patterns match the decoded source name with `/` between segments whatever the source's own
//! separator, the source personal prefix stripped (`INBOX.Work.Projects` on a Courier server is
//! matched as `Work/Projects`). `*` and `?` stay inside one segment, `**` crosses segments,
//! `{a,b}` alternates (an empty alternative is allowed: `Work{,/**}` is Work and everything
//! under it), `\` escapes. Matching is case-sensitive, like folder names on most servers.

use globset::{Candidate, GlobBuilder, GlobSet, GlobSetBuilder};

use super::PlanError;

/// A compiled list of patterns that remembers what the user wrote, for reports.
#[derive(Clone, Debug)]
pub(crate) struct Patterns {
    set: GlobSet,
    sources: Vec<String>,
}

impl Patterns {
    /// Compiles `patterns`; the first one that does not compile is named in the error.
    pub(crate) fn new(patterns: &[String]) -> Result<Patterns, PlanError> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|e| PlanError::InvalidPattern {
                    pattern: p.clone(),
                    message: e.kind().to_string(),
                })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| PlanError::InvalidPattern {
            pattern: e.glob().unwrap_or_default().to_string(),
            message: e.kind().to_string(),
        })?;
        Ok(Patterns {
            set,
            sources: patterns.to_vec(),
        })
    }

    /// Whether no pattern was given.
    pub(crate) fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The first pattern (in the order given) that matches `path`, as the user wrote it.
    pub(crate) fn first_match(&self, path: &str) -> Option<&str> {
        if self.is_empty() {
            return None;
        }
        // From bytes: a folder name is not a file path, and must not be re-interpreted as one.
        let candidate = Candidate::from_bytes(path.as_bytes());
        let hits = self.set.matches_candidate(&candidate);
        hits.into_iter()
            .min()
            .and_then(|i| self.sources.get(i))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Patterns {
        Patterns::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn star_stays_in_a_segment_double_star_crosses() {
        let p = pats(&["Archive/*"]);
        assert!(p.first_match("Archive/2019").is_some());
        assert!(p.first_match("Archive/2019/Q1").is_none());
        assert!(p.first_match("Archive").is_none());
        let p = pats(&["Archive/**"]);
        assert!(p.first_match("Archive/2019/Q1").is_some());
        assert!(p.first_match("Archive").is_none());
        let p = pats(&["Work{,/**}"]);
        assert!(p.first_match("Work").is_some());
        assert!(p.first_match("Work/a/b").is_some());
        assert!(p.first_match("Workshop").is_none());
    }

    #[test]
    fn reports_the_first_matching_pattern() {
        let p = pats(&["nothing", "A*", "*"]);
        assert_eq!(p.first_match("Abc"), Some("A*"));
    }

    #[test]
    fn bad_pattern_is_named() {
        let err = Patterns::new(&["ok".into(), "a[".into()]).unwrap_err();
        assert!(matches!(err, PlanError::InvalidPattern { ref pattern, .. } if pattern == "a["));
    }
}
