//! Importing accounts into a task (`batch_account` rows from a CSV file): every row is checked
//! against the file and against the task before anything is written.

use std::collections::HashMap;
use std::path::Path;

use rusqlite::params;

use super::{now, BatchStore};
use crate::batch::audit::AuditEvent;
use crate::batch::error::BatchError;
use crate::batch::import::{read_accounts, AccountRow, CsvLayout, ParsedCsv, RowError, RowProblem};
use crate::batch::login::needs_own_secret;
use crate::batch::status::Status;

/// How an import treats problems.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Import the good rows even when some are bad (the bad ones are reported).
    pub skip_bad_rows: bool,
    /// Rows whose source and target are already in the task update its credentials instead
    /// of being reported as bad.
    pub update_existing: bool,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// The layout found.
    pub layout: CsvLayout,
    /// Whether there was a header row.
    pub header: bool,
    /// New accounts.
    pub added: u64,
    /// Existing accounts whose credentials were updated.
    pub updated: u64,
    /// New accounts that wait for credentials.
    pub waiting_for_credentials: u64,
    /// Bad rows left out (only with [`ImportOptions::skip_bad_rows`]).
    pub skipped: Vec<RowError>,
    /// Things worth knowing about the file.
    pub notes: Vec<String>,
}

impl BatchStore {
    /// Reads, validates and imports a CSV file of accounts into a task (see
    /// [`super::import`]). Nothing is imported while any row is bad, unless
    /// [`ImportOptions::skip_bad_rows`]; every bad row is named with its line.
    pub fn import_csv(
        &self,
        task: &str,
        file: &Path,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let t = self.task(task)?;
        // Read a line at a time: a file must not make the import hold it whole.
        let reader =
            std::fs::File::open(file).map_err(|source| crate::batch::import::CsvError::Io {
                path: file.to_path_buf(),
                source,
            })?;
        let parsed = read_accounts(
            file,
            std::io::BufReader::with_capacity(64 * 1024, reader),
            t.settings.shared_targets_allowed(),
            t.settings.destination.auth.per_account(),
        )?;
        self.import_rows(task, file, parsed, options)
    }

    /// Imports rows already read with [`crate::batch::import::read_accounts`]; `file` names them in errors.
    pub fn import_rows(
        &self,
        task: &str,
        file: &Path,
        parsed: ParsedCsv,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let when = now();
        self.write("import accounts", task, |tx| {
            let t = self.task_in(tx, task)?;
            let shared = t.settings.shared_targets_allowed();
            // What the task has: (mailbox, target) -> id, and target -> mailbox.
            let mut existing: HashMap<(String, String), i64> = HashMap::new();
            let mut by_target: HashMap<String, String> = HashMap::new();
            {
                let mut stmt = tx
                    .prepare_cached("SELECT id, mailbox, target FROM batch_account WHERE task = ?1")
                    .map_err(self.sql("import accounts", task, None))?;
                let rows = stmt
                    .query_map([task], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)))
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(self.sql("import accounts", task, None))?;
                for (id, mailbox, target) in rows {
                    let key = (mailbox.to_ascii_lowercase(), target.to_ascii_lowercase());
                    by_target.insert(key.1.clone(), mailbox);
                    existing.insert(key, id);
                }
            }
            let mut errors = parsed.errors;
            let mut fresh: Vec<AccountRow> = Vec::new();
            let mut updates: Vec<(i64, AccountRow)> = Vec::new();
            for row in parsed.rows {
                let key = (
                    row.source.mailbox().to_ascii_lowercase(),
                    row.target.to_ascii_lowercase(),
                );
                if let Some(id) = existing.get(&key) {
                    if options.update_existing {
                        updates.push((*id, row));
                    } else {
                        errors.push(RowError {
                            line: row.line,
                            problem: RowProblem::AlreadyInTask,
                        });
                    }
                    continue;
                }
                if !shared {
                    if let Some(other) = by_target.get(&key.1) {
                        if other.to_ascii_lowercase() != key.0 {
                            errors.push(RowError {
                                line: row.line,
                                problem: RowProblem::SharedTarget {
                                    target: row.target.clone(),
                                    other_source: other.clone(),
                                    other_line: None,
                                },
                            });
                            continue;
                        }
                    }
                }
                fresh.push(row);
            }
            errors.sort_by_key(|e| e.line);
            if !errors.is_empty() && !options.skip_bad_rows {
                return Err(BatchError::InvalidRows {
                    file: file.to_path_buf(),
                    errors,
                });
            }
            let mut report = ImportReport {
                layout: parsed.layout,
                header: parsed.header,
                added: 0,
                updated: 0,
                waiting_for_credentials: 0,
                skipped: errors,
                notes: parsed.notes,
            };
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO batch_account (task, source, mailbox, target, password, target_password,
                             status, csv_line, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    )
                    .map_err(self.sql("import accounts", task, None))?;
                for row in &fresh {
                    let waiting = row.password.is_none()
                        && needs_own_secret(&t.settings.source.auth, &row.source);
                    let status = if waiting {
                        report.waiting_for_credentials += 1;
                        Status::WaitingForCredentials
                    } else {
                        Status::NotStarted
                    };
                    insert
                        .execute(params![
                            task,
                            row.source.to_string(),
                            row.source.mailbox(),
                            row.target,
                            row.password
                                .as_ref()
                                .map(|p| self.seal_secret("batch_account", "password", p)),
                            row.target_password
                                .as_ref()
                                .map(|p| self.seal_secret("batch_account", "target_password", p)),
                            status.as_str(),
                            i64::try_from(row.line).unwrap_or(i64::MAX),
                            when
                        ])
                        .map_err(self.sql("import accounts", task, Some(&row.target)))?;
                    report.added += 1;
                }
            }
            for (id, row) in &updates {
                if let Some(secret) = &row.password {
                    self.set_credentials_in(tx, &t, *id, secret, when)?;
                }
                if let Some(secret) = &row.target_password {
                    tx.execute(
                        "UPDATE batch_account SET target_password = ?2, updated_at = ?3 WHERE id = ?1",
                        params![id, self.seal_secret("batch_account", "target_password", secret), when],
                    )
                    .map_err(self.sql("import accounts", task, Some(&row.target)))?;
                }
                report.updated += 1;
            }
            self.audit_in(
                tx,
                task,
                None,
                &AuditEvent::AccountsImported {
                    file: file.display().to_string(),
                    added: report.added,
                    updated: report.updated,
                    skipped: report.skipped.len() as u64,
                },
                when,
            )?;
            Ok(report)
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::batch::store::tests::{settings, tempfile_dir};
    use crate::batch::task::{EditScope, FolderMode};

