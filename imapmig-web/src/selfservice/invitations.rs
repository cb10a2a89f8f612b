//! The admin's side of self-service: invitations for the accounts waiting for credentials
//! (one, a selection, or all), answered as a page of links, a CSV to mail out, or JSON.
//!
//! Each invitation is a new random token; the store keeps only its SHA-256 hash, and a newer
//! invitation of an account withdraws its older unused one. The links are shown in this one
//! answer and never again.

use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use imapmig_core::batch::{AccountQuery, AccountReport, BatchError, Status};
use maud::html;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::check::takes_credentials;
use super::shared::link_base;
use crate::auth::{random_token, token_hash, Admin};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout::url_escape;
use crate::layout::{admin_page, Tab};
use crate::state::AppState;

/// The most waiting accounts the page lists (inviting "all" has no such limit).
const PAGE_LIMIT: u64 = 2000;

/// One invitation made, with its link (shown only now).
#[derive(Clone, Debug, Serialize)]
pub struct Made {
    /// The account's id.
    pub account: i64,
    /// Its destination mailbox.
    pub target: String,
    /// Its source login.
    pub source: String,
    /// The personal link.
    pub link: String,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Which accounts to invite.
enum Who {
    /// Every account waiting for credentials.
    All,
    /// Accounts by name (target, source login, mailbox or `#id`).
    Named(Vec<String>),
}

/// Makes one invitation per chosen account.
async fn invite(
    state: &AppState,
    headers: &HeaderMap,
    task: &str,
    who: Who,
) -> AppResult<Vec<Made>> {
    let t = task.to_string();
    let accounts = state
        .with_store(move |s| match who {
            Who::All => {
                let ids: Vec<String> = s
                    .waiting_for_credentials(&t)?
                    .into_iter()
                    .map(|id| format!("#{id}"))
                    .collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                s.accounts_named(&t, &ids)
            }
            Who::Named(names) => s.accounts_named(&t, &names),
        })
        .await?;
    if accounts.is_empty() {
        return Err(AppError::page(
            ErrorKind::BadRequest,
            "No account chosen: tick accounts, name one, or invite all that wait for credentials.",
        ));
    }
    if let Some(a) = accounts
        .iter()
        .find(|a| !takes_credentials(a.status, a.failure))
    {
        return Err(AppError::page(
            ErrorKind::Conflict,
            format!(
                "{} is {}: only accounts waiting for credentials, or failed because their login \
                 was refused, can be invited.",
                a.target,
                a.status.as_str()
            ),
        ));
    }
    let base = link_base(state, headers);
    let expires_at = OffsetDateTime::now_utc()
        + time::Duration::try_from(state.options.invitation_ttl).unwrap_or(time::Duration::DAY);
    let made: Vec<(AccountReport, String)> = accounts
        .into_iter()
        .map(|a| (a, random_token(32)))
        .collect();
    let hashes: Vec<(i64, String)> = made.iter().map(|(a, t)| (a.id, token_hash(t))).collect();
    let t = task.to_string();
    state
        .with_store(move |s| {
            for (id, hash) in &hashes {
                s.create_invitation(&t, *id, hash, expires_at)?;
            }
            Ok::<_, BatchError>(())
        })
        .await?;
    tracing::info!(task, invitations = made.len(), "invitations made");
    Ok(made
        .into_iter()
        .map(|(a, token)| Made {
            account: a.id,
            target: a.target,
            source: a.source,
            link: format!("{base}/invite/{token}"),
            expires_at,
        })
        .collect())
}

/// `GET /tasks/{task}/invitations`: the accounts waiting for credentials, to invite.
pub async fn page(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
) -> AppResult<Response> {
    let t = task.clone();
    let waiting = state
        .with_store(move |s| {
            s.account_page(
                &t,
                &AccountQuery {
                    status: Some(Status::WaitingForCredentials),
                    limit: PAGE_LIMIT,
                    ..AccountQuery::default()
                },
            )
        })
        .await?;
    let action = format!("/tasks/{}/invitations", url_escape(&task));
    let ttl = imapmig_core::batch::task::format_duration(state.options.invitation_ttl);
    let body = html! {
        h1 { "Invitations" }
        p.muted {
            "Each account gets a personal link: its user types the old mailbox's password there, "
            "it is checked against the old server at once, and the account starts. A link works "
            "once and for " (ttl) "; only its hash is kept, so it is shown only once, now. "
            "A new invitation replaces an account's unused older one."
        }
        form.box method="post" action=(action) id="invite-form" {
            input type="hidden" name="csrf" value=(admin.csrf);
            p {
                label for="account" { "Invite one account (address, login or #id): " }
                input type="text" id="account" name="account" size="32";
            }
            p {
                label { input type="checkbox" name="all" value="1" id="all"; " All accounts waiting for credentials (" span id="waiting-count" { (waiting.matching) } ")" }
            }
            @if waiting.accounts.is_empty() {
                p.muted id="no-waiting" { "No account of this task is waiting for credentials." }
            } @else {
                table id="waiting" {
                    thead { tr { th {} th { "Target" } th { "Source login" } th { "Source server" } } }
                    tbody {
                        @for a in &waiting.accounts {
                            tr.account data-id=(a.id) data-target=(a.target) {
                                td { input type="checkbox" name="ids" value=(a.id) id={ "invite-" (a.id) }; }
                                td { label for={ "invite-" (a.id) } { (a.target) } }
                                td { (a.source) }
                                td { (a.source_server) }
                            }
                        }
                    }
                }
                @if waiting.matching > waiting.accounts.len() as u64 {
                    p.muted { "The first " (waiting.accounts.len()) " are listed; “all” invites every one." }
                }
            }
            p {
                button type="submit" id="invite" name="format" value="html" { "Make links" } " "
                button.secondary type="submit" id="invite-csv" name="format" value="csv" { "Make links as CSV" }
            }
        }
    };
    Ok(admin_page("Invitations", &admin, Some(&task), Tab::Invitations, body).into_response())
}

/// The fields of the invitations form, in order (`ids` repeats).
fn chosen(fields: &[(String, String)]) -> (Who, bool) {
    fn field<'a>(
        fields: &'a [(String, String)],
        name: &'a str,
    ) -> impl Iterator<Item = &'a String> + 'a {
        fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v)
    }
    let csv = field(fields, "format").any(|v| v == "csv");
    if field(fields, "all").any(|v| v == "1" || v == "on" || v == "true") {
        return (Who::All, csv);
    }
    let mut names: Vec<String> = field(fields, "ids")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(|v| format!("#{}", v.trim_start_matches('#')))
        .collect();
    names.extend(
        field(fields, "account")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()),
    );
    names.dedup();
    (Who::Named(names), csv)
}

