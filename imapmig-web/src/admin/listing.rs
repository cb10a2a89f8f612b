//! The accounts table's query string: `status`, `failure`, `q`, `sort`, `dir`, `page`,
//! `per_page`, read into the store's [`AccountQuery`] and written back into links (sort
//! headers, pager). Pure: no store, no HTTP.

use imapmig_core::batch::{AccountQuery, AccountSort, FailureCategory, Status};
use serde::Deserialize;

use crate::layout::url_escape;

/// Rows per page unless asked otherwise.
pub const PER_PAGE: u64 = 50;
/// The most rows a page may have.
pub const MAX_PER_PAGE: u64 = 500;

/// The query string as given; every field optional, empty means "not given".
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ListParams {
    /// A status name (`failed`), or empty for all.
    pub status: Option<String>,
    /// A failure category (`authentication`), or empty for all.
    pub failure: Option<String>,
    /// Text in the target, source login or mailbox.
    pub q: Option<String>,
    /// An [`AccountSort`] name.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub dir: Option<String>,
    /// The page, from 1.
    pub page: Option<String>,
    /// Rows per page (at most [`MAX_PER_PAGE`]).
    pub per_page: Option<String>,
    /// A message from the action that led here.
    pub done: Option<String>,
}

/// A checked listing: what the store is asked, and the page numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// The store's query.
    pub query: AccountQuery,
    /// The page, from 1.
    pub page: u64,
    /// Rows per page.
    pub per_page: u64,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ListParams {
    /// Checks the parameters; the error names the first bad one and what it may be.
    pub fn listing(&self) -> Result<Listing, String> {
        let status = given(&self.status)
            .map(|s| {
                Status::parse(s).ok_or_else(|| {
                    let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
                    format!("status {s:?}: expected one of {}", all.join(", "))
                })
            })
            .transpose()?;
        let failure = given(&self.failure)
            .map(|f| {
                FailureCategory::parse(f).ok_or_else(|| {
                    let all: Vec<&str> =
                        super::words::FAILURES.iter().map(|c| c.as_str()).collect();
                    format!("failure {f:?}: expected one of {}", all.join(", "))
                })
            })
            .transpose()?;
        let sort = given(&self.sort)
            .map(|s| {
                AccountSort::parse(s).ok_or_else(|| {
                    let all: Vec<&str> = AccountSort::ALL.iter().map(|s| s.as_str()).collect();
                    format!("sort {s:?}: expected one of {}", all.join(", "))
                })
            })
            .transpose()?
            .unwrap_or_default();
        let descending = match given(&self.dir) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(d) => return Err(format!("dir {d:?}: expected asc or desc")),
        };
        let number = |name: &str, v: &Option<String>, default: u64| match given(v) {
            None => Ok(default),
            Some(t) => t
                .parse::<u64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{name} {t:?}: expected a whole number from 1")),
        };
        let page = number("page", &self.page, 1)?;
        let per_page = number("per_page", &self.per_page, PER_PAGE)?.min(MAX_PER_PAGE);
        Ok(Listing {
            query: AccountQuery {
                status,
                failure,
                search: given(&self.q).map(str::to_string),
                sort,
                descending,
                offset: (page - 1).saturating_mul(per_page),
                limit: per_page,
            },
            page,
            per_page,
        })
    }
}

