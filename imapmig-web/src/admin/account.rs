//! One account: where it stands, its folders and how many messages each has on the
//! destination (from the engine's sync state, the same record the next pass resumes from),
//! the messages that were refused and why, its audit trail, the actions, and setting its
//! source password (never shown again).

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use imapmig_core::batch::audit::AuditRecord;
use imapmig_core::batch::login::SourceLogin;
use imapmig_core::batch::{
    account_key, AccountReport, BatchError, BatchStore, Refusal, Selection, Status,
};
use imapmig_core::secret::Secret;
use imapmig_core::state::StateStore;
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::accounts::{Action, ControlJson};
use super::words::{
    control_words, event_fields, event_kind, notice, status_badge, task_url, when, Done,
};
use crate::auth::Admin;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::url_escape;
use crate::layout::{admin_page, bar, bytes, Tab};
use crate::state::AppState;

/// The most audit records an account page shows (the latest).
pub const AUDIT_SHOWN: usize = 200;

/// One folder of the account in the sync state.
#[derive(Clone, Debug, Serialize)]
pub struct FolderView {
    /// The source folder.
    pub folder: String,
    /// The destination folder it is copied into.
    pub destination: String,
    /// Messages copied so far.
    pub copied: u64,
}

/// Everything the account page shows, as `GET /api/tasks/{task}/accounts/{id}` returns it.
#[derive(Clone, Debug, Serialize)]
pub struct AccountDetail {
    /// The account as reports show it.
    pub account: AccountReport,
    /// Its folders in the sync state.
    pub folders: Vec<FolderView>,
    /// Messages not copied, and why.
    pub refusals: Vec<Refusal>,
    /// Its latest audit records, oldest first (at most [`AUDIT_SHOWN`]).
    pub audit: Vec<AuditRecord>,
}

/// The account's folders from the sync state, with the number of messages copied into each.
pub fn folders(
    store: &BatchStore,
    task: &str,
    a: &AccountReport,
) -> Result<Vec<FolderView>, BatchError> {
    // A source login that does not parse has never run: it has no sync state.
    let Ok(login) = SourceLogin::parse(&a.source) else {
        return Ok(Vec::new());
    };
    let key = account_key(task, login.mailbox(), &a.target);
    let sync = store.sync_state();
    let mut out = Vec::new();
    for (folder, rec) in sync.folders(&key)? {
        let copied = sync.copied_count(&key, &folder)?;
        out.push(FolderView {
            folder,
            destination: rec.dest_folder,
            copied,
        });
    }
    out.sort_by(|a, b| a.folder.cmp(&b.folder));
    Ok(out)
}

fn detail(store: &BatchStore, task: &str, id: i64) -> Result<AccountDetail, BatchError> {
    let account = store.account(task, id)?;
    Ok(AccountDetail {
        folders: folders(store, task, &account)?,
        refusals: store.refusals(task, id)?,
        audit: store.account_audit(task, id, AUDIT_SHOWN)?,
        account,
    })
}

fn live(a: &AccountReport) -> Markup {
    html! {
        p {
            span id="account-status" data-status=(a.status.as_str()) { (status_badge(a.status)) }
            @if let Some(r) = &a.requested { " " span.muted { "(" (r) " asked for; the pass stops at the next message)" } }
            @if let Some(c) = a.failure { " " span.category data-category=(c.as_str()) { (c.as_str()) } }
        }
        p.progress {
            (bar(a.folders_done, a.folders_total)) " "
            (a.folders_done) " of " (a.folders_total) " folders in the current or last pass"
        }
        @if let Some(e) = &a.last_error { p.error id="last-error" { (e) } }
        table.facts {
            tr { th { "Messages on the destination" } td id="account-messages" { (a.messages) } }
            tr { th { "Copied" } td { (bytes(a.bytes)) } }
            tr { th { "Refused in the last pass" } td { (a.refused) } }
            tr { th { "Passes" } td { (a.passes) } }
            tr { th { "Failed passes in a row" } td { (a.attempts) } }
            tr { th { "Password or token" } td { @if a.has_credentials { "given" } @else { "missing" } } }
            tr { th { "Servers" } td { code { (a.source_server) } " → " code { (a.destination_server) } } }
            tr { th { "First pass started" } td { (when(a.started_at)) } }
            tr { th { "First pass completed" } td { (when(a.synced_at)) } }
            tr { th { "Last pass ended" } td { (when(a.last_pass_at)) } }
            tr { th { "Next pass" } td { (when(a.next_pass_at)) } }
            tr { th { "Incremental passes end" } td { (when(a.window_ends_at)) } }
        }
    }
}