/// `POST /tasks/{task}/invitations` (fields `ids`..., `account`, or `all=1`; `format=html|csv`).
pub async fn create(
    State(state): State<AppState>,
    admin: Admin,
    Path(task): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let (who, csv) = chosen(&fields);
    let made = invite(&state, &headers, &task, who).await?;
    if csv {
        return Ok(csv_download(&task, &made));
    }
    let body = html! {
        h1 { "Invitation links" }
        p id="invite-result" {
            (made.len()) " link(s) made. Send each user their own link; they are shown only now "
            "(download them as CSV from the invitations page next time)."
        }
        table id="invitations" {
            thead { tr { th { "Target" } th { "Source login" } th { "Link" } th { "Expires" } } }
            tbody {
                @for m in &made {
                    tr {
                        td { (m.target) }
                        td { (m.source) }
                        td { a.invitation-link data-account=(m.account) href=(m.link) { (m.link) } }
                        td { (rfc3339(m.expires_at)) }
                    }
                }
            }
        }
        p { a href={ "/tasks/" (url_escape(&task)) "/invitations" } { "Back to the invitations" } }
    };
    Ok(admin_page(
        "Invitation links",
        &admin,
        Some(&task),
        Tab::Invitations,
        body,
    )
    .into_response())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A CSV field, quoted when it needs to be.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The links as a CSV download: `target,source,link,expires_at`.
fn csv_download(task: &str, made: &[Made]) -> Response {
    let mut out = String::from("target,source,link,expires_at\r\n");
    for m in made {
        out.push_str(&format!(
            "{},{},{},{}\r\n",
            csv_field(&m.target),
            csv_field(&m.source),
            csv_field(&m.link),
            rfc3339(m.expires_at)
        ));
    }
    let name: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                CONTENT_DISPOSITION,
                format!("attachment; filename=\"invitations-{name}.csv\""),
            ),
        ],
        out,
    )
        .into_response()
}

/// The body of `POST /api/tasks/{task}/invitations`.
#[derive(Deserialize)]
pub struct ApiInvite {
    /// Accounts by name (target, source login, mailbox or `#id`).
    #[serde(default)]
    accounts: Vec<String>,
    /// Every account waiting for credentials.
    #[serde(default)]
    all: bool,
}

/// `POST /api/tasks/{task}/invitations {"accounts": [...]} | {"all": true}` →
/// `[{account, target, source, link, expires_at}]`.
pub async fn api_create(
    State(state): State<AppState>,
    _admin: Admin,
    Path(task): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ApiInvite>,
) -> AppResult<Json<Vec<Made>>> {
    let who = if body.all {
        Who::All
    } else {
        Who::Named(body.accounts)
    };
    invite(&state, &headers, &task, who)
        .await
        .map(Json)
        .map_err(AppError::as_json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_names_ids_one_account_or_all() {
        let (who, csv) = chosen(&pairs(&[
            ("csrf", "x"),
            ("ids", "3"),
            ("ids", "7"),
            ("account", " u1@new.example "),
            ("format", "csv"),
        ]));
        assert!(csv);
        match who {
            Who::Named(n) => assert_eq!(n, ["#3", "#7", "u1@new.example"]),
            Who::All => panic!("all"),
        }
        let (who, csv) = chosen(&pairs(&[("all", "1"), ("ids", "3"), ("format", "html")]));
        assert!(!csv);
        assert!(matches!(who, Who::All));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("a"), "a");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
