//! Reading `batch_account` at the size of a real task (10,000 accounts and more): a page of
//! accounts filtered, sorted and counted by SQLite, one account by id, and the totals. Only
//! the rows on the page become reports, and they are built by [`StoredAccount::report`] so a
//! page shows exactly what [`BatchStore::accounts`] shows.

use rusqlite::types::Value;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::accounts::{read_account, ACCOUNT_COLUMNS};
use super::BatchStore;
use crate::batch::error::BatchError;
use crate::batch::report::{AccountReport, TaskSummary};
use crate::batch::status::{FailureCategory, Status};

/// What a page of accounts is sorted by. Ties are broken by id, so paging is stable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSort {
    /// The account's number in the task.
    #[default]
    Id,
    /// The destination mailbox.
    Target,
    /// The source login.
    Source,
    /// The status, in the order of the machine ([`Status::ALL`]).
    Status,
    /// Folders done of the current or last pass, as a fraction of its folders.
    Progress,
    /// Messages on the destination.
    Messages,
    /// Their bytes.
    Bytes,
    /// When the last pass ended (never-run accounts last).
    LastPass,
    /// When the next pass is due (accounts with none due last).
    NextPass,
    /// When anything about the account last changed.
    Updated,
}

impl AccountSort {
    /// Every sort, in the order a console offers them.
    pub const ALL: [AccountSort; 10] = [
        AccountSort::Id,
        AccountSort::Target,
        AccountSort::Source,
        AccountSort::Status,
        AccountSort::Progress,
        AccountSort::Messages,
        AccountSort::Bytes,
        AccountSort::LastPass,
        AccountSort::NextPass,
        AccountSort::Updated,
    ];

    /// The name in URLs and JSON: `id`, `last_pass`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            AccountSort::Id => "id",
            AccountSort::Target => "target",
            AccountSort::Source => "source",
            AccountSort::Status => "status",
            AccountSort::Progress => "progress",
            AccountSort::Messages => "messages",
            AccountSort::Bytes => "bytes",
            AccountSort::LastPass => "last_pass",
            AccountSort::NextPass => "next_pass",
            AccountSort::Updated => "updated",
        }
    }

    /// The sort named `name` ([`AccountSort::as_str`]).
    pub fn parse(name: &str) -> Option<AccountSort> {
        AccountSort::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The SQL expression sorted on; NULL sorts last in both directions.
    fn expression(self) -> String {
        match self {
            AccountSort::Id => "id".into(),
            AccountSort::Target => "target".into(),
            AccountSort::Source => "source COLLATE NOCASE".into(),
            AccountSort::Status => {
                let arms: String = Status::ALL
                    .iter()
                    .enumerate()
                    .map(|(i, s)| format!(" WHEN '{}' THEN {i}", s.as_str()))
                    .collect();
                format!("CASE status{arms} END")
            }
            AccountSort::Progress => {
                "CASE WHEN folders_total > 0 THEN CAST(folders_done AS REAL) / folders_total \
                 ELSE 0 END"
                    .into()
            }
            AccountSort::Messages => "messages".into(),
            AccountSort::Bytes => "bytes".into(),
            AccountSort::LastPass => "last_pass_at".into(),
            // As reports show it: only scheduled and synced accounts have a next pass.
            AccountSort::NextPass => {
                "CASE WHEN status IN ('scheduled', 'synced') THEN next_run_at END".into()
            }
            AccountSort::Updated => "updated_at".into(),
        }
    }
}

/// Which accounts a page shows, in which order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountQuery {
    /// Only accounts in this status.
    pub status: Option<Status>,
    /// Only accounts that failed in this category.
    pub failure: Option<FailureCategory>,
    /// Only accounts whose target, source login or mailbox holds this text (case-insensitive
    /// for ASCII letters; `%` and `_` are plain characters here).
    pub search: Option<String>,
    /// The order.
    pub sort: AccountSort,
    /// Largest first.
    pub descending: bool,
    /// Matching accounts to skip.
    pub offset: u64,
    /// Accounts on the page, at most.
    pub limit: u64,
}

impl Default for AccountQuery {
    fn default() -> AccountQuery {
        AccountQuery {
            status: None,
            failure: None,
            search: None,
            sort: AccountSort::Id,
            descending: false,
            offset: 0,
            limit: 50,
        }
    }
}