    pub(in crate::batch::store) fn store() -> (BatchStore, std::path::PathBuf) {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        s.create_task("t", &settings(), None, None).unwrap();
        (s, dir)
    }

    pub(in crate::batch::store) fn import(
        s: &BatchStore,
        text: &str,
        options: ImportOptions,
    ) -> Result<ImportReport, BatchError> {
        let t = s.task("t").unwrap();
        let parsed = crate::batch::import::parse_accounts(
            Path::new("a.csv"),
            text.as_bytes(),
            t.settings.shared_targets_allowed(),
            false,
        )?;
        s.import_rows("t", Path::new("a.csv"), parsed, options)
    }

    #[test]
    fn a_bad_row_stops_the_import_unless_skipped() {
        let (s, dir) = store();
        let text = "u1@new.example,u1,pw\nbroken,u2,pw\nu3@new.example,u3,\n";
        let e = import(&s, text, ImportOptions::default()).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(s.accounts("t").unwrap().is_empty());
        let r = import(
            &s,
            text,
            ImportOptions {
                skip_bad_rows: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (r.added, r.waiting_for_credentials, r.skipped.len()),
            (2, 1, 1)
        );
        let a = s.accounts("t").unwrap();
        assert_eq!(a[0].status, Status::NotStarted);
        assert_eq!(a[1].status, Status::WaitingForCredentials);
        assert!(!a[1].has_credentials);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_second_import_checks_against_the_task() {
        let (s, dir) = store();
        import(&s, "u1@new.example,u1,pw\n", ImportOptions::default()).unwrap();
        let e = import(
            &s,
            "u1@new.example,u1,pw2\nu1@new.example,other,pw\n",
            ImportOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 1: this source and target are already in the task"),
            "{e}"
        );
        assert!(
            e.contains("line 2: target \"u1@new.example\" already receives \"u1\""),
            "{e}"
        );
        let e = import(&s, "u1@new.example,other,pw\n", ImportOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(
                "line 1: target \"u1@new.example\" already receives \"u1\" (already in the task)"
            ),
            "{e}"
        );
        let r = import(
            &s,
            "u1@new.example,u1,pw2\n",
            ImportOptions {
                update_existing: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((r.added, r.updated), (0, 1));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unified_mode_accepts_shared_targets() {
        let dir = tempfile_dir();
        let s = BatchStore::open(&dir.join("s.sqlite")).unwrap();
        let mut set = settings();
        set.folders.mode = FolderMode::Unified { root: "Old".into() };
        s.create_task("t", &set, None, None).unwrap();
        import(
            &s,
            "all@new.example,a,pw\nall@new.example,b,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        assert_eq!(s.accounts("t").unwrap().len(), 2);
        // Editing the server for all accounts is allowed any time.
        let mut set2 = set.clone();
        set2.source.host = "moved.example".into();
        s.edit_task("t", &set2, None, None, EditScope::All).unwrap();
        assert_eq!(
            s.accounts("t").unwrap()[0].source_server,
            "moved.example:993"
        );
        std::fs::remove_dir_all(dir).ok();
    }
}
