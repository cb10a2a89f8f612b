//! Messages not copied (`batch_refusal`): one row per (account, folder, UID), replaced for
//! the folders a pass looked at in full; each new refusal is logged once, not on every pass.

use std::collections::HashSet;

use rusqlite::params;

use super::{BatchStore, StoredAccount};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::verdict::PassResult;

impl BatchStore {
    /// Replaces the refusals of the pass's complete folders; logs the new ones. Returns the
    /// account's refusal summary for `last_error`.
    pub(super) fn record_refusals(
        &self,
        tx: &rusqlite::Transaction<'_>,
        task: &str,
        a: &StoredAccount,
        r: &PassResult,
        when: i64,
    ) -> Result<Option<String>, BatchError> {
        let err = self.sql("record refusals", task, Some(&a.target));
        let complete: HashSet<&str> = r.complete_folders.iter().map(String::as_str).collect();
        let now_refused: HashSet<(&str, u32)> = r
            .refusals
            .iter()
            .map(|x| (x.folder.as_str(), x.uid))
            .collect();
        let stored: Vec<(String, u32)> = tx
            .prepare_cached("SELECT folder, uid FROM batch_refusal WHERE account = ?1")
            .and_then(|mut s| {
                s.query_map([a.id], |row| Ok((row.get(0)?, row.get(1)?)))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        for (folder, uid) in &stored {
            if complete.contains(folder.as_str()) && !now_refused.contains(&(folder.as_str(), *uid))
            {
                tx.execute(
                    "DELETE FROM batch_refusal WHERE account = ?1 AND folder = ?2 AND uid = ?3",
                    params![a.id, folder, uid],
                )
                .map_err(&err)?;
            }
        }
        for x in &r.refusals {
            let added = tx
                .execute(
                    "INSERT INTO batch_refusal (account, folder, uid, reason, first_at, last_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (account, folder, uid) DO NOTHING",
                    params![a.id, x.folder, x.uid, x.reason, when],
                )
                .map_err(&err)?;
            if added > 0 {
                self.audit_in(
                    tx,
                    task,
                    Some(a.id),
                    &AuditEvent::MessageRefused {
                        folder: x.folder.clone(),
                        uid: x.uid,
                        reason: x.reason.clone(),
                    },
                    when,
                )?;
            } else {
                tx.execute(
                    "UPDATE batch_refusal SET reason = ?4, last_at = ?5 WHERE account = ?1 AND folder = ?2 AND uid = ?3",
                    params![a.id, x.folder, x.uid, x.reason, when],
                )
                .map_err(&err)?;
            }
        }
        let (count, sample): (i64, Option<(String, u32, String)>) = {
            let count = tx
                .query_row(
                    "SELECT count(*) FROM batch_refusal WHERE account = ?1",
                    [a.id],
                    |row| row.get(0),
                )
                .map_err(&err)?;
            let sample = tx
                .query_row(
                    "SELECT folder, uid, reason FROM batch_refusal WHERE account = ?1 ORDER BY folder, uid LIMIT 1",
                    [a.id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .ok();
            (count, sample)
        };
        tx.execute(
            "UPDATE batch_account SET refused = ?2 WHERE id = ?1",
            params![a.id, count],
        )
        .map_err(&err)?;
        Ok(sample.map(|(folder, uid, reason)| {
            format!("{count} message(s) not copied; first: folder {folder:?} UID {uid}: {reason}")
        }))
    }
}
