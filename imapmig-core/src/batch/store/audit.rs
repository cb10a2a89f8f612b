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
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT l.id, l.at, l.event, a.target, a.source FROM batch_audit l
                 LEFT JOIN batch_account a ON a.id = l.account
                 WHERE l.task = ?1 AND l.id > ?2 ORDER BY l.id LIMIT ?3",
            )
            .map_err(self.sql("read the audit log", task, None))?;
        let rows = stmt
            .query_map(
                params![
                    task,
                    after_id.unwrap_or(0),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
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
