//! The open self-service form (`/self-service`, only with `--open-form`): a user types the old
//! address and password. Nothing happens unless the address belongs to an account already in a
//! task that waits for credentials (or failed because its login was refused) and the source
//! server accepts the password.
//!
//! An unknown address and a refused password get the same answer (`not_started`, same words,
//! same HTTP status), so the form does not tell who is in a task. The other outcomes
//! (IMAP access off, server unreachable, TLS) are told, since the user needs them to act;
//! they only come after the address was found. The answer for an unknown address comes faster
//! than a refused login; the per-address rate limit bounds what that timing tells.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use imapmig_core::batch::{AccountReport, BatchError};
use imapmig_core::secret::Secret;
use maud::{html, Markup};
use serde::Deserialize;

use super::check::{self, takes_credentials, Outcome};
use super::page::{outcome_box, outcome_json};
use super::shared::progress;
use crate::auth::Visitor;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::layout;
use crate::state::AppState;

fn not_offered() -> AppError {
    AppError::page(ErrorKind::NotFound, "There is no such page.")
}

fn form(visitor: &Visitor, address: &str) -> Markup {
    html! {
        form.box method="post" action="/self-service" id="open-form" {
            input type="hidden" name="csrf" value=(visitor.csrf);
            p {
                label for="address" { "Your old e-mail address (or login)" } br;
                input type="text" id="address" name="address" value=(address) autocomplete="username" required size="32";
            }
            p {
                label for="password" { "Its password (or app password)" } br;
                input type="password" id="password" name="password" autocomplete="current-password" required size="32";
            }
            p.muted { "The password is checked against the old mail server right away and kept "
                "only for the move. It is never shown to anyone." }
            button type="submit" id="start-migration" { "Start moving my mail" }
        }
    }
}

/// `GET /self-service`.
pub async fn show(State(state): State<AppState>, visitor: Visitor) -> AppResult<Response> {
    if !state.options.open_form {
        return Err(not_offered());
    }
    let page = layout::bare(
        "Move your mailbox",
        html! {
            p { "Type the address and password of the mailbox you are leaving. If it is part of "
                "the move, your mail starts moving at once." }
            (form(&visitor, ""))
        },
    );
    Ok(visitor.attach(page.into_response()))
}

/// The accounts, in any task, whose target, source login or mailbox is `address`.
async fn candidates(state: &AppState, address: &str) -> AppResult<Vec<(String, AccountReport)>> {
    let address = address.trim().to_string();
    if address.is_empty() || address.starts_with('#') {
        return Ok(Vec::new());
    }
    state
        .with_store(move |s| {
            let mut found = Vec::new();
            for task in s.tasks()? {
                match s.accounts_named(&task, std::slice::from_ref(&address)) {
                    Ok(list) => found.extend(list.into_iter().map(|a| (task.clone(), a))),
                    Err(BatchError::UnknownAccount { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(found)
        })
        .await
}

/// What the form came to, and the account when it started.
async fn attempt(
    state: &AppState,
    peer: SocketAddr,
    address: &str,
    password: Secret,
) -> AppResult<(Outcome, Option<AccountReport>)> {
    if !check::allow_client(state, peer.ip()) {
        return Ok((Outcome::RateLimited, None));
    }
    let found = candidates(state, address).await?;
    // The first account that can take credentials; else, one that cannot (its user gets to
    // know only after the server accepted the password).
    let Some((task, a)) = found
        .iter()
        .find(|(_, a)| takes_credentials(a.status, a.failure))
        .or_else(|| found.first())
        .cloned()
    else {
        return Ok((Outcome::NotStarted, None));
    };
    if !state.attempts.allow(
        &format!("selfservice/account/{task}/{}", a.id),
        check::ACCOUNT_ATTEMPTS,
        check::ATTEMPT_WINDOW,
    ) {
        return Ok((Outcome::RateLimited, None));
    }
    if password.expose().is_empty() {
        return Ok((Outcome::NotStarted, None));
    }
    match check::try_login(state, &task, a.id, &password).await? {
        Some(Outcome::WrongPassword) => return Ok((Outcome::NotStarted, None)),
        Some(other) => return Ok((other, None)),
        None => {}
    }
    if !takes_credentials(a.status, a.failure) {
        // The user proved the mailbox is theirs: tell them where it stands.
        return Ok((Outcome::AlreadyStarted, Some(a)));
    }
    let id = a.id;
    let t = task.clone();
    let now = state
        .with_store(move |s| {
            s.supply_credentials(&t, &format!("#{id}"), password)?;
            s.account(&t, id)
        })
        .await?;
    tracing::info!(task = %task, account = id, status = now.status.as_str(), "self-service (open form): credentials supplied");
    Ok((Outcome::Ok, Some(now)))
}

/// The open form's fields.
#[derive(Deserialize)]
pub struct OpenForm {
    address: String,
    password: Secret,
}

/// `POST /self-service` (fields `csrf`, `address`, `password`).
pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    visitor: Visitor,
    Form(f): Form<OpenForm>,
) -> AppResult<Response> {
    if !state.options.open_form {
        return Err(not_offered());
    }
    let (outcome, a) = attempt(&state, peer, &f.address, f.password).await?;
    let page = layout::bare(
        "Move your mailbox",
        html! {
            (outcome_box(&outcome))
            @if let Some(a) = &a {
                p id="whose" { "Your mailbox " strong { (a.source) } " moves to " strong { (a.target) } "." }
                (progress(a))
            } @else {
                (form(&visitor, &f.address))
            }
        },
    );
    let mut resp = page.into_response();
    *resp.status_mut() = outcome.status_code();
    Ok(visitor.attach(resp))
}

/// The body of `POST /api/self-service`.
#[derive(Deserialize)]
pub struct ApiOpen {
    address: String,
    password: Secret,
}

/// `POST /api/self-service {"address", "password"}` → `{outcome, message, what_to_do,
/// status}`.
pub async fn api_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<ApiOpen>,
) -> AppResult<Response> {
    if !state.options.open_form {
        return Err(not_offered().as_json());
    }
    let (outcome, a) = attempt(&state, peer, &body.address, body.password)
        .await
        .map_err(AppError::as_json)?;
    Ok(outcome_json(&outcome, a.as_ref()))
}