async fn load(state: &AppState, task: &str, id: i64) -> AppResult<AccountDetail> {
    let t = task.to_string();
    state.with_store(move |s| detail(s, &t, id)).await
}

/// `GET /tasks/{task}/accounts/{id}`.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path((task, id)): Path<(String, i64)>,
    Query(q): Query<Done>,
) -> AppResult<Markup> {
    let d = load(&state, &task, id).await?;
    let a = &d.account;
    let base = task_url(&task, &format!("/accounts/{id}"));
    let body = html! {
        p.muted { a href=(task_url(&task, "/accounts")) { "← all accounts" } }
        h1 { (a.target) }
        p.muted { "#" (a.id) " · source login " code { (a.source) } }
        (notice(q.done.as_deref()))
        div id="account-live" data-poll=(task_url(&task, &format!("/fragments/accounts/{id}"))) data-every="3000" {
            (live(a))
        }
        div.box.controls {
            @for (action, id_attr, label) in [("pause", "pause", "Pause"), ("resume", "resume", "Resume"), ("stop", "stop", "Stop"), ("run-now", "run-now", "Run now")] {
                form.inline method="post" action={ (base) "/" (action) } {
                    input type="hidden" name="csrf" value=(admin.csrf);
                    button.secondary type="submit" id=(id_attr) { (label) }
                }
                " "
            }
        }
        h2 { "Folders" }
        @if d.folders.is_empty() {
            p.muted id="no-folders" { "No folder has been copied yet." }
        } @else {
            table id="folders" {
                thead { tr { th { "Source folder" } th { "Destination folder" } th.num { "Messages copied" } } }
                tbody {
                    @for f in &d.folders {
                        tr data-folder=(f.folder) { td { (f.folder) } td { (f.destination) } td.num { (f.copied) } }
                    }
                }
            }
        }
        h2 { "Refused messages" }
        table id="refusals" {
            thead { tr { th { "Folder" } th.num { "UID" } th { "Reason" } th { "First refused" } th { "Last refused" } } }
            tbody {
                @for r in &d.refusals {
                    tr { td { (r.folder) } td.num { (r.uid) } td { (r.reason) } td.small { (when(Some(r.first_at))) } td.small { (when(Some(r.last_at))) } }
                }
                @if d.refusals.is_empty() { tr.empty { td colspan="5" { "None." } } }
            }
        }
        h2 { "Source password" }
        form.box method="post" action={ (base) "/credentials" } id="credentials" {
            input type="hidden" name="csrf" value=(admin.csrf);
            p.muted {
                "Sets or replaces the password (or OAuth2 token) the account logs in to the source with. "
                "It is stored for the incremental passes and never shown again. An account waiting for "
                "credentials, or failed, starts as soon as a slot is free."
            }
            label for="password" { "New password " }
            input type="password" id="password" name="password" autocomplete="new-password" required;
            " "
            button type="submit" id="set-credentials" { "Set password" }
        }
        h2 { "Audit trail" }
        table id="account-audit" {
            thead { tr { th { "When" } th { "Event" } th { "Details" } } }
            tbody {
                @for r in &d.audit {
                    tr data-event=(event_kind(r)) { td.small { (when(Some(r.at))) } td { (event_kind(r)) } td.small { (event_fields(r)) } }
                }
                @if d.audit.is_empty() { tr.empty { td colspan="3" { "Nothing yet." } } }
            }
        }
    };
    Ok(admin_page(
        &a.target,
        &admin,
        Some(&task),
        Tab::Accounts,
        body,
    ))
}

/// `GET /tasks/{task}/fragments/accounts/{id}`: the live part of the account page.
pub async fn fragment(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id)): Path<(String, i64)>,
) -> AppResult<Markup> {
    let t = task.clone();
    let a = state.with_store(move |s| s.account(&t, id)).await?;
    Ok(live(&a))
}

fn back(task: &str, id: i64, done: &str) -> Response {
    Redirect::to(&format!(
        "{}?done={}",
        task_url(task, &format!("/accounts/{id}")),
        url_escape(done)
    ))
    .into_response()
}

fn action_of(name: &str) -> Result<Action, AppError> {
    Action::parse(name).ok_or_else(|| {
        AppError::page(
            ErrorKind::NotFound,
            format!("{name:?}: the actions are pause, resume, stop and run-now"),
        )
    })
}