/// One page of accounts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountPage {
    /// The accounts on the page, as reports show them.
    pub accounts: Vec<AccountReport>,
    /// Accounts matching the filters, on all pages.
    pub matching: u64,
    /// Matching accounts skipped before this page.
    pub offset: u64,
    /// The most the page could hold.
    pub limit: u64,
}

/// `text` as a LIKE pattern matching it anywhere, with `\` as the escape character.
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn sql_int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl BatchStore {
    /// A page of the task's accounts: filtered, sorted, counted and cut in SQLite, so it costs
    /// about the same for 50 accounts as for 50,000.
    pub fn account_page(&self, task: &str, q: &AccountQuery) -> Result<AccountPage, BatchError> {
        let mut conn = self.lock();
        let err = self.sql("list accounts", task, None);
        // One read transaction: the count and the page see the same accounts.
        let tx = conn.transaction().map_err(&err)?;
        let t = self.task_in(&tx, task)?;
        let mut filter = String::from("task = ?1");
        let mut args: Vec<Value> = vec![Value::Text(task.to_string())];
        if let Some(s) = q.status {
            args.push(Value::Text(s.as_str().to_string()));
            filter.push_str(&format!(" AND status = ?{}", args.len()));
        }
        if let Some(f) = q.failure {
            args.push(Value::Text(f.as_str().to_string()));
            filter.push_str(&format!(" AND failure = ?{}", args.len()));
        }
        if let Some(text) = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            args.push(Value::Text(contains_pattern(text)));
            let n = args.len();
            filter.push_str(&format!(
                " AND (target LIKE ?{n} ESCAPE '\\' OR source LIKE ?{n} ESCAPE '\\' \
                 OR mailbox LIKE ?{n} ESCAPE '\\')"
            ));
        }
        let matching: i64 = tx
            .prepare_cached(&format!(
                "SELECT count(*) FROM batch_account WHERE {filter}"
            ))
            .and_then(|mut s| s.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0)))
            .map_err(&err)?;
        let expr = q.sort.expression();
        let dir = if q.descending { "DESC" } else { "ASC" };
        args.push(Value::Integer(sql_int(q.limit)));
        args.push(Value::Integer(sql_int(q.offset)));
        let (limit, offset) = (args.len() - 1, args.len());
        let rows = tx
            .prepare_cached(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM batch_account WHERE {filter}
                 ORDER BY ({expr}) IS NULL, {expr} {dir}, id {dir}
                 LIMIT ?{limit} OFFSET ?{offset}"
            ))
            .and_then(|mut s| {
                s.query_map(rusqlite::params_from_iter(args.iter()), read_account)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        let accounts = rows
            .iter()
            .map(|a| a.report(self, &t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AccountPage {
            accounts,
            matching: u64::try_from(matching).unwrap_or(0),
            offset: q.offset,
            limit: q.limit,
        })
    }

    /// One account of the task by id, as reports show it.
    pub fn account(&self, task: &str, id: i64) -> Result<AccountReport, BatchError> {
        let conn = self.lock();
        let t = self.task_in(&conn, task)?;
        match self.load_accounts(&conn, task, Some(&[id]))?.pop() {
            Some(a) => a.report(self, &t),
            None => Err(BatchError::UnknownAccount {
                task: task.to_string(),
                name: format!("#{id}"),
            }),
        }
    }

    /// The totals of a task, added up by SQLite.
    pub fn summary(&self, task: &str) -> Result<TaskSummary, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        let err = self.sql("add up accounts", task, None);
        // Negative counters (a row edited by hand) count as 0, as in a report.
        let rows = conn
            .prepare_cached(
                "SELECT status, failure, count(*), sum(max(messages, 0)), sum(max(bytes, 0)),
                        sum(max(refused, 0))
                 FROM batch_account WHERE task = ?1 GROUP BY status, failure",
            )
            .and_then(|mut s| {
                s.query_map([task], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .map_err(&err)?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut s = TaskSummary::default();
        for (status, failure, n, messages, bytes, refused) in rows {
            let status = Status::parse(&status)
                .ok_or_else(|| self.corrupt(task, None, format!("unknown status {status:?}")))?;
            *s.statuses.entry(status).or_default() += u(n);
            if let Some(c) = failure.as_deref().and_then(FailureCategory::parse) {
                *s.failures.entry(c).or_default() += u(n);
            }
            s.accounts += u(n);
            s.messages += u(messages);
            s.bytes += u(bytes);
            s.refused += u(refused);
        }
        Ok(s)
    }

    /// Accounts of the task whose first complete pass ended at `since` or later: the pace of
    /// the migration, for an estimate of when it ends.
    pub fn first_passes_since(&self, task: &str, since: OffsetDateTime) -> Result<u64, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        let n: i64 = conn
            .prepare_cached(
                "SELECT count(*) FROM batch_account WHERE task = ?1 AND synced_at >= ?2",
            )
            .and_then(|mut s| {
                s.query_row(rusqlite::params![task, since.unix_timestamp()], |r| {
                    r.get(0)
                })
            })
            .map_err(self.sql("count synced accounts", task, None))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// When the task's latest first complete pass ended, if any did: with the window, when
    /// the last incremental passes end.
    pub fn last_first_pass(&self, task: &str) -> Result<Option<OffsetDateTime>, BatchError> {
        let conn = self.lock();
        self.task_in(&conn, task)?;
        let at: Option<i64> = conn
            .prepare_cached("SELECT max(synced_at) FROM batch_account WHERE task = ?1")
            .and_then(|mut s| s.query_row([task], |r| r.get(0)))
            .map_err(self.sql("find the latest first pass", task, None))?;
        Ok(at.map(super::at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::store::imports::tests::{import, store};
    use crate::batch::store::{ImportOptions, Selection};

    fn ids(p: &AccountPage) -> Vec<i64> {
        p.accounts.iter().map(|a| a.id).collect()
    }

    #[test]
    fn sort_names_round_trip() {
        for s in AccountSort::ALL {
            assert_eq!(AccountSort::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(AccountSort::parse("nope"), None);
        assert_eq!(AccountQuery::default().limit, 50);
    }

    #[test]
    fn pages_filter_search_and_sort_in_sql() {
        let (s, dir) = store();
        import(
            &s,
            "a_b@new.example,a_b,pw\naxb@new.example,axb,pw\nc%d@new.example,Cd,\n\
             zed@new.example,admin/ZED,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        let all = s.accounts("t").unwrap();
        let id = |i: usize| all[i].id;
        // Reports are the same as the full listing.
        let page = s.account_page("t", &AccountQuery::default()).unwrap();
        assert_eq!(page.accounts, all);
        assert_eq!((page.matching, page.offset, page.limit), (4, 0, 50));
        assert_eq!(s.account("t", id(2)).unwrap(), all[2]);
        let e = s.account("t", 999_999).unwrap_err();
        assert!(
            matches!(&e, BatchError::UnknownAccount { name, .. } if name == "#999999"),
            "{e}"
        );

        // `_` and `%` are plain characters, not wildcards.
        let q = |search: &str| AccountQuery {
            search: Some(search.into()),
            ..Default::default()
        };
        assert_eq!(ids(&s.account_page("t", &q("a_b")).unwrap()), vec![id(0)]);
        assert_eq!(ids(&s.account_page("t", &q("c%d")).unwrap()), vec![id(2)]);
        assert_eq!(
            ids(&s.account_page("t", &q("\\")).unwrap()),
            Vec::<i64>::new()
        );
        // Case-insensitive, in the source login and the mailbox too.
        assert_eq!(ids(&s.account_page("t", &q("zed")).unwrap()), vec![id(3)]);
        assert_eq!(
            ids(&s.account_page("t", &q("ADMIN/")).unwrap()),
            vec![id(3)]
        );

        // Filters, counted before the cut.
        let waiting = s
            .account_page(
                "t",
                &AccountQuery {
                    status: Some(Status::WaitingForCredentials),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((ids(&waiting), waiting.matching), (vec![id(2)], 1));
        let paged = s
            .account_page(
                "t",
                &AccountQuery {
                    offset: 1,
                    limit: 2,
                    descending: true,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!((ids(&paged), paged.matching), (vec![id(2), id(1)], 4));

        // Sorts, ties by id.
        let sorted = |sort, descending| {
            ids(&s
                .account_page(
                    "t",
                    &AccountQuery {
                        sort,
                        descending,
                        ..Default::default()
                    },
                )
                .unwrap())
        };
        assert_eq!(
            sorted(AccountSort::Target, true),
            vec![id(3), id(2), id(1), id(0)]
        );
        assert_eq!(
            sorted(AccountSort::Source, false),
            vec![id(0), id(3), id(1), id(2)]
        );
        // not_started before waiting_for_credentials; ties by id.
        assert_eq!(
            sorted(AccountSort::Status, false),
            vec![id(0), id(1), id(3), id(2)]
        );
        {
            let conn = s.lock();
            conn.execute(
                "UPDATE batch_account SET folders_done = 1, folders_total = 4, messages = 7 WHERE id = ?1",
                [id(1)],
            )
            .unwrap();
            conn.execute(
                "UPDATE batch_account SET folders_done = 1, folders_total = 2, last_pass_at = 5 WHERE id = ?1",
                [id(3)],
            )
            .unwrap();
        }
        assert_eq!(
            sorted(AccountSort::Progress, true),
            vec![id(3), id(1), id(2), id(0)]
        );
        assert_eq!(sorted(AccountSort::Messages, true)[0], id(1));
        // Never-run accounts last, either way.
        assert_eq!(sorted(AccountSort::LastPass, false)[0], id(3));
        assert_eq!(sorted(AccountSort::LastPass, true)[0], id(3));
        for sort in AccountSort::ALL {
            assert_eq!(sorted(sort, false).len(), 4, "{sort:?}");
        }
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sql_summary_equals_the_sum_of_reports() {
        let (s, dir) = store();
        import(
            &s,
            "u1@new.example,u1,pw\nu2@new.example,u2,\nu3@new.example,u3,pw\nu4@new.example,u4,pw\n",
            ImportOptions::default(),
        )
        .unwrap();
        let names = vec!["u3".to_string()];
        s.pause("t", Selection::Names(&names)).unwrap();
        {
            let conn = s.lock();
            conn.execute(
                "UPDATE batch_account SET status = 'failed', failure = 'authentication',
                 messages = 10, bytes = 1000, refused = 2, synced_at = 100 WHERE source = 'u4'",
                [],
            )
            .unwrap();
            conn.execute(
                "UPDATE batch_account SET status = 'synced', messages = 5, bytes = 50,
                 synced_at = CAST(strftime('%s', 'now') AS INTEGER) WHERE source = 'u1'",
                [],
            )
            .unwrap();
        }
        let summary = s.summary("t").unwrap();
        assert_eq!(summary, TaskSummary::of(&s.accounts("t").unwrap()));
        assert_eq!(summary.accounts, 4);
        assert_eq!(summary.count(Status::Failed), 1);
        assert_eq!(summary.failures[&FailureCategory::Authentication], 1);
        assert_eq!(
            (summary.messages, summary.bytes, summary.refused),
            (15, 1050, 2)
        );
        let hour_ago = OffsetDateTime::now_utc() - time::Duration::hours(1);
        assert_eq!(s.first_passes_since("t", hour_ago).unwrap(), 1);
        assert_eq!(
            s.first_passes_since("t", OffsetDateTime::UNIX_EPOCH)
                .unwrap(),
            2
        );
        assert!(matches!(
            s.summary("nope"),
            Err(BatchError::UnknownTask { .. })
        ));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_page_of_ten_thousand_accounts_is_quick() {
        let (s, dir) = store();
        let text: String = (0..10_000)
            .map(|i| format!("user{i}@new.example,user{i},pw{i}\n"))
            .collect();
        import(&s, &text, ImportOptions::default()).unwrap();
        let started = std::time::Instant::now();
        let page = s
            .account_page(
                "t",
                &AccountQuery {
                    search: Some("user9".into()),
                    sort: AccountSort::Target,
                    descending: true,
                    offset: 100,
                    ..Default::default()
                },
            )
            .unwrap();
        eprintln!(
            "a page of 10,000 accounts (search, sort, offset): {:?}",
            started.elapsed()
        );
        assert_eq!(page.matching, 1111);
        assert_eq!(page.accounts.len(), 50);
        let started = std::time::Instant::now();
        let summary = s.summary("t").unwrap();
        eprintln!("the summary of 10,000 accounts: {:?}", started.elapsed());
        assert_eq!(summary.accounts, 10_000);
        std::fs::remove_dir_all(dir).ok();
    }
}
