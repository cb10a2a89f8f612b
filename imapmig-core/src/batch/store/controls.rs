//! The admin's controls over accounts (`batch_account`): pause, resume, stop, run now, and
//! supplying credentials. Each walks the status machine ([`crate::batch::status::next`]); a running
//! account is asked to stop at its next message boundary instead.

use rusqlite::{params, Transaction};

use super::{now, BatchStore, StoredAccount};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::status::{next, Facts, Status, Transition};
use crate::batch::task::Task;
use crate::secret::Secret;

/// Which accounts an operation is about.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// Every account of the task.
    All,
    /// Accounts named by target address, source login or mailbox, or `#id`. A name matching
    /// nothing fails the whole operation, before anything changes.
    Names(&'a [String]),
}

/// What a pause, resume or stop did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlReport {
    /// Accounts whose status changed.
    pub changed: u64,
    /// Running accounts asked to pause or stop at the next message boundary.
    pub requested: u64,
    /// Accounts already there, or in a status the operation does not apply to.
    pub unchanged: u64,
}

impl BatchStore {
    fn control(
        &self,
        task: &str,
        sel: Selection<'_>,
        what: Transition,
    ) -> Result<ControlReport, BatchError> {
        let when = now();
        self.write("change accounts", task, |tx| {
            let t = self.task_in(tx, task)?;
            let accounts = self.selected(tx, task, sel)?;
            let mut report = ControlReport::default();
            for a in &accounts {
                let status = a.status(self, task)?;
                let facts = a.facts(self, &t)?;
                if status == Status::Running {
                    let wanted = match what {
                        Transition::Pause => Some("pause"),
                        Transition::Stop => Some("stop"),
                        _ => None,
                    };
                    if a.control.as_deref() == wanted {
                        report.unchanged += 1;
                        continue;
                    }
                    tx.execute(
                        "UPDATE batch_account SET control = ?2, updated_at = ?3 WHERE id = ?1",
                        params![a.id, wanted, when],
                    )
                    .map_err(self.sql(
                        "change accounts",
                        task,
                        Some(&a.target),
                    ))?;
                    if let Some(c) = wanted {
                        self.audit_in(
                            tx,
                            task,
                            Some(a.id),
                            &AuditEvent::Requested { control: c.into() },
                            when,
                        )?;
                        report.requested += 1;
                    } else {
                        report.changed += 1;
                    }
                    continue;
                }
                match next(status, what, facts) {
                    Ok(to) if to != status => {
                        let reason = match what {
                            Transition::Pause => "paused by the admin",
                            Transition::Stop => "stopped by the admin",
                            _ => "resumed by the admin",
                        };
                        self.change_status(
                            tx,
                            task,
                            a.id,
                            status,
                            to,
                            None,
                            Some(reason.into()),
                            when,
                        )?;
                        if what == Transition::Resume {
                            self.due_now(tx, task, a, true, when)?;
                        }
                        report.changed += 1;
                    }
                    _ => report.unchanged += 1,
                }
            }
            Ok(report)
        })
    }

