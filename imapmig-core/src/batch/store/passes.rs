//! Passes over `batch_account`: starting one (the account becomes running, its servers are
//! pinned), recording live progress, and ending it with its verdict.
//!
//! Every status change here happens in the same transaction as the audit events that explain
//! it, so a `kill -9` at any instant leaves statuses and the log in agreement.

use rusqlite::params;

use super::{now, BatchStore};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::login::SourceLogin;
use crate::batch::status::{next, Status, Transition};
use crate::batch::task::ServerSettings;
use crate::batch::verdict::{PassResult, Verdict};
use crate::secret::Secret;

/// Everything a pass needs, read when it starts.
#[derive(Clone, Debug)]
pub(crate) struct PassTicket {
    pub(crate) id: i64,
    pub(crate) target: String,
    pub(crate) login: SourceLogin,
    pub(crate) password: Option<Secret>,
    pub(crate) target_password: Option<Secret>,
    pub(crate) source: ServerSettings,
    pub(crate) destination: ServerSettings,
    pub(crate) pass: u64,
    pub(crate) attempts: u32,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

/// Live progress of a running pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub(crate) folders_done: u64,
    pub(crate) folders_total: u64,
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

impl BatchStore {
    /// Starts a pass: the account becomes running and its servers are pinned. Returns `None`
    /// when it is no longer due (paused meanwhile, say), or waits for credentials after all.
    pub(crate) fn start_pass(
        &self,
        task: &str,
        id: i64,
        connections: usize,
    ) -> Result<Option<PassTicket>, BatchError> {
        let when = now();
        self.write("start a pass", task, |tx| {
            let t = self.task_in(tx, task)?;
            let Some(a) = self.load_accounts(tx, task, Some(&[id]))?.pop() else {
                return Ok(None);
            };
            let status = a.status(self, task)?;
            if !status.runnable() || a.control.is_some() || a.next_run_at.unwrap_or(0) > when {
                return Ok(None);
            }
            let facts = a.facts(self, &t)?;
            if !facts.has_credentials {
                self.change_status(
                    tx,
                    task,
                    id,
                    status,
                    Status::WaitingForCredentials,
                    None,
                    Some("the account's password or token is missing".into()),
                    when,
                )?;
                return Ok(None);
            }
            let (source, destination) = a.servers(self, &t)?;
            let pin = |s: &ServerSettings| {
                serde_json::to_string(s).map_err(|e| self.corrupt(task, Some(&a.target), format!("server: {e}")))
            };
            let (sp, dp) = (pin(&source)?, pin(&destination)?);
            tx.execute(
                "UPDATE batch_account SET passes = passes + 1, started_at = coalesce(started_at, ?2),
                     source_pin = coalesce(source_pin, ?3), destination_pin = coalesce(destination_pin, ?4),
                     source_host = coalesce(source_host, ?5), destination_host = coalesce(destination_host, ?6),
                     folders_done = 0
                 WHERE id = ?1",
                params![id, when, sp, dp, source.host, destination.host],
            )
            .map_err(self.sql("start a pass", task, Some(&a.target)))?;
            self.change_status(tx, task, id, status, Status::Running, None, None, when)?;
            let pass = u64::try_from(a.passes).unwrap_or(0) + 1;
            self.audit_in(
                tx,
                task,
                Some(id),
                &AuditEvent::PassStarted {
                    pass,
                    source_host: source.host.clone(),
                    destination_host: destination.host.clone(),
                    connections,
                },
                when,
            )?;
            let open = |column, stored: &Option<Secret>| {
                stored
                    .as_ref()
                    .map(|s| self.open_secret(task, Some(&a.target), "batch_account", column, s.expose()))
                    .transpose()
            };
            Ok(Some(PassTicket {
                id,
                target: a.target.clone(),
                login: a.login(self, task)?,
                password: open("password", &a.password)?,
                target_password: open("target_password", &a.target_password)?,
                source,
                destination,
                pass,
                attempts: u32::try_from(a.attempts).unwrap_or(0),
                messages: u64::try_from(a.messages).unwrap_or(0),
                bytes: u64::try_from(a.bytes).unwrap_or(0),
            }))
        })
    }

