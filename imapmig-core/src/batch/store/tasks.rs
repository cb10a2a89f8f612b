//! Tasks (`batch_task`): creating, reading, listing and editing them; an edit names the
//! settings it changed in the audit log.

use rusqlite::{params, Connection, OptionalExtension};

use super::{at, now, BatchStore};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::task::{EditScope, Task, TaskSettings};
use crate::secret::Secret;

impl BatchStore {
    /// Creates a task. Fails if the settings cannot work or the name is taken.
    pub fn create_task(
        &self,
        name: &str,
        settings: &TaskSettings,
        source_secret: Option<Secret>,
        destination_secret: Option<Secret>,
    ) -> Result<Task, BatchError> {
        settings.validate(
            name,
            (source_secret.is_some(), destination_secret.is_some()),
        )?;
        let json = serde_json::to_string(settings)
            .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
        let t = now();
        self.write("create the task", name, |tx| {
            let exists: bool = tx
                .query_row("SELECT 1 FROM batch_task WHERE name = ?1", [name], |_| Ok(true))
                .optional()
                .map_err(self.sql("create the task", name, None))?
                .unwrap_or(false);
            if exists {
                return Err(BatchError::TaskExists {
                    path: self.path.clone(),
                    task: name.to_string(),
                });
            }
            tx.execute(
                "INSERT INTO batch_task (name, settings, source_secret, destination_secret, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![
                    name,
                    json,
                    source_secret
                        .as_ref()
                        .map(|s| self.seal_secret("batch_task", "source_secret", s)),
                    destination_secret
                        .as_ref()
                        .map(|s| self.seal_secret("batch_task", "destination_secret", s)),
                    t
                ],
            )
            .map_err(self.sql("create the task", name, None))?;
            self.audit_in(tx, name, None, &AuditEvent::TaskCreated, t)
        })?;
        self.task(name)
    }

    /// The task of that name.
    pub fn task(&self, name: &str) -> Result<Task, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, name)
    }

    pub(super) fn task_in(&self, conn: &Connection, name: &str) -> Result<Task, BatchError> {
        let row = conn
            .prepare_cached(
                "SELECT settings, source_secret, destination_secret, created_at, updated_at
                 FROM batch_task WHERE name = ?1",
            )
            .and_then(|mut s| {
                s.query_row([name], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .optional()
            })
            .map_err(self.sql("read the task", name, None))?;
        let Some((json, ss, ds, created, updated)) = row else {
            return Err(BatchError::UnknownTask {
                path: self.path.clone(),
                task: name.to_string(),
            });
        };
        let settings: TaskSettings = serde_json::from_str(&json)
            .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
        let open = |column, stored: Option<String>| {
            stored
                .map(|v| self.open_secret(name, None, "batch_task", column, &v))
                .transpose()
        };
        Ok(Task {
            name: name.to_string(),
            settings,
            source_secret: open("source_secret", ss)?,
            destination_secret: open("destination_secret", ds)?,
            created_at: at(created),
            updated_at: at(updated),
        })
    }

    /// The names of every task, sorted.
    pub fn tasks(&self) -> Result<Vec<String>, BatchError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT name FROM batch_task ORDER BY name")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.sql("list tasks", "", None))
    }

    /// Replaces a task's settings (and, when given, its secrets). Returns the names of the
    /// settings that changed.
    ///
    /// Server changes (host, port, TLS, certificate check, auth) apply to accounts that have
    /// not started, or to every account from its next pass, as `scope` says; every other
    /// setting applies at once to all (a running scheduler picks it up within a second).
    pub fn edit_task(
        &self,
        name: &str,
        settings: &TaskSettings,
        source_secret: Option<Secret>,
        destination_secret: Option<Secret>,
        scope: EditScope,
    ) -> Result<Vec<String>, BatchError> {
        let t = now();
        self.write("edit the task", name, |tx| {
            let old = self.task_in(tx, name)?;
            let has = (
                source_secret.is_some() || old.source_secret.is_some(),
                destination_secret.is_some() || old.destination_secret.is_some(),
            );
            settings.validate(name, has)?;
            let changed = changed_settings(&old.settings, settings);
            let json = serde_json::to_string(settings)
                .map_err(|e| self.corrupt(name, None, format!("settings: {e}")))?;
            tx.execute(
                "UPDATE batch_task SET settings = ?2, updated_at = ?3,
                     source_secret = coalesce(?4, source_secret),
                     destination_secret = coalesce(?5, destination_secret)
                 WHERE name = ?1",
                params![
                    name,
                    json,
                    t,
                    source_secret.as_ref().map(|s| self.seal_secret(
                        "batch_task",
                        "source_secret",
                        s
                    )),
                    destination_secret.as_ref().map(|s| self.seal_secret(
                        "batch_task",
                        "destination_secret",
                        s
                    ))
                ],
            )
            .map_err(self.sql("edit the task", name, None))?;
            if scope == EditScope::All {
                tx.execute(
                    "UPDATE batch_account SET source_pin = NULL, destination_pin = NULL,
                         source_host = NULL, destination_host = NULL
                     WHERE task = ?1",
                    [name],
                )
                .map_err(self.sql("edit the task", name, None))?;
            }
            let mut names = changed.clone();
            if source_secret.is_some() {
                names.push("source.secret".into());
            }
            if destination_secret.is_some() {
                names.push("destination.secret".into());
            }
            self.audit_in(
                tx,
                name,
                None,
                &AuditEvent::TaskEdited {
                    changed: names.clone(),
                    scope,
                },
                t,
            )?;
            Ok(names)
        })
    }
}

/// The settings that differ, by name.
fn changed_settings(old: &TaskSettings, new: &TaskSettings) -> Vec<String> {
    let (Ok(a), Ok(b)) = (serde_json::to_value(old), serde_json::to_value(new)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn diff(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(&name, p, q, out),
                    _ => out.push(name),
                }
            }
        }
        _ if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::tests::{settings, tempfile_dir};

    #[test]
    fn tasks_are_unique_and_edits_are_named() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        assert!(matches!(
            s.create_task("t", &settings(), None, None),
            Err(BatchError::TaskExists { .. })
        ));
        assert!(matches!(
            s.task("nope"),
            Err(BatchError::UnknownTask { .. })
        ));
        let mut new = settings();
        new.source.port = 1993;
        new.limits.accounts = 3;
        let changed = s.edit_task("t", &new, None, None, EditScope::All).unwrap();
        assert_eq!(changed, vec!["limits.accounts", "source.port"]);
        assert_eq!(s.task("t").unwrap().settings, new);
        let log = s.audit("t", None, 100).unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].event["event"], "task_edited");
        std::fs::remove_dir_all(dir).ok();
    }
}