async fn act(state: &AppState, task: &str, id: i64, action: Action) -> AppResult<ControlJson> {
    let t = task.to_string();
    let r = state
        .with_store(move |s| action.apply(s, &t, Selection::Names(&[format!("#{id}")])))
        .await?;
    Ok(r.into())
}

/// `POST /tasks/{task}/accounts/{id}/{pause|resume|stop|run-now}`.
pub async fn action_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id, action)): Path<(String, i64, String)>,
) -> AppResult<Response> {
    let action = action_of(&action)?;
    let r = act(&state, &task, id, action).await?;
    let words = control_words(
        action.words(),
        &imapmig_core::batch::ControlReport {
            changed: r.changed,
            requested: r.requested,
            unchanged: r.unchanged,
        },
    );
    Ok(back(&task, id, &words))
}

/// The credentials form.
#[derive(Deserialize)]
pub struct PasswordForm {
    /// The source password or token.
    pub password: Secret,
}

async fn set_password(
    state: &AppState,
    task: &str,
    id: i64,
    password: Secret,
) -> AppResult<Status> {
    if password.expose().is_empty() {
        return Err(AppError::page(
            ErrorKind::BadRequest,
            "the password is empty",
        ));
    }
    let t = task.to_string();
    let set = state
        .with_store(move |s| s.supply_credentials(&t, &format!("#{id}"), password))
        .await?;
    set.into_iter()
        .find(|(i, _)| *i == id)
        .map(|(_, s)| s)
        .ok_or_else(|| AppError::page(ErrorKind::NotFound, format!("no account #{id}")))
}

/// `POST /tasks/{task}/accounts/{id}/credentials` (form field `password`).
pub async fn credentials_form(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id)): Path<(String, i64)>,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    let status = set_password(&state, &task, id, f.password).await?;
    Ok(back(
        &task,
        id,
        &format!(
            "The password is set; the account is {}.",
            status.as_str().replace('_', " ")
        ),
    ))
}

/// `GET /api/tasks/{task}/accounts/{id}`: the account, its folders, refusals and audit trail.
///
/// ```text
/// curl -H "Authorization: Bearer $TOKEN" https://console/api/tasks/company/accounts/7
/// {"account":{"id":7,"target":"u07@x.example","status":"synced",...},
///  "folders":[{"folder":"INBOX","destination":"INBOX","copied":12}],
///  "refusals":[{"folder":"INBOX","uid":9,"reason":"message too large",...}],
///  "audit":[{"id":31,"at":"2025-01-01T10:00:00Z","event":"status_changed","from":"running","to":"synced",...}]}
/// ```
pub async fn api_account(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id)): Path<(String, i64)>,
) -> AppResult<Json<AccountDetail>> {
    Ok(Json(
        load(&state, &task, id).await.map_err(AppError::as_json)?,
    ))
}

/// `POST /api/tasks/{task}/accounts/{id}/{pause|resume|stop|run-now}`.
///
/// ```text
/// curl -X POST -H "Authorization: Bearer $TOKEN" https://console/api/tasks/company/accounts/7/pause
/// {"changed":1,"requested":0,"unchanged":0}
/// ```
pub async fn api_action(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id, action)): Path<(String, i64, String)>,
) -> AppResult<Json<ControlJson>> {
    let action = action_of(&action).map_err(AppError::as_json)?;
    Ok(Json(
        act(&state, &task, id, action)
            .await
            .map_err(AppError::as_json)?,
    ))
}

/// The body of `PUT /api/tasks/{task}/accounts/{id}/credentials`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// The source password or token.
    pub password: Secret,
}

/// `PUT /api/tasks/{task}/accounts/{id}/credentials`: sets the source password or token.
///
/// ```text
/// curl -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
///   -d '{"password":"..."}' https://console/api/tasks/company/accounts/7/credentials
/// {"id":7,"status":"scheduled"}
/// ```
pub async fn api_credentials(
    State(state): State<AppState>,
    _admin: Admin,
    Path((task, id)): Path<(String, i64)>,
    body: Result<Json<PasswordBody>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Json<serde_json::Value>> {
    // The rejection's text could quote the body: say only what shape is expected.
    let Json(body) = body
        .map_err(|_| AppError::json(ErrorKind::BadRequest, "expected {\"password\": \"...\"}"))?;
    let status = set_password(&state, &task, id, body.password)
        .await
        .map_err(AppError::as_json)?;
    Ok(Json(serde_json::json!({ "id": id, "status": status })))
}
