//! The audit log, oldest first, a page at a time: `after` (the last id seen) and `limit`, the
//! same paging as `imapmig audit`.

use axum::extract::{Path, Query, State};
use axum::Json;
use imapmig_core::batch::audit::AuditRecord;
use maud::{html, Markup};
use serde::Deserialize;

use super::words::{event_fields, event_kind};
use super::words::{task_url, when};
use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::{admin_page, Tab};
use crate::state::AppState;

/// Records per page unless asked otherwise.
pub const PER_PAGE: usize = 100;
/// The most records one request returns.
pub const MAX_PER_PAGE: usize = 10_000;

/// `?after=&limit=`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuditParams {
    /// Records after this id (all when absent).
    pub after: Option<String>,
    /// At most this many.
    pub limit: Option<String>,
}

impl AuditParams {
    /// `(after, limit)`, checked; the error names the bad parameter.
    pub fn read(&self) -> Result<(Option<i64>, usize), String> {
        let after = match self
            .after
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(v) => Some(
                v.parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("after {v:?}: expected an audit record id"))?,
            ),
        };
        let limit = match self
            .limit
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => PER_PAGE,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("limit {v:?}: expected a whole number from 1"))?
                .min(MAX_PER_PAGE),
        };
        Ok((after, limit))
    }
}

async fn fetch(
    state: &AppState,
    task: String,
    after: Option<i64>,
    limit: usize,
) -> AppResult<Vec<AuditRecord>> {
    state
        .with_store(move |s| {
            s.task(&task)?;
            s.audit(&task, after, limit)
        })
        .await
}

fn table(task: &str, records: &[AuditRecord]) -> Markup {
    html! {
        table id="audit-log" {
            thead { tr { th.num { "#" } th { "When" } th { "Account" } th { "Event" } th { "Details" } } }
            tbody {
                @for r in records {
                    tr data-id=(r.id) data-event=(event_kind(r)) {
                        td.num { (r.id) }
                        td.small { (when(Some(r.at))) }
                        td {
                            @if let Some(a) = &r.account {
                                a href={ (task_url(task, "/accounts")) "?q=" (crate::layout::url_escape(a)) } { (a) }
                            }
                        }
                        td { (event_kind(r)) }
                        td.small { (event_fields(r)) }
                    }
                }
                @if records.is_empty() { tr.empty { td colspan="5" { "No more records." } } }
            }
        }
    }
}

/// `GET /tasks/{task}/audit?after=&limit=`.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    Query(p): Query<AuditParams>,
) -> AppResult<Markup> {
    let (after, limit) = p
        .read()
        .map_err(|e| AppError::page(ErrorKind::BadRequest, e))?;
    let records = fetch(&state, task.clone(), after, limit).await?;
    let base = task_url(&task, "/audit");
    let body = html! {
        h1 { "Audit log" }
        p.muted { "Oldest first. Everything the admin, the scheduler and self-service did, never a password. "
            "The same log: " code { "imapmig audit" } "." }
        (table(&task, &records))
        p.pager {
            @if after.is_some() {
                a rel="first" href=(base) { "← from the start" }
            }
            @if let (Some(last), true) = (records.last(), records.len() == limit) {
                a rel="next" href={ (base) "?after=" (last.id) "&limit=" (limit) } { "next →" }
            }
        }
    };
    Ok(admin_page(
        "Audit log",
        &admin,
        Some(&task),
        Tab::Audit,
        body,
    ))
}

/// `GET /api/tasks/{task}/audit?after=&limit=`: audit records, oldest first (each as
/// `imapmig audit` prints it, as one JSON object).
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" 'https://console/api/tasks/company/audit?after=120&limit=2'
/// [{"id":121,"at":"2025-01-01T10:00:00Z","task":"company","account":"u01@x.example","source":"u01",
///   "event":"status_changed","from":"scheduled","to":"running"}, ...]
/// ```
/// Page on with `after` = the last id returned, until the list is empty.
pub async fn api_audit(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(p): Query<AuditParams>,
) -> AppResult<Json<Vec<AuditRecord>>> {
    let (after, limit) = p
        .read()
        .map_err(|e| AppError::json(ErrorKind::BadRequest, e))?;
    Ok(Json(
        fetch(&state, task, after, limit)
            .await
            .map_err(AppError::as_json)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters_are_checked() {
        let p = |after: &str, limit: &str| AuditParams {
            after: Some(after.into()),
            limit: Some(limit.into()),
        };
        assert_eq!(AuditParams::default().read(), Ok((None, PER_PAGE)));
        assert_eq!(p("12", "5").read(), Ok((Some(12), 5)));
        assert_eq!(p("", "999999").read(), Ok((None, MAX_PER_PAGE)));
        assert!(p("x", "5").read().unwrap_err().starts_with("after"));
        assert!(p("1", "0").read().unwrap_err().starts_with("limit"));
    }
}
