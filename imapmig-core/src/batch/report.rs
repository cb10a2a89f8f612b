//! Reports: every account's status as CSV or JSON, and the totals of a task.
//!
//! A report never holds a secret: only whether the account has the credentials it needs.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::status::{FailureCategory, Status};

/// One account as reports show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountReport {
    /// The account's number in the task (`#id` on the command line).
    pub id: i64,
    /// The destination mailbox.
    pub target: String,
    /// The source login as imported (`user`, `admin/user`, `user*master`).
    pub source: String,
    /// Where it stands.
    pub status: Status,
    /// Why it failed, when it did.
    pub failure: Option<FailureCategory>,
    /// A pause or stop asked for while a pass runs (`pause`, `stop`).
    pub requested: Option<String>,
    /// Whether it has the password or token it needs.
    pub has_credentials: bool,
    /// Folders done in the current or last pass.
    pub folders_done: u64,
    /// Folders in the current or last pass's plan.
    pub folders_total: u64,
    /// Messages of the account on the destination (from the sync state after each pass; live
    /// while a pass runs).
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Messages the destination refused (or over the size limit) in the last pass.
    pub refused: u64,
    /// Passes started.
    pub passes: u64,
    /// Failed passes in a row.
    pub attempts: u32,
    /// The last error or refusal, in words.
    pub last_error: Option<String>,
    /// The source server (`host:port`) it uses.
    pub source_server: String,
    /// The destination server (`host:port`) it uses.
    pub destination_server: String,
    /// When its first pass started.
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    /// When its first pass completed.
    #[serde(with = "time::serde::rfc3339::option")]
    pub synced_at: Option<OffsetDateTime>,
    /// When its last pass ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_pass_at: Option<OffsetDateTime>,
    /// When its next pass is due (scheduled and synced accounts).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_pass_at: Option<OffsetDateTime>,
    /// When incremental passes end.
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_ends_at: Option<OffsetDateTime>,
    /// When anything about it last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The totals of a task.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TaskSummary {
    /// Accounts per status.
    pub statuses: BTreeMap<Status, u64>,
    /// Failed accounts per category.
    pub failures: BTreeMap<FailureCategory, u64>,
    /// Accounts.
    pub accounts: u64,
    /// Messages on the destination, all accounts.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Refused messages, all accounts.
    pub refused: u64,
}

impl TaskSummary {
    /// Adds up reports.
    pub fn of(accounts: &[AccountReport]) -> TaskSummary {
        let mut s = TaskSummary::default();
        for a in accounts {
            *s.statuses.entry(a.status).or_default() += 1;
            if let Some(c) = a.failure {
                *s.failures.entry(c).or_default() += 1;
            }
            s.accounts += 1;
            s.messages += a.messages;
            s.bytes += a.bytes;
            s.refused += a.refused;
        }
        s
    }

    /// Accounts in a status.
    pub fn count(&self, status: Status) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// The columns of [`to_csv`], in order.
pub const CSV_COLUMNS: [&str; 23] = [
    "id",
    "target",
    "source",
    "status",
    "failure",
    "requested",
    "has_credentials",
    "folders_done",
    "folders_total",
    "messages",
    "bytes",
    "refused",
    "passes",
    "attempts",
    "last_error",
    "source_server",
    "destination_server",
    "started_at",
    "synced_at",
    "last_pass_at",
    "next_pass_at",
    "window_ends_at",
    "updated_at",
];

fn time_cell(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default()
}

/// Every account as CSV, with a header row ([`CSV_COLUMNS`]); times in RFC 3339, empty cells
/// for values that are not there.
pub fn to_csv(accounts: &[AccountReport]) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing into memory cannot fail.
    let _ = w.write_record(CSV_COLUMNS);
    for a in accounts {
        let record = [
            a.id.to_string(),
            a.target.clone(),
            a.source.clone(),
            a.status.as_str().to_string(),
            a.failure
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            a.requested.clone().unwrap_or_default(),
            a.has_credentials.to_string(),
            a.folders_done.to_string(),
            a.folders_total.to_string(),
            a.messages.to_string(),
            a.bytes.to_string(),
            a.refused.to_string(),
            a.passes.to_string(),
            a.attempts.to_string(),
            a.last_error.clone().unwrap_or_default(),
            a.source_server.clone(),
            a.destination_server.clone(),
            time_cell(a.started_at),
            time_cell(a.synced_at),
            time_cell(a.last_pass_at),
            time_cell(a.next_pass_at),
            time_cell(a.window_ends_at),
            time_cell(Some(a.updated_at)),
        ];
        let _ = w.write_record(&record);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// Every account as one JSON array.
pub fn to_json(accounts: &[AccountReport]) -> String {
    serde_json::to_string_pretty(accounts).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> AccountReport {
        AccountReport {
            id: 1,
            target: "a@new.example".into(),
            source: "a, \"the\" user".into(),
            status: Status::Failed,
            failure: Some(FailureCategory::Authentication),
            requested: None,
            has_credentials: true,
            folders_done: 0,
            folders_total: 0,
            messages: 0,
            bytes: 0,
            refused: 0,
            passes: 1,
            attempts: 0,
            last_error: Some("source: refused the login".into()),
            source_server: "old:993".into(),
            destination_server: "new:993".into(),
            started_at: Some(time::macros::datetime!(2024-01-01 00:00:00 UTC)),
            synced_at: None,
            last_pass_at: None,
            next_pass_at: None,
            window_ends_at: None,
            updated_at: time::macros::datetime!(2024-01-01 00:00:01 UTC),
        }
    }

    #[test]
    fn csv_round_trips_through_a_reader() {
        let text = to_csv(&[report()]);
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
        let row = r.records().next().unwrap().unwrap();
        assert_eq!(&row[2], "a, \"the\" user");
        assert_eq!(&row[3], "failed");
        assert_eq!(&row[4], "authentication");
        assert_eq!(&row[17], "2024-01-01T00:00:00Z");
        assert_eq!(&row[18], "");
    }

    #[test]
    fn json_names_statuses_in_snake_case() {
        let json = to_json(&[report()]);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v[0]["status"], "failed");
        assert_eq!(v[0]["failure"], "authentication");
        assert!(v[0]["synced_at"].is_null());
        let s = TaskSummary::of(&[report()]);
        assert_eq!(s.count(Status::Failed), 1);
        assert_eq!(s.failures[&FailureCategory::Authentication], 1);
    }
}
