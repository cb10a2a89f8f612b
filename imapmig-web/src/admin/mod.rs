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
//! * [`listing`] (the table's query, parsed) and [`words`] (how times, rates, statuses,
//!   controls and audit events read): what the pages share. The throughput, ETA and window
//!   end are [`crate::pace`]'s.
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
pub mod settings;
pub mod words;

use axum::routing::{get, post, put};
use axum::Router;

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
