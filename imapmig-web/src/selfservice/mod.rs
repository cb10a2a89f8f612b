//! Employee self-service: the admin invites the accounts that wait for credentials and gets a
//! personal link per account; the user behind a link types the old mailbox's password, which
//! is checked against the source server at once, and on success the account starts; the same
//! link then shows its progress. An optional open form does the same by address and password
//! for accounts already in a task.
//!
//! * [`invitations`]: the admin's side (page, CSV, API).
//! * [`page`]: the page behind a link and its API twin.
//! * [`open_form`]: `/self-service` (only with `--open-form`) and its API twin.
//! * [`check`]: the login check, its outcomes in plain words, and the rate limits.
//!
//! # What must never happen here
//!
//! A link's token is random, works once and expires; the store keeps only its hash, and no
//! page, log line or audit event shows it after the admin's own answer. A password goes from
//! the request into a [`imapmig_core::secret::Secret`] and into the store only once the source
//! server accepted it; no page echoes it, no log line or error holds it. A failed check changes
//! nothing but the attempt counters.

pub mod check;
pub mod invitations;
pub mod open_form;
pub mod page;

use axum::http::header::HOST;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;
use imapmig_core::batch::AccountReport;
use maud::{html, Markup};

use crate::layout;
use crate::state::AppState;

/// The self-service routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/tasks/{task}/invitations",
            get(invitations::page).post(invitations::create),
        )
        .route(
            "/api/tasks/{task}/invitations",
            post(invitations::api_create),
        )
        .route("/invite/{token}", get(page::show).post(page::submit))
        .route("/invite/{token}/status", get(page::status_fragment))
        .route("/api/invitations/{token}", get(page::api_show))
        .route(
            "/api/invitations/{token}/credentials",
            post(page::api_submit),
        )
        .route(
            "/self-service",
            get(open_form::show).post(open_form::submit),
        )
        .route("/api/self-service", post(open_form::api_submit))
}

/// Where links point: `--public-url` when given, else the scheme and `Host` of the admin's own
/// request (https when the console speaks TLS).
pub fn link_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.options.public_url {
        return u.trim_end_matches('/').to_string();
    }
    let scheme = if state.options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/'))
        .map(str::to_string)
        .unwrap_or_else(|| state.options.listen.to_string());
    format!("{scheme}://{host}")
}

/// An account's status and progress as its user sees them (`#account-status[data-status]`).
pub fn progress(a: &AccountReport) -> Markup {
    let (words, more) = status_words(a);
    html! {
        p { "Status: " span.status.(a.status.as_str()) id="account-status" data-status=(a.status.as_str()) { (words) } }
        p.muted { (more) }
        @if a.folders_total > 0 {
            p { "Folders: " (layout::bar(a.folders_done, a.folders_total)) " " (a.folders_done) " of " (a.folders_total) }
        }
        p { "Messages copied: " strong id="messages-copied" { (a.messages) } " (" (layout::bytes(a.bytes)) ")" }
    }
}

fn status_words(a: &AccountReport) -> (&'static str, &'static str) {
    use imapmig_core::batch::Status::*;
    match a.status {
        NotStarted | Scheduled => (
            "waiting for its turn",
            "Your mailbox is in the queue; the move starts as soon as a slot is free.",
        ),
        WaitingForCredentials => (
            "waiting for your password",
            "The move starts once the old mailbox's password has been given.",
        ),
        Running => (
            "being moved",
            "Your mail is being copied now. You can keep using your old mailbox meanwhile.",
        ),
        Paused => (
            "paused",
            "The administrator paused the move; it continues when they resume it.",
        ),
        Synced => (
            "moved",
            "Everything has been copied. New mail in the old mailbox is copied over for a while.",
        ),
        Failed => (
            "stopped by a problem",
            "The administrator has been told and will look into it.",
        ),
        Stopped => ("stopped", "The administrator stopped the move."),
    }
}
