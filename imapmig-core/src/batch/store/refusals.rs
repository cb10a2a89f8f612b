//! Messages not copied (`batch_refusal`): one row per (account, folder, UID), replaced for
//! the folders a pass looked at in full; each new refusal is logged once, not on every pass.
//! They are read back per account ([`BatchStore::refusals`]).

use std::collections::HashSet;

use rusqlite::params;
use serde::Serialize;
use time::OffsetDateTime;

use super::{at, BatchStore, StoredAccount};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::verdict::PassResult;

/// A message of an account that was not copied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// The source folder.
    pub folder: String,
    /// The message's source UID.
    pub uid: u32,
    /// The destination's words, or the limit that excluded it.
    pub reason: String,
    /// The first pass that refused it.
    #[serde(with = "time::serde::rfc3339")]
    pub first_at: OffsetDateTime,
    /// The last pass that refused it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
}

impl BatchStore {
    /// The messages account `id` of the task did not copy, by folder and UID.
    pub fn refusals(&self, task: &str, id: i64) -> Result<Vec<Refusal>, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        if self.load_accounts(&conn, task, Some(&[id]))?.is_empty() {
            return Err(BatchError::UnknownAccount {
                task: task.to_string(),
                name: format!("#{id}"),
            });
        }
        conn.prepare_cached(
            "SELECT folder, uid, reason, first_at, last_at FROM batch_refusal
             WHERE account = ?1 ORDER BY folder, uid",
        )
        .and_then(|mut s| {
            s.query_map([id], |r| {
                Ok(Refusal {
                    folder: r.get(0)?,
                    uid: r.get(1)?,
                    reason: r.get(2)?,
                    first_at: at(r.get(3)?),
                    last_at: at(r.get(4)?),
                })
            })?
            .collect()
        })
        .map_err(self.sql("read refusals", task, None))
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::ImportOptions;

    #[test]
    fn refusals_of_one_account_by_folder_and_uid() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,pw\nu2@new.example,u2,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        let a = s.accounts("t").unwrap();
        {
            let conn = s.lock();
            for (account, folder, uid) in [
                (a[0].id, "Sent", 3),
                (a[0].id, "INBOX", 9),
                (a[0].id, "INBOX", 2),
                (a[1].id, "INBOX", 1),
            ] {
                conn.execute(
                    "INSERT INTO batch_refusal (account, folder, uid, reason, first_at, last_at)
                     VALUES (?1, ?2, ?3, 'too big', 10, 20)",
                    params![account, folder, uid],
                )
                .unwrap();
            }
        }
        let r = s.refusals("t", a[0].id).unwrap();
        let keys: Vec<(&str, u32)> = r.iter().map(|x| (x.folder.as_str(), x.uid)).collect();
        assert_eq!(keys, vec![("INBOX", 2), ("INBOX", 9), ("Sent", 3)]);
        assert_eq!(r[0].first_at, at(10));
        let json = serde_json::to_value(&r[0]).unwrap();
        assert_eq!(json["last_at"], "1970-01-01T00:00:20Z");
        assert!(s.refusals("t", a[1].id + 100).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
