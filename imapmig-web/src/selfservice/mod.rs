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
pub mod shared;

use axum::routing::{get, post};
use axum::Router;

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
