//! Secrets at rest: the key check in `batch_seal`, and the sealing and opening of the secret
//! columns of `batch_task`, `batch_account` and `batch_console` (see [`crate::batch::seal`] for the cipher).

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::BatchStore;
use crate::batch::error::BatchError;
use crate::batch::seal::is_sealed;
use crate::secret::Secret;

/// What the check value in `batch_seal` holds, sealed.
const KEY_CHECK: &str = "imapmig batch store key check";

impl BatchStore {
    /// Whether the secrets this store writes are sealed (it was opened with a key).
    pub fn seals_secrets(&self) -> bool {
        self.key.is_some()
    }
    /// Checks the key against the store, and seals what was stored without one the first time
    /// a key is given.
    pub(super) fn set_up_sealing(&self) -> Result<(), BatchError> {
        let mut conn = self.lock();
        let err = |source| BatchError::Open {
            path: self.path.clone(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS batch_seal (
                 id        INTEGER PRIMARY KEY CHECK (id = 1),
                 key_check TEXT    NOT NULL
             )",
        )
        .map_err(err)?;
        let check: Option<String> = tx
            .query_row("SELECT key_check FROM batch_seal WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        let wrong_key = || BatchError::WrongStateKey {
            path: self.path.clone(),
        };
        match (&self.key, check) {
            (None, None) => return Ok(()),
            (None, Some(_)) => {
                return Err(BatchError::StateKeyNeeded {
                    path: self.path.clone(),
                })
            }
            (Some(key), Some(check)) => {
                return match key.open("key_check", &check) {
                    Some(_) => Ok(()),
                    None => Err(wrong_key()),
                }
            }
            (Some(key), None) => {
                tx.execute(
                    "INSERT INTO batch_seal (id, key_check) VALUES (1, ?1)",
                    [key.seal("key_check", KEY_CHECK)],
                )
                .map_err(err)?;
                for (table, key_column, columns) in [
                    (
                        "batch_task",
                        "name",
                        &["source_secret", "destination_secret"][..],
                    ),
                    ("batch_account", "id", &["password", "target_password"]),
                    ("batch_console", "name", &["value"]),
                ] {
                    for column in columns {
                        let what = seal_context(table, column);
                        let rows: Vec<(rusqlite::types::Value, String)> = tx
                            .prepare(&format!(
                                "SELECT {key_column}, {column} FROM {table} WHERE {column} IS NOT NULL"
                            ))
                            .and_then(|mut s| {
                                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                                    .collect()
                            })
                            .map_err(err)?;
                        for (row, value) in rows {
                            if is_sealed(&value) {
                                // Sealed without a check value: only a key can have done it.
                                key.open(what, &value).ok_or_else(wrong_key)?;
                                continue;
                            }
                            tx.execute(
                                &format!(
                                    "UPDATE {table} SET {column} = ?2 WHERE {key_column} = ?1"
                                ),
                                params![row, key.seal(what, &value)],
                            )
                            .map_err(err)?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(err)?;
        // The clear values may still be in the WAL's older frames: fold it into the file and
        // empty it (best effort: a reader elsewhere may hold it).
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot empty the WAL after sealing");
        }
        Ok(())
    }

    /// A secret as it is to be stored in `column` of `table`: sealed when the store has a key.
    pub(super) fn seal_secret(&self, table: &str, column: &str, secret: &Secret) -> String {
        match &self.key {
            Some(key) => key.seal(seal_context(table, column), secret.expose()),
            None => secret.expose().to_string(),
        }
    }

    /// A stored secret, opened.
    pub(super) fn open_secret(
        &self,
        task: &str,
        account: Option<&str>,
        table: &str,
        column: &str,
        stored: &str,
    ) -> Result<Secret, BatchError> {
        if !is_sealed(stored) {
            return Ok(Secret::new(stored.to_string()));
        }
        let Some(key) = &self.key else {
            return Err(BatchError::StateKeyNeeded {
                path: self.path.clone(),
            });
        };
        key.open(seal_context(table, column), stored)
            .ok_or_else(|| {
                self.corrupt(
                    task,
                    account,
                    format!("{table}.{column}: a sealed value does not open with the key"),
                )
            })
    }
}

/// The associated data a secret in `column` of `table` is sealed with.
fn seal_context(table: &str, column: &str) -> &'static str {
    match (table, column) {
        ("batch_task", "source_secret") => "task.source_secret",
        ("batch_task", "destination_secret") => "task.destination_secret",
        ("batch_account", "password") => "account.password",
        ("batch_account", "target_password") => "account.target_password",
        ("batch_console", "value") => "console.value",
        _ => "key_check",
    }
}
