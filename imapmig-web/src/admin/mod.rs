//! The admin console's pages and their API twins, one file per subject:
//!
//! * [`overview`]: the task list, a task's overview (counts, throughput, ETA, servers, who runs
//!   the scheduler) and the task-wide buttons (start now, pause all, resume all).
//! * [`accounts`]: the accounts table (filters, search, sort, pages, bulk actions).
//! * [`account`]: one account (folders from the sync state, refusals, audit trail, actions,
//!   credentials).
//! * [`import`]: CSV upload.
//! * [`settings`]: the task's settings, edited with the same [`SettingsPatch`] the CLI's
//!   `task edit` applies.
//! * [`export`]: the report as CSV or JSON, byte for byte what `imapmig status` prints.
//! * [`audit`]: the audit log, a page at a time.
//! * [`pace`] and [`listing`]: the pure parts (throughput, ETA, window end; the table's query)
//!   that the pages build on.
//!
//! Pages never load every account: the table asks the store for one page
//! ([`imapmig_core::batch::BatchStore::account_page`]) and the totals come from
//! [`imapmig_core::batch::BatchStore::summary`], both answered by SQLite. Every page that
//! changes something posts a form carrying the session's CSRF token; every API handler answers
//! errors as JSON.
//!
//! [`SettingsPatch`]: imapmig_core::config::SettingsPatch

pub mod account;
pub mod accounts;
pub mod audit;
pub mod export;
pub mod import;
pub mod listing;
pub mod overview;
pub mod pace;
pub mod settings;

use axum::routing::{get, post, put};
use axum::Router;
use imapmig_core::batch::{FailureCategory, Status};
use maud::{html, Markup};
use time::OffsetDateTime;

use crate::auth::url_escape;
use crate::state::AppState;

/// The admin routes (pages under `/tasks`, API under `/api/tasks`).
pub fn routes() -> Router<AppState> {
    Router::new()
        // Pages.
        .route("/tasks", get(overview::task_list))
        .route("/tasks/{task}", get(overview::page))
        .route("/tasks/{task}/fragments/overview", get(overview::fragment))
        .route("/tasks/{task}/start", post(overview::start_form))
        .route("/tasks/{task}/pause-all", post(overview::pause_all_form))
        .route("/tasks/{task}/resume-all", post(overview::resume_all_form))
        .route("/tasks/{task}/accounts", get(accounts::page))
        .route("/tasks/{task}/fragments/accounts", get(accounts::fragment))
        .route("/tasks/{task}/accounts/actions", post(accounts::bulk_form))
        .route("/tasks/{task}/accounts/{id}", get(account::page))
        .route(
            "/tasks/{task}/fragments/accounts/{id}",
            get(account::fragment),
        )
        .route(
            "/tasks/{task}/accounts/{id}/credentials",
            post(account::credentials_form),
        )
        .route(
            "/tasks/{task}/accounts/{id}/{action}",
            post(account::action_form),
        )
        .route(
            "/tasks/{task}/import",
            get(import::page).post(import::upload),
        )
        .route(
            "/tasks/{task}/settings",
            get(settings::page).post(settings::save),
        )
        .route("/tasks/{task}/export.csv", get(export::csv))
        .route("/tasks/{task}/export.json", get(export::json))
        .route("/tasks/{task}/audit", get(audit::page))
        // API.
        .route("/api/tasks", get(overview::api_tasks))
        .route("/api/tasks/{task}", get(overview::api_overview))
        .route("/api/tasks/{task}/start", post(overview::api_start))
        .route("/api/tasks/{task}/accounts", get(accounts::api_list))
        .route("/api/tasks/{task}/actions", post(accounts::api_actions))
        .route("/api/tasks/{task}/accounts/{id}", get(account::api_account))
        .route(
            "/api/tasks/{task}/accounts/{id}/credentials",
            put(account::api_credentials),
        )
        .route(
            "/api/tasks/{task}/accounts/{id}/{action}",
            post(account::api_action),
        )
        .route("/api/tasks/{task}/import", post(import::api_import))
        .route(
            "/api/tasks/{task}/settings",
            get(settings::api_get).patch(settings::api_patch),
        )
        .route("/api/tasks/{task}/export", get(export::api_export))
        .route("/api/tasks/{task}/audit", get(audit::api_audit))
}

/// Failure categories, in the order the console offers them.
pub const FAILURES: [FailureCategory; 9] = [
    FailureCategory::Authentication,
    FailureCategory::Connection,
    FailureCategory::Tls,
    FailureCategory::Quota,
    FailureCategory::Throttled,
    FailureCategory::DestinationRefused,
    FailureCategory::SourceRefused,
    FailureCategory::Configuration,
    FailureCategory::Internal,
];

/// `/tasks/{task}` with the name escaped, plus `rest`.
pub fn task_url(task: &str, rest: &str) -> String {
    format!("/tasks/{}{rest}", url_escape(task))
}

/// A status as a badge.
pub fn status_badge(s: Status) -> Markup {
    html! { span class={ "status " (s.as_str()) } { (s.as_str().replace('_', " ")) } }
}

/// A time as the console shows it (UTC, to the second); empty for none.
pub fn when(t: Option<OffsetDateTime>) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&fmt).ok())
        .unwrap_or_default()
}

/// A duration in words: `3 h 20 min`, `45 s`, `2 d 4 h`.
pub fn span(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, _) => format!("{m} min"),
        (0, _, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h"),
    }
}

/// A rate per second in words: `12.5/s`.
pub fn per_second(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// `?done=...`: the message an action leaves for the page it returns to.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Done {
    /// The message.
    pub done: Option<String>,
}

/// A message after an action, shown at the top of the next page (`?done=...`).
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text.filter(|t| !t.is_empty()) {
            p.notice id="notice" { (t) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_well() {
        assert_eq!(span(45), "45 s");
        assert_eq!(span(600), "10 min");
        assert_eq!(span(3600 * 3 + 1200), "3 h 20 min");
        assert_eq!(span(86_400 * 2 + 3600 * 4), "2 d 4 h");
    }

    #[test]
    fn task_urls_escape_the_name() {
        assert_eq!(task_url("a b", "/accounts"), "/tasks/a%20b/accounts");
    }
}
