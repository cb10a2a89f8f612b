//! The accounts table: filters by status and failure category, search, sort by any column the
//! store sorts by, pages of at most [`MAX_PER_PAGE`] rows (one `account_page` query each),
//! bulk actions on the ticked rows, and rows that refresh themselves.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use imapmig_core::batch::{
    AccountPage, AccountReport, AccountSort, BatchError, BatchStore, ControlReport, Selection,
    Status,
};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::listing::{ListParams, Listing, MAX_PER_PAGE};
use super::words::{control_words, notice, status_badge, task_url, when, FAILURES};
use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::url_escape;
use crate::layout::{admin_page, bar, bytes, Tab};
use crate::state::AppState;

/// What the admin can do to accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pause (a running pass stops at the next message).
    Pause,
    /// Resume paused, failed or stopped accounts.
    Resume,
    /// Stop for good (until resumed).
    Stop,
    /// Run as soon as a slot is free.
    RunNow,
}

impl Action {
    /// The action named `pause`, `resume`, `stop`, `run_now` or `run-now`.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "pause" => Some(Action::Pause),
            "resume" => Some(Action::Resume),
            "stop" => Some(Action::Stop),
            "run_now" | "run-now" => Some(Action::RunNow),
            _ => None,
        }
    }

    /// Its name in words, for messages.
    pub fn words(self) -> &'static str {
        match self {
            Action::Pause => "Pause",
            Action::Resume => "Resume",
            Action::Stop => "Stop",
            Action::RunNow => "Run now",
        }
    }

    /// Applies it.
    pub fn apply(
        self,
        store: &BatchStore,
        task: &str,
        sel: Selection<'_>,
    ) -> Result<ControlReport, BatchError> {
        match self {
            Action::Pause => store.pause(task, sel),
            Action::Resume => store.resume(task, sel),
            Action::Stop => store.stop(task, sel),
            Action::RunNow => store.run_now(task, sel),
        }
    }
}

/// A control's result as JSON.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ControlJson {
    /// Accounts whose status changed.
    pub changed: u64,
    /// Running accounts asked to pause or stop at the next message boundary.
    pub requested: u64,
    /// Accounts already there, or in a status the action does not apply to.
    pub unchanged: u64,
}

impl From<ControlReport> for ControlJson {
    fn from(r: ControlReport) -> Self {
        ControlJson {
            changed: r.changed,
            requested: r.requested,
            unchanged: r.unchanged,
        }
    }
}

/// One row of the table.
pub fn row(task: &str, a: &AccountReport) -> Markup {
    html! {
        tr.account data-id=(a.id) data-target=(a.target) data-status=(a.status.as_str()) {
            td { input type="checkbox" name="ids" value=(a.id) aria-label={ "select " (a.target) }; }
            td.num { (a.id) }
            td {
                a href=(task_url(task, &format!("/accounts/{}", a.id))) { (a.target) }
                br; span.muted.small { (a.source) }
            }
            td {
                (status_badge(a.status))
                @if let Some(r) = &a.requested { " " span.muted.small { "(" (r) " asked)" } }
                @if !a.has_credentials { " " span.muted.small { "no password" } }
            }
            td.progress {
                (bar(a.folders_done, a.folders_total)) " "
                span.small { (a.folders_done) "/" (a.folders_total) }
            }
            td.num { (a.messages) }
            td.num { (bytes(a.bytes)) }
            td.small { (when(a.last_pass_at)) }
            td.small { (when(a.next_pass_at)) }
            td.small.error-cell {
                @if let Some(c) = a.failure { span.category data-category=(c.as_str()) { (c.as_str()) } ": " }
                @if let Some(e) = &a.last_error { (e) }
            }
        }
    }
}

fn rows(task: &str, page: &AccountPage) -> Markup {
    html! {
        @for a in &page.accounts { (row(task, a)) }
        @if page.accounts.is_empty() {
            tr.empty { td colspan="10" { "No account matches." } }
        }
    }
}

fn listing_or(params: &ListParams, api: bool) -> AppResult<Listing> {
    params.listing().map_err(|e| {
        let e = AppError::page(ErrorKind::BadRequest, e);
        if api {
            e.as_json()
        } else {
            e
        }
    })
}