impl Listing {
    /// The query string for this listing with another sort, direction or page (only what
    /// differs from the defaults is written).
    pub fn query_string(&self, sort: AccountSort, descending: bool, page: u64) -> String {
        let q = &self.query;
        let mut parts: Vec<String> = Vec::new();
        if let Some(s) = q.status {
            parts.push(format!("status={}", s.as_str()));
        }
        if let Some(f) = q.failure {
            parts.push(format!("failure={}", f.as_str()));
        }
        if let Some(text) = &q.search {
            parts.push(format!("q={}", url_escape(text)));
        }
        if sort != AccountSort::Id {
            parts.push(format!("sort={}", sort.as_str()));
        }
        if descending {
            parts.push("dir=desc".into());
        }
        if page > 1 {
            parts.push(format!("page={page}"));
        }
        if self.per_page != PER_PAGE {
            parts.push(format!("per_page={}", self.per_page));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// This listing's own query string.
    pub fn current(&self) -> String {
        self.query_string(self.query.sort, self.query.descending, self.page)
    }

    /// The query string a sortable header links to: the other direction when the table is
    /// sorted by it already, else this sort ascending; back to page 1 either way.
    pub fn sorted_by(&self, sort: AccountSort) -> String {
        let descending = self.query.sort == sort && !self.query.descending;
        self.query_string(sort, descending, 1)
    }

    /// The last page for `matching` accounts (1 when there are none).
    pub fn last_page(&self, matching: u64) -> u64 {
        matching.div_ceil(self.per_page).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let mut p = ListParams::default();
        for (k, v) in pairs {
            let v = Some(v.to_string());
            match *k {
                "status" => p.status = v,
                "failure" => p.failure = v,
                "q" => p.q = v,
                "sort" => p.sort = v,
                "dir" => p.dir = v,
                "page" => p.page = v,
                "per_page" => p.per_page = v,
                _ => unreachable!(),
            }
        }
        p
    }

    #[test]
    fn nothing_given_is_the_first_page_by_id() {
        let l = ListParams::default().listing().unwrap();
        assert_eq!(l.query, AccountQuery::default());
        assert_eq!((l.page, l.per_page), (1, PER_PAGE));
        assert_eq!(l.current(), "");
    }

    #[test]
    fn empty_values_mean_all() {
        let l = params(&[("status", ""), ("failure", " "), ("q", ""), ("sort", "")])
            .listing()
            .unwrap();
        assert_eq!(l.query, AccountQuery::default());
    }

    #[test]
    fn every_field_is_read() {
        let l = params(&[
            ("status", "failed"),
            ("failure", "authentication"),
            ("q", " bob "),
            ("sort", "last_pass"),
            ("dir", "desc"),
            ("page", "3"),
            ("per_page", "20"),
        ])
        .listing()
        .unwrap();
        assert_eq!(l.query.status, Some(Status::Failed));
        assert_eq!(l.query.failure, Some(FailureCategory::Authentication));
        assert_eq!(l.query.search.as_deref(), Some("bob"));
        assert_eq!(l.query.sort, AccountSort::LastPass);
        assert!(l.query.descending);
        assert_eq!((l.query.offset, l.query.limit), (40, 20));
        assert_eq!(
            l.current(),
            "?status=failed&failure=authentication&q=bob&sort=last_pass&dir=desc&page=3&per_page=20"
        );
    }

    #[test]
    fn per_page_is_capped() {
        let l = params(&[("per_page", "100000")]).listing().unwrap();
        assert_eq!(l.per_page, MAX_PER_PAGE);
    }

    #[test]
    fn bad_values_are_named() {
        for (k, v, says) in [
            ("status", "done", "status \"done\""),
            ("failure", "oops", "failure \"oops\""),
            ("sort", "size", "sort \"size\""),
            ("dir", "up", "dir \"up\""),
            ("page", "0", "page \"0\""),
            ("per_page", "x", "per_page \"x\""),
        ] {
            let e = params(&[(k, v)]).listing().unwrap_err();
            assert!(e.starts_with(says), "{e}");
        }
    }

    #[test]
    fn sort_links_toggle_the_direction_and_go_back_to_page_one() {
        let l = params(&[("sort", "messages"), ("page", "4")])
            .listing()
            .unwrap();
        assert_eq!(
            l.sorted_by(AccountSort::Messages),
            "?sort=messages&dir=desc"
        );
        assert_eq!(l.sorted_by(AccountSort::Target), "?sort=target");
        assert_eq!(l.last_page(0), 1);
        assert_eq!(l.last_page(101), 3);
    }

    #[test]
    fn search_text_is_escaped_in_links() {
        let l = params(&[("q", "a&b c")]).listing().unwrap();
        assert_eq!(l.current(), "?q=a%26b%20c");
    }
}
