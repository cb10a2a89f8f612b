//! The page behind an invitation link (`/invite/{token}`) and its API twin
//! (`/api/invitations/{token}`): whose mailbox moves where, a password field, the login check
//! at once, and afterwards the account's progress.
//!
//! The token in the path is hashed before anything looks it up; an unknown link is 404, an
//! expired one 410, a used one shows the progress (and refuses a second password with 410).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use imapmig_core::batch::{AccountReport, BatchError, Invitation, InvitationRefusal, Status};
use imapmig_core::secret::Secret;
use maud::{html, Markup};
use serde::Deserialize;
use time::OffsetDateTime;

use super::check::{self, Outcome};
use super::shared::progress;
use crate::auth::{token_hash, Visitor};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout;
use crate::state::AppState;

/// Where a link stands.
enum Link {
    /// Waiting for the password.
    Open(Invitation, AccountReport),
    /// Used: the account's progress.
    Used(Invitation, AccountReport),
}

/// Finds the invitation of a link: 404 unknown, 410 expired (unused).
async fn find(state: &AppState, token: &str) -> AppResult<Link> {
    let hash = token_hash(token);
    let found = state
        .with_store(move |s| {
            let Some(inv) = s.invitation(&hash)? else {
                return Ok(None);
            };
            let a = s.account(&inv.task, inv.account)?;
            Ok::<_, BatchError>(Some((inv, a)))
        })
        .await?;
    let Some((inv, a)) = found else {
        return Err(AppError::page(
            ErrorKind::NotFound,
            "This link is not valid: it may have been mistyped, or replaced by a newer one. \
             Ask the administrator who sent it for a new link.",
        ));
    };
    if inv.used_at.is_some() {
        return Ok(Link::Used(inv, a));
    }
    if inv.expires_at <= OffsetDateTime::now_utc() {
        return Err(AppError::page(
            ErrorKind::Gone,
            "This link has expired. Ask the administrator who sent it for a new link.",
        ));
    }
    Ok(Link::Open(inv, a))
}

fn whose(a: &AccountReport) -> Markup {
    html! {
        p id="whose" {
            "Your mailbox " strong id="source" { (a.source) } " on " strong id="source-server" { (a.source_server) }
            " moves to " strong id="target" { (a.target) } " on " span id="destination-server" { (a.destination_server) } "."
        }
    }
}

fn form(token: &str, visitor: &Visitor) -> Markup {
    html! {
        form.box method="post" action={ "/invite/" (token) } id="credentials-form" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            p {
                label for="password" { "Password of the old mailbox (or its app password)" } br;
                input type="password" id="password" name="password" autocomplete="current-password" required size="32";
            }
            p.muted { "It is checked against the old mail server right away and kept only for "
                "the move. It is never shown to anyone." }
            button type="submit" id="start-migration" { "Start moving my mail" }
        }
    }
}

/// The outcome of a check, in plain words with what to do.
pub fn outcome_box(o: &Outcome) -> Markup {
    let class = if *o == Outcome::Ok { "ok" } else { "error" };
    html! {
        div.box id="outcome" data-outcome=(o.as_str()) {
            p.(class) { strong { (o.message()) } }
            p { (o.what_to_do()) }
        }
    }
}

fn live(token: &str, a: &AccountReport) -> Markup {
    html! {
        div id="progress" data-poll={ "/invite/" (token) "/status" } data-every="3000" {
            (progress(a))
        }
    }
}

fn used_page(token: &str, a: &AccountReport, outcome: Option<&Outcome>) -> Markup {
    layout::bare(
        "Your mailbox move",
        html! {
            @if let Some(o) = outcome { (outcome_box(o)) }
            (whose(a))
            (live(token, a))
        },
    )
}

/// `GET /invite/{token}`.
pub async fn show(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(token): Path<String>,
) -> AppResult<Response> {
    let page = match find(&state, &token).await? {
        Link::Used(_, a) => used_page(&token, &a, None),
        Link::Open(_, a) => layout::bare(
            "Move your mailbox",
            html! { (whose(&a)) (form(&token, &visitor)) },
        ),
    };
    Ok(visitor.attach(page.into_response()))
}