    /// Records live progress of running passes and audit events, in one transaction.
    pub(crate) fn record_progress(
        &self,
        task: &str,
        updates: &[(i64, Progress)],
        events: &[(Option<i64>, AuditEvent)],
    ) -> Result<(), BatchError> {
        if updates.is_empty() && events.is_empty() {
            return Ok(());
        }
        let when = now();
        self.write("record progress", task, |tx| {
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE batch_account SET folders_done = ?2, folders_total = ?3, messages = ?4,
                             bytes = ?5, updated_at = ?6
                         WHERE id = ?1 AND status = 'running'",
                    )
                    .map_err(self.sql("record progress", task, None))?;
                for (id, p) in updates {
                    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                    stmt.execute(params![
                        id,
                        i(p.folders_done),
                        i(p.folders_total),
                        i(p.messages),
                        i(p.bytes),
                        when
                    ])
                    .map_err(self.sql("record progress", task, None))?;
                }
            }
            for (account, event) in events {
                self.audit_in(tx, task, *account, event, when)?;
            }
            Ok(())
        })
    }

    /// Ends a pass: the account's status, counters, refusals and next pass, and the audit
    /// events that explain them, in one transaction. Returns the new status.
    pub(crate) fn finish_pass(
        &self,
        task: &str,
        id: i64,
        result: Option<&PassResult>,
        verdict: &Verdict,
    ) -> Result<Status, BatchError> {
        let when = now();
        self.write("end a pass", task, |tx| {
            let t = self.task_in(tx, task)?;
            let a = self
                .load_accounts(tx, task, Some(&[id]))?
                .pop()
                .ok_or_else(|| self.corrupt(task, None, format!("account #{id} vanished during its pass")))?;
            let from = a.status(self, task)?;
            let err = self.sql("end a pass", task, Some(&a.target));
            let mut facts = a.facts(self, &t)?;
            let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);

            let mut last_error: Option<String> = None;
            if let Some(r) = result {
                last_error = self.record_refusals(tx, task, &a, r, when)?;
                tx.execute(
                    "UPDATE batch_account SET folders_done = ?2, folders_total = ?3, messages = ?4, bytes = ?5,
                         last_pass_at = ?6
                     WHERE id = ?1",
                    params![id, i(r.folders_done), i(r.folders_total), i(r.messages), i(r.bytes), when],
                )
                .map_err(&err)?;
                self.audit_in(
                    tx,
                    task,
                    Some(id),
                    &AuditEvent::PassFinished {
                        copied: r.copied,
                        bytes: r.bytes_copied,
                        seconds: (r.seconds * 1000.0).round() / 1000.0,
                        messages: r.messages,
                    },
                    when,
                )?;
            }

            let control = a.control.as_deref();
            let (to, category, reason) = match verdict {
                Verdict::Synced => {
                    let synced_at = a.synced_at.unwrap_or(when);
                    let window_secs = i64::try_from(t.settings.schedule.window.as_secs()).unwrap_or(i64::MAX);
                    let window_ends = a.window_ends_at.unwrap_or(synced_at.saturating_add(window_secs));
                    let interval = i64::try_from(t.settings.schedule.interval.as_secs()).unwrap_or(i64::MAX);
                    tx.execute(
                        "UPDATE batch_account SET synced_at = ?2, window_ends_at = ?3, next_run_at = ?4,
                             attempts = 0, last_error = ?5
                         WHERE id = ?1",
                        params![id, synced_at, window_ends, when.saturating_add(interval), last_error],
                    )
                    .map_err(&err)?;
                    facts.synced_before = true;
                    let closed = when >= window_ends;
                    let to = next(from, Transition::PassDone { window_closed: closed }, facts).unwrap_or(Status::Synced);
                    let reason = if closed {
                        Some("the incremental window closed".to_string())
                    } else if a.synced_at.is_none() {
                        Some("first complete pass".to_string())
                    } else {
                        None
                    };
                    (to, None, reason)
                }
                Verdict::Retry { category, error, after } => {
                    let attempt = a.attempts + 1;
                    let wait = i64::try_from(after.as_secs()).unwrap_or(i64::MAX).max(1);
                    tx.execute(
                        "UPDATE batch_account SET attempts = ?2, last_error = ?3, next_run_at = ?4 WHERE id = ?1",
                        params![id, attempt, error, when.saturating_add(wait)],
                    )
                    .map_err(&err)?;
                    self.audit_in(
                        tx,
                        task,
                        Some(id),
                        &AuditEvent::Retrying {
                            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                            after_seconds: u64::try_from(wait).unwrap_or(0),
                            error: error.clone(),
                        },
                        when,
                    )?;
                    let to = next(from, Transition::Retry, facts).unwrap_or(Status::Scheduled);
                    (to, None, Some(format!("{category} problem, retried: {error}")))
                }
                Verdict::Failed { category, error } => {
                    tx.execute(
                        "UPDATE batch_account SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                        params![id, error],
                    )
                    .map_err(&err)?;
                    (Status::Failed, Some(*category), Some(error.clone()))
                }
                Verdict::Cancelled => {
                    tx.execute("UPDATE batch_account SET next_run_at = ?2 WHERE id = ?1", params![id, when])
                        .map_err(&err)?;
                    let to = next(from, Transition::Interrupted, facts).unwrap_or(Status::Scheduled);
                    (to, None, Some("interrupted; it runs again".to_string()))
                }
            };
            // A pause or stop asked for during the pass wins over where the pass left it, but
            // not over a failure, which the admin must see.
            let (to, reason) = match (control, to) {
                (_, Status::Failed) => (to, reason),
                (Some("pause"), _) => (Status::Paused, Some("paused by the admin".to_string())),
                (Some("stop"), _) => (Status::Stopped, Some("stopped by the admin".to_string())),
                _ => (to, reason),
            };
            tx.execute("UPDATE batch_account SET control = NULL WHERE id = ?1", [id])
                .map_err(&err)?;
            self.change_status(tx, task, id, from, to, category, reason, when)?;
            Ok(to)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::import::parse_accounts;
    use crate::batch::status::FailureCategory;
    use crate::batch::store::tests::{settings, tempfile_dir};
    use crate::batch::store::{ImportOptions, Selection};
    use crate::batch::task::EditScope;
    use crate::batch::verdict::Refusal;
    use std::path::Path;
    use std::time::Duration;

    fn store_with(text: &str) -> (BatchStore, std::path::PathBuf) {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        let parsed = parse_accounts(Path::new("a.csv"), text.as_bytes(), false, false).unwrap();
        s.import_rows("t", Path::new("a.csv"), parsed, ImportOptions::default())
            .unwrap();
        (s, dir)
    }

    #[test]
    fn a_pass_from_admission_to_synced_and_back_after_a_crash() {
        let (s, dir) = store_with("u1@new.example,u1,pw\nu2@new.example,u2,\n");
        assert_eq!(s.admit("t", 0).unwrap(), 1);
        let due = s.due("t", 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].source_host, "old.example");
        let ticket = s.start_pass("t", due[0].id, 2).unwrap().unwrap();
        assert_eq!(ticket.login.mailbox(), "u1");
        assert_eq!(ticket.password.as_ref().unwrap().expose(), "pw");
        // Not startable twice.
        assert!(s.start_pass("t", due[0].id, 2).unwrap().is_none());
        assert!(s.due("t", 10).unwrap().is_empty());
        // The scheduler dies; the next one puts it back.
        assert_eq!(s.recover("t").unwrap(), 1);
        assert_eq!(s.accounts("t").unwrap()[0].status, Status::Scheduled);
        let ticket = s.start_pass("t", due[0].id, 2).unwrap().unwrap();
        assert_eq!(ticket.pass, 2);
        let result = PassResult {
            folders_done: 2,
            folders_total: 2,
            copied: 3,
            messages: 3,
            bytes: 300,
            complete_folders: vec!["INBOX".into()],
            refusals: vec![Refusal {
                folder: "INBOX".into(),
                uid: 7,
                reason: "NO [LIMIT] too big".into(),
            }],
            ..PassResult::default()
        };
        assert_eq!(
            s.finish_pass("t", ticket.id, Some(&result), &Verdict::Synced)
                .unwrap(),
            Status::Synced
        );
        let a = &s.accounts("t").unwrap()[0];
        assert_eq!((a.messages, a.refused, a.passes), (3, 1, 2));
        assert!(a.synced_at.is_some() && a.next_pass_at.is_some() && a.window_ends_at.is_some());
        assert!(a.last_error.as_deref().unwrap().contains("UID 7"), "{a:?}");
        // The same refusal on the next pass is not logged again; once copied, it is gone.
        let synced_id = a.id;
        s.lock()
            .execute("UPDATE batch_account SET next_run_at = 0", [])
            .unwrap();
        let ticket = s.start_pass("t", synced_id, 2).unwrap().unwrap();
        s.finish_pass("t", ticket.id, Some(&result), &Verdict::Synced)
            .unwrap();
        let refused_events = s
            .audit("t", None, 1000)
            .unwrap()
            .into_iter()
            .filter(|r| r.event["event"] == "message_refused")
            .count();
        assert_eq!(refused_events, 1);
        s.lock()
            .execute("UPDATE batch_account SET next_run_at = 0", [])
            .unwrap();
        let ticket = s.start_pass("t", synced_id, 2).unwrap().unwrap();
        let clean = PassResult {
            refusals: vec![],
            ..result.clone()
        };
        s.finish_pass("t", ticket.id, Some(&clean), &Verdict::Synced)
            .unwrap();
        let a = &s.accounts("t").unwrap()[0];
        assert_eq!(a.refused, 0);
        assert_eq!(a.last_error, None);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn retries_failures_and_requests() {
        let (s, dir) = store_with("u1@new.example,u1,pw\nu3@new.example,u3,pw\n");
        s.admit("t", 0).unwrap();
        let ids: Vec<i64> = s.due("t", 10).unwrap().into_iter().map(|d| d.id).collect();
        let t1 = s.start_pass("t", ids[0], 1).unwrap().unwrap();
        let retry = Verdict::Retry {
            category: FailureCategory::Connection,
            error: "connection refused".into(),
            after: Duration::from_secs(60),
        };
        assert_eq!(
            s.finish_pass("t", t1.id, None, &retry).unwrap(),
            Status::Scheduled
        );
        // Not due again before its pause is over.
        assert_eq!(
            s.due("t", 10)
                .unwrap()
                .iter()
                .filter(|d| d.id == t1.id)
                .count(),
            0
        );
        let a = &s.accounts("t").unwrap()[0];
        assert_eq!(a.attempts, 1);
        let t2 = s.start_pass("t", ids[1], 1).unwrap().unwrap();
        // A pause asked for while it runs takes effect when the pass ends.
        let names = vec!["u3@new.example".to_string()];
        assert_eq!(s.pause("t", Selection::Names(&names)).unwrap().requested, 1);
        assert_eq!(s.requests("t").unwrap(), vec![t2.id]);
        assert_eq!(
            s.finish_pass("t", t2.id, None, &Verdict::Cancelled)
                .unwrap(),
            Status::Paused
        );
        s.resume("t", Selection::Names(&names)).unwrap();
        let t2 = s.start_pass("t", ids[1], 1).unwrap().unwrap();
        let failed = Verdict::Failed {
            category: FailureCategory::Authentication,
            error: "wrong password".into(),
        };
        assert_eq!(
            s.finish_pass("t", t2.id, None, &failed).unwrap(),
            Status::Failed
        );
        let a = &s.accounts("t").unwrap()[1];
        assert_eq!(a.failure, Some(FailureCategory::Authentication));
        // New credentials restart it.
        s.supply_credentials("t", "u3", Secret::new("new")).unwrap();
        assert_eq!(s.accounts("t").unwrap()[1].status, Status::Scheduled);
        assert!(s.busy("t").unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn passes_end_when_the_window_closes() {
        let (s, dir) = store_with("u1@new.example,u1,pw\n");
        let mut set = settings();
        set.schedule.window = Duration::ZERO;
        s.edit_task("t", &set, None, None, EditScope::NotStarted)
            .unwrap();
        s.admit("t", 0).unwrap();
        let id = s.due("t", 10).unwrap()[0].id;
        let ticket = s.start_pass("t", id, 1).unwrap().unwrap();
        let to = s
            .finish_pass(
                "t",
                ticket.id,
                Some(&PassResult::default()),
                &Verdict::Synced,
            )
            .unwrap();
        assert_eq!(to, Status::Stopped);
        let a = &s.accounts("t").unwrap()[0];
        assert!(a.synced_at.is_some() && a.next_pass_at.is_none(), "{a:?}");
        assert!(!s.busy("t").unwrap());
        let log = s.audit("t", None, 100).unwrap();
        assert!(log
            .iter()
            .any(|r| r.event["reason"] == "the incremental window closed"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn server_edits_follow_the_scope() {
        let (s, dir) = store_with("u1@new.example,u1,pw\nu2@new.example,u2,pw\n");
        s.admit("t", 0).unwrap();
        let id = s.due("t", 10).unwrap()[0].id;
        let ticket = s.start_pass("t", id, 1).unwrap().unwrap();
        s.finish_pass(
            "t",
            ticket.id,
            Some(&PassResult::default()),
            &Verdict::Synced,
        )
        .unwrap();
        let mut moved = settings();
        moved.source.host = "moved.example".into();
        s.edit_task("t", &moved, None, None, EditScope::NotStarted)
            .unwrap();
        let a = s.accounts("t").unwrap();
        assert_eq!(
            a[0].source_server, "old.example:993",
            "started: keeps its server"
        );
        assert_eq!(
            a[1].source_server, "moved.example:993",
            "not started: follows"
        );
        s.edit_task("t", &moved, None, None, EditScope::All)
            .unwrap();
        assert_eq!(
            s.accounts("t").unwrap()[0].source_server,
            "moved.example:993"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
