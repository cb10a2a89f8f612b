//! Which messages a migration takes: a date range on INTERNALDATE or on the `Date:` header, and
//! a size limit. Pure values and checks; the sources apply them where it is cheapest (a SEARCH
//! on the server when it can, else each message's date as read).

use serde::{Deserialize, Serialize};

use crate::model::InternalDate;

/// Which date a date range applies to. Read from configurations as `"internal"` or
/// `"header"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "lowercase"))]
pub enum DateField {
    /// INTERNALDATE: when the server received the message (the default).
    #[default]
    Internal,
    /// The `Date:` header: when the sender says it was written.
    Header,
}

/// A date range, on INTERNALDATE or on the Date header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateRange {
    /// On or after this day.
    pub since: Option<time::Date>,
    /// Before this day.
    pub before: Option<time::Date>,
    /// Which date.
    pub field: DateField,
}

impl DateRange {
    /// Whether a date falls within the range; the day is taken in the date's own zone, as
    /// IMAP SEARCH compares days "disregarding time and timezone". A message without a date is
    /// in every range (it cannot be placed, and leaving it out would lose it silently).
    pub fn contains(&self, date: Option<&InternalDate>) -> bool {
        let Some(d) = date else { return true };
        let day = d.0.date();
        self.since.is_none_or(|s| day >= s) && self.before.is_none_or(|b| day < b)
    }
}

/// Which messages to copy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageFilter {
    /// Only messages on or after this day.
    pub since: Option<time::Date>,
    /// Only messages before this day.
    pub before: Option<time::Date>,
    /// Which date `since`/`before` look at.
    pub date_field: DateField,
    /// Skip (and report) messages larger than this many bytes.
    pub max_size: Option<u64>,
}

impl MessageFilter {
    /// Which messages a pass with this filter selects when the effective size limit (ours or
    /// the destination's APPENDLIMIT, the smaller) is `size_limit`: what a folder record's
    /// `selection` holds, so that a change of range or limit is seen.
    pub(crate) fn selection_key(&self, size_limit: Option<u64>) -> String {
        let day = |d: Option<time::Date>| d.map_or_else(|| "-".to_string(), |d| d.to_string());
        let field = match (self.date_range(), self.date_field) {
            (None, _) => "-",
            (Some(_), DateField::Internal) => "internaldate",
            (Some(_), DateField::Header) => "header",
        };
        let max = size_limit.map_or_else(|| "-".to_string(), |n| n.to_string());
        format!(
            "since={} before={} on={field} max={max}",
            day(self.since),
            day(self.before)
        )
    }

    /// The date range, when one is set.
    pub fn date_range(&self) -> Option<DateRange> {
        (self.since.is_some() || self.before.is_some()).then_some(DateRange {
            since: self.since,
            before: self.before,
            field: self.date_field,
        })
    }
}