/// `GET /invite/{token}/status`: the progress fragment the page polls.
pub async fn status_fragment(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> AppResult<Response> {
    match find(&state, &token).await? {
        Link::Used(_, a) | Link::Open(_, a) => Ok(progress(&a).into_response()),
    }
}

/// The password form.
#[derive(Deserialize)]
pub struct PasswordForm {
    password: Secret,
}

/// What a password given through a link came to: the outcome and the account as it is now.
async fn attempt(
    state: &AppState,
    peer: SocketAddr,
    token: &str,
    password: Secret,
) -> AppResult<(Outcome, AccountReport)> {
    let (inv, a) = match find(state, token).await? {
        Link::Used(_, a) => return Ok((Outcome::Used, a)),
        Link::Open(inv, a) => (inv, a),
    };
    if !check::allow(state, peer.ip(), &inv.task, inv.account) {
        tracing::warn!(task = %inv.task, account = inv.account, client = %peer.ip(), "self-service: too many attempts");
        return Ok((Outcome::RateLimited, a));
    }
    if password.expose().is_empty() {
        return Ok((Outcome::WrongPassword, a));
    }
    if let Some(failed) = check::try_login(state, &inv.task, inv.account, &password).await? {
        return Ok((failed, a));
    }
    let hash = token_hash(token);
    let (task, id) = (inv.task.clone(), inv.account);
    let accepted = state
        .with_store(move |s| match s.accept_invitation(&hash, password) {
            Ok(_) => s.account(&task, id).map(Ok),
            Err(BatchError::Invitation { refusal }) => Ok(Err(refusal)),
            Err(e) => Err(e),
        })
        .await?;
    match accepted {
        Ok(now) => {
            tracing::info!(task = %inv.task, account = inv.account, status = now.status.as_str(), "self-service: invitation accepted");
            Ok((Outcome::Ok, now))
        }
        // Used by a second request meanwhile.
        Err(InvitationRefusal::Used) => Ok((Outcome::Used, a)),
        Err(InvitationRefusal::Expired) => Err(AppError::page(
            ErrorKind::Gone,
            "This link has expired. Ask the administrator who sent it for a new link.",
        )),
        Err(InvitationRefusal::Unknown) => Err(AppError::page(
            ErrorKind::NotFound,
            "This link is not valid any more: it was replaced by a newer one.",
        )),
    }
}

/// `POST /invite/{token}` (fields `csrf`, `password`).
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    visitor: Visitor,
    Path(token): Path<String>,
    Form(f): Form<PasswordForm>,
) -> AppResult<Response> {
    let (outcome, a) = attempt(&state, peer, &token, f.password).await?;
    let page = match outcome {
        Outcome::Ok | Outcome::Used => used_page(&token, &a, Some(&outcome)),
        _ => layout::bare(
            "Move your mailbox",
            html! { (outcome_box(&outcome)) (whose(&a)) (form(&token, &visitor)) },
        ),
    };
    let mut resp = page.into_response();
    *resp.status_mut() = outcome.status_code();
    Ok(visitor.attach(resp))
}

/// The account as the API shows it to its user.
fn account_json(a: &AccountReport) -> serde_json::Value {
    serde_json::json!({
        "target": a.target,
        "source": a.source,
        "source_server": a.source_server,
        "destination_server": a.destination_server,
        "status": a.status,
        "folders_done": a.folders_done,
        "folders_total": a.folders_total,
        "messages": a.messages,
        "bytes": a.bytes,
    })
}

/// `GET /api/invitations/{token}`: whose mailbox, whether the link is used, the progress.
pub async fn api_show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> AppResult<Json<serde_json::Value>> {
    let (inv, a, used) = match find(&state, &token).await.map_err(AppError::as_json)? {
        Link::Open(inv, a) => (inv, a, false),
        Link::Used(inv, a) => (inv, a, true),
    };
    let mut v = account_json(&a);
    v["used"] = used.into();
    v["expires_at"] = serde_json::to_value(
        inv.expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    Ok(Json(v))
}

/// The body of `POST /api/invitations/{token}/credentials`.
#[derive(Deserialize)]
pub struct ApiPassword {
    password: Secret,
}

/// `POST /api/invitations/{token}/credentials {"password"}` → `{outcome, message, what_to_do,
/// status}` with the outcome's HTTP status.
pub async fn api_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    Json(body): Json<ApiPassword>,
) -> AppResult<Response> {
    let (outcome, a) = attempt(&state, peer, &token, body.password)
        .await
        .map_err(AppError::as_json)?;
    Ok(outcome_json(&outcome, Some(&a)))
}

/// An outcome as JSON, with its HTTP status.
pub fn outcome_json(outcome: &Outcome, a: Option<&AccountReport>) -> Response {
    let status: Option<Status> = a.map(|a| a.status);
    let code: StatusCode = outcome.status_code();
    (
        code,
        Json(serde_json::json!({
            "outcome": outcome.as_str(),
            "message": outcome.message(),
            "what_to_do": outcome.what_to_do(),
            "status": status,
        })),
    )
        .into_response()
}