    /// Pauses accounts: nothing runs for them until resumed. A running pass stops at the next
    /// message boundary (within a second or so of the scheduler noticing).
    pub fn pause(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Pause)
    }

    /// Resumes paused, failed or stopped accounts (and withdraws a pause or stop asked for a
    /// running one): they run again as soon as a slot is free.
    pub fn resume(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Resume)
    }

    /// Stops accounts for good (until resumed): no further passes.
    pub fn stop(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        self.control(task, sel, Transition::Stop)
    }

    /// Runs accounts as soon as a slot is free: a scheduled account's retry pause or start
    /// time and a synced account's wait for its next incremental pass end now (the scheduler
    /// polls the store), and failed or stopped accounts are resumed. Running and paused
    /// accounts, and those waiting for credentials, are left alone.
    pub fn run_now(&self, task: &str, sel: Selection<'_>) -> Result<ControlReport, BatchError> {
        let when = now();
        self.write("run accounts now", task, |tx| {
            let t = self.task_in(tx, task)?;
            let accounts = self.selected(tx, task, sel)?;
            let mut report = ControlReport::default();
            for a in &accounts {
                let status = a.status(self, task)?;
                let to = match status {
                    Status::Scheduled | Status::Synced => status,
                    Status::Failed | Status::Stopped => {
                        match next(status, Transition::Resume, a.facts(self, &t)?) {
                            Ok(to) => {
                                self.change_status(
                                    tx,
                                    task,
                                    a.id,
                                    status,
                                    to,
                                    None,
                                    Some("resumed by the admin".into()),
                                    when,
                                )?;
                                to
                            }
                            Err(_) => status,
                        }
                    }
                    _ => status,
                };
                let moved = to.runnable() && a.next_run_at.unwrap_or(0) > when;
                if to == status && !moved && !(status == Status::Scheduled && a.attempts > 0) {
                    report.unchanged += 1;
                    continue;
                }
                // Synced accounts keep their count of failed passes: it is zero anyway.
                self.due_now(tx, task, a, status != Status::Synced, when)?;
                if to.runnable() && (moved || to != status) {
                    self.audit_in(tx, task, Some(a.id), &AuditEvent::RunNow, when)?;
                }
                report.changed += 1;
            }
            Ok(report)
        })
    }

    /// The accounts of a selection, as stored.
    fn selected(
        &self,
        tx: &Transaction<'_>,
        task: &str,
        sel: Selection<'_>,
    ) -> Result<Vec<StoredAccount>, BatchError> {
        match sel {
            Selection::All => self.load_accounts(tx, task, None),
            Selection::Names(names) => {
                let ids = self.resolve_in(tx, task, names)?;
                self.load_accounts(tx, task, Some(&ids))
            }
        }
    }

    /// Makes an account due now, withdrawing any request; `fresh` also forgets its failed
    /// passes in a row (so its next failure waits the shortest pause).
    fn due_now(
        &self,
        tx: &Transaction<'_>,
        task: &str,
        a: &StoredAccount,
        fresh: bool,
        when: i64,
    ) -> Result<(), BatchError> {
        tx.execute(
            "UPDATE batch_account SET next_run_at = ?2, control = NULL, updated_at = ?2,
                 attempts = CASE WHEN ?3 THEN 0 ELSE attempts END
             WHERE id = ?1",
            params![a.id, when, fresh],
        )
        .map_err(self.sql("change accounts", task, Some(&a.target)))?;
        Ok(())
    }

    /// Supplies the source password or token of the named accounts (the hook a platform calls
    /// when a user logs in with the old password). An account waiting for credentials, or
    /// failed, starts as soon as a slot is free. Returns each account's new status.
    pub fn supply_credentials(
        &self,
        task: &str,
        name: &str,
        secret: Secret,
    ) -> Result<Vec<(i64, Status)>, BatchError> {
        let when = now();
        self.write("supply credentials", task, |tx| {
            let t = self.task_in(tx, task)?;
            let ids = self.resolve_in(tx, task, &[name.to_string()])?;
            ids.iter()
                .map(|id| Ok((*id, self.set_credentials_in(tx, &t, *id, &secret, when)?)))
                .collect()
        })
    }

    pub(super) fn set_credentials_in(
        &self,
        tx: &Transaction<'_>,
        task: &Task,
        id: i64,
        secret: &Secret,
        when: i64,
    ) -> Result<Status, BatchError> {
        let name = task.name.as_str();
        let a = self
            .load_accounts(tx, name, Some(&[id]))?
            .pop()
            .ok_or_else(|| self.corrupt(name, None, format!("account #{id} vanished")))?;
        tx.execute(
            "UPDATE batch_account SET password = ?2, updated_at = ?3 WHERE id = ?1",
            params![
                id,
                self.seal_secret("batch_account", "password", secret),
                when
            ],
        )
        .map_err(self.sql("supply credentials", name, Some(&a.target)))?;
        self.audit_in(tx, name, Some(id), &AuditEvent::CredentialsSupplied, when)?;
        let status = a.status(self, name)?;
        let facts = Facts {
            has_credentials: true,
            synced_before: a.synced_at.is_some(),
        };
        let to = next(status, Transition::Credentials, facts).map_err(|source| {
            BatchError::NotAllowed {
                task: name.to_string(),
                account: a.target.clone(),
                source,
            }
        })?;
        if to != status {
            self.change_status(
                tx,
                name,
                id,
                status,
                to,
                None,
                Some("credentials supplied".into()),
                when,
            )?;
            tx.execute(
                "UPDATE batch_account SET next_run_at = ?2, attempts = 0, last_error = NULL WHERE id = ?1",
                params![id, when],
            )
            .map_err(self.sql("supply credentials", name, Some(&a.target)))?;
        }
        Ok(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::ImportOptions;

    #[test]
    fn controls_and_credentials_walk_the_machine() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,pw\nu2@new.example,u2,\n",
            ImportOptions::default(),
        )
        .unwrap();
        let all = s.pause("t", Selection::All).unwrap();
        assert_eq!(all.changed, 2);
        assert_eq!(s.pause("t", Selection::All).unwrap().unchanged, 2);
        let names = vec!["u2@new.example".to_string()];
        s.resume("t", Selection::Names(&names)).unwrap();
        let a = s.accounts("t").unwrap();
        assert_eq!(a[0].status, Status::Paused);
        assert_eq!(a[1].status, Status::WaitingForCredentials);
        let st = s.supply_credentials("t", "u2", Secret::new("pw")).unwrap();
        assert_eq!(st, vec![(a[1].id, Status::Scheduled)]);
        let e = s
            .pause("t", Selection::Names(&["nobody@x.y".to_string()]))
            .unwrap_err();
        assert!(matches!(e, BatchError::UnknownAccount { .. }), "{e}");
        let by_id = vec![format!("#{}", a[0].id)];
        assert_eq!(s.stop("t", Selection::Names(&by_id)).unwrap().changed, 1);
        assert_eq!(s.accounts("t").unwrap()[0].status, Status::Stopped);
        let log = s.audit("t", None, 1000).unwrap();
        assert!(log
            .iter()
            .any(|r| r.event["event"] == "credentials_supplied"));
        assert!(!log.iter().any(|r| r.to_json_line().contains("\"pw\"")));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn run_now_makes_waiting_passes_due_and_resumes_the_stuck() {
        let (s, dir) = store();
        import(
            &s,
            "sch@new.example,sch,pw\nsyn@new.example,syn,pw\nfail@new.example,fail,pw\n\
             stop@new.example,stop,pw\nrun@new.example,run,pw\npaus@new.example,paus,pw\n\
             wait@new.example,wait,\n",
            ImportOptions::default(),
        )
        .unwrap();
        let later = now() + 3600;
        {
            let conn = s.lock();
            for (source, status, failure) in [
                ("sch", "scheduled", None),
                ("syn", "synced", None),
                ("fail", "failed", Some("authentication")),
                ("stop", "stopped", None),
                ("run", "running", None),
                ("paus", "paused", None),
            ] {
                conn.execute(
                    "UPDATE batch_account SET status = ?2, failure = ?3, next_run_at = ?4,
                     attempts = 3 WHERE source = ?1",
                    params![source, status, failure, later],
                )
                .unwrap();
            }
            conn.execute(
                "UPDATE batch_account SET attempts = 0 WHERE source = 'syn'",
                [],
            )
            .unwrap();
        }
        let r = s.run_now("t", Selection::All).unwrap();
        assert_eq!((r.changed, r.requested, r.unchanged), (4, 0, 3));
        let by = |source: &str| {
            s.accounts("t")
                .unwrap()
                .into_iter()
                .find(|a| a.source == source)
                .unwrap()
        };
        let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(5);
        for source in ["sch", "syn", "fail", "stop"] {
            let a = by(source);
            assert!(a.status.runnable(), "{source}: {:?}", a.status);
            assert!(a.next_pass_at.unwrap() <= soon, "{source}");
            assert_eq!(a.attempts, 0, "{source}");
        }
        assert_eq!(by("fail").status, Status::Scheduled);
        assert_eq!(by("run").status, Status::Running);
        assert_eq!(by("paus").status, Status::Paused);
        assert_eq!(by("wait").status, Status::WaitingForCredentials);
        assert_eq!(by("run").attempts, 3);
        let log = s.audit("t", None, 1000).unwrap();
        let run_now: Vec<_> = log
            .iter()
            .filter(|r| r.event["event"] == "run_now")
            .map(|r| r.source.clone().unwrap())
            .collect();
        assert_eq!(run_now, vec!["sch", "syn", "fail", "stop"]);
        // Due now already: nothing moves, nothing is logged.
        let names = vec!["sch".to_string()];
        let again = s.run_now("t", Selection::Names(&names)).unwrap();
        assert_eq!((again.changed, again.unchanged), (0, 1));
        std::fs::remove_dir_all(dir).ok();
    }
}
