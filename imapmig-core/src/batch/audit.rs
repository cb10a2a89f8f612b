//! The audit log: what happened when, per task and account.
//!
//! Events are stored in the batch store, in the same transactions as the status changes they
//! accompany, so the log and the statuses never disagree, even after a crash. They are exported
//! as JSON lines ([`AuditRecord::to_json_line`]), one object per line with `id`, `at`
//! (RFC 3339), `task`, `account` (the target address, when about one) and `event` (the kind,
//! snake_case) plus the event's own fields. Events never hold a password or token.

use serde::Serialize;
use time::OffsetDateTime;

use super::status::{FailureCategory, Status};
use super::task::EditScope;

/// Something that happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// The task was created.
    TaskCreated,
    /// The task's settings changed.
    TaskEdited {
        /// The settings that changed (`source.host`, `limits.accounts`, ...).
        changed: Vec<String>,
        /// Which accounts a server change applies to.
        scope: EditScope,
    },
    /// Accounts came in from a CSV file.
    AccountsImported {
        /// The file.
        file: String,
        /// New accounts.
        added: u64,
        /// Existing accounts whose credentials were updated.
        updated: u64,
        /// Bad rows left out (with `--skip-bad-rows`).
        skipped: u64,
    },
    /// An account's status changed.
    StatusChanged {
        /// Before.
        from: Status,
        /// After.
        to: Status,
        /// The failure category, when it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        category: Option<FailureCategory>,
        /// Why, in words.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A pass of an account started.
    PassStarted {
        /// Which pass (1 is the first).
        pass: u64,
        /// The source host.
        source_host: String,
        /// The destination host.
        destination_host: String,
        /// Connections per side it may use.
        connections: usize,
    },
    /// A folder of an account was done in a pass.
    FolderDone {
        /// The source folder.
        folder: String,
        /// Where it went.
        target: String,
        /// Messages copied in this pass.
        copied: u64,
        /// Messages already there.
        already_there: u64,
        /// Messages refused by the destination.
        refused: u64,
        /// Messages over the size limit.
        too_large: u64,
        /// Bytes copied.
        bytes: u64,
    },
    /// A message was refused or skipped (reported once per message, not on every pass).
    MessageRefused {
        /// The source folder.
        folder: String,
        /// The source UID.
        uid: u32,
        /// The server's words, or the limit that excluded it.
        reason: String,
    },
    /// A pass ended.
    PassFinished {
        /// Messages copied by the pass.
        copied: u64,
        /// Bytes copied by the pass.
        bytes: u64,
        /// Seconds it took.
        seconds: f64,
        /// Messages of the account now on the destination (from the sync state).
        messages: u64,
    },
    /// A pass failed transiently and is retried.
    Retrying {
        /// The failure in a row this is.
        attempt: u32,
        /// The pause, in seconds.
        after_seconds: u64,
        /// What went wrong.
        error: String,
    },
    /// A server throttled: its host gets fewer connections for a while.
    Throttled {
        /// `source` or `destination`.
        side: String,
        /// The host.
        host: String,
        /// The connections it gets now.
        connections: usize,
    },
    /// Credentials were supplied.
    CredentialsSupplied,
    /// A pause or stop was asked for a running account; it takes effect at the next message
    /// boundary.
    Requested {
        /// `pause` or `stop`.
        control: String,
    },
    /// The admin asked for a pass now: the account's next pass is due at once.
    RunNow,
    /// A self-service invitation was made for the account (an older unused one is withdrawn).
    InvitationCreated {
        /// When it stops working.
        #[serde(with = "time::serde::rfc3339")]
        expires_at: OffsetDateTime,
    },
    /// The account's user accepted an invitation and gave their password or token (never
    /// logged).
    InvitationAccepted,
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Its sequence number (grows with time).
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The task.
    pub task: String,
    /// The account's target address, when it is about one account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The account's source login, when it is about one account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What happened: an object with `event` (the kind) and the event's fields.
    #[serde(flatten)]
    pub event: serde_json::Value,
    /// The event as stored, fields in their declared order.
    #[serde(skip)]
    pub(crate) raw: String,
}

impl AuditRecord {
    /// The record as one line of JSON (without the newline): `id`, `at`, `task`, `account`,
    /// `source`, then the event's fields in their declared order.
    pub fn to_json_line(&self) -> String {
        let at = self
            .at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut line = format!(
            "{{\"id\":{},\"at\":{},\"task\":{}",
            self.id,
            serde_json::json!(at),
            serde_json::json!(self.task)
        );
        for (k, v) in [("account", &self.account), ("source", &self.source)] {
            if let Some(v) = v {
                line.push_str(&format!(
                    ",{}:{}",
                    serde_json::json!(k),
                    serde_json::json!(v)
                ));
            }
        }
        match self.raw.strip_prefix('{') {
            Some(rest) if rest != "}" => {
                line.push(',');
                line.push_str(rest);
            }
            _ => line.push('}'),
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_flat_and_tagged() {
        let ev = AuditEvent::StatusChanged {
            from: Status::Running,
            to: Status::Failed,
            category: Some(FailureCategory::Authentication),
            reason: Some("wrong password".into()),
        };
        let rec = AuditRecord {
            id: 7,
            at: time::macros::datetime!(2024-05-06 07:08:09 UTC),
            task: "t".into(),
            account: Some("a@b.c".into()),
            source: Some("a".into()),
            event: serde_json::to_value(&ev).unwrap(),
            raw: serde_json::to_string(&ev).unwrap(),
        };
        let line = rec.to_json_line();
        assert_eq!(
            line,
            r#"{"id":7,"at":"2024-05-06T07:08:09Z","task":"t","account":"a@b.c","source":"a","event":"status_changed","from":"running","to":"failed","category":"authentication","reason":"wrong password"}"#
        );
    }
}