async fn fetch(state: &AppState, task: &str, l: &Listing) -> AppResult<AccountPage> {
    let (t, q) = (task.to_string(), l.query.clone());
    state.with_store(move |s| s.account_page(&t, &q)).await
}

const COLUMNS: [(&str, Option<AccountSort>, bool); 9] = [
    ("#", Some(AccountSort::Id), true),
    ("Account", Some(AccountSort::Target), false),
    ("Status", Some(AccountSort::Status), false),
    ("Folders", Some(AccountSort::Progress), false),
    ("Messages", Some(AccountSort::Messages), true),
    ("Bytes", Some(AccountSort::Bytes), true),
    ("Last pass", Some(AccountSort::LastPass), false),
    ("Next pass", Some(AccountSort::NextPass), false),
    ("Error", None, false),
];

/// `GET /tasks/{task}/accounts`: the table.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    Query(params): Query<ListParams>,
) -> AppResult<Markup> {
    let l = listing_or(&params, false)?;
    let p = fetch(&state, &task, &l).await?;
    let base = task_url(&task, "/accounts");
    let last = l.last_page(p.matching);
    let q = &l.query;
    let body = html! {
        h1 { "Accounts" }
        (notice(params.done.as_deref()))
        form id="filter" method="get" action=(base) {
            label for="status" { "Status " }
            select id="status" name="status" {
                option value="" selected[q.status.is_none()] { "all" }
                @for s in Status::ALL {
                    option value=(s.as_str()) selected[q.status == Some(s)] { (s.as_str()) }
                }
            }
            " "
            label for="failure" { "Failure " }
            select id="failure" name="failure" {
                option value="" selected[q.failure.is_none()] { "any" }
                @for c in FAILURES {
                    option value=(c.as_str()) selected[q.failure == Some(c)] { (c.as_str()) }
                }
            }
            " "
            input type="search" id="q" name="q" placeholder="address or login" value=(q.search.clone().unwrap_or_default());
            input type="hidden" name="sort" value=(q.sort.as_str());
            input type="hidden" name="dir" value=(if q.descending { "desc" } else { "asc" });
            " "
            label for="per_page" { "Rows " }
            select id="per_page" name="per_page" {
                @for n in [20u64, 50, 100, 200, MAX_PER_PAGE] {
                    option value=(n) selected[l.per_page == n] { (n) }
                }
            }
            " "
            button type="submit" id="apply" { "Apply" }
        }
        p {
            span id="matching" { (p.matching) } " account(s) match · page " (l.page) " of " (last)
        }
        form id="bulk" method="post" action=(task_url(&task, "/accounts/actions")) {
            input type="hidden" name="csrf" value=(admin.csrf);
            input type="hidden" name="back" value=(l.current());
            p.bulk {
                "With the ticked accounts: "
                button.secondary type="submit" name="action" value="pause" id="bulk-pause" { "Pause" } " "
                button.secondary type="submit" name="action" value="resume" id="bulk-resume" { "Resume" } " "
                button.secondary type="submit" name="action" value="stop" id="bulk-stop" { "Stop" } " "
                button.secondary type="submit" name="action" value="run_now" id="bulk-run-now" { "Run now" }
            }
            table id="accounts" {
                thead {
                    tr {
                        th { input type="checkbox" id="select-all" aria-label="select all on this page"; }
                        @for (label, sort, num) in COLUMNS {
                            th.num[num] {
                                @match sort {
                                    Some(s) => {
                                        a href={ (base) (l.sorted_by(s)) } data-sort=(s.as_str()) { (label) }
                                        @if q.sort == s { @if q.descending { " ▼" } @else { " ▲" } }
                                    }
                                    None => (label),
                                }
                            }
                        }
                    }
                }
                tbody id="account-rows" data-poll={ (task_url(&task, "/fragments/accounts")) (l.current()) } data-every="4000" {
                    (rows(&task, &p))
                }
            }
        }
        p.pager {
            @if l.page > 1 {
                a rel="prev" href={ (base) (l.query_string(q.sort, q.descending, l.page - 1)) } { "← previous" }
            }
            @if l.page < last {
                a rel="next" href={ (base) (l.query_string(q.sort, q.descending, l.page + 1)) } { "next →" }
            }
        }
    };
    Ok(admin_page(
        "Accounts",
        &admin,
        Some(&task),
        Tab::Accounts,
        body,
    ))
}

