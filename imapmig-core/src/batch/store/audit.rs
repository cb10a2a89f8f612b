//! The audit log (`batch_audit`): events written in the transaction of the change they
//! explain, and read back in order. The events themselves are in [`crate::batch::audit`].

use rusqlite::{params, Transaction};

use super::{at, BatchStore};
use crate::batch::audit::{AuditEvent, AuditRecord};
use crate::batch::error::BatchError;

impl BatchStore {
    /// Appends an audit event inside a transaction.
    pub(super) fn audit_in(
        &self,
        tx: &Transaction<'_>,
        task: &str,
        account: Option<i64>,
        event: &AuditEvent,
        when: i64,
    ) -> Result<(), BatchError> {
        let json = serde_json::to_string(event)
            .map_err(|e| self.corrupt(task, None, format!("audit event: {e}")))?;
        tx.prepare_cached(
            "INSERT INTO batch_audit (task, account, at, event) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![task, account, when, json]))
        .map_err(self.sql("write the audit log", task, None))?;
        Ok(())
    }

    /// Audit records of a task, oldest first: those after `after_id` (all when `None`), at
    /// most `limit`.
    pub fn audit(
        &self,
        task: &str,
        after_id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, BatchError> {
        self.read_audit(
            task,
            "l.task = ?1 AND l.id > ?2 ORDER BY l.id LIMIT ?3",
            after_id.unwrap_or(0),
            limit,
        )
    }

    /// The latest `limit` audit records of one account (`id`), oldest first: an account's
    /// trail without reading the task's whole log.
    pub fn account_audit(
        &self,
        task: &str,
        id: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, BatchError> {
        let mut rows = self.read_audit(
            task,
            "l.task = ?1 AND l.account = ?2 ORDER BY l.id DESC LIMIT ?3",
            id,
            limit,
        )?;
        rows.reverse();
        Ok(rows)
    }

    /// Audit records matching `filter` (an SQL condition and order over `batch_audit l`, with
    /// the task as `?1`, `arg` as `?2` and `limit` as `?3`).
    fn read_audit(
        &self,
        task: &str,
        filter: &str,
        arg: i64,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, BatchError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT l.id, l.at, l.event, a.target, a.source FROM batch_audit l
                 LEFT JOIN batch_account a ON a.id = l.account WHERE {filter}"
            ))
            .map_err(self.sql("read the audit log", task, None))?;
        let rows = stmt
            .query_map(
                params![task, arg, i64::try_from(limit).unwrap_or(i64::MAX)],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read the audit log", task, None))?;
        rows.into_iter()
            .map(|(id, when, json, account, source)| {
                let event = serde_json::from_str(&json).map_err(|e| {
                    self.corrupt(task, account.as_deref(), format!("audit event {id}: {e}"))
                })?;
                Ok(AuditRecord {
                    id,
                    at: at(when),
                    task: task.to_string(),
                    account,
                    source,
                    event,
                    raw: json,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::{ImportOptions, Selection};

    #[test]
    fn an_accounts_trail_is_its_latest_records_oldest_first() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,pw\nu2@new.example,u2,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        let ids: Vec<i64> = s.accounts("t").unwrap().iter().map(|a| a.id).collect();
        for _ in 0..3 {
            s.pause("t", Selection::All).unwrap();
            s.resume("t", Selection::All).unwrap();
        }
        let all = s.audit("t", None, 1000).unwrap();
        let mine: Vec<i64> = all
            .iter()
            .filter(|r| r.account.as_deref() == Some("u1@new.example"))
            .map(|r| r.id)
            .collect();
        assert!(mine.len() >= 6, "{mine:?}");
        let trail = s.account_audit("t", ids[0], 4).unwrap();
        let got: Vec<i64> = trail.iter().map(|r| r.id).collect();
        assert_eq!(got, mine[mine.len() - 4..].to_vec());
        assert!(s.account_audit("t", 999_999, 4).unwrap().is_empty());
        std::fs::remove_dir_all(dir).ok();
    }
}
