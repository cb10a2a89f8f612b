//! What the self-service pages share: the base of the links they make, and an account's
//! status and progress in the employee's words.

use axum::http::header::HOST;
use axum::http::HeaderMap;
use imapmig_core::batch::AccountReport;
use maud::{html, Markup};

use crate::layout;
use crate::state::AppState;

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