/// `GET /tasks/{task}/fragments/accounts?...`: the table's rows, polled by the page.
pub async fn fragment(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(params): Query<ListParams>,
) -> AppResult<Markup> {
    let l = listing_or(&params, false)?;
    let p = fetch(&state, &task, &l).await?;
    Ok(rows(&task, &p))
}

/// `POST /tasks/{task}/accounts/actions` (form: `ids`..., `action`, `back`).
pub async fn bulk_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let mut names = Vec::new();
    let mut action = None;
    let mut back = String::new();
    for (k, v) in fields {
        match k.as_str() {
            "ids" => {
                let id: i64 = v.parse().map_err(|_| {
                    AppError::page(
                        ErrorKind::BadRequest,
                        format!("{v:?} is not an account number"),
                    )
                })?;
                names.push(format!("#{id}"));
            }
            "action" => action = Some(v),
            // Only a query string of this page is followed.
            "back" if v.starts_with('?') => back = v,
            _ => {}
        }
    }
    let action = action.as_deref().and_then(Action::parse).ok_or_else(|| {
        AppError::page(
            ErrorKind::BadRequest,
            "choose pause, resume, stop or run now",
        )
    })?;
    let done = if names.is_empty() {
        "No account was ticked: tick the accounts first.".to_string()
    } else {
        let t = task.clone();
        let r = state
            .with_store(move |s| action.apply(s, &t, Selection::Names(&names)))
            .await?;
        control_words(action.words(), &r)
    };
    let sep = if back.is_empty() { '?' } else { '&' };
    Ok(Redirect::to(&format!(
        "{}{back}{sep}done={}",
        task_url(&task, "/accounts"),
        url_escape(&done)
    ))
    .into_response())
}

/// `GET /api/tasks/{task}/accounts?status=&failure=&q=&sort=&dir=&page=&per_page=`: one page
/// of accounts (the same query as the table).
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" \
///   'https://console/api/tasks/company/accounts?status=failed&sort=target&per_page=100'
/// {"accounts":[{"id":11,"target":"u10@x.example","status":"failed","failure":"authentication",...}],
///  "matching":3,"offset":0,"limit":100}
/// ```
pub async fn api_list(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    Query(params): Query<ListParams>,
) -> AppResult<Json<AccountPage>> {
    let l = listing_or(&params, true)?;
    Ok(Json(
        fetch(&state, &task, &l).await.map_err(AppError::as_json)?,
    ))
}

/// The body of `POST /api/tasks/{task}/actions`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// `pause`, `resume`, `stop` or `run_now`.
    pub action: String,
    /// Accounts by target, source login, mailbox or `#id`.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Every account of the task.
    #[serde(default)]
    pub all: bool,
}

/// `POST /api/tasks/{task}/actions`: pause, resume, stop or run accounts now.
///
/// ```text
/// curl -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
///   -d '{"action":"pause","accounts":["u01@x.example","#7"]}' \
///   https://console/api/tasks/company/actions
/// {"changed":2,"requested":0,"unchanged":0}
/// ```
/// `{"action":"resume","all":true}` acts on every account. A name that matches nothing fails
/// the whole call (404) before anything changes.
pub async fn api_actions(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Json<ControlJson>> {
    let Json(body) = body.map_err(|e| AppError::json(ErrorKind::BadRequest, e.body_text()))?;
    let action = Action::parse(&body.action).ok_or_else(|| {
        AppError::json(
            ErrorKind::BadRequest,
            format!(
                "action {:?}: expected pause, resume, stop or run_now",
                body.action
            ),
        )
    })?;
    if body.all != body.accounts.is_empty() {
        return Err(AppError::json(
            ErrorKind::BadRequest,
            "give either \"accounts\": [names] or \"all\": true",
        ));
    }
    let r = state
        .with_store(move |s| {
            let sel = if body.all {
                Selection::All
            } else {
                Selection::Names(&body.accounts)
            };
            action.apply(s, &task, sel)
        })
        .await
        .map_err(AppError::as_json)?;
    Ok(Json(r.into()))
}
